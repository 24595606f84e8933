"""Callbacks the CLI adds: predictions to a file, and sample predictions as a W&B table."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

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
    """Logs a table of validation samples to W&B: inputs shown as images, text or audio, truth, prediction and,
    with ``attention``, where the fusion looked in each input that lies on a grid (an image), drawn over it."""

    def __init__(self, count: int = 16, attention: bool = True) -> None:
        self.count, self.attention = count, attention
        self.rows: list[list[Any]] = []
        self.columns: list[str] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.rows = []

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or len(self.rows) >= self.count or not isinstance(outputs, dict):
            return
        from mmlightning.wandb import attention_maps, sample_rows

        datamodule: Any = trainer.datamodule
        maps = {}
        if self.attention:
            with trainer.precision_plugin.val_step_context():  # as the step ran: cached features may be bf16
                maps = attention_maps(pl_module.model, batch)
        self.columns, rows = sample_rows(datamodule.bundle, batch, outputs, self.count - len(self.rows), maps)
        self.rows.extend(rows)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.rows:
            return
        from mmlightning.wandb import log_table

        log_table(trainer, "val/samples", self.columns, self.rows)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The losses and each head's overall scores (not per-class or confusion entries)."""
    out = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if (
            parts[0] in ("train", "val")
            and (len(parts) == 2 or (len(parts) == 3 and parts[-1] != "loss_step"))
            and getattr(value, "numel", lambda: 1)() == 1
        ):
            out[key.replace("_epoch", "")] = float(value)
    return {k: v for k, v in out.items() if not k.endswith("_step")}


def results_table(metrics: dict[str, Any], stage: str) -> str:
    """An evaluation's scores (overall ones) and each head's confusion matrix as a matrix of counts."""
    plain = {
        k: float(v) for k, v in metrics.items() if k.startswith(f"{stage}/") and getattr(v, "numel", lambda: 1)() == 1
    }
    scores = {k: v for k, v in plain.items() if len(k.split("/")) <= 3}
    lines = [f"{k:<{max(map(len, scores), default=0)}}  {v:.4f}" for k, v in sorted(scores.items())]
    cells: dict[str, dict[tuple[str, str], float]] = {}
    for key, value in plain.items():
        parts = key.split("/")
        if len(parts) == 5 and parts[2] == "confusion":
            cells.setdefault(parts[1], {})[(parts[3], parts[4])] = value
    for head, counts in sorted(cells.items()):
        labels = list(dict.fromkeys(t for t, _ in counts))
        width = max(max(map(len, labels)), 6)
        lines += [
            "",
            f"{stage}/{head}: confusion (rows: true, columns: predicted)",
            " " * width + "  " + "  ".join(f"{p:>{width}}" for p in labels),
        ]
        lines += [
            f"{t:>{width}}  " + "  ".join(f"{int(counts.get((t, p), 0)):>{width}}" for p in labels) for t in labels
        ]
    return "\n".join(lines)


class EpochSummary(Callback):
    """One line per epoch (losses and scores, seconds taken) and, when a fit ends, its best and last validation
    scores and where the run is: the progress a user reads without a progress bar."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        self.history: list[dict[str, float]] = []
        self.start = 0.0
        self.every_seconds, self.said = every_seconds, 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer)  # the epoch before: callbacks' epoch-end hooks run before the model logs its scores
        self.start = self.said = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        """Without a progress bar: a line after the run's first batch, then every ``every_seconds``, with counts and
        an ETA, so a slow epoch (the first one over frozen encoders computes their features) never looks hung."""
        if trainer.progress_bar_callback is not None or not trainer.is_global_zero or not self.start:
            return
        now, done = time.perf_counter(), trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if (done != 1 or self.history) and now - self.said < self.every_seconds:  # the first batch of the run
            return
        self.said, total = now, trainer.num_training_batches
        left = ""
        if isinstance(total, int) and 0 < done < total:
            left = f", about {_duration((now - self.start) / done * (total - done))} left in this epoch"
        epoch = f"epoch {len(self.history) + 1}/{trainer.max_epochs or 0}"
        log.info("%s: batch %d/%s (%s so far%s)", epoch, done, total, _duration(now - self.start), left)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer)

    def _report(self, trainer: Trainer) -> None:
        if not self.start:
            return
        metrics = _headline(dict(trainer.callback_metrics))
        self.history.append(metrics)
        self.start, seconds = 0.0, time.perf_counter() - self.start
        if trainer.is_global_zero:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
            took = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"  # a short epoch to a tenth of a second
            log.info("epoch %d/%d (%s s): %s", len(self.history), trainer.max_epochs or 0, took, shown)

    def table(self, run: str) -> str:
        """Best (lowest val/loss) and last epoch's validation scores."""
        scored = [(i, h) for i, h in enumerate(self.history) if "val/loss" in h]
        if not scored:
            return f"run saved in {run}"
        best_i, best = min(scored, key=lambda ih: ih[1]["val/loss"])
        last_i, last = scored[-1]
        keys = sorted(k for k in last if k.startswith("val/"))
        width = max(len(k) for k in keys)
        lines = [
            f"{'':<{width}}  {'best (epoch ' + str(best_i + 1) + ')':>16}  {'last (epoch ' + str(last_i + 1) + ')':>16}"
        ]
        lines += [f"{k:<{width}}  {best.get(k, float('nan')):>16.4f}  {last[k]:>16.4f}" for k in keys]
        return "\n".join(lines) + f"\nrun saved in {run}"


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every N training steps, to resume a killed run from, and once more when ``fit`` ends, so that
    it holds the final state, as Lightning users expect (not the last multiple of N)."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.dirpath is not None and trainer.global_step > 0:
            last = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            trainer.save_checkpoint(last, weights_only=False)  # everything, to resume from
