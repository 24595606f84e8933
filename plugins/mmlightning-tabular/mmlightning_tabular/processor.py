"""`RecordProcessor`: a row's ``{column: value}`` -> standardised numbers, category ids and what is missing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning import Processor
from mmlightning_tabular.columns import as_category, as_float, is_missing

MISSING, UNKNOWN = 0, 1  # category ids before the vocabulary's own (which start at 2)


def as_record(value: Any) -> dict[str, Any]:
    """An encoder reading one column gets its bare value: a record of one field."""
    return dict(value) if isinstance(value, Mapping) else {"value": value}


class RecordProcessor(Processor):
    """A record -> ``numbers`` ``(F_num,)`` standardised (0 where missing), ``number_missing`` ``(F_num,)`` and
    ``categories`` ``(F_cat,)`` ids (0 missing, 1 unknown, 2... the training vocabulary).

    Before fitting (no ``columns``) it can only check that a value is a record.
    """

    reads_files = False  # a value is the record's cells

    def __init__(
        self,
        columns: list[str] | None = None,
        kinds: dict[str, str] | None = None,
        mean: dict[str, float] | None = None,
        std: dict[str, float] | None = None,
        vocab: dict[str, list[str]] | None = None,
    ) -> None:
        self.columns, self.kinds = list(columns or []), dict(kinds or {})
        self.mean, self.std, self.vocab = dict(mean or {}), dict(std or {}), dict(vocab or {})
        self.numbers = [c for c in self.columns if self.kinds[c] == "number"]
        self.categories = [c for c in self.columns if self.kinds[c] == "category"]
        self.ids = {c: {name: i + 2 for i, name in enumerate(self.vocab[c])} for c in self.categories}

    def check(self, value: Any, root: Path) -> None:
        if not self.columns:
            as_record(value)
            return
        self(value, root, train=False)

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor]:
        record = as_record(value)
        absent = [c for c in self.columns if c not in record]
        if absent:
            raise ValueError(
                f"column(s) {', '.join(absent)} absent: the model was trained on {', '.join(self.columns)}; "
                "give the same columns (a cell may be empty)"
            )
        numbers, missing = [], []
        for column in self.numbers:
            cell = record[column]
            if is_missing(cell):
                numbers.append(0.0)
                missing.append(True)
                continue
            found = as_float(cell)
            if found is None:
                raise ValueError(f"column '{column}': expected a number (it was numeric in training), got {cell!r}")
            numbers.append((found - self.mean[column]) / self.std[column])
            missing.append(False)
        categories = [
            MISSING if is_missing(record[c]) else self.ids[c].get(as_category(record[c]), UNKNOWN)
            for c in self.categories
        ]
        return {
            "numbers": torch.tensor(numbers, dtype=torch.float32).reshape(len(self.numbers)),
            "number_missing": torch.tensor(missing, dtype=torch.bool).reshape(len(self.numbers)),
            "categories": torch.tensor(categories, dtype=torch.long).reshape(len(self.categories)),
        }

    def blank(self) -> dict[str, Tensor]:
        return self(dict.fromkeys(self.columns), Path("."), train=False)

    def corruptions(self) -> tuple[str, ...]:
        return ("missing", "noise", "swap")

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """``missing``: each cell is missing with probability ``severity``; ``noise``: Gaussian noise of
        ``severity`` training standard deviations on every number; ``swap``: each category cell takes another
        training category with probability ``severity``."""
        if kind not in self.corruptions():
            raise ValueError(f"no record corruption '{kind}': choose from {', '.join(self.corruptions())}")
        item = self(value, root, train=False)  # fresh tensors: changed in place below
        if severity <= 0:
            return item
        numbers, missing, categories = item["numbers"], item["number_missing"], item["categories"]
        if kind == "missing":
            missing |= torch.rand(numbers.shape, generator=generator) < severity
            numbers[missing] = 0.0
            categories[torch.rand(categories.shape, generator=generator) < severity] = MISSING
        elif kind == "noise":
            numbers = torch.where(
                missing, numbers, numbers + severity * torch.randn(numbers.shape, generator=generator)
            )
        else:
            for i, column in enumerate(self.categories):
                size = len(self.vocab[column])
                if size > 1 and float(torch.rand((), generator=generator)) < severity:
                    current = int(categories[i]) - 2
                    shift = int(torch.randint(1, size, (), generator=generator))
                    categories[i] = 2 + ((current if current >= 0 else 0) + shift) % size
        return {"numbers": numbers, "number_missing": missing, "categories": categories}

    def preview(self, value: Any, root: Path) -> Any:
        """The record as ``{column: value}`` (a dashboard shows a small table)."""
        record = as_record(value)
        return {column: record.get(column) for column in (self.columns or list(record))}
