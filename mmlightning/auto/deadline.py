"""A wall-clock deadline for one fit, and the best validation score seen on the way."""

from __future__ import annotations

import logging
import time
from typing import Any

from lightning.pytorch import Callback

log = logging.getLogger(__name__)


class Deadline(Callback):
    """Stops training when one more batch and a validation pass would end after ``deadline`` (a
    ``time.monotonic()`` time). Lightning validates when a fit stops early, so the checkpoint callback still sees
    the last weights and keeps the best. Also records the best ``metric`` (``mode`` max or min) and its epoch."""

    def __init__(self, deadline: float, metric: str, mode: str = "max") -> None:
        self.deadline, self.metric, self.mode = deadline, metric, mode
        self.best: float | None = None
        self.best_epoch = -1
        self.stopped = False
        self._val_seconds: float | None = None
        self._val_start = 0.0
        self._epoch_start = 0.0
        self._last_batch = 0.0
        self._batch_seconds = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_start = self._last_batch = time.monotonic()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.monotonic()
        self._batch_seconds, self._last_batch = now - self._last_batch, now
        if now + self._batch_seconds + self._validation_estimate(trainer, batch_idx + 1, now) > self.deadline:
            if not trainer.should_stop:
                log.info(
                    "time limit: stopping after epoch %d, batch %d, to validate in time",
                    trainer.current_epoch + 1,
                    batch_idx + 1,
                )
            trainer.should_stop, self.stopped = True, True

    def _validation_estimate(self, trainer: Any, done: int, now: float) -> float:
        if self._val_seconds is not None:
            return self._val_seconds
        batches = sum(trainer.num_val_batches) if isinstance(trainer.num_val_batches, list) else 0
        if not batches:  # not known yet: as long as a training batch (each of which also reads and encodes)
            return self._batch_seconds
        return (now - self._epoch_start) / max(1, done) * batches

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        self._val_seconds = time.monotonic() - self._val_start
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, trainer.current_epoch + 1


class SharedFeatures(Callback):
    """Gives every fit of one ``Predictor`` the same in-memory feature cache: a frozen encoder's features, computed
    by the first model, are reused by the next ones (keyed, as always, on the sample and the encoder's weights)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(pl_module.model, "cache", None) is not None:
            pl_module.model.cache = self.cache

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Features cached by an earlier model: its loaders skip reading those inputs from the first epoch on."""
        from mmlightning.binding import _skip_cached

        if trainer.current_epoch == 0 and getattr(pl_module.model, "cache", None) is self.cache:
            pl_module.model.check_cache(str(trainer.precision))
            _skip_cached(trainer, pl_module.model, "train", 0)
            _skip_cached(trainer, pl_module.model, "val", 0)
