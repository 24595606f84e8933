"""Export a trained model: its forward from processed inputs to head outputs as ONNX, TorchScript or a
``torch.export`` program, with the processor bundle beside it, checked against PyTorch on real rows.

    mmlightning export --ckpt_path RUN/checkpoints/last.ckpt --format onnx --out exported/ [--quantize dynamic-int8]

The folder holds ``model.onnx`` (or ``model.ts``, ``model.pt2``), ``bundle.json`` and ``export.json`` (inputs,
outputs, the parity check); :class:`mmlightning.deploy.runtime.Exported` loads it and predicts on raw rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlightning.bundle import ProcessorBundle
from mmlightning.contracts import Batch
from mmlightning.deploy.runtime import Exported
from mmlightning.errors import ConfigError, MMLightningError
from mmlightning.files import staged
from mmlightning.model import MultimodalModel
from mmlightning.parts import merge_all
from mmlightning.trained import check_examples, example_rows, load_run

log = logging.getLogger(__name__)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.ts", "pt2": "model.pt2"}
QUANTIZE = ("dynamic-int8",)


class ExportError(MMLightningError):
    """A model (or one of its components) that cannot be exported, or whose export does not match PyTorch."""


class FlatModel(nn.Module):
    """The model's one forward over flat tensors: ``inputs`` (``(key, name)`` pairs, in order) -> per head, its
    predictions and, when it has them, its logits (``outputs``: ``(head, "predictions"|"logits")``). It calls
    :meth:`MultimodalModel.forward` itself, so the export answers as ``predict`` does, fallback heads included."""

    def __init__(
        self, model: MultimodalModel, inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]
    ) -> None:
        super().__init__()
        self.model = model
        self.inputs, self.outputs = list(inputs), list(outputs)

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        inputs: dict[str, dict[str, Tensor]] = {}
        for (key, name), tensor in zip(self.inputs, tensors):
            inputs.setdefault(key, {})[name] = tensor
        results = self.model(Batch(inputs=inputs))
        return tuple(getattr(results[head], kind) for head, kind in self.outputs)


def missing_checks(bundle: ProcessorBundle) -> list[str]:
    """The modalities the parity check also removes, one at a time (with two or more, a row may lack any)."""
    return sorted(bundle.processors) if len(bundle.processors) > 1 else []


def without(rows: Sequence[Mapping[str, Any]], bundle: ProcessorBundle, key: str) -> list[dict[str, Any]]:
    """``rows`` with the modality ``key`` missing (its columns null)."""
    return [{**row, **dict.fromkeys(bundle.input_columns(key))} for row in rows]


def removed(batch: Batch, bundle: ProcessorBundle, key: str) -> Batch:
    """``batch`` with the modality ``key`` missing from every row (an encoder reading the same column keeps it)."""
    return dataclasses.replace(batch, inputs={**batch.inputs, key: bundle.processors[key].batch([None] * len(batch))})


def _names(batch: Batch) -> list[tuple[str, str]]:
    return [(key, name) for key in sorted(batch.inputs) for name in sorted(batch.inputs[key])]


def export(
    ckpt_path: str | Path,
    out: str | Path,
    format: str = "onnx",
    rows: str | None = None,
    quantize: str | None = None,
    tolerance: float = 1e-3,
) -> dict[str, Any]:
    """Export a trained run (a checkpoint or its folder), check it against PyTorch on real rows, write
    ``export.json``; returns its content."""
    trained = load_run(ckpt_path)
    examples, root = example_rows(trained, rows)
    check_examples(trained.bundle, examples, root, rows or str(trained.manifest()))  # one message, before any work
    with staged(out) as folder:  # every file reaches ``out`` once the export passed its parity check, or none
        report = export_model(trained.model, trained.bundle, examples, root, folder, format, quantize, tolerance)
        report["checkpoint"] = str(Path(ckpt_path).resolve())
        (folder / "export.json").write_text(json.dumps(report, indent=2))
    return report


def export_model(
    model: MultimodalModel,
    bundle: ProcessorBundle,
    examples: Sequence[Mapping[str, Any]],
    root: str | Path,
    out: str | Path,
    format: str = "onnx",
    quantize: str | None = None,
    tolerance: float = 1e-3,
) -> dict[str, Any]:
    """Export ``model``'s one forward to ``out`` with its bundle, and check it against PyTorch on ``examples``
    (raw rows: two batch sizes, and the rows with each modality removed)."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}': choose one of {', '.join(FORMATS)}")
    if quantize not in (None, *QUANTIZE):
        raise ConfigError(f"unknown --quantize '{quantize}': choose {', '.join(QUANTIZE)}")
    model.eval()
    merged = merge_all(model)  # LoRA adapters folded into plain weights: the exported graph is the original's
    big, small = bundle(examples, root), bundle(examples[: max(1, len(examples) // 3)], root)
    inputs = _names(big)
    with torch.no_grad():
        eager = model(inputs_only(big))
    outputs = [
        (h, kind) for h in sorted(eager) for kind in ("predictions", "logits") if getattr(eager[h], kind) is not None
    ]
    if not outputs:
        raise ExportError(f"nothing to export: no head of this model ({', '.join(sorted(eager))}) predicts anything")
    flat = FlatModel(model, inputs, outputs).eval()
    if quantize and format != "onnx":
        flat = _quantize_torch(flat)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FORMATS[format]
    args = tuple(big.inputs[k][n] for k, n in inputs)
    log.info("exporting to %s (%s, %d inputs, %d outputs)", path, format, len(inputs), len(outputs))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _write(format, flat, args, path, inputs, outputs)
        except Exception as err:  # noqa: BLE001 - any exporter failure: name the component that caused it
            raise ExportError(_blame(err, model, format)) from err
    if quantize and format == "onnx":
        log.info("quantizing (%s)", quantize)
        path = _quantize_onnx(path)
    bundle.save(folder / "bundle.json")
    report: dict[str, Any] = {
        "format": format,
        "file": path.name,
        "quantize": quantize,
        "inputs": [f"{k}.{n}" for k, n in inputs],
        "outputs": [f"{h}.{kind}" for h, kind in outputs],
        "merged": merged,
    }
    (folder / "export.json").write_text(json.dumps(report, indent=2))
    checks = [big, small] + [removed(big, bundle, key) for key in missing_checks(bundle)]
    log.info("checking the export against PyTorch: %d rows, %d conditions", len(examples), len(checks))
    report["parity"] = parity(model, folder, checks, tolerance if not quantize else None)
    (folder / "export.json").write_text(json.dumps(report, indent=2))
    return report


def _write(format: str, flat: FlatModel, args: tuple[Tensor, ...], path: Path, inputs: list, outputs: list) -> None:
    names = [f"{k}.{n}" for k, n in inputs]
    if format == "onnx":
        axes = {name: {i: f"{name}.{i}" for i in range(1, t.ndim)} for name, t in zip(names, args)}
        for name in names:
            axes[name][0] = "batch"  # every input shares the batch axis; the others (a sequence) may vary too
        torch.onnx.export(
            flat,
            args,
            str(path),
            input_names=names,
            output_names=[f"{h}.{kind}" for h, kind in outputs],
            dynamic_axes=axes,
            dynamo=False,
            opset_version=17,
        )
    elif format == "torchscript":
        torch.jit.save(torch.jit.trace(flat, args, check_trace=False, strict=False), str(path))
    else:
        from torch.export import Dim

        # the batch axis of every input and the sequence axes of token inputs (ids, masks) may vary; a float input's
        # other axes (an image's size) stay as exported, since timm's "same" padding cannot be saved symbolically
        shapes = tuple({i: Dim.AUTO for i in range(t.ndim) if i == 0 or not t.is_floating_point()} for t in args)
        torch.export.save(torch.export.export(flat, args, dynamic_shapes=(shapes,), strict=False), str(path))


def _blame(err: Exception, model: MultimodalModel, format: str) -> str:
    """The message for a failed export: which component's code was running, and the exporter's own words."""
    parts = {id(m): f"encoder '{k}' ({type(m).__name__})" for k, m in model.encoders.items()}
    parts.update({id(m): f"head '{k}' ({type(m).__name__})" for k, m in model.heads.items()})
    parts[id(model.fusion)] = f"the fusion ({type(model.fusion).__name__})"
    parts.update({id(m): f"the fine-tuning strategy {type(m).__name__}" for m in model.tuning})
    culprit, tb = None, err.__traceback__
    while tb is not None:
        me = tb.tb_frame.f_locals.get("self")
        culprit = parts.get(id(me), culprit)
        tb = tb.tb_next
    where = culprit or "the model"
    first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    return (
        f"cannot export {where} to {format}: {first}. Try another --format (onnx, torchscript, pt2), or "
        "export a model without that component; --debug shows the exporter's traceback."
    )


def _quantize_torch(flat: FlatModel) -> FlatModel:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(flat, {nn.Linear}, dtype=torch.qint8)


def _quantize_onnx(path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name("model.int8.onnx")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its "consider pre-processing" advice
    # the Linear layers' matrix products, as PyTorch's dynamic quantization does; int8 convolutions cost accuracy
    quantize_dynamic(str(path), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    path.unlink()
    return target


def parity(model: MultimodalModel, folder: Path, batches: Sequence[Batch], tolerance: float | None) -> dict[str, Any]:
    """The exported model against PyTorch on the same batches: the largest absolute difference per output and how
    often the predictions agree. With ``tolerance`` (not for a quantized model), a larger difference fails."""
    exported = Exported.load(folder)
    worst: dict[str, float] = {}
    agree, total = 0, 0
    for batch in batches:
        with torch.no_grad():
            eager = model(inputs_only(batch))
        got = exported.run(batch)
        for head, out in eager.items():
            for kind in ("predictions", "logits"):
                ref, mine = getattr(out, kind), getattr(got[head], kind)
                if ref is not None:
                    worst[f"{head}.{kind}"] = max(worst.get(f"{head}.{kind}", 0.0), _difference(mine, ref))
            agree += int(_agree(got[head].predictions, out.predictions, tolerance).sum())
            total += len(batch)
    agreed = agree / max(total, 1)
    report: dict[str, Any] = {"max_abs_diff": worst, "predictions_agree": agreed, "rows": sum(map(len, batches))}
    if tolerance is not None:
        report["tolerance"] = tolerance
        bad = {k: v for k, v in worst.items() if v > tolerance and (k.endswith(".logits") or v == float("inf"))}
        if bad or agreed < 1.0:
            raise ExportError(
                f"the export differs from PyTorch on real rows: max abs difference {bad or worst} (tolerance "
                f"{tolerance}), predictions agree on {agreed:.1%}. A component behaves "
                "differently when traced (Python control flow on values); try --format torchscript or pt2."
            )
    return report


def inputs_only(batch: Batch) -> Batch:
    """The batch as the exported graph sees it: the inputs alone (no targets, ids or raw values)."""
    return Batch(inputs=batch.inputs)


def _difference(a: Tensor, b: Tensor) -> float:
    """The largest absolute difference (infinite where the shapes differ)."""
    if a.shape != b.shape:
        return float("inf")
    return float((a.double() - b.double()).abs().max()) if b.numel() else 0.0


def _agree(a: Tensor, b: Tensor, tolerance: float | None) -> Tensor:
    """Per row, whether two predictions agree: exactly for labels and tags, within ``tolerance`` for numbers."""
    if a.shape != b.shape:
        return torch.zeros(len(b), dtype=torch.bool)
    if b.is_floating_point():
        close = (a.double() - b.double()).abs() <= (tolerance if tolerance is not None else 1e-3)
    else:
        close = a == b
    return close.reshape(len(b), -1).all(1)
