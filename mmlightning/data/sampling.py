"""Batches over several datasets at once: each batch from one dataset, the datasets taken in a chosen mix."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch.utils.data import Sampler

SAMPLING = ("proportional", "round_robin", "ratios")


class TaskBatchSampler(Sampler[list[int]]):
    """Index batches over datasets laid end to end (a ``ConcatDataset``), one dataset per batch.

    Args:
        sizes: rows per dataset, in order.
        sampling: ``proportional`` (every row once per epoch, batches of the datasets shuffled together, so a
            dataset is drawn in proportion to its size), ``round_robin`` (the datasets in turn; an epoch lasts
            until the largest is done, smaller ones start over), or ``ratios`` (each batch's dataset drawn with
            the given ``ratios``; an epoch has as many batches as ``proportional``).
        shuffle: shuffle rows and batches (training); otherwise every dataset in order, once (evaluation).
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, sampling: str = "proportional", ratios: Sequence[float] | None = None, shuffle: bool = True, seed: int = 0) -> None:
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
        if sampling == "ratios" and (ratios is None or len(ratios) != len(sizes) or min(ratios) < 0 or sum(ratios) <= 0):
            raise ValueError(f"sampling='ratios' needs a non-negative ratio per dataset ({len(sizes)}), got {ratios}")
        self.sizes, self.batch_size, self.sampling, self.shuffle, self.seed = list(sizes), batch_size, sampling, shuffle, seed
        self.ratios = list(ratios) if ratios is not None else None
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self, dataset: int, generator: torch.Generator) -> list[list[int]]:
        size, offset = self.sizes[dataset], self.offsets[dataset]
        order = torch.randperm(size, generator=generator).tolist() if self.shuffle else list(range(size))
        return [[offset + i for i in order[start : start + self.batch_size]] for start in range(0, size, self.batch_size)]

    def _order(self, generator: torch.Generator) -> list[int]:
        """Which dataset each batch of the epoch comes from."""
        counts = [math.ceil(n / self.batch_size) for n in self.sizes]
        if not self.shuffle:
            return [d for d, c in enumerate(counts) for _ in range(c)]
        if self.sampling == "round_robin":
            return [d for _ in range(max(counts)) for d in range(len(counts)) if counts[d]]
        if self.sampling == "ratios":
            weights = torch.tensor(self.ratios, dtype=torch.float) * torch.tensor([c > 0 for c in counts], dtype=torch.float)
            return torch.multinomial(weights, sum(counts), replacement=True, generator=generator).tolist()
        slots = [d for d, c in enumerate(counts) for _ in range(c)]
        return [slots[i] for i in torch.randperm(len(slots), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1  # a new mix next epoch even when nobody calls set_epoch
        pools: dict[int, list[list[int]]] = {}
        for dataset in self._order(generator):
            if not pools.get(dataset):
                pools[dataset] = self._batches(dataset, generator)  # (re)start this dataset
            yield pools[dataset].pop(0)

    def __len__(self) -> int:
        counts = [math.ceil(n / self.batch_size) for n in self.sizes]
        if self.shuffle and self.sampling == "round_robin":
            return max(counts) * sum(1 for c in counts if c)
        return sum(counts)


def ratios_in_order(names: Sequence[str], ratios: Mapping[str, float] | None) -> list[float] | None:
    """The ratio of each named dataset, in order; an error naming what is missing or unknown."""
    if ratios is None:
        return None
    unknown, missing = set(ratios) - set(names), [n for n in names if n not in ratios]
    if unknown or missing:
        raise ValueError(f"--data.ratios must give a ratio for each training dataset {list(names)}; unknown {sorted(unknown)}, missing {missing}")
    return [float(ratios[n]) for n in names]
