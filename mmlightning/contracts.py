"""The plugin contracts: what an encoder, a fusion and a head implement, and what they may rely on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmlightning.features import Features


@dataclass
class Batch:
    """One collated batch, as the datamodule gives it to the model.

    Attributes:
        inputs: per encoder key, the tensors its processor's ``collate`` made (always with ``present``).
        targets: per head key, the encoded targets (heads without a target column have none).
        ids: one id per sample (the manifest's id column, or ``file:line``).
        raw: per column, the raw manifest values (for previews and predictions).
        root: the folder media paths are relative to.
    """

    inputs: dict[str, dict[str, Tensor]]
    targets: dict[str, Tensor] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    raw: dict[str, list[Any]] = field(default_factory=dict)
    root: str = "."

    def __len__(self) -> int:
        return len(self.ids)


class Processor:
    """Turns one raw field value into tensors, and a list of those into a padded batch.

    Implement ``__call__``, ``collate`` and ``blank``; override ``check`` when a full decode is too slow
    to run on every row before training, and ``preview`` to show a value on a dashboard.
    A processor must pickle (DataLoader workers get a copy).
    """

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        """One raw value (a text, a path relative to ``root``, ...) -> tensors. Raise ``ValueError`` if bad."""
        raise NotImplementedError

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Pad and stack items into a batch; include a bool ``mask`` for variable-length sequences."""
        raise NotImplementedError

    def blank(self) -> dict[str, Tensor]:
        """A placeholder item for a missing value (its output is masked out)."""
        raise NotImplementedError

    def check(self, value: Any, root: Path) -> None:
        """Raise ``ValueError`` saying what is wrong with a raw value. Default: process it fully."""
        self(value, root, train=False)

    def preview(self, value: Any, root: Path) -> Any:
        """What a dashboard shows for a value: a string, or a PIL image, or a (waveform, rate) pair."""
        return str(value)

    @staticmethod
    def resolve(value: Any, root: Path, what: str = "media") -> Path:
        """A media path from a manifest, relative to ``root`` (or absolute); ``ValueError`` if absent or not a path."""
        if not isinstance(value, str) or not value.strip():
            article = "an" if what[:1] in "aeiou" else "a"
            raise ValueError(f"expected {article} {what} path, got {value!r}")
        path = Path(value) if Path(value).is_absolute() else Path(root) / value
        if not path.is_file():
            raise ValueError(f"{what} file not found: {value} (looked for {path})")
        return path

    def batch(self, items: Sequence[dict[str, Tensor] | None]) -> dict[str, Tensor]:
        """Collate items where ``None`` marks a missing value; adds ``present`` ``(B,)``."""
        present = torch.tensor([item is not None for item in items], dtype=torch.bool)
        filler = next((item for item in items if item is not None), None)
        filler = self.blank() if filler is None else filler
        out = dict(self.collate([filler if item is None else item for item in items]))
        out["present"] = present
        return out


class Fitted:
    """What encoders and heads share: they may learn something from the training split before training.

    ``fit`` sees the training split's raw column (a tokenizer's vocabulary, a head's label set) and calls
    ``set_fitted``; ``set_fitted`` builds the layers that depend on it. The state must be JSON-able: it is
    saved in checkpoints so that ``predict`` on new files needs nothing else.
    """

    fitted: dict[str, Any] | None = None

    def fit(self, values: Sequence[Any]) -> None:
        """Learn from the training column (values are never None). Default: nothing to learn."""
        self.set_fitted({})

    def set_fitted(self, state: dict[str, Any]) -> None:
        """Build whatever depends on the learnt state. Subclasses call ``super().set_fitted(state)``."""
        self.fitted = state

    @property
    def is_fitted(self) -> bool:
        return self.fitted is not None


class Encoder(Fitted, nn.Module):
    """One modality: raw values -> :class:`Features`.

    Implement: ``__init__`` (set ``self.dim``, the width of the tokens), ``processor()`` and ``forward``.
    Optionally ``fit``/``set_fitted`` (see :class:`Fitted`) and ``example_values`` for the testing kit.
    Rely on: ``inputs`` holding what your processor's ``collate`` made, plus ``present`` ``(B,)``.
    """

    modality: ClassVar[str] = "any"
    dim: int

    def processor(self) -> Processor:
        raise NotImplementedError

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        raise NotImplementedError

    def example_values(self, root: Path, count: int) -> list[Any]:
        """Raw values for tests and docs (writing any files they need under ``root``)."""
        raise NotImplementedError


class Fusion(nn.Module):
    """Many modalities' :class:`Features` -> one :class:`Features`.

    Implement ``__init__(self, dims, ...)`` where ``dims`` maps encoder key -> width (set ``self.dim``),
    and ``forward``. The result must not depend on the key order of ``features`` (iterate ``sorted``),
    and a sample whose ``present`` is False for a modality must get nothing from it and no NaN.
    """

    modality: ClassVar[str] = "any"
    dim: int

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.dims = dict(sorted(dims.items()))

    def forward(self, features: Mapping[str, Features]) -> Features:
        raise NotImplementedError


@dataclass
class HeadOutput:
    """What a head returns: a scalar ``loss`` (None when the batch has no target) and ``predictions``."""

    loss: Tensor | None
    predictions: Tensor
    logits: Tensor | None = None


class Head(Fitted, nn.Module):
    """One task on the fused features: a loss, predictions and metrics.

    Implement ``__init__(self, dim, ...)`` and ``forward``; for a task with a target column also ``fit``,
    ``encode_target`` and ``make_metrics``; ``decode`` turns predictions into what ``predict`` writes.
    Rely on: ``self.name`` (the head's key; ``batch.targets[self.name]`` holds its targets),
    ``self.encoder_dims`` (encoder key -> width, for heads that read ``encoded``), ``self.fuse`` (the model's
    fusion, to fuse other combinations of ``encoded``: image-text matching scores mismatched pairs) and
    ``self.encoders`` (the fitted encoders, for what they learnt: a masked-language head needs the tokenizer).
    All are set right after ``__init__``, so build layers that need them in ``set_fitted`` (it runs after the
    encoders are fitted and before the optimizer exists).
    """

    modality: ClassVar[str] = "any"
    uses_target: bool = True
    name: str = "head"
    encoder_dims: dict[str, int] = {}
    fuse: Any  # set by the model (not class defaults: a Module attribute would hide them)
    encoders: Any

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        raise NotImplementedError

    def prepare_batch(self, batch: Batch, stage: str) -> Batch:
        """Change the batch before encoding (a masking objective corrupts its input here). Default: none."""
        return batch

    def encode_target(self, value: Any) -> Tensor:
        """One raw target value -> a tensor. Raise ``ValueError`` saying what was expected."""
        raise NotImplementedError

    def collate_targets(self, targets: Sequence[Tensor]) -> Tensor:
        """Stack a batch's encoded targets. Override for variable-length targets (pad with -100, say)."""
        return torch.stack(list(targets))

    def example_inputs(self, encoded: Mapping[str, Features], targets: Sequence[Any]) -> dict[str, dict[str, Tensor]]:
        """For the testing kit: the ``batch.inputs`` entries this head reads (default: none)."""
        return {}

    def make_metrics(self) -> dict[str, nn.Module]:
        """Fresh torchmetrics for one stage; called once per stage after the head is fitted."""
        return {}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        """The (preds, target) pair the metrics are updated with; None to skip this batch."""
        return output.predictions, batch.targets[self.name]

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        """Flatten one computed metric for logging; a per-class vector gets a key per class."""
        if value.numel() == 1:
            return {name: float(value)}
        return {f"{name}/{i}": float(v) for i, v in enumerate(value.flatten())}

    def metric_tables(self, name: str, value: Tensor) -> dict[str, tuple[list[str], list[list[Any]]]]:
        """Tables to log once per epoch beside the scalars, as ``{table: (columns, rows)}``; W&B shows them as
        tables (``STAGE/HEAD/TABLE``). None by default; ``ClassificationHead`` gives its confusion matrix."""
        return {}

    def decode(self, output: HeadOutput) -> list[Any]:
        """Per-sample predictions as plain values for ``predict`` (labels, texts, numbers)."""
        return output.predictions.tolist()

    def example_targets(self, count: int) -> list[Any]:
        """Raw target values for tests and docs."""
        raise NotImplementedError


class Reader:
    """Reads a manifest format the core does not know (JSONL, CSV and Parquet are built in) into rows.

    Implement ``read(path) -> (rows, bad_rows)``: ``mmlightning.data.manifest.Row(line, values)`` per sample,
    with the line it starts on, and ``BadRow(file, line, reason, raw)`` for anything that cannot be read, so
    nothing is dropped silently. ``suffixes`` are the file endings it claims (``--data.reader=NAME`` picks it
    for any file).
    """

    suffixes: ClassVar[tuple[str, ...]] = ()

    def read(self, path: Path) -> tuple[list[Any], list[Any]]:
        raise NotImplementedError
