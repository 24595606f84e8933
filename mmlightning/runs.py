"""Where a run's files go."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_dir(trainer: Any) -> Path:
    """A run's folder (checkpoints, config, processors): ``save_dir/project/run id`` under W&B, else the log dir.

    Without a W&B logger this asks ``trainer.log_dir``, a collective call under DDP: call it on every process."""
    from lightning.pytorch.loggers import WandbLogger

    logger = trainer.logger
    if isinstance(logger, WandbLogger):
        return Path(logger.save_dir or ".") / str(logger.name) / str(logger.version)
    return Path(trainer.log_dir or trainer.default_root_dir)
