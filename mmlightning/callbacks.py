"""Callbacks the CLI adds: predictions to a file, and sample predictions as a W&B table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

log = logging.getLogger(__name__)


class PredictionWriter(BasePredictionWriter):
    """Writes one JSON line per input row: its id and each head's prediction."""

    def __init__(self, path: str = "predictions.jsonl") -> None:
        super().__init__(write_interval="batch")
        self.path, self.count = Path(path), 0

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")
        self.count = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        rows = trainer.datamodule.bundle.decode(prediction["outputs"], prediction["ids"])
        with self.path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=str) + "\n")
        self.count += len(rows)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        log.info("wrote %d predictions to %s", self.count, self.path)


class SamplePredictions(Callback):
    """Logs a table of validation samples (inputs shown as images or text, truth, prediction) to W&B."""

    def __init__(self, count: int = 16) -> None:
        self.count = count
        self.rows: list[list[Any]] = []
        self.columns: list[str] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking or len(self.rows) >= self.count or not isinstance(outputs, dict):
            return
        from mmlightning.wandb import sample_rows

        datamodule: Any = trainer.datamodule
        self.columns, rows = sample_rows(datamodule.bundle, batch, outputs, self.count - len(self.rows))
        self.rows.extend(rows)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.rows:
            return
        from mmlightning.wandb import log_table

        log_table(trainer, "val/samples", self.columns, self.rows)
