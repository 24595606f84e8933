"""Nothing silent: a non-finite loss stops the run, paths stay inside the data, bad rows are named, runs are apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mmlightning.cli.main import main

from conftest import write_image, write_rows

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False, "logger": False},
    "model": {
        "encoders": {
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 60}}
        },
        "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16}},
        "heads": {"label": {"class_path": "ClassificationHead"}},
    },
}


def run(work: Path, data: dict, *args: str, config: dict | None = None) -> int:
    """`mmlightning fit` (or another command) from WORK, as a user runs it; returns the exit code."""
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump({**(config or CONFIG), "data": {"batch_size": 4, **data}}))
    cwd = Path.cwd()
    os.chdir(work)
    try:
        return main([*(args or ("fit",)), "--config", str(path)])
    finally:
        os.chdir(cwd)


def texts(path: Path, count: int = 12, **extra) -> Path:
    rows = [
        {"id": f"r{i}", "text": f"word{i % 3} thing{i % 2}", "label": ["a", "b"][i % 2], **extra} for i in range(count)
    ]
    return write_rows(path, rows)


def test_a_nan_loss_stops_the_run_with_the_step_the_head_and_the_last_finite_value(tmp_path, capsys):
    config = {
        **CONFIG,
        "model": {**CONFIG["model"], "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e30}}},
    }
    code = run(
        tmp_path,
        {"train": str(texts(tmp_path / "train.jsonl"))},
        "fit",
        f"--results_path={tmp_path / 'r.json'}",
        config=config,
    )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "training stopped at step" in err and "'label' nan" in err and "the last finite loss was" in err
    assert not (tmp_path / "r.json").exists()  # a broken run is never reported as a finished one
    assert not list(tmp_path.glob("runs/*/checkpoints/*.ckpt"))


def test_nonfinite_steps_can_be_skipped_up_to_a_limit():
    import torch

    from mmlightning import MultimodalModule
    from mmlightning.errors import NonFiniteLossError
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead
    from mmlightning_text import TextEncoder

    model = MultimodalModule(
        {"text": TextEncoder(dim=8, layers=1, heads=2)},
        ConcatFusion,
        {"label": ClassificationHead},
        max_nonfinite_steps=1,
    )
    nan = torch.tensor(float("nan"), requires_grad=True)
    model._step = lambda batch, stage: (nan, {"label": type("Out", (), {"loss": nan})()})
    assert model.training_step(None, 0) is None  # skipped: no update
    with pytest.raises(NonFiniteLossError, match="no finite loss before it"):
        model.training_step(None, 1)


def test_media_paths_stay_inside_the_data_folder_unless_allowed(tmp_path, capsys):
    data, outside = tmp_path / "data", tmp_path / "outside"
    write_image(data / "ok.png")
    secret = outside / "secret.png"
    write_image(secret)
    config = {
        **CONFIG,
        "model": {
            **CONFIG["model"],
            "encoders": {
                "image": {
                    "class_path": "TimmEncoder",
                    "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
                }
            },
        },
    }
    rows = [
        {"image": "ok.png", "label": "a"},
        {"image": "../outside/secret.png", "label": "b"},
        {"image": str(secret), "label": "a"},
        {"image": "ok.png", "label": "b"},
    ]
    manifest = write_rows(data / "train.jsonl", rows)
    assert run(tmp_path, {"train": str(manifest)}, config=config) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:2: field 'image': image path ../outside/secret.png is outside the data folder" in err
    assert "train.jsonl:3: " in err and "--data.allow_roots" in err
    assert run(tmp_path, {"train": str(manifest), "allow_roots": [str(outside)]}, config=config) == 0


def test_bad_labels_duplicate_ids_and_empty_manifests_are_named(tmp_path, capsys):
    rows = [
        {"id": "1", "text": "a b", "label": "a"},
        {"id": "2", "text": "c d", "label": ["x"]},
        {"id": "1", "text": "e f", "label": "b"},
        {"id": "3", "text": "g h", "label": {"k": 1}},
    ]
    assert run(tmp_path, {"train": str(write_rows(tmp_path / "train.jsonl", rows))}) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:2: field 'label': expected one label (a string or a number), got list ['x']" in err
    assert "train.jsonl:3: field 'id': duplicate id '1' (also on line 1)" in err
    assert "train.jsonl:4: field 'label': expected one label" in err
    mixed = [{"text": "a b", "label": "a"}, {"text": "c d", "label": 3}, {"text": "e f", "label": "b"}]
    assert run(tmp_path, {"train": str(write_rows(tmp_path / "mixed.jsonl", mixed))}) == 2
    assert "labels mix numbers (1 rows, e.g. 3) and text (2 rows" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert run(tmp_path, {"train": str(texts(tmp_path / "t.jsonl")), "val": str(tmp_path / "empty.jsonl")}) == 2
    assert "empty.jsonl is empty: it has no rows" in capsys.readouterr().err
    assert run(tmp_path, {"train": str(tmp_path / "empty.jsonl")}) == 2
    assert "empty.jsonl is empty" in capsys.readouterr().err


def test_a_missing_target_column_names_the_column_and_the_option(tmp_path, capsys):
    rows = [{"text": "a b", "sentiment": "a"}, {"text": "c d", "sentiment": "b"}]
    assert run(tmp_path, {"train": str(write_rows(tmp_path / "train.jsonl", rows))}) == 2
    err = capsys.readouterr().err
    assert "has no column 'label'; its columns are text, sentiment. Map names with --data.columns" in err


def test_unreadable_lines_are_bad_rows_and_the_rest_are_kept(tmp_path):
    from mmlightning.data.manifest import read_manifest

    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n' + b"[" * 100000 + b"\n" + b'{"text": "also fine"}\n')
    manifest = read_manifest(path)
    assert [r.line for r in manifest.rows] == [1, 4]
    assert [(b.line, b.reason) for b in manifest.bad] == [
        (2, "not UTF-8 text (byte 0xe9 at column 14)"),
        (3, "JSON nested too deeply to read"),
    ]
    (tmp_path / "m.csv").write_bytes(b"text,label\nfine,a\ncaf\xe9,b\nok,c\n")
    manifest = read_manifest(tmp_path / "m.csv")
    assert (
        [r.line for r in manifest.rows] == [2, 4]
        and manifest.bad[0].line == 3
        and "not UTF-8" in manifest.bad[0].reason
    )


def test_runs_without_a_logger_get_folders_of_their_own_with_their_skipped_rows(tmp_path):
    rows = [{"id": f"r{i}", "text": "   " if i == 0 else f"w{i % 3} x", "label": "ab"[i % 2]} for i in range(10)]
    data = {"train": str(write_rows(tmp_path / "train.jsonl", rows)), "on_bad_rows": "skip"}
    assert run(tmp_path, data) == 0 and run(tmp_path, data) == 0
    folders = sorted(p for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("run-") for f in folders)
    for folder in folders:
        assert (folder / "config.yaml").is_file() and (folder / "bundle.json").is_file()
        assert len(list((folder / "checkpoints").glob("*.ckpt"))) >= 1
        skipped = [json.loads(line) for line in (folder / "skipped_rows.jsonl").read_text().splitlines()]
        assert [s["line"] for s in skipped] == [1]
    saved = yaml.safe_load((folders[0] / "config.yaml").read_text())
    assert saved["trainer"]["default_root_dir"].endswith(folders[0].name)  # validate from it reuses the folder


def test_a_missing_manifest_or_checkpoint_is_said_before_the_trainer_starts(tmp_path, capsys):
    assert run(tmp_path, {}) == 2
    err = capsys.readouterr().err
    assert (
        "`mmlightning fit` needs a train manifest: --data.train=PATH" in err and "ConfigError" not in err
    )  # no traceback
    assert not (tmp_path / "runs").exists()  # nothing started
    assert run(tmp_path, {"train": "nope.jsonl"}) == 2
    assert "--data.train: manifest not found: nope.jsonl" in capsys.readouterr().err
    assert run(tmp_path, {"val": str(texts(tmp_path / "v.jsonl"))}, "validate") == 2
    assert "uses a trained model: pass --ckpt_path" in capsys.readouterr().err
