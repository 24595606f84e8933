"""`Tunings`: the callback that calls a model's fine-tuning strategies at the points of a Trainer run they need."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, Trainer

from mmlightning.tuning.runner import report, strategies

log = logging.getLogger(__name__)


class Tunings(Callback):
    """Calls the model's strategies at the points of a Trainer run they need, and reports them at fit start."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        pl_module.configure_model()  # once per run: the strategies' setup in fit, then the data side

    def on_fit_start(self, trainer: Trainer, pl_module: Any) -> None:
        model = pl_module.model
        for strategy in strategies(model):
            strategy.on_fit_start(model, trainer)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        parts, groups = report(model, optimizer)
        if trainer.is_global_zero:
            for strategy in strategies(model):
                log.info("tuning: %s", strategy.describe(model))
            lines = [f"  {p:<24} {n:>12,} {t:>12,}" for p, n, t in parts]
            log.info("parameters per part:\n  %-24s %12s %12s\n%s", "part", "all", "trainable", "\n".join(lines))
            rates = [f"  {i:<6} {lr:>10.3g} {wd:>8.3g} {n:>12,}" for i, lr, wd, n in groups]
            log.info(
                "optimizer groups:\n  %-6s %10s %8s %12s\n%s", "group", "rate", "decay", "parameters", "\n".join(rates)
            )
        from mmlightning.wandb import log_table

        log_table(trainer, "tuning/parameters", ["part", "parameters", "trainable"], parts)
        log_table(trainer, "tuning/groups", ["group", "learning rate", "weight decay", "parameters"], groups)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Any) -> None:
        model = pl_module.model
        if strategies(model):
            for strategy in strategies(model):
                strategy.on_train_epoch_start(model, trainer.current_epoch)
            pl_module.train(pl_module.training)  # modules frozen now go (back) to eval mode
