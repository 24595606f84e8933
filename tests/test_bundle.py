"""The processor bundle: the fitted data side, saved in the run folder and the checkpoint, usable alone."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mmlightning import MultimodalModule, ProcessorBundle
from mmlightning.binding import bind
from mmlightning.data.datamodule import MultimodalDataModule

from conftest import main_in
from wandb_reader import read_run

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 1, "enable_progress_bar": False, "enable_model_summary": False, "limit_train_batches": 2},
    "model": {
        "encoders": {
            "caption": {
                "class_path": "TextEncoder",
                "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 100},
            },
            "picture": {
                "class_path": "TimmEncoder",
                "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
            },
        },
        "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16}},
        "heads": {"answer": {"class_path": "ClassificationHead"}},
    },
}


@pytest.fixture(scope="module")
def run(shapes_data, tmp_path_factory):
    """A fit whose keys differ from the manifest's columns (``--data.columns``), W&B offline."""
    work = tmp_path_factory.mktemp("bundle")
    data = {
        "train": str(shapes_data / "train.jsonl"),
        "val": str(shapes_data / "val.jsonl"),
        "batch_size": 16,
        "columns": {"caption": "text", "picture": "image", "answer": "label"},
    }
    old, os.environ["WANDB_MODE"] = os.environ.get("WANDB_MODE"), "offline"
    try:
        main_in(work, {**CONFIG, "data": data}, "fit")
    finally:
        os.environ.pop("WANDB_MODE") if old is None else os.environ.__setitem__("WANDB_MODE", old)
    folder = next((work / "runs" / "mmlightning").iterdir())
    return work, folder, next((folder / "checkpoints").glob("epoch=*.ckpt"))


def test_the_run_folder_and_checkpoint_hold_the_same_bundle(run):
    _, folder, ckpt = run
    saved = json.loads((folder / "bundle.json").read_text())
    assert saved == torch.load(ckpt, weights_only=False)["mmlightning"]["bundle"]
    assert saved["inputs"]["caption"]["columns"] == "text" and saved["heads"]["answer"]["column"] == "label"
    assert saved["heads"]["answer"]["state"]["labels"] == ["both_true", "colour_wrong", "shape_wrong"]


def test_a_bundle_loads_alone_and_makes_the_tensors_training_made(run, shapes_data):
    _, folder, ckpt = run
    script = f"""
import sys, json, torch
from mmlightning.bundle import ProcessorBundle
bundle = ProcessorBundle.load({str(folder)!r})
rows = [json.loads(line) for line in open({str(shapes_data / "val.jsonl")!r})][:5]
batch = bundle(rows, root={str(shapes_data)!r})
assert "lightning" not in sys.modules and "mmlightning.module" not in sys.modules, "the bundle needs the training stack"
torch.save({{"inputs": batch.inputs, "targets": batch.targets}}, sys.argv[1])
"""
    out = folder.parent / "alone.pt"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    alone = torch.load(out)
    model = MultimodalModule.load_from_checkpoint(ckpt)  # the training side, for comparison
    dm = MultimodalDataModule(
        val=str(shapes_data / "val.jsonl"),
        columns={"caption": "text", "picture": "image", "answer": "label"},
        eval_batch_size=5,
    )
    dm.set_bundle(model.bundle())
    trained = next(iter(dm.val_dataloader()))
    for key, tensors in trained.inputs.items():
        assert all(torch.equal(tensors[name], alone["inputs"][key][name]) for name in tensors), key
    assert torch.equal(trained.targets["answer"], alone["targets"]["answer"])


def test_decode_and_pickle(run, shapes_data):
    _, folder, _ = run
    bundle = pickle.loads(pickle.dumps(ProcessorBundle.load(folder / "bundle.json")))
    logits = torch.tensor([[0.1, 2.0, 0.0], [3.0, 0.0, 0.0]])
    from mmlightning import HeadOutput

    rows = bundle.decode({"answer": HeadOutput(loss=None, predictions=logits.argmax(-1), logits=logits)}, ["a", "b"])
    assert [(r["id"], r["answer"]) for r in rows] == [("a", "colour_wrong"), ("b", "both_true")]
    assert set(rows[0]["answer_scores"]) == {"both_true", "colour_wrong", "shape_wrong"}
    assert (
        abs(sum(rows[0]["answer_scores"].values()) - 1) < 1e-3
        and max(rows[0]["answer_scores"].values()) == rows[0]["answer_scores"]["colour_wrong"]
    )
    with pytest.raises(ValueError, match="row 0: field 'image': image file not found: nope.png"):
        bundle([{"text": "a red circle", "image": "nope.png"}], root=shapes_data)


def test_wandb_samples_follow_the_column_mapping(run):
    work, _, _ = run
    run_dir = next((work / "runs" / "wandb").glob("offline-run-*"))
    assert "val/samples" in read_run(run_dir)["tables"]
    table = json.loads(next(run_dir.glob("files/media/table/val/samples_*.table.json")).read_text())
    probabilities = ["answer p(both_true)", "answer p(colour_wrong)", "answer p(shape_wrong)"]
    assert table["columns"] == ["id", "caption", "picture", "answer (truth)", "answer (predicted)", *probabilities]
    first = table["data"][0]
    assert isinstance(first[1], str) and first[1].strip() and first[2] is not None  # previews are there
    assert first[3] in ("both_true", "colour_wrong", "shape_wrong")


def test_training_rows_are_checked_before_anything_learns_from_them(tmp_path, shapes_data):
    rows = [json.loads(line) for line in (shapes_data / "train.jsonl").read_text().splitlines()][:20]
    rows[3]["label"] = ["a", "list"]  # not a label: it must not become a class, nor crash
    rows[4]["text"] = "   "
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for row in rows:
        (tmp_path / row["image"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / row["image"]).write_bytes((shapes_data / row["image"]).read_bytes())
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead
    from mmlightning_text import TextEncoder

    model = MultimodalModule(
        {"text": TextEncoder(dim=8, layers=1, heads=2, vocab_size=60)}, ConcatFusion, {"label": ClassificationHead}
    )
    dm = MultimodalDataModule(
        train=str(tmp_path / "train.jsonl"), on_bad_rows="skip", skipped_rows_file=str(tmp_path / "skipped.jsonl")
    )
    bind(model, dm)
    assert model.heads["label"].labels == ["both_true", "colour_wrong", "shape_wrong"]
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert [s["line"] for s in skipped] == [4, 5] and "expected one label" in skipped[0]["reason"]
    assert len(dm.dataset("train")) == 18 and len(skipped) == 2  # checked once, before fitting


def test_a_saved_config_without_a_bundle_still_loads(run):
    """Checkpoints from before the bundle existed hold the fitted states: the model rebuilds its bundle."""
    _, folder, ckpt = run
    checkpoint = torch.load(ckpt, weights_only=False)
    del checkpoint["mmlightning"]["bundle"]
    old = folder.parent / "old.ckpt"
    torch.save(checkpoint, old)
    model = MultimodalModule.load_from_checkpoint(old)
    assert model.bundle().codecs["answer"].labels == ["both_true", "colour_wrong", "shape_wrong"]
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["data"]["columns"] == {"caption": "text", "picture": "image", "answer": "label"}


def test_the_data_side_imports_nothing_of_the_model():
    import ast

    import mmlightning

    core = Path(mmlightning.__file__).parent
    for path in [*(core / "data").glob("*.py"), core / "bundle.py", core / "processing.py"]:
        tree = ast.parse(path.read_text())
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        ]
        assert not any(name and name.startswith(("mmlightning.module", "mmlightning.binding")) for name in names), path
