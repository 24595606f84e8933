"""Every registered encoder, fusion and head, and every strategy that changes the forward, exported to ONNX and
compared with ``predict`` on complete rows and on rows missing each modality (in the manner of timm's
``tests/test_models.py``). Export runs the model's one forward, so the two must agree."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

from mmlightning.deploy.export import ExportError, export_model, without
from mmlightning.deploy.runtime import Exported
from mmlightning.model import MultimodalModel
from mmlightning.plugins import get_registry
from mmlightning.trained import TrainedRun

REGISTRY = get_registry()
ROWS = 6
SMALL: dict[str, dict[str, Any]] = {
    "TextEncoder": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80},
    "TimmEncoder": {"model_name": "test_vit", "image_size": 32, "augment": False},
    "TabularEncoder": {"dim": 16, "layers": 1, "heads": 2},
    "AudioEncoder": {"dim": 16, "layers": 1, "heads": 2},
    "VideoEncoder": {"model_name": "test_resnet.r160_in1k", "image_size": 32, "frames": 3, "dim": 16, "heads": 2},
}
# what cannot give a prediction to export, and why (each still passes its contract tests)
NOT_EXPORTED = {
    "ContrastiveHead": "an alignment objective: it scores pairs within a batch, a row alone has no prediction",
    "MaskedLanguageHead": "a pretraining objective: it predicts the tokens it masked itself",
    "ReplacedTokenHead": "a pretraining objective: it detects the tokens its own generator replaced",
    "MaskedPatchHead": "a pretraining objective: it predicts the patches it masked itself",
    "CaptionHead": "it generates text by sampling token after token, a loop the exporters cannot trace",
    "ImageGenerationHead": "it draws a picture by sampling code after code, a loop the exporters cannot trace",
    "ReconstructionHead": "an autoencoding objective: it trains a VQVAEEncoder, whose codes any head can export",
}


def small(name: str, kind: str = "encoder", **extra: Any) -> Any:
    cls = REGISTRY.resolve(kind, name).cls
    return cls(**{**SMALL.get(name, {}), **extra})


def fusion_factory(name: str) -> Any:
    cls = REGISTRY.resolve("fusion", name).cls
    accepted = inspect.signature(cls).parameters
    return functools.partial(cls, **{k: v for k, v in {"dim": 16, "heads": 2}.items() if k in accepted})


def build(encoders: dict[str, Any], fusion: str, head: str, tmp_path: Path, tuning: list | None = None) -> Any:
    """A fitted model on example values of each encoder and example targets of the head, and those rows."""
    torch.manual_seed(0)
    model = MultimodalModel(
        encoders, fusion_factory(fusion), {"task": REGISTRY.resolve("head", head).cls}, tuning=tuning
    )
    values = {key: enc.example_values(tmp_path, ROWS) for key, enc in model.encoders.items()}
    targets = model.heads["task"].example_targets(ROWS)
    model.fit_data({**values, "task": targets})
    rows = [{**cells(values, i), "task": targets[i], "id": f"r{i}"} for i in range(ROWS)]
    return model.eval(), rows


def cells(values: dict[str, list[Any]], i: int) -> dict[str, Any]:
    """Row ``i``: each encoder's value under its key, or a record's fields as columns of their own."""
    row: dict[str, Any] = {}
    for key, found in values.items():
        row.update(found[i] if isinstance(found[i], dict) else {key: found[i]})
    return row


def check_export_matches_predict(model: MultimodalModel, rows: list[dict], tmp_path: Path) -> dict[str, Any]:
    """Export to ONNX, then the exported model and ``predict`` on the same raw rows: complete, and with each
    modality missing. Predictions agree exactly, scores to 1e-4."""
    bundle = model.bundle()
    report = export_model(model, bundle, rows, tmp_path, tmp_path / "onnx", "onnx", tolerance=1e-4)
    exported, eager = Exported.load(tmp_path / "onnx"), TrainedRun(model, bundle)
    keys = sorted(bundle.processors)
    for missing in [None, *keys]:
        shown = rows if missing is None else without(rows, bundle, missing)
        got, want = exported.predict(shown, root=tmp_path), eager.predict(shown, root=tmp_path)
        if isinstance(want[0]["task"], float):  # a number: to 1e-4, as scores
            assert [r["task"] for r in got] == pytest.approx([r["task"] for r in want], abs=1e-4), missing
        else:
            assert [r["task"] for r in got] == [r["task"] for r in want], f"predictions differ without {missing}"
        for a, b in zip(got, want):
            if "task_scores" in b:
                assert a["task_scores"] == pytest.approx(b["task_scores"], abs=1e-4), f"scores differ without {missing}"
    return report


def other_encoder(name: str) -> tuple[str, Any]:
    return ("image", small("TimmEncoder")) if name == "TextEncoder" else ("text", small("TextEncoder"))


@pytest.mark.parametrize("component", REGISTRY.components("encoder"), ids=lambda c: c.name)
def test_every_encoder_exports_as_it_predicts(component, tmp_path):
    key, other = other_encoder(component.name)
    encoders = {"x": small(component.name), key: other}
    model, rows = build(encoders, "ConcatFusion", "ClassificationHead", tmp_path)
    check_export_matches_predict(model, rows, tmp_path)


@pytest.mark.parametrize("component", REGISTRY.components("fusion"), ids=lambda c: c.name)
def test_every_fusion_exports_as_it_predicts(component, tmp_path):
    encoders = {"text": small("TextEncoder"), "image": small("TimmEncoder")}
    model, rows = build(encoders, component.name, "ClassificationHead", tmp_path)
    check_export_matches_predict(model, rows, tmp_path)


@pytest.mark.parametrize("component", REGISTRY.components("head"), ids=lambda c: c.name)
def test_every_head_exports_as_it_predicts_or_says_why_not(component, tmp_path):
    if component.name in NOT_EXPORTED:
        pytest.skip(NOT_EXPORTED[component.name])
    encoders = {"text": small("TextEncoder"), "image": small("TimmEncoder")}
    model, rows = build(encoders, "SingleStreamFusion", component.name, tmp_path)
    check_export_matches_predict(model, rows, tmp_path)


STRATEGIES = {
    "AuxiliaryHeads": lambda: [REGISTRY.resolve("tuning", "AuxiliaryHeads").cls()],
    "AuxiliaryHeads-head": lambda: [REGISTRY.resolve("tuning", "AuxiliaryHeads").cls(path="head")],
    "ModalityDropout": lambda: [REGISTRY.resolve("tuning", "ModalityDropout").cls(0.5)],
    "LoRA": lambda: [REGISTRY.resolve("tuning", "LoRA").cls(["text"], rank=2)],
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_that_change_the_forward_export_as_they_predict(name, tmp_path):
    if name == "LoRA":
        pytest.importorskip("peft")
    encoders = {"text": small("TextEncoder"), "image": small("TimmEncoder")}
    model, rows = build(encoders, "ConcatFusion", "ClassificationHead", tmp_path, tuning=STRATEGIES[name]())
    with torch.no_grad():  # move every weight a little, so that adapters and fallback heads answer differently
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    report = check_export_matches_predict(model, rows, tmp_path)
    assert report["merged"] == (["LoRA"] if name == "LoRA" else [])


def test_fallback_heads_answer_rows_with_one_modality_in_the_export_too(tmp_path):
    """The case that drifted before the model had one forward: a row with only its text is answered by the text's
    own head, in ``predict`` and in the exported model alike."""
    aux = REGISTRY.resolve("tuning", "AuxiliaryHeads").cls(path="head")
    encoders = {"text": small("TextEncoder"), "image": small("TimmEncoder")}
    model, rows = build(encoders, "ConcatFusion", "ClassificationHead", tmp_path, tuning=[aux])
    with torch.no_grad():
        for param in aux.aux.parameters():
            param.mul_(5.0)  # a fallback head far from the fused one
    bundle = model.bundle()
    text_only = without(rows, bundle, "image")
    with torch.no_grad():
        batch = bundle(text_only, tmp_path)
        alone = aux.aux["task__text"](model.encoders["text"](batch.inputs["text"]), {}, batch).logits
    assert torch.allclose(model(batch)["task"].logits, alone, atol=1e-5)
    check_export_matches_predict(model, rows, tmp_path)


def test_a_part_that_cannot_be_exported_is_named(tmp_path, monkeypatch):
    encoders = {"text": small("TextEncoder"), "image": small("TimmEncoder")}
    model, rows = build(encoders, "ConcatFusion", "ClassificationHead", tmp_path)
    fusion = type(model.fusion)

    def untraceable(self, features):
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            raise RuntimeError("data-dependent control flow")
        return original(self, features)

    original = fusion.forward
    monkeypatch.setattr(fusion, "forward", untraceable)
    with pytest.raises(ExportError, match=r"cannot export the fusion \(ConcatFusion\) to onnx: data-dependent"):
        export_model(model, model.bundle(), rows, tmp_path, tmp_path / "onnx")
