"""Every command's bad arguments and bad files: one sentence, exit 2, no traceback, nothing run from a file; and
the silent cases made loud or right (a byte-order mark, a link out of the data folder, a split with no good row, a
plugin that exits at import, ``last.ckpt`` after ``fit``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from mmlightning.cli.main import main
from mmlightning.data.manifest import read_manifest
from mmlightning.errors import MMLightningError
from mmlightning.trained import read_checkpoint

from conftest import fit_shapes, make_plugin, write_rows


class Payload:
    """Unpickling this would create ``marker``: the test that it never appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def run(shapes_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("errors")
    fitted = fit_shapes(shapes_data, trainer={"logger": False, "default_root_dir": str(work / "runs")})
    ckpt = Path(fitted.checkpoint)
    marker = work / "PAYLOAD_RAN"
    torch.save({"state_dict": {}, "x": Payload(marker)}, work / "payload.ckpt")
    (work / "cut.ckpt").write_bytes(ckpt.read_bytes()[:2000])
    from PIL import Image

    Image.new("RGB", (8, 8)).save(work / "picture.png")
    (work / "a_file").write_text("")
    return work, ckpt, marker


def said(capsys, args: list[str]) -> str:
    """Run a command that must fail as the user's error: exit 2, one message, no traceback."""
    try:
        code = main(args)
    except SystemExit as exited:  # an option the parser refuses
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2, (args, err)
    assert "Traceback" not in err, err
    return err


def test_each_command_refuses_bad_arguments_in_one_message(run, shapes_data, capsys):
    work, ckpt, _ = run
    config, rows = str(ckpt.parent.parent / "config.yaml"), str(shapes_data / "val.jsonl")
    cases = {
        ("export", "--ckpt_path", str(work / "picture.png"), "--out", str(work / "x")): "is not a checkpoint",
        ("export", "--ckpt_path", str(ckpt), "--out", str(work / "a_file")): "is a file; give a folder",
        ("serve", "--export", str(work / "nowhere")): "no exported model there",
        ("serve", "--ckpt_path", str(work / "none.ckpt")): "No checkpoint",
        ("ensemble", "--ckpt_path", str(ckpt), str(work / "none.ckpt"), "--rows", rows): "No checkpoint",
        ("robustness", "--ckpt_path", str(ckpt), "--severities", "2"): "severities must be in (0, 1]",
        ("robustness", "--ckpt_path", str(ckpt), "--metric", "nope", "--no_wandb"): "it reports acc, ",
        ("sweep", "--config", str(work / "none.yaml"), "--space", "{a: {low: 1, high: 2}}"): "no such file",
        ("sweep", "--config", config, "--space", "{a: {low: 1, high: 2}}", "--trials", "0"): "at least one trial",
        ("prune", "--ckpt_path", str(ckpt), "--out", str(work / "p"), "--sparsity", "2"): "--sparsity must be",
        ("validate", "--config", config, "--ckpt_path", str(work / "none.ckpt")): "no such checkpoint",
        ("test", "--config", config, "--ckpt_path", str(work / "cut.ckpt"), f"--data.test={rows}"): "cut short",
        ("predict", "--config", config, "--ckpt_path", str(work / "picture.png"), f"--data.predict={rows}"): (
            "is not a checkpoint"
        ),
    }
    for args, reason in cases.items():
        assert reason in said(capsys, list(args)), args


def test_a_checkpoint_carrying_code_is_refused_by_every_loader_and_nothing_runs(run, capsys):
    work, ckpt, marker = run
    config, payload = str(ckpt.parent.parent / "config.yaml"), str(work / "payload.ckpt")
    for args in (
        ["validate", "--config", config, "--ckpt_path", payload],
        ["export", "--ckpt_path", payload, "--out", str(work / "e")],
        ["robustness", "--ckpt_path", payload],
    ):
        assert "it carries posix.system" in said(capsys, args)
    with pytest.raises(MMLightningError, match="nothing in it ran"):
        read_checkpoint(payload)
    assert not marker.exists()


def test_last_ckpt_holds_the_final_state_when_fit_ends(shapes_data, tmp_path):
    from mmlightning.training import fit

    text = {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}}
    found = fit(
        {
            "checkpoint_every_n_steps": 5,  # 6 steps an epoch: saved at 5 and 10, then once more at the end (12)
            "trainer": {"max_epochs": 2, "logger": False, "default_root_dir": str(tmp_path / "runs")},
            "model": {"encoders": {"text": text}, "fusion": "ConcatFusion", "heads": {"label": "ClassificationHead"}},
            "data": {"train": str(shapes_data / "train.jsonl"), "batch_size": 16},
        }
    )
    last = read_checkpoint(Path(found["checkpoint"]).parent / "last.ckpt")
    assert last["global_step"] == 12  # not 10, the last multiple of 5


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "rows.csv").write_bytes("\ufefftext,label\nhello,yes\n".encode())
    (tmp_path / "rows.jsonl").write_bytes('\ufeff{"text": "hello", "label": "yes"}\n'.encode())
    for name in ("rows.csv", "rows.jsonl"):
        manifest = read_manifest(tmp_path / name)
        assert manifest.columns() == ["text", "label"] and not manifest.bad, name


