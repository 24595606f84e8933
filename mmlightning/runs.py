"""Where a run's files go."""

from __future__ import annotations

import time
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


def job_id() -> str | None:
    """The id every process of a multi-process launch shares (torchrun, ``srun``): ``MMLIGHTNING_RUN_ID``, else
    SLURM's job and step ids, else one made from the rendezvous address all of them were given. None for one
    process (its run folder then gets a time stamp and a random suffix)."""
    import hashlib
    import os

    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) <= 1 and int(env.get("SLURM_NTASKS", "1")) <= 1:
        return env.get("MMLIGHTNING_RUN_ID") or None
    if env.get("MMLIGHTNING_RUN_ID"):
        found = env["MMLIGHTNING_RUN_ID"]
    elif env.get("SLURM_JOB_ID"):
        found = f"{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '0')}"
    else:
        where = f"{env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')}:{env.get('TORCHELASTIC_RUN_ID')}"
        found = f"{time.strftime('%Y%m%d')}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in found)[:64]
