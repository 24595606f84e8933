"""Deployment: export in each format with a parity check, int8, the HTTP server, and a sweep."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import torch
import yaml

import mmlightning
from mmlightning.deploy.export import ExportError, export
from mmlightning.deploy.local import free_port, served
from mmlightning.deploy.runtime import Exported
from mmlightning.trained import load_run

ENCODERS = {
    "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80}},
    "image": {"class_path": "TimmEncoder", "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16}},
}


@pytest.fixture(scope="module")
def trained(shapes_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("deploy")
    return mmlightning.fit(
        train=str(shapes_data / "train.jsonl"),
        val=str(shapes_data / "val.jsonl"),
        encoders=ENCODERS,
        fusion={"class_path": "CrossAttentionFusion", "init_args": {"dim": 16, "heads": 2, "query": "text"}},
        heads={"label": "ClassificationHead"},
        max_epochs=1,
        trainer={"logger": False, "default_root_dir": str(work / "runs")},
        data={"batch_size": 16},
    )


def val_rows(shapes_data: Path, count: int = 7) -> list[dict]:
    return [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:count]]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_export_gives_pytorchs_predictions_on_raw_rows(trained, shapes_data, tmp_path, fmt):
    report = export(trained.checkpoint, tmp_path / fmt, fmt, rows=str(shapes_data / "val.jsonl"))
    assert report["parity"]["predictions_agree"] == 1.0 and report["parity"]["max_abs_diff"]["label.logits"] < 1e-3
    rows = val_rows(shapes_data)
    rows[2] = {**rows[2], "image": None}  # a missing modality, as in training
    exported = Exported.load(tmp_path / fmt).predict(rows, root=shapes_data)
    eager = trained.predict(rows, root=shapes_data)
    assert [r["label"] for r in exported] == [r["label"] for r in eager] and [r["id"] for r in exported] == [
        r["id"] for r in rows
    ]
    for got, want in zip(exported, eager):
        assert got["label_scores"] == pytest.approx(want["label_scores"], abs=1e-3)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_int8_export_runs_and_is_reported(trained, shapes_data, tmp_path, fmt):
    report = export(trained.checkpoint, tmp_path, fmt, rows=str(shapes_data / "val.jsonl"), quantize="dynamic-int8")
    assert report["quantize"] == "dynamic-int8" and 0.0 <= report["parity"]["predictions_agree"] <= 1.0
    assert "tolerance" not in report["parity"]  # int8 differs from fp32 by design: reported, not refused
    assert len(Exported.load(tmp_path).predict(val_rows(shapes_data), root=shapes_data)) == 7


def test_export_names_the_component_it_cannot_export(trained, shapes_data, tmp_path, monkeypatch):
    from mmlightning_fusions import CrossAttentionFusion

    original = CrossAttentionFusion.forward

    def untraceable(self, features):
        if torch.jit.is_tracing():
            raise RuntimeError("data-dependent control flow")
        return original(self, features)

    monkeypatch.setattr(CrossAttentionFusion, "forward", untraceable)
    with pytest.raises(ExportError, match=r"cannot export the fusion \(CrossAttentionFusion\) to onnx"):
        export(trained.checkpoint, tmp_path, "onnx", rows=str(shapes_data / "val.jsonl"))


def test_export_cli_errors_are_one_line(tmp_path):
    from mmlightning.cli.main import main

    assert main(["export", "--ckpt_path", str(tmp_path / "none.ckpt"), "--out", str(tmp_path)]) == 2


def test_export_on_an_unreadable_row_says_which_in_one_line_and_writes_nothing(trained, shapes_data, tmp_path, capsys):
    from mmlightning.cli.main import main

    rows = val_rows(shapes_data, 5)
    for row in rows:
        (tmp_path / row["image"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / row["image"]).write_bytes((shapes_data / row["image"]).read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    rows[3] = {**rows[3], "image": "broken.png"}
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    code = main(
        [
            "export",
            "--ckpt_path",
            trained.checkpoint,
            "--out",
            str(tmp_path / "out"),
            "--rows",
            str(tmp_path / "rows.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "out").exists()
    assert "rows.jsonl, row 4: field 'image': unreadable image" in err and "broken.png" in err


def test_server_answers_good_and_bad_requests(trained, shapes_data, tmp_path):
    with served("--ckpt_path", trained.checkpoint, "--max_payload_size", "1MB") as url:
        row = val_rows(shapes_data, 1)[0]
        picture = (shapes_data / row["image"]).read_bytes()
        want = trained.predict([row], root=shapes_data)[0]
        got = requests.post(
            f"{url}/predict", json={"text": row["text"], "image": {"base64": base64.b64encode(picture).decode()}}
        )
        assert got.status_code == 200 and got.json()["label"] == want["label"]
        assert got.json()["label_scores"] == pytest.approx(want["label_scores"], abs=1e-3)
        form = requests.post(f"{url}/predict", data={"text": row["text"]}, files={"image": ("p.png", picture)})
        assert form.status_code == 200 and form.json()["label"] == want["label"]
        text_only = requests.post(f"{url}/predict", json={"text": row["text"]})
        assert text_only.status_code == 200 and text_only.json()["label"] in want["label_scores"]
        bad = {
            "unknown field": {"text": "a red circle", "colour": "red"},
            "unreadable image": {"text": "x", "image": {"base64": base64.b64encode(b"not a picture").decode()}},
            "not valid base64": {"image": {"base64": "!!"}},
            "does not read paths": {"image": "../../etc/passwd"},
            "no input given": {"id": "7"},
        }
        for reason, body in bad.items():
            answer = requests.post(f"{url}/predict", json=body)
            assert answer.status_code == 400 and reason in answer.json()["detail"], (reason, answer.text)
        path = requests.post(f"{url}/predict", json={"text": "x", "image": str(shapes_data / row["image"])})
        assert path.status_code == 400 and "does not read paths" in path.json()["detail"]
        assert "upload the file" in path.json()["detail"]
        schema = requests.get(f"{url}/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
        fields = schema["application/json"]["schema"]["properties"]
        assert set(fields) == {"id", "text", "image"} and "encoder 'image'" in fields["image"]["description"]
        assert schema["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
        huge = {"text": "x", "image": {"base64": base64.b64encode(b"0" * 2_000_000).decode()}}
        assert requests.post(f"{url}/predict", json=huge).status_code == 413
        bigger = requests.post(f"{url}/predict", data=b"0" * 50_000_000, headers={"content-type": "application/json"})
        assert bigger.status_code == 413 and "over the limit" in bigger.json()["detail"]
        broken = requests.post(f"{url}/predict", data=b'{"text": "a red', headers={"content-type": "application/json"})
        assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
        assert requests.post(f"{url}/predict", json={"text": row["text"]}).status_code == 200  # still serving


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_background_server_stops_on_sigint_and_sigterm_with_its_workers(trained, signum):
    """Started as a shell starts a background job (SIGINT ignored), signalled on its own pid, not its group."""
    port = free_port()
    command = f"{sys.executable} -m mmlightning.cli.main serve --ckpt_path {trained.checkpoint} --port {port}"
    shell = subprocess.Popen(
        ["bash", "-c", f"{command} & echo $!; wait"], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        pid = int(shell.stdout.readline())  # type: ignore[union-attr]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "ok":
                    break
            time.sleep(0.5)
        os.kill(pid, signum)
        shell.wait(timeout=60)  # the shell's `wait` returns once the server has exited
        time.sleep(1)
        shown = subprocess.run(["ps", "-o", "stat=,args=", "-g", str(shell.pid)], capture_output=True, text=True)
        running = [line for line in shown.stdout.splitlines() if not line.startswith("Z")]  # exited, not yet reaped
        assert running == [], f"processes left after {signal.Signals(signum).name}: {running}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)


def test_a_two_trial_sweep_writes_each_run_and_the_best_config(shapes_data, tmp_path, monkeypatch):
    from mmlightning.deploy.sweep import read_space, sweep

    monkeypatch.setenv("WANDB_MODE", "offline")
    config = tmp_path / "base.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "trainer": {"max_epochs": 2, "enable_progress_bar": False, "enable_model_summary": False},
                "model": {"encoders": ENCODERS, "fusion": "ConcatFusion", "heads": {"label": "ClassificationHead"}},
                "data": {
                    "train": str(shapes_data / "train.jsonl"),
                    "val": str(shapes_data / "val.jsonl"),
                    "batch_size": 16,
                },
            }
        )
    )
    space = read_space(
        "{model.optimizer.init_args.lr: {low: 1.0e-4, high: 1.0e-2, log: true}, model.fusion.init_args.dim: {choices: [8, 16]}}"
    )
    result = sweep(config, space, trials=2, metric="val/label/acc", direction="maximize", out=tmp_path / "sweep")
    assert [t["trial"] for t in result["trials"]] == [0, 1] and result["trials"][0]["state"] == "complete"
    best = yaml.safe_load((tmp_path / "sweep" / "best.yaml").read_text())
    assert best["model"]["fusion"]["init_args"]["dim"] == result["params"]["model.fusion.init_args.dim"]
    assert best["model"]["optimizer"]["init_args"]["lr"] == pytest.approx(
        result["params"]["model.optimizer.init_args.lr"]
    )
    for trial in result["trials"]:
        assert list((Path(trial["folder"]) / "wandb").glob("offline-run-*"))  # its own W&B run
    assert json.loads((tmp_path / "sweep" / "trials.json").read_text())[0]["values"] == result["trials"][0]["values"]
    with pytest.raises(mmlightning.errors.ConfigError, match="needs"):
        read_space("{model.optimizer.init_args.lr: {low: 1.0, high: 0.1}}")


def test_pruning_holds_its_zeros_through_the_re_fine_tune_and_exports(trained, shapes_data, tmp_path):
    from mmlightning.deploy.prune import prune_run, sparsity, targets

    found = prune_run(trained.checkpoint, tmp_path / "pruned", 0.5, epochs=1)
    assert abs(found["sparsity"] - 0.5) < 0.01 and "val/label/acc" in found["metrics"]
    config = yaml.safe_load((Path(found["run_dir"]) / "config.yaml").read_text())  # an ordinary fit of the run's
    assert config["data"]["batch_size"] == 16 and config["trainer"]["max_epochs"] == 1
    assert config["model"]["tuning"][-1]["class_path"].endswith("InitFrom")
    model = load_run(found["checkpoint"]).model
    assert abs(sparsity(targets(model)) - 0.5) < 0.01  # the re-fine-tune kept the pruned weights at zero
    original = load_run(trained.checkpoint).model
    assert sparsity(targets(original)) < 0.01
    report = export(found["checkpoint"], tmp_path / "onnx", "onnx", rows=str(shapes_data / "val.jsonl"))
    assert report["parity"]["predictions_agree"] == 1.0
    with pytest.raises(mmlightning.errors.ConfigError, match="between 0 and 1"):
        prune_run(trained.checkpoint, tmp_path / "bad", 1.5)


def test_deploy_commands_take_a_config_file_and_print_theirs(trained, tmp_path, capsys):
    from mmlightning.cli.main import main

    args = ["export", "--ckpt_path", trained.checkpoint, "--out", str(tmp_path / "e"), "--format", "torchscript"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--print_config"])
    assert done.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["format"] == "torchscript" and printed["tolerance"] == 1e-3
    (tmp_path / "export.yaml").write_text(yaml.safe_dump(printed))
    assert main(["export", "--config", str(tmp_path / "export.yaml")]) == 0
    assert json.loads((tmp_path / "e" / "export.json").read_text())["format"] == "torchscript"
    with pytest.raises(SystemExit) as done:
        main(["robustness", "--ckpt_path", trained.checkpoint, "--severitys", "0.5"])
    assert done.value.code == 2
    error = capsys.readouterr().err
    assert "did you mean --severities" in error and "Traceback" not in error
