"""Datasets over validated manifest rows, turned into tensors by the model's processor bundle."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mmlightning.bundle import ProcessorBundle
from mmlightning.data.manifest import Row
from mmlightning.data.resume import sample_seed, seeded
from mmlightning.processing import sample_key

NEVER = 2**62


class CachedInputs:
    """The encoders whose inputs a split's loader stops processing from some epoch on, because every sample's
    features are in the feature cache (frozen encoders, no augmentation). Held in shared memory, so the loader's
    worker processes (kept between epochs) see a change made in the training process."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = sorted(keys)
        self.since = torch.full((len(self.keys),), NEVER, dtype=torch.long).share_memory_()
        self.checked: dict[str, int] = {}  # key -> id of the cache store found complete (the training process's)

    def skip(self, key: str, epoch: int, store: object) -> None:
        self.since[self.keys.index(key)] = epoch
        self.checked[key] = id(store)

    def reset(self, key: str) -> None:
        self.since[self.keys.index(key)] = NEVER
        self.checked.pop(key, None)

    def skipped(self, epoch: int) -> set[str]:
        return {key for key, since in zip(self.keys, self.since.tolist()) if epoch >= since}


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
        self.cached = CachedInputs(list(bundle.processors))  # one per split: Rows shares the first part's

    def sample_keys(self, root: Path | None = None) -> list[str]:
        """Each row's feature-cache key (:func:`~mmlightning.processing.sample_key`), as the model makes it from a
        batch (whose ``root`` is the split's first manifest's)."""
        columns = self.bundle.read_columns()
        return [sample_key([row.values.get(c) for c in columns], root or self.root) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, row = divmod(index, len(self.rows))
        return self.item(row, epoch)

    def media_root(self, row: Row) -> Path:
        """Where a row's media are read from: the data folder (shards hold them in memory instead)."""
        return self.root

    def item(self, index: int, epoch: int = 0) -> dict[str, Any]:
        row = self.rows[index]

        def make() -> dict[str, Any]:
            return self.bundle.item(
                row.values, self.media_root(row), self.train, f"{Path(self.file).name}:{row.line}", self.targets, skip
            )

        skip = self.cached.skipped(epoch)

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
            part.cached = self.parts[0].cached
        self.cached = self.parts[0].cached

    def sample_keys(self) -> list[str]:
        return [key for part in self.parts for key in part.sample_keys(self.parts[0].root)]

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, row = divmod(index, len(self))
        part = bisect.bisect_right(self.starts, row) - 1
        return self.parts[part].item(row - self.starts[part], epoch)
