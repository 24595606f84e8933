"""Datasets over validated manifest rows, turned into tensors by the model's processor bundle."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mmlightning.bundle import ProcessorBundle
from mmlightning.data.manifest import Row
from mmlightning.data.resume import sample_seed, seeded


class ManifestDataset(Dataset):
    """Checked rows of one manifest; ``targets``: the heads whose targets it gives.

    An index may carry an epoch (``epoch * len + row``, as :class:`~mmlightning.data.resume.EpochSampler` gives
    them): a training sample's augmentation is then seeded from (seed, epoch, row), the same in any worker and
    in a resumed run.
    """

    def __init__(
        self,
        rows: Sequence[Row],
        root: Path,
        file: str,
        bundle: ProcessorBundle,
        train: bool,
        targets: Sequence[str] = (),
    ) -> None:
        self.rows, self.root, self.file, self.bundle, self.train = list(rows), root, file, bundle, train
        self.targets, self.seed, self.offset = list(targets), 0, 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, row = divmod(index, len(self.rows))
        return self.item(row, epoch)

    def item(self, index: int, epoch: int = 0) -> dict[str, Any]:
        row = self.rows[index]

        def make() -> dict[str, Any]:
            return self.bundle.item(
                row.values, self.root, self.train, f"{Path(self.file).name}:{row.line}", self.targets
            )

        try:
            return seeded(sample_seed(self.seed, epoch, self.offset + index), make) if self.train else make()
        except (ValueError, OSError) as err:
            raise ValueError(
                f"{self.file}:{row.line}: {err} (this row passed the checks before training; did the file change?)"
            ) from err


class Rows(Dataset):
    """Several manifests' datasets end to end (several datasets in one split); indices may carry an epoch."""

    def __init__(self, parts: Sequence[ManifestDataset]) -> None:
        self.parts = list(parts)
        self.starts = [sum(len(p) for p in self.parts[:i]) for i in range(len(self.parts))]
        for part, start in zip(self.parts, self.starts):
            part.offset = start

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, row = divmod(index, len(self))
        part = bisect.bisect_right(self.starts, row) - 1
        return self.parts[part].item(row - self.starts[part], epoch)
