"""Lightning's Trainer, with one more precision: ``auto``, the fastest one this machine computes natively
(:func:`mmlightning.machine.choose_precision`)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from lightning.fabric.plugins.precision.precision import _PRECISION_INPUT
from lightning.pytorch import Trainer as LightningTrainer

from mmlightning.machine import AUTO, choose_precision, machine, on_gpu

log = logging.getLogger(__name__)


class Trainer(LightningTrainer):
    """``precision="auto"``: bf16 mixed precision where the CPU or GPU computes bf16 natively, fp16 mixed on a GPU
    that only has fast fp16, fp32 otherwise. The command line resolves it before the Trainer is built (the choice
    and its reason are logged and saved in the run's config); built from Python, the Trainer resolves it itself.
    Checkpoints are written to a temporary name and renamed (`mmlightning.checkpoint_io`) unless
    ``plugins`` brings its own ``CheckpointIO``. Every other argument is Lightning's."""

    def __init__(self, *, precision: _PRECISION_INPUT | Literal["auto"] | None = None, **kwargs: Any) -> None:
        from lightning.fabric.plugins import CheckpointIO

        from mmlightning.checkpoint_io import SafeCheckpointIO

        chosen: Any = precision
        if precision == AUTO:
            chosen, reason = choose_precision(kwargs.get("accelerator", "auto"))
            log.info("precision auto: %s (%s)", chosen, reason)
        given = kwargs.get("plugins")
        plugins = list(given) if isinstance(given, (list, tuple)) else [given] if given is not None else []
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            kwargs["plugins"] = [*plugins, SafeCheckpointIO()]
        super().__init__(precision=chosen, **kwargs)


def resolve_precision(trainer: Any, config: Any) -> None:
    """``precision: auto`` becomes the precision this machine computes fastest, logged with its reason; the run's
    config keeps the choice (``trainer.precision``) and the machine it was made on (``machine``)."""
    found = machine()
    config["machine"] = {"line": found.line().replace(": ", " - ")}  # a plain YAML scalar in the saved config
    if trainer.get("precision") == AUTO:
        trainer["precision"], reason = choose_precision(trainer.get("accelerator") or "auto", found)
        log.info("precision auto: %s, because %s (%s)", trainer["precision"], reason, found.line())
        config["machine"]["precision"] = f"auto gave {trainer['precision']}, because {reason}".replace(": ", " - ")
    elif str(trainer.get("precision")).startswith("bf16") and not on_gpu(trainer.get("accelerator")) and not found.bf16:
        log.warning(
            "precision %s on a CPU without bf16 instructions (%s) is emulated, and several times slower than fp32; "
            "--trainer.precision=auto picks the fastest one this machine has",
            trainer["precision"],
            found.line(),
        )
