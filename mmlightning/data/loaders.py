"""The datamodule's loaders: one manifest or several (batches per task), in an order that depends on the seed
alone, resumable mid-epoch."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from mmlightning.data.dataset import Rows
from mmlightning.data.resume import EpochSampler, ResumableLoader
from mmlightning.data.sampling import TaskBatchSampler, ratios_in_order

if TYPE_CHECKING:
    from mmlightning.data.datamodule import MultimodalDataModule


def make_loader(self: MultimodalDataModule, split: str, shuffle: bool) -> DataLoader:
    """A loader whose order and augmentation depend on the seed alone and which a resumed run continues
    exactly (see :mod:`mmlightning.data.resume`)."""
    data = self.dataset(split)
    pin = torch.cuda.is_available() if self.pin_memory is None else self.pin_memory
    size = self.batch_size if split == "train" else self.eval_batch_size
    parts: list[Any] = list(data.parts) if isinstance(data, Rows) else [data]
    seed = torch.initial_seed() % (2**31)  # seed_everything's seed; the same in every process
    for part in parts:
        part.seed = seed
    common: dict[str, Any] = {
        "num_workers": self.num_workers,
        "collate_fn": functools.partial(self._bundle().collate, root=parts[0].root),
        "pin_memory": pin,
        "persistent_workers": self.num_workers > 0,
        "generator": torch.Generator().manual_seed(seed),  # worker seeds drawn from it, not the global state
    }
    if len(parts) == 1:
        loader = ResumableLoader(data, batch_size=size, sampler=EpochSampler(data, size, shuffle, seed), **common)
    else:
        names = list(self.sources(split))
        ratios = ratios_in_order(names, self.ratios) if split == "train" and self.sampling == "ratios" else None
        sampling = self.sampling if split == "train" else "proportional"
        sampler = TaskBatchSampler(
            batch_size=size,
            sizes=[len(p) for p in parts],
            sampling=sampling,
            ratios=ratios,
            shuffle=shuffle,
            seed=seed,
        )
        loader = ResumableLoader(data, batch_sampler=sampler, **common)
    if split == "train" and self.trainer is not None:
        trainer: Any = self.trainer
        # Lightning makes the iterator before it sets the epoch, and a resumed run keeps it for its first epoch
        # (worker processes draw indices at once): start at the epoch about to run
        epoch = trainer.fit_loop.epoch_progress.current.processed  # what Lightning gives set_epoch, later
        source: Any = loader.batch_sampler if isinstance(loader.batch_sampler, TaskBatchSampler) else loader.sampler
        source.set_epoch(epoch)
        loader.progress = lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed  # trained on so far
    return loader
