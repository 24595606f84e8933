"""The command line, as a user runs it: fit, validate and predict from files, W&B offline, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmlightning.cli.main import main

from conftest import make_plugin
from wandb_reader import read_run, records

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 2, "enable_progress_bar": False, "log_every_n_steps": 1, "enable_model_summary": False},
    "model": {
        "encoders": {
            "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 100}},
            "image": {
                "class_path": "TimmEncoder",
                "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
            },
        },
        "fusion": {"class_path": "CrossAttentionFusion", "init_args": {"dim": 16, "heads": 2, "query": "text"}},
        "heads": {"label": {"class_path": "ClassificationHead"}},
    },
    "data": {"batch_size": 16},
}


@pytest.fixture(scope="module")
def fitted(shapes_data, tmp_path_factory):
    """One `mmlightning fit` run, W&B offline, in its own working folder."""
    work = tmp_path_factory.mktemp("work")
    config = work / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **CONFIG,
                "data": {
                    **CONFIG["data"],
                    "train": str(shapes_data / "train.jsonl"),
                    "val": str(shapes_data / "val.jsonl"),
                },
            }
        )
    )
    old, os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE"), "offline"
    cwd = Path.cwd()
    os.chdir(work)
    try:
        assert main(["fit", "--config", str(config), f"--results_path={work / 'fit.json'}"]) == 0
    finally:
        os.chdir(cwd)
        os.environ.pop("WANDB_MODE") if old is None else os.environ.__setitem__("WANDB_MODE", old)
    run = next((work / "runs" / "mmlightning").iterdir())
    return work, run, next((run / "checkpoints").glob("epoch=*.ckpt"))


def test_fit_saves_config_with_class_paths_and_plugin_versions(fitted):
    _, run, _ = fitted
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["encoders"]["text"]["class_path"] == "mmlightning_text.TextEncoder"
    assert saved["model"]["fusion"]["class_path"] == "mmlightning_fusions.CrossAttentionFusion"
    assert saved["plugin_versions"]["vision"] == "mmlightning-vision 0.1.0"
    assert saved["results_path"] is None  # a later validate from this config must not overwrite fit.json


def test_results_path_holds_the_final_metrics(fitted):
    work, run, ckpt = fitted
    results = json.loads((work / "fit.json").read_text())
    assert Path(results["checkpoint"]).name == ckpt.name and results["epochs"] == 2
    assert 0.0 <= results["val/label/acc"] <= 1.0 and "val/label/f1_macro" in results


def test_wandb_run_holds_config_metrics_and_samples(fitted, shapes_data):
    work, _, _ = fitted
    run_dir = next((work / "runs" / "wandb").glob("offline-run-*"))
    run = read_run(run_dir)
    assert run["config"]["plugins"]["text"] == "mmlightning-text 0.1.0"
    assert run["config"]["cli"]["model"]["heads"]["label"]["class_path"].endswith("ClassificationHead")
    logged = {key for row in run["history"] for key in row}
    assert {"val/label/acc", "val/label/f1_macro", "val/label/recall/both_true", "train/loss_step"} <= logged
    rates = [row[key] for row in run["history"] for key in row if key.startswith("lr-")]  # LearningRateMonitor
    assert len(rates) >= 12 and set(rates) == {1e-3}  # every step (12), at the default optimizer's rate
    assert {"val/samples", "val/label/confusion"} <= set(run["tables"])
    confusion = json.loads(next(run_dir.glob("files/media/table/val/label/confusion_*.table.json")).read_text())
    assert confusion["columns"] == ["true / predicted", "both_true", "colour_wrong", "shape_wrong"]
    assert sum(sum(row[1:]) for row in confusion["data"]) == 48  # every validation sample, once
    table = json.loads(next(run_dir.glob("files/media/table/val/samples_*.table.json")).read_text())
    labels = ["both_true", "colour_wrong", "shape_wrong"]
    assert table["columns"] == ["id", "image", "text", "label (truth)", "label (predicted)"] + [
        f"label p({label})" for label in labels
    ] + ["image (attention)"]
    probabilities = [row[5:8] for row in table["data"]]
    assert all(abs(sum(p) - 1) < 1e-3 for p in probabilities)
    assert all(row[4] == labels[max(range(3), key=lambda j: row[5 + j])] for row in table["data"])
    first = json.loads((shapes_data / "val.jsonl").read_text().splitlines()[0])
    assert (
        table["data"][0][0] == first["id"]
        and table["data"][0][2] == first["text"]
        and table["data"][0][3] == first["label"]
    )
    media = [
        c
        for r in records(next(run_dir.glob("run-*.wandb")))
        if r.WhichOneof("record_type") == "artifact"
        for c in r.artifact.manifest.contents
    ]
    images = [c for c in media if c.path.endswith(".png")]
    assert len(images) == 2 * 2 * len(table["data"])  # an image and its attention map per row, one table per epoch
    staged = work.resolve() / "runs" / "wandb" / "data"
    assert all(Path(c.local_path).is_relative_to(staged) and Path(c.local_path).is_file() for c in media)


def test_wandb_run_draws_the_confusion_matrix_and_per_class_scores(fitted):
    work, _, _ = fitted
    run_dir = next((work / "runs" / "wandb").glob("offline-run-*"))
    config = read_run(run_dir)["config"]
    confusion = config["_wandb/visualize/val/label/confusion_chart"]["panel_config"]
    bars = config["_wandb/visualize/val/label/f1_per_class"]["panel_config"]
    assert confusion["panelDefId"] == "wandb/confusion_matrix/v1" and bars["panelDefId"] == "wandb/bar/v0"
    assert confusion["stringSettings"]["title"] == "val/label: confusion matrix"
    cells = json.loads(next(run_dir.glob("files/media/table/val/label/confusion_chart_table_*.table.json")).read_text())
    assert cells["columns"] == ["Actual", "Predicted", "nPredictions"] and len(cells["data"]) == 9
    assert sum(row[2] for row in cells["data"]) == 48  # every validation sample, once
    f1 = json.loads(next(run_dir.glob("files/media/table/val/label/f1_per_class_table_*.table.json")).read_text())
    assert [row[0] for row in f1["data"]] == ["both_true", "colour_wrong", "shape_wrong"]
    assert all(0.0 <= row[1] <= 1.0 for row in f1["data"])


def test_validate_and_predict_from_the_saved_run(fitted, shapes_data, tmp_path, capsys):
    _, run, ckpt = fitted
    common = ["--config", str(run / "config.yaml"), "--ckpt_path", str(ckpt), "--trainer.logger=false"]
    assert main(["validate", *common]) == 0
    assert "val/label/f1_macro" in capsys.readouterr().out
    new = tmp_path / "new.jsonl"
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:5]]
    new.write_text("".join(json.dumps({k: r[k] for k in ("id", "image", "text")}) + "\n" for r in rows))
    (tmp_path / "images").symlink_to(shapes_data / "images")
    out = tmp_path / "predictions.jsonl"
    assert (
        main(
            [
                "predict",
                *common,
                "--data.train=null",
                "--data.val=null",
                f"--data.predict={new}",
                f"--predictions_path={out}",
                f"--data.allow_roots=[{shapes_data}]",  # images/ links there
            ]
        )
        == 0
    )
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]
    assert all(p["label"] in {"both_true", "shape_wrong", "colour_wrong"} for p in predictions)


def test_load_from_checkpoint_in_python(fitted):
    from mmlightning import MultimodalModule

    _, _, ckpt = fitted
    model = MultimodalModule.load_from_checkpoint(ckpt)
    assert model.heads["label"].labels == ["both_true", "colour_wrong", "shape_wrong"]
    assert model.encoders["text"].processor()("a red square", Path("."), False)["ids"].shape[0] == 5


def test_misspelt_component_gets_a_suggestion(capsys):
    assert main(["fit", "--model.fusion=CrossAttentionFuson"]) == 2
    assert "No fusion named 'CrossAttentionFuson'. Did you mean 'CrossAttentionFusion'?" in capsys.readouterr().err


def test_misspelt_component_in_a_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"encoders": {"text": {"class_path": "TextEncodr"}}}}))
    assert main(["fit", "--config", str(config)]) == 2
    assert "Did you mean 'TextEncoder'?" in capsys.readouterr().err


def test_misspelt_option_gets_one_short_message_not_the_usage(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = run_cli("fit", "--config", str(config), "--trainer.max_epohcs=3")
    assert result.returncode == 2 and "usage:" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: unrecognized arguments: --trainer.max_epohcs=3",
        "did you mean --trainer.max_epochs (for --trainer.max_epohcs)?",
        "hint: `mmlightning fit --help` lists every option",
    ]
    result = run_cli("fit", "--config", str(config), "--model.fusion.init_args.dimm=3")
    assert result.returncode == 2 and "usage:" not in result.stderr
    assert "CrossAttentionFusion has no setting 'dimm': `mmlightning components CrossAttentionFusion`" in result.stderr


def test_unknown_command(capsys):
    assert main(["fitt"]) == 2
    assert "Did you mean 'fit'?" in capsys.readouterr().err


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmlightning.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("command", ["--help", "plugins"])
def test_light_commands_do_not_import_torch(command):
    code = f"import sys; from mmlightning.cli.main import main; main(['{command}']); print('torch' in sys.modules, 'lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("False False"), result.stdout + result.stderr


def test_plugins_lists_a_broken_plugin_as_skipped(tmp_path):
    make_plugin(tmp_path, "fake_broken", "raise RuntimeError('this plugin is broken on purpose')\n", version="9.9")
    result = run_cli("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert any(
        "fake_broken" in line
        and "fake_broken 9.9" in line
        and "SKIPPED: RuntimeError: this plugin is broken on purpose" in line
        for line in lines
    )
    for plugin in ("text", "vision", "audio", "fusions", "heads"):
        assert any(line.startswith(plugin) and f"mmlightning-{plugin} 0.1.0" in line for line in lines)
    assert "skipped plugin fake_broken (fake_broken 9.9)" in result.stderr
    as_json = json.loads(run_cli("plugins", "--json", env={"PYTHONPATH": str(tmp_path)}).stdout)
    from mmlightning_fusions.plugin import FUSIONS

    assert {p["name"]: p["registers"]["fusion"] for p in as_json}["fusions"] == [path.split(":")[1] for path in FUSIONS]


def test_components_lists_modality_and_summary():
    result = run_cli("components", "encoder")
    assert any("TimmEncoder" in line and "image" in line and "timm" in line for line in result.stdout.splitlines())


def test_components_name_shows_its_settings(capsys):
    assert main(["components", "TimmEncoder"]) == 0
    out = capsys.readouterr().out
    assert "encoder TimmEncoder (mmlightning_vision" in out and "checkpoint_path" in out and "'resnet18'" in out
    assert main(["components", "ClassifcationHead"]) == 2
    assert "Did you mean 'ClassificationHead'?" in capsys.readouterr().err
