"""Lightning's progress bars, counting epochs from 1 as mmlightning's own epoch lines do ("epoch 3/3")."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar


class RichEpochBar(RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        total = f"/{self.trainer.max_epochs}" if self.trainer.max_epochs not in (None, -1) else ""
        description = f"Epoch {current_epoch + 1}{total}"
        return f"{description:{len(self.validation_description)}}"


class TQDMEpochBar(TQDMProgressBar):
    def on_train_epoch_start(self, trainer: Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        total = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}{total}")


def count_epochs_from_one(trainer: Any) -> None:
    """Swap the Trainer's default bar (Lightning's own class, not a user's subclass) for one counting from 1."""
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is RichProgressBar:
            trainer.callbacks[i] = RichEpochBar()
        elif type(callback) is TQDMProgressBar:
            trainer.callbacks[i] = TQDMEpochBar(refresh_rate=callback.refresh_rate)
