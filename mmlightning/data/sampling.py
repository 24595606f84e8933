"""Batches over several datasets at once: each batch from one dataset, the datasets taken in a chosen mix."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, DistributedSampler

SAMPLING = ("proportional", "round_robin", "ratios")


class TaskBatchSampler(BatchSampler):
    """Index batches over datasets laid end to end (a ``ConcatDataset``), one dataset per batch.

    Args:
        sampler: ignored, except that under DDP Lightning passes its ``DistributedSampler`` here (this class
            follows ``BatchSampler``'s API so that it can): its rank and world size pick this process's share.
        sizes: rows per dataset, in order.
        sampling: ``proportional`` (every row once per epoch, batches of the datasets shuffled together, so a
            dataset is drawn in proportion to its size), ``round_robin`` (the datasets in turn; an epoch lasts
            until the largest is done, smaller ones start over), or ``ratios`` (each batch's dataset drawn with
            the given ``ratios``; an epoch has as many batches as ``proportional``).
        shuffle: shuffle rows and batches (training); otherwise every dataset in order, once (evaluation).

    Under DDP every process draws the same epoch's batches (same seed) and takes every world-size-th one; the
    list is first padded with its own first batches to a multiple of the world size, so each process runs the
    same number of steps and no row is left out (a few are seen twice, as with ``DistributedSampler``).
    """

    def __init__(
        self,
        sampler: Any = None,
        batch_size: int = 1,
        drop_last: bool = False,
        *,
        sizes: Sequence[int],
        sampling: str = "proportional",
        ratios: Sequence[float] | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
        if sampling == "ratios" and (
            ratios is None or len(ratios) != len(sizes) or min(ratios) < 0 or sum(ratios) <= 0
        ):
            raise ValueError(f"sampling='ratios' needs a non-negative ratio per dataset ({len(sizes)}), got {ratios}")
        super().__init__(range(sum(sizes)) if sampler is None else sampler, batch_size, drop_last)
        self.sizes, self.sampling, self.shuffle, self.seed = list(sizes), sampling, shuffle, seed
        self.ratios = list(ratios) if ratios is not None else None
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        distributed = isinstance(sampler, DistributedSampler)
        self.rank: int = sampler.rank if isinstance(sampler, DistributedSampler) else 0
        self.world: int = sampler.num_replicas if isinstance(sampler, DistributedSampler) else 1
        self.epoch = sampler.epoch if distributed else 0
        self.resume: tuple[int, int] | None = None  # (epoch, batches already trained on), set on resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self, dataset: int, generator: torch.Generator) -> list[list[int]]:
        size, offset = self.sizes[dataset], self.offsets[dataset]
        order = torch.randperm(size, generator=generator).tolist() if self.shuffle else list(range(size))
        return [
            [offset + i for i in order[start : start + self.batch_size]] for start in range(0, size, self.batch_size)
        ]

    def _order(self, generator: torch.Generator) -> list[int]:
        """Which dataset each batch of the epoch comes from."""
        counts = [math.ceil(n / self.batch_size) for n in self.sizes]
        if not self.shuffle:
            return [d for d, c in enumerate(counts) for _ in range(c)]
        if self.sampling == "round_robin":
            return [d for _ in range(max(counts)) for d in range(len(counts)) if counts[d]]
        if self.sampling == "ratios":
            weights = torch.tensor(self.ratios, dtype=torch.float) * torch.tensor(
                [c > 0 for c in counts], dtype=torch.float
            )
            return torch.multinomial(weights, sum(counts), replacement=True, generator=generator).tolist()
        slots = [d for d, c in enumerate(counts) for _ in range(c)]
        return [slots[i] for i in torch.randperm(len(slots), generator=generator).tolist()]

    def _epoch_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1  # a new mix next epoch even when nobody calls set_epoch
        pools: dict[int, list[list[int]]] = {}
        batches = []
        for dataset in self._order(generator):
            if not pools.get(dataset):
                pools[dataset] = self._batches(dataset, generator)  # (re)start this dataset
            batches.append(pools[dataset].pop(0))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, total = self.epoch, sum(self.sizes)
        batches = self._epoch_batches()
        if self.world > 1:
            batches += batches[: len(self) * self.world - len(batches)]  # pad so every process gets as many
            batches = batches[self.rank :: self.world]
        if self.resume is not None and self.resume[0] == epoch:  # a resumed run: skip what it trained on
            batches = batches[self.resume[1] :]
        self.resume = None
        for batch in batches:
            yield [epoch * total + i for i in batch]  # the index carries its epoch (per-sample augmentation seeds)

    def __len__(self) -> int:
        counts = [math.ceil(n / self.batch_size) for n in self.sizes]
        total = (
            max(counts) * sum(1 for c in counts if c)
            if self.shuffle and self.sampling == "round_robin"
            else sum(counts)
        )
        return math.ceil(total / self.world)


def ratios_in_order(names: Sequence[str], ratios: Mapping[str, float] | None) -> list[float] | None:
    """The ratio of each named dataset, in order; an error naming what is missing or unknown."""
    if ratios is None:
        return None
    unknown, missing = set(ratios) - set(names), [n for n in names if n not in ratios]
    if unknown or missing:
        raise ValueError(
            f"--data.ratios must give a ratio for each training dataset {list(names)}; unknown {sorted(unknown)}, missing {missing}"
        )
    return [float(ratios[n]) for n in names]
