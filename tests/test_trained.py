"""The one loader of a trained run: checkpoints, run folders and export folders; old checkpoints; unsafe files."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

import mmlightning
from mmlightning.cli.main import main
from mmlightning.deploy.runtime import Exported
from mmlightning.model import MultimodalModel
from mmlightning.trained import CheckpointError, TrainedRun, load_run, read_checkpoint, run_folder

from conftest import fit_shapes


@pytest.fixture(scope="module")
def run(shapes_data, tmp_path_factory):
    return fit_shapes(shapes_data, trainer={"logger": False, "default_root_dir": str(tmp_path_factory.mktemp("t"))})


def rows(shapes_data, count=8):
    return [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:count]]


def test_a_checkpoint_and_its_run_folder_load_the_same_model(run, shapes_data):
    by_file, by_folder = mmlightning.load(run.checkpoint), mmlightning.load(run.folder)
    assert isinstance(by_file, TrainedRun) and isinstance(by_file.model, MultimodalModel)
    assert not by_file.model.training and by_file.folder == run.folder.resolve()
    assert by_file.config["data"]["train"].endswith("train.jsonl")  # the run's saved config
    got, want = by_file.predict(rows(shapes_data), root=shapes_data), run.predict(rows(shapes_data), root=shapes_data)
    assert got == want and by_folder.predict(rows(shapes_data), root=shapes_data) == want
    probabilities = by_file.predict_proba(rows(shapes_data, 2), root=shapes_data)
    assert list(probabilities[0]) == ["label"] and sum(probabilities[0]["label"].values()) == pytest.approx(1, abs=1e-3)


def test_an_export_folder_loads_as_the_exported_model(run, shapes_data, tmp_path):
    from mmlightning.deploy.export import export

    export(run.checkpoint, tmp_path / "onnx", "onnx")
    exported = mmlightning.load(tmp_path / "onnx")
    assert isinstance(exported, Exported)
    labels = [r["label"] for r in exported.predict(rows(shapes_data), root=shapes_data)]
    assert labels == [r["label"] for r in run.predict(rows(shapes_data), root=shapes_data)]


def test_a_checkpoint_saved_before_the_model_was_its_own_module_still_loads(run, shapes_data, tmp_path):
    """Checkpoints of earlier versions name the weights ``encoders.…`` (the training module was the model)."""
    saved = torch.load(run.checkpoint, weights_only=True)
    assert all(k.startswith(("model.", "metrics.")) for k in saved["state_dict"])
    saved["state_dict"] = {k.removeprefix("model."): v for k, v in saved["state_dict"].items()}
    old = tmp_path / "checkpoints" / "old.ckpt"
    old.parent.mkdir()
    torch.save(saved, old)
    (tmp_path / "config.yaml").write_text((run.folder / "config.yaml").read_text())
    assert load_run(old).predict(rows(shapes_data), root=shapes_data) == run.predict(
        rows(shapes_data), root=shapes_data
    )
    config = str(tmp_path / "config.yaml")
    assert main(["validate", "--config", config, "--ckpt_path", str(old), "--trainer.logger=false"]) == 0


class Payload:
    def __reduce__(self):
        return (os.system, ("touch payload-ran",))


def test_a_checkpoint_that_carries_code_is_refused_and_nothing_runs(run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    saved = torch.load(run.checkpoint, weights_only=True)
    saved["extra"] = Payload()
    bad = tmp_path / "bad.ckpt"
    torch.save(saved, bad)
    with pytest.raises(CheckpointError, match="holds more than tensors and plain values.*nothing in it ran"):
        read_checkpoint(bad)
    assert main(["export", "--ckpt_path", str(bad), "--out", str(tmp_path / "e")]) == 2
    assert "nothing in it ran" in capsys.readouterr().err
    assert not (tmp_path / "payload-ran").exists()


def test_a_missing_or_cut_checkpoint_says_so(tmp_path):
    with pytest.raises(Exception, match="No checkpoint"):
        load_run(tmp_path / "none.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(cut)
    assert run_folder(tmp_path / "checkpoints" / "x.ckpt") == tmp_path.resolve()


def test_a_renamed_component_still_loads_from_a_checkpoint_and_a_bundle_saved_before(run, shapes_data, tmp_path):
    """As if TextEncoder and its processor had moved: the saved paths name modules that no longer exist, and the
    classes list those paths in ``renamed_from`` (mmlightning.renames)."""
    from mmlightning.bundle import ProcessorBundle
    from mmlightning_text import TextEncoder

    saved = torch.load(run.checkpoint, weights_only=True)
    encoder = saved["hyper_parameters"]["encoders"]["text"]
    assert encoder["class_path"] == "mmlightning_text.TextEncoder"
    encoder["class_path"] = "mmlightning_text_old.encoders.TextEncoder"
    state = saved["mmlightning"]["bundle"]
    processor = type(TextEncoder(dim=16).processor())
    old_processor = "mmlightning_text_old.processing:" + processor.__qualname__
    state["inputs"]["text"]["processor"] = old_processor
    old = tmp_path / "checkpoints" / "old.ckpt"
    old.parent.mkdir()
    torch.save(saved, old)
    (tmp_path / "bundle.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="mmlightning_text_old.processing.*cannot be imported"):
        ProcessorBundle.load(tmp_path / "bundle.json")
    TextEncoder.renamed_from = ("mmlightning_text_old.encoders.TextEncoder",)
    processor.renamed_from = (old_processor,)
    try:
        assert type(ProcessorBundle.load(tmp_path / "bundle.json").processors["text"]) is processor
        loaded = load_run(old)
        assert loaded.predict(rows(shapes_data), root=shapes_data) == run.predict(rows(shapes_data), root=shapes_data)
    finally:
        del TextEncoder.renamed_from, processor.renamed_from
        for name in [m for m in sys.modules if m.startswith("mmlightning_text_old")]:
            del sys.modules[name]
