"""A newcomer's mistakes caught before anything is built (exit 2, the message alone), strict options, and no
upstream noise from any command under the default logger."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mmlightning.cli.main import main

from conftest import write_rows

SMALL_TEXT = {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 60}}


def small_config(shapes_data: Path, **model: object) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1},
        "model": {
            "encoders": {"text": SMALL_TEXT},
            "fusion": "ConcatFusion",
            "heads": {"label": "ClassificationHead"},
            **model,
        },
        "data": {"train": str(shapes_data / "train.jsonl"), "val": str(shapes_data / "val.jsonl"), "batch_size": 16},
    }


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mmlightning.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_an_abbreviated_option_is_refused_with_the_full_name(shapes_data, tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small_config(shapes_data)))
    result = cli("fit", "--config", "c.yaml", "--trainer.max_epoch=3", cwd=tmp_path)
    assert result.returncode == 2 and "unrecognized arguments: --trainer.max_epoch=3" in result.stderr
    assert "did you mean --trainer.max_epochs (for --trainer.max_epoch)?" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_key_misspelt_in_a_yaml_config_gets_a_suggestion(shapes_data, tmp_path, capsys):
    config = small_config(shapes_data)
    config["data"]["batchsize"] = config["data"].pop("batch_size")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exited:
        main(["fit", "--config", str(tmp_path / "c.yaml")])
    err = capsys.readouterr().err
    assert (
        exited.value.code == 2
        and "does not accept option 'data.batchsize'" in err
        and "did you mean data.batch_size" in err
    )


def test_a_token_level_head_on_a_pooling_fusion_is_refused_before_a_run_starts(tmp_path, monkeypatch, capsys):
    rows = [{"id": str(i), "text": "ann lives in rome", "tags": ["B-PER", "O", "O", "B-LOC"]} for i in range(8)]
    train = write_rows(tmp_path / "ner.jsonl", rows)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--model.encoders.text=TextEncoder", "--model.fusion=ConcatFusion"]
    args += ["--model.heads.tags=TokenClassificationHead", f"--data.train={train}", f"--data.val={train}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "head 'tags' (TokenClassificationHead) reads the 'text' tokens after fusion" in err
    assert "ConcatFusion does not keep tokens" in err and "SingleStreamFusion" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("part", ["heads", "encoders"])
def test_a_key_the_data_lacks_is_refused_before_a_run_starts(part, shapes_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wrong = {"heads": {"answer": "ClassificationHead"}, "encoders": {"answer": SMALL_TEXT}}[part]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small_config(shapes_data, **{part: wrong})))
    assert main(["fit", "--config", "c.yaml"]) == 2
    err = capsys.readouterr().err
    assert "has no column 'answer'" in err and "--data.columns" in err
    assert not (tmp_path / "runs").exists()  # no run folder, no W&B run, no saved config


NOISE = (
    "Seed set to",
    "No seed found",
    "callbacks used to create the checkpoint",
    "dirpath has changed",
    "LightningCLI's args parameter",
    "log_every_n_steps",
    "GPU available",
    "TPU available",
    "LOCAL_RANK",
    "| Name",
    "wandb: ",
    "Warning:",
    "Traceback",
    "weights_only",
)


def test_no_command_prints_upstream_noise(shapes_data, tmp_path):
    """Every command once, in a fresh process, under the default logger (W&B, offline)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(small_config(shapes_data)))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join((shapes_data / "val.jsonl").read_text().splitlines(keepends=True)[:8]))
    script = textwrap.dedent(
        f"""
        import glob, os, sys
        from mmlightning.cli.main import main
        os.environ["WANDB_MODE"] = "offline"
        assert main(["fit", "--config", "c.yaml"]) == 0
        run = glob.glob("runs/mmlightning/*/")[0]
        ckpt = glob.glob(run + "checkpoints/epoch=*.ckpt")[0]
        common = ["--config", run + "config.yaml", "--ckpt_path", ckpt]
        for command in (["validate"], ["test", "--data.test={rows}"], ["predict", "--data.predict={rows}"]):
            assert main([command[0], *common, *command[1:]]) == 0, command
        assert main(["export", "--ckpt_path", ckpt, "--out", "exported", "--rows", "{rows}"]) == 0
        assert main(["robustness", "--ckpt_path", ckpt, "--rows", "{rows}", "--severities", "0.5"]) == 0
        assert main(["ensemble", "--ckpt_path", ckpt, ckpt, "--rows", "{rows}"]) == 0
        assert main(["prune", "--ckpt_path", ckpt, "--out", "pruned", "--epochs", "1"]) == 0
        space = "{{data.batch_size: {{choices: [16, 32]}}}}"
        assert main(["sweep", "--config", "c.yaml", "--space", space, "--trials", "1", "--out", "sweep"]) == 0
        assert main(["plugins"]) == 0 and main(["components", "fusion"]) == 0
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-3000:]
    found = [line for line in said.splitlines() if any(noise in line for noise in NOISE)]
    assert found == [], "\n".join(found)
    assert "Epoch 1/1" in said and "Epoch 0/" not in said  # Lightning's bar counts from 1, as the epoch lines do
    assert json.loads((tmp_path / "exported" / "export.json").read_text())["parity"]