def test_a_link_out_of_the_data_folder_is_a_bad_row_unless_its_folder_is_allowed(shapes_data, tmp_path):
    from mmlightning.processing import MediaRoot, Processor

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes((shapes_data / "images" / "train_00000.png").read_bytes())
    data = tmp_path / "data"
    data.mkdir()
    (data / "inside.png").symlink_to(outside / "secret.png")
    with pytest.raises(ValueError, match=r"is a link to .*secret.png, outside the data folder"):
        Processor.resolve("inside.png", MediaRoot.make(data), "image")
    assert Processor.resolve("inside.png", MediaRoot.make(data, [outside]), "image") == data / "inside.png"


def test_a_split_with_every_row_bad_is_an_error_even_when_skipping(shapes_data, tmp_path):
    val = write_rows(tmp_path / "val.jsonl", [{"id": "1", "text": "a red circle", "image": "none.png", "label": "x"}])
    with pytest.raises(MMLightningError, match="Every row was bad, so nothing is left"):
        fit_shapes(
            shapes_data,
            val=str(val),
            trainer={"logger": False, "default_root_dir": str(tmp_path / "runs")},
            data={"batch_size": 16, "on_bad_rows": "skip"},
        )


def test_a_plugin_that_exits_at_import_is_listed_as_skipped(tmp_path):
    from test_cli import run_cli

    make_plugin(tmp_path, "fake_exit", "import sys\nsys.exit(3)\n")
    result = run_cli("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = {p["name"]: p for p in json.loads(result.stdout)}
    assert found["fake_exit"]["skipped"] == "SystemExit: 3" and "heads" in found


def test_a_manifest_line_over_the_size_limit_is_a_bad_row_never_parsed(tmp_path, monkeypatch):
    from mmlightning.data import manifest

    monkeypatch.setattr(manifest, "MAX_LINE_BYTES", 1 << 20)
    huge = json.dumps({"id": "2", "text": "x" * (2 << 20), "label": "yes"})
    path = write_rows(tmp_path / "rows.jsonl", [{"id": "1", "text": "fine", "label": "yes"}, huge])
    found = read_manifest(path)
    assert [row.values["id"] for row in found.rows] == ["1"]
    assert found.bad[0].line == 2 and "a line of 2 MB, over the 1 MB a row may take" in found.bad[0].reason


def test_a_checkpoint_of_another_model_than_the_config_is_refused_with_the_differences(shapes_data, tmp_path, capsys):
    from mmlightning.cli.main import main

    from conftest import main_in

    text = {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}}
    config = {
        "trainer": {"max_epochs": 1, "logger": False, "default_root_dir": str(tmp_path / "runs")},
        "model": {
            "encoders": {"text": text},
            "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16}},
            "heads": {"label": "ClassificationHead"},
        },
        "data": {"train": str(shapes_data / "train.jsonl"), "val": str(shapes_data / "val.jsonl"), "batch_size": 16},
    }
    checkpoint = main_in(tmp_path, config, "fit")["checkpoint"]
    other = {**config, "model": {**config["model"], "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 32}}}}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    for command in ("validate", "fit"):  # evaluating, and resuming
        assert main([command, "--config", str(tmp_path / "other.yaml"), f"--ckpt_path={checkpoint}"]) == 2
        error = capsys.readouterr().err
        assert "holds another model than the config gives" in error and "Traceback" not in error
        assert "model.fusion.init_args.dim: the config says 32, the checkpoint 16" in error
    args = ["validate", "--config", str(tmp_path / "other.yaml"), f"--ckpt_path={checkpoint}"]
    assert main([*args, "--checkpoint_model=true"]) == 0
    assert main(["validate", "--config", str(tmp_path / "config.yaml"), f"--ckpt_path={checkpoint}"]) == 0
