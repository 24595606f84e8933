"""Starting from earlier runs (pretrain -> fine-tune, continual learning) and fine-tuning from the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tuning_helpers import build, cli_fit

from mmlightning.binding import bind
from mmlightning.deploy.export import export
from mmlightning.deploy.runtime import Exported
from mmlightning.model import model_state
from mmlightning.trained import load_run
from mmlightning.tuning import Continual, InitFrom

CONTRASTIVE = {"align": {"class_path": "ContrastiveHead", "init_args": {"embed_dim": 16}}}


@pytest.fixture(scope="module")
def pretrained(shapes_data, tmp_path_factory):
    """A contrastive pretraining run: text and image encoders aligned, no classification head."""
    return cli_fit(shapes_data, tmp_path_factory.mktemp("pretrain"), epochs=1, heads=CONTRASTIVE)


def test_init_from_a_pretraining_run_loads_exactly_the_matching_tensors(shapes_data, pretrained):
    saved = model_state(torch.load(pretrained.checkpoint, weights_only=True)["state_dict"])  # as in the model
    strategy = InitFrom(pretrained.checkpoint, parts=["encoders", "fusion"])
    model = build(shapes_data, [strategy])[0].model  # strategies act on the model itself
    strategy.setup(model, None)
    report = strategy.load(model)
    state = model.state_dict()
    encoders = [n for n in state if n.startswith(("encoders.", "fusion."))]
    assert sorted(report["loaded"]) == sorted(n for n in encoders if n in saved)
    assert all(torch.equal(state[n], saved[n]) for n in report["loaded"])
    assert not any(n.startswith("heads.") for n in report["loaded"] + report["new"])  # heads are not its parts
    assert report["mismatched"] == []


def test_a_pretrained_vocabulary_comes_with_its_encoder_and_shapes_that_differ_are_reported(
    shapes_data, pretrained, tmp_path
):
    from mmlightning import MultimodalDataModule, MultimodalModule
    from mmlightning_fusions import ConcatFusion
    from mmlightning_heads import ClassificationHead
    from mmlightning_text import TextEncoder
    from mmlightning_vision import TimmEncoder

    strategy = InitFrom(pretrained.checkpoint)
    model = MultimodalModule(
        {
            "text": TextEncoder(dim=16, layers=2, heads=2, vocab_size=80),
            "image": TimmEncoder("test_resnet", image_size=32, augment=False),
        },
        lambda dims: ConcatFusion(dims, dim=32),  # wider than the pretraining run's
        {"label": ClassificationHead},
        tuning=[strategy],
    )
    (tmp_path / "other.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "text": f"words never seen {i}",
                    "image": str(shapes_data / "images/train_00000.png"),
                    "label": "ab"[i % 2],
                }
            )
            + "\n"
            for i in range(8)
        )
    )
    dm = MultimodalDataModule(train=str(tmp_path / "other.jsonl"), allow_roots=[str(shapes_data)], batch_size=4)
    dm.setup("fit")
    strategy.setup(model.model, None)
    bind(model, dm)
    saved = torch.load(pretrained.checkpoint, weights_only=False)
    assert model.encoders["text"].fitted == saved["mmlightning"]["fitted"]["encoders.text"]  # not this data's words
    report = strategy.load(model.model)
    assert any(m.startswith("fusion.") for m in report["mismatched"])
    assert all(n.startswith("encoders.") for n in report["loaded"])


def test_continual_learning_keeps_old_label_ids_grows_the_head_and_rehearses(shapes_data, tmp_path):
    rows = [json.loads(line) for line in (shapes_data / "train.jsonl").read_text().splitlines()]
    old = [r for r in rows if r["label"] != "colour_wrong"]  # beside the images, as a user's manifests would be
    (shapes_data / "continual_old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    (shapes_data / "continual_old_val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old[:20]))
    first = cli_fit(shapes_data, tmp_path, epochs=1, train="continual_old.jsonl", val="continual_old_val.jsonl")
    old_labels = torch.load(first.checkpoint, weights_only=False)["mmlightning"]["fitted"]["heads.label"]["labels"]
    assert "colour_wrong" not in old_labels

    tuning = [{"class_path": "Continual", "init_args": {"checkpoint": first.checkpoint, "rehearsal": 0.25}}]
    second = cli_fit(shapes_data, tmp_path, epochs=1, train="train.jsonl", tuning=tuning)
    model = load_run(second.checkpoint).model
    assert model.heads["label"].labels == [*old_labels, "colour_wrong"]

    strategy = Continual(first.checkpoint, rehearsal=0.25)
    grown, dm = build(shapes_data, [strategy])
    grown = grown.model  # strategies act on the model itself
    strategy.setup(grown, None)  # what the CLI run above did before fitting
    strategy.training_data(dm)
    assert dm.paths["train"] == {
        "new": str(shapes_data / "train.jsonl"),
        "old": str(shapes_data / "continual_old.jsonl"),
    }
    assert dm.sampling == "ratios" and dm.ratios == {"new": 0.75, "old": 0.25}
    assert len(dm.train_dataloader()) == math.ceil(len(rows) / 16) + math.ceil(len(old) / 16)
    grown.earlier = {}
    grown.heads["label"].extend({"labels": old_labels}, ["colour_wrong"])
    report = strategy.load(grown)
    saved = model_state(torch.load(first.checkpoint, weights_only=True)["state_dict"])
    assert report["grown"] and all(
        torch.equal(grown.state_dict()[n][: len(old_labels)], saved[n]) for n in report["grown"]
    )


def test_lora_and_layerwise_decay_from_a_config_train_and_export_merged(shapes_data, tmp_path):
    pytest.importorskip("peft")
    tuning = [
        {"class_path": "LoRA", "init_args": {"parts": ["text"], "rank": 2}},
        {"class_path": "LayerwiseLRDecay", "init_args": {"parts": ["image"], "decay": 0.7}},
    ]
    run = cli_fit(shapes_data, tmp_path, epochs=1, tuning=tuning)
    loaded = load_run(run.checkpoint)
    model, bundle = loaded.model, loaded.bundle
    assert any("lora_" in n for n in model.state_dict())
    assert not any(
        p.requires_grad for n, p in model.named_parameters() if n.startswith("encoders.text.") and "lora_" not in n
    )
    found = export(run.checkpoint, tmp_path / "onnx", "onnx")
    assert found["merged"] == ["LoRA"] and found["parity"]["predictions_agree"] == 1.0
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:8]]
    batch = bundle(rows, shapes_data)
    with torch.no_grad():
        adapted = model(batch)["label"].logits  # the checkpoint as trained, adapters apart from the weights
    exported = Exported.load(tmp_path / "onnx").run(batch)["label"].logits
    assert torch.allclose(adapted, torch.as_tensor(exported), atol=1e-4)


def test_a_part_that_is_not_there_stops_the_command_with_one_clear_message(shapes_data, tmp_path, capsys):
    import yaml
    from tuning_helpers import ENCODERS

    from mmlightning.cli.main import main

    config = {
        "model": {
            "encoders": ENCODERS,
            "fusion": "ConcatFusion",
            "heads": {"label": "ClassificationHead"},
            "tuning": [{"class_path": "LoRA", "init_args": {"parts": ["txt"]}}],
        },
        "trainer": {"logger": False, "default_root_dir": str(tmp_path)},
        "data": {"train": str(shapes_data / "train.jsonl")},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "LoRA: part 'txt' matches nothing in this model; its parts are encoders.image, encoders.text" in err
    assert "Traceback" not in err
