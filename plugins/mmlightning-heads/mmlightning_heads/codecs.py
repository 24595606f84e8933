"""The heads' data side: raw targets -> tensors, outputs -> plain predictions (no weights, JSON state)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlightning import TargetCodec

IGNORE = -100
SCALARS = (str, int, float, bool)


def _require_labels(labels: list[Any] | None, what: str = "labels") -> list[Any]:
    if labels is None:
        raise RuntimeError(f"no {what} yet: they are learnt from the training split")
    return labels


def _unknown(value: Any, labels: Sequence[Any]) -> ValueError:
    shown = ", ".join(map(repr, labels[:20]))
    return ValueError(
        f"label {value!r} is not one of the {len(labels)} known labels ({shown}); labels are learnt from the training split or set with labels=[...]"
    )


class LabelCodec(TargetCodec):
    """One label per sample (a string or number; CSV's ``"2"`` matches a learnt ``2``) <-> its index."""

    def __init__(self, labels: list[Any] | None = None) -> None:
        self.labels = None if labels is None else list(labels)
        self.index = (
            {}
            if labels is None
            else {**{str(v): i for i, v in enumerate(labels)}, **{v: i for i, v in enumerate(labels)}}
        )

    def check(self, value: Any) -> None:
        if not isinstance(value, SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"expected one label (a string or a number), got {type(value).__name__} {value!r}")

    def encode(self, value: Any) -> Tensor:
        self.check(value)
        labels = _require_labels(self.labels)
        key = value if value in self.index else str(value)
        if key not in self.index:
            raise _unknown(value, labels)
        return torch.tensor(self.index[key], dtype=torch.long)

    def decode(self, output: Any) -> list[Any]:
        labels = _require_labels(self.labels)
        return [labels[i] for i in output.predictions.tolist()]

    def scores(self, output: Any) -> list[dict[str, float]] | None:
        """Each label's probability (the softmax of the logits), rounded to 4 places."""
        if output.logits is None:
            return None
        names = [str(label) for label in _require_labels(self.labels)]
        return [{n: round(p, 4) for n, p in zip(names, row)} for row in output.logits.float().softmax(-1).tolist()]


class MultiLabelCodec(TargetCodec):
    """Any number of labels per sample: a list, or one string joined by ``separator`` <-> a multi-hot vector."""

    def __init__(self, labels: list[str] | None = None, separator: str = "|") -> None:
        self.labels, self.separator = (None if labels is None else list(labels)), separator
        self.index = {label: i for i, label in enumerate(labels or [])}

    def split(self, value: Any) -> list[str]:
        if isinstance(value, str):
            return [part.strip() for part in value.split(self.separator) if part.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(part, SCALARS) for part in value):
            return [str(part) for part in value]
        raise ValueError(f"expected a list of labels or a {self.separator!r}-separated string, got {value!r}")

    def check(self, value: Any) -> None:
        self.split(value)

    def encode(self, value: Any) -> Tensor:
        labels = _require_labels(self.labels)
        target = torch.zeros(len(labels))
        for label in self.split(value):
            if label not in self.index:
                raise _unknown(label, labels)
            target[self.index[label]] = 1.0
        return target

    def decode(self, output: Any) -> list[Any]:
        labels = _require_labels(self.labels)
        return [[labels[i] for i, on in enumerate(row) if on] for row in output.predictions.tolist()]


def number(value: Any) -> float:
    """A finite number from a manifest value (CSV gives strings); ``ValueError`` saying what it got otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    try:
        found = float(value)
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(found):
        raise ValueError(f"expected a finite number, got {value!r}")
    return found


class NumberCodec(TargetCodec):
    """A number per sample (predictions are already in the original units)."""

    def check(self, value: Any) -> None:
        number(value)

    def encode(self, value: Any) -> Tensor:
        return torch.tensor(number(value), dtype=torch.float32)


class TagCodec(TargetCodec):
    """A list of tags, one per word <-> their indices; batches padded with -100."""

    def __init__(self, tags: list[str] | None = None) -> None:
        self.tags = None if tags is None else list(tags)
        self.index = {tag: i for i, tag in enumerate(tags or [])}

    def check(self, value: Any) -> None:
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise ValueError(f"expected a list of tags (one per word), got {value!r}")

    def encode(self, value: Any) -> Tensor:
        self.check(value)
        tags = _require_labels(self.tags, "tags")
        unknown = [t for t in value if t not in self.index]
        if unknown:
            raise ValueError(
                f"tag {unknown[0]!r} is not one of the {len(tags)} tags learnt from the training split ({', '.join(tags[:20])})"
            )
        return torch.tensor([self.index[t] for t in value], dtype=torch.long)

    def collate(self, targets: Sequence[Tensor]) -> Tensor:
        return nn.utils.rnn.pad_sequence(list(targets), batch_first=True, padding_value=IGNORE)  # (B, W)

    def decode(self, output: Any) -> list[Any]:
        tags = _require_labels(self.tags, "tags")
        return [[tags[t] for t in row if t != IGNORE] for row in output.predictions.tolist()]


def group_id(value: Any) -> int:
    """A stable 63-bit id for a group name (the same in every process and run)."""
    return int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=8).digest(), "little") >> 1


class GroupCodec(TargetCodec):
    """A group name (the item a pair belongs to) -> a stable id; predictions are each side's embedding."""

    def __init__(self, keys: list[str] | None = None) -> None:
        self.keys = list(keys or [])

    def check(self, value: Any) -> None:
        if not isinstance(value, SCALARS):
            raise ValueError(f"expected a group name (a string or a number), got {type(value).__name__} {value!r}")

    def encode(self, value: Any) -> Tensor:
        self.check(value)
        return torch.tensor(group_id(value), dtype=torch.long)

    def decode(self, output: Any) -> list[Any]:
        return [{k: row[i].tolist() for i, k in enumerate(self.keys)} for row in output.predictions]


class MatchCodec(GroupCodec):
    """As :class:`GroupCodec`; predictions are each pair's match probability."""

    def decode(self, output: Any) -> list[Any]:
        return [round(p, 4) for p in output.predictions.tolist()]
