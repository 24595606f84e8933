"""Exact resumption: a run killed at any step and resumed from its checkpoint sees the same batches, with the
same augmentation, as a run that was never stopped.

- Each epoch's order comes from (seed, epoch) alone, never from the global random state.
- The indices a sampler gives carry their epoch (``epoch * size + row``), so a dataset, in any worker process, seeds
  each sample's augmentation from (seed, epoch, row) without touching the global random state.
- The training loader has ``state_dict``/``load_state_dict``, which Lightning saves in every checkpoint: the epoch
  and how many of its batches were trained on, which a resumed run skips without loading them.
- :class:`RandomStates` saves and restores the global random states (dropout, masking) with each checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

SEED_MIX = 1_000_003


def sample_seed(seed: int, epoch: int, row: int) -> int:
    """The seed of one sample's augmentation in one epoch."""
    return ((seed * SEED_MIX + epoch) * SEED_MIX + row) % (2**63)


def seeded(seed: int, make: Callable[[], Any]) -> Any:
    """``make()`` with torch's and ``random``'s generators seeded, the global states left as they were."""
    # the CPU generator only: torch.manual_seed also queues a seed for every accelerator, which on a CUDA build
    # without a GPU formats a stack trace each call (about 1 ms a sample); fork_rng's own checks cost 15 us
    generator = torch.random.default_generator
    saved, state = random.getstate(), generator.get_state()
    try:
        generator.manual_seed(seed)
        random.seed(seed)
        return make()
    finally:
        random.setstate(saved)
        generator.set_state(state)


class EpochSampler(DistributedSampler):
    """A sampler whose order depends on (seed, epoch) only, this process's share under DDP, and which skips the
    first batches of the epoch a resumed run had already trained on. Its indices are ``epoch * size + row``."""

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.batch_size = batch_size
        self.resume: tuple[int, int] | None = None  # (epoch, batches already trained on)

    def __iter__(self) -> Iterator[int]:
        rows = list(super().__iter__())
        if self.resume is not None and self.resume[0] == self.epoch:
            rows = rows[self.resume[1] * self.batch_size :]
        self.resume = None
        size = len(self.dataset)  # type: ignore[arg-type]
        return iter([self.epoch * size + row for row in rows])


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning saves and restores: the epoch, and how many of its batches were trained on
    (``progress``, the trainer's count), so a resumed run starts at the next batch."""

    progress: Callable[[], int] | None = None

    def _epoch_source(self) -> Any:
        return self.batch_sampler if hasattr(self.batch_sampler, "resume") else self.sampler

    def state_dict(self) -> dict[str, int]:
        source = self._epoch_source()
        return {"epoch": int(source.epoch), "batches": int(self.progress()) if self.progress else 0}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved at the end of an epoch: the next one starts afresh
            epoch, batches = epoch + 1, 0
        source = self._epoch_source()
        source.set_epoch(epoch)  # now: Lightning makes the iterator (worker processes draw indices at once) before
        source.resume = (epoch, batches)  # it sets the epoch for the loop


class RandomStates(Callback):
    """Saves the global random states (torch, CUDA, ``random``, NumPy) in each checkpoint and restores them on resume."""

    def on_save_checkpoint(self, trainer: Any, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        import numpy as np

        state: Any = np.random.get_state()
        kind, keys, pos, has_gauss, gauss = state
        numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]
        # plain types and tensors only: checkpoints load with weights_only=True
        states: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "random": list(random.getstate()),
            "numpy": numpy_state,
        }
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault("mmlightning", {})["random_states"] = states

    def on_load_checkpoint(self, trainer: Any, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        import numpy as np

        states = checkpoint.get("mmlightning", {}).get("random_states")
        if not states:
            return
        torch.set_rng_state(states["torch"])
        version, internal, gauss_next = states["random"]
        random.setstate((version, tuple(internal), gauss_next))
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])
