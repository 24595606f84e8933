"""Run an exported model on raw rows: the processor bundle makes the inputs, the exported program (ONNX Runtime,
TorchScript or torch.export) computes the head outputs, the bundle decodes them. No training code is involved.

    model = Exported.load("exported/")
    model.predict([{"text": "a red circle", "image": "pics/1.png"}], root="data")
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning.bundle import ProcessorBundle
from mmlightning.contracts import Batch, HeadOutput
from mmlightning.errors import MissingFileError


class Exported:
    """An exported model folder (``mmlightning export``): ``run(batch)`` and ``predict(rows, root)``."""

    def __init__(self, folder: Path, spec: dict[str, Any], bundle: ProcessorBundle, program: Any) -> None:
        self.folder, self.spec, self.bundle, self.program = folder, spec, bundle, program
        self.inputs = [tuple(name.split(".", 1)) for name in spec["inputs"]]
        self.used = set(spec["inputs"])
        if spec["format"] == "onnx":
            self.used = {i.name for i in program.get_inputs()}  # inputs no component reads are left out of the graph

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = None) -> Exported:
        folder = Path(folder)
        if not (folder / "export.json").is_file():
            raise MissingFileError(f"No exported model in {folder}: `mmlightning export --out {folder}` writes one")
        spec = json.loads((folder / "export.json").read_text())
        path = folder / spec["file"]
        if spec["format"] == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            program: Any = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        elif spec["format"] == "torchscript":
            program = torch.jit.load(str(path), map_location="cpu").eval()
        else:
            program = torch.export.load(str(path)).module()
        return cls(folder, spec, ProcessorBundle.load(folder / "bundle.json"), program)

    def run(self, batch: Batch) -> dict[str, HeadOutput]:
        """Head outputs for a processed batch (as the bundle makes it)."""
        tensors = [batch.inputs[key][name] for key, name in self.inputs]
        if self.spec["format"] == "onnx":
            feed = {f"{k}.{n}": t.numpy() for (k, n), t in zip(self.inputs, tensors) if f"{k}.{n}" in self.used}
            values = [torch.from_numpy(v) for v in self.program.run(None, feed)]
        else:
            with torch.no_grad():
                values = list(self.program(*tensors))
        return head_outputs(dict(zip(self.spec["outputs"], values)), self.spec["outputs"])

    def predict(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]], root: str | Path = ".") -> list[dict]:
        """Raw rows (media paths relative to ``root``) -> one dict per row: id, each head's prediction, scores."""
        rows = [rows] if isinstance(rows, Mapping) else list(rows)
        ids = [str(r.get(self.bundle.id_column, i)) for i, r in enumerate(rows)]
        return self.bundle.decode(self.run(self.bundle(rows, root)), ids)


def head_outputs(values: Mapping[str, Tensor], outputs: Sequence[str]) -> dict[str, HeadOutput]:
    """Flat exported outputs (``HEAD.predictions``, ``HEAD.logits``) -> ``{head: HeadOutput}`` for the bundle."""
    parts: dict[str, dict[str, Tensor]] = {}
    for name in outputs:
        head, kind = name.rsplit(".", 1)
        parts.setdefault(head, {})[kind] = values[name]
    return {head: HeadOutput(None, p["predictions"], p.get("logits")) for head, p in parts.items()}
