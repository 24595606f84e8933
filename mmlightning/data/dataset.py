"""A dataset over validated manifest rows, and the collate that builds a :class:`Batch`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mmlightning.contracts import Batch, Processor
from mmlightning.data.manifest import Row


@dataclass
class Fields:
    """What to read from a row: encoder key -> (column, processor), head key -> (column, target encoder)."""

    inputs: dict[str, tuple[str, Processor]]
    targets: dict[str, tuple[str, Callable[[Any], torch.Tensor]]]
    id_column: str


class ManifestDataset(Dataset):
    def __init__(self, rows: Sequence[Row], root: Path, file: str, fields: Fields, train: bool) -> None:
        self.rows, self.root, self.file, self.fields, self.train = list(rows), root, file, fields, train

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        try:
            return self._item(row)
        except (ValueError, OSError) as err:
            raise ValueError(f"{self.file}:{row.line}: {err} (this row passed the checks before training; did the file change?)") from err

    def _item(self, row: Row) -> dict[str, Any]:
        values, fields = row.values, self.fields
        inputs = {key: None if values.get(col) is None else proc(values[col], self.root, self.train) for key, (col, proc) in fields.inputs.items()}
        targets = {key: encode(values[col]) for key, (col, encode) in fields.targets.items() if values.get(col) is not None}
        raw = {col: values.get(col) for col, _ in [*fields.inputs.values(), *fields.targets.values()]}
        ident = values.get(fields.id_column)
        return {"id": str(ident) if ident is not None else f"{Path(self.file).name}:{row.line}", "inputs": inputs, "targets": targets, "raw": raw}


class Collate:
    """Turns a list of dataset items into a :class:`Batch` with each encoder's own collate."""

    def __init__(self, processors: Mapping[str, Processor], root: Path, target_collators: Mapping[str, Callable] | None = None) -> None:
        self.processors, self.root = dict(processors), str(root)
        self.target_collators = dict(target_collators or {})

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        inputs = {key: proc.batch([item["inputs"][key] for item in items]) for key, proc in self.processors.items()}
        target_keys = set.intersection(*(set(item["targets"]) for item in items)) if items else set()
        targets = {key: self.target_collators.get(key, torch.stack)([item["targets"][key] for item in items]) for key in sorted(target_keys)}
        raw = {col: [item["raw"][col] for item in items] for col in (items[0]["raw"] if items else {})}
        return Batch(inputs=inputs, targets=targets, ids=[item["id"] for item in items], raw=raw, root=self.root)
