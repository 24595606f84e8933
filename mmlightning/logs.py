"""Where mmlightning's log messages go: stderr, one line each, prefixed ``mmlightning:``."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

# Upstream messages a user cannot act on (Lightning's and W&B's), hidden unless --verbose / MMLIGHTNING_VERBOSE=1.
NOISE = (
    r".*module\(s\) in eval mode.*",  # mmlightning keeps frozen encoders in eval on purpose
    r".*LeafSpec.*",
    r".*does not have many workers.*",
    r".*anonymous.*",
    r".*WeightAveraging callback with a model that overrides the configure_model.*",  # it readies, not shards
    r".*callbacks used to create the checkpoint.*",  # validate/predict from a checkpoint: nothing to restore
    r".*dirpath has changed from.*",  # a new run's folder, by design
    r".*LightningCLI's args parameter.*",  # the Python API passes its config as args
    r".*smaller than the logging interval.*",  # a short epoch: the epoch's metrics are still logged
    r".*No seed found, seed set to.*",
    r".*GPU available but not used.*",
)
QUIET_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.rank_zero",
)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a notebook or a test may have replaced it since)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging() -> None:
    """mmlightning's messages on stderr, each prefixed ``mmlightning:`` (once per process)."""
    logger = logging.getLogger("mmlightning")
    if not logger.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("mmlightning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def verbose() -> bool:
    return os.environ.get("MMLIGHTNING_VERBOSE", "").lower() in {"1", "true", "yes"}


def quiet_upstream() -> None:
    """Silence what a user cannot act on, the same way in every command and in the Python API: Lightning's tips,
    seed and device lines, warnings about choices mmlightning makes on purpose, and W&B's banner. ``--verbose`` (or
    ``MMLIGHTNING_VERBOSE=1``) leaves them all on."""
    if verbose():
        return
    os.environ.setdefault("WANDB_SILENT", "true")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in NOISE:
        warnings.filterwarnings("ignore", message=message)
