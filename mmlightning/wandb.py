"""Weights & Biases: the default logger (offline unless an account is set up) and media for tables."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def has_account() -> bool:
    """True when W&B can reach an account: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def default_logger_config(save_dir: str = ".") -> dict[str, Any]:
    """The CLI's default logger: W&B, offline unless an account is configured (then ``wandb sync`` is not needed)."""
    offline = os.environ.get("WANDB_MODE", "") in {"offline", "disabled", "dryrun"} or not has_account()
    # absolute: W&B's service process resolves a relative folder against its own working directory, so a second
    # run in one process (a notebook that changed folder) would land in the first run's folder
    init = {
        "project": os.environ.get("WANDB_PROJECT", "mmlightning"),
        "save_dir": str(Path(save_dir).resolve()),
        "offline": offline,
    }
    return {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": init}


def sample_rows(bundle: Any, batch: Any, outputs: dict, limit: int) -> tuple[list[str], list[list[Any]]]:
    """Table rows for the first ``limit`` samples: id, each input as media, each head's truth and prediction.
    ``bundle``: the model's :class:`~mmlightning.bundle.ProcessorBundle` (its columns say where each raw value is)."""
    root = Path(batch.root)
    decoded = {key: bundle.codecs[key].decode(out) for key, out in outputs.items()}
    truth = {
        key: bundle.target_column(key) for key in decoded if key in bundle.targets and bundle.columns[key] in batch.raw
    }
    columns = ["id"] + list(bundle.processors)
    for key in decoded:
        columns += [f"{key} (truth)", f"{key} (predicted)"] if key in truth else [f"{key} (predicted)"]
    rows = []
    for i, ident in enumerate(batch.ids[:limit]):
        raw = {column: values[i] for column, values in batch.raw.items()}
        row = [ident] + [
            _media(processor, bundle.value(key, raw), root) for key, processor in bundle.processors.items()
        ]
        for key, values in decoded.items():
            row += [raw[truth[key]], values[i]] if key in truth else [values[i]]
        rows.append(row)
    return columns, rows


def _media(processor: Any, value: Any, root: Path) -> Any:
    if value is None:
        return None
    try:
        shown = processor.preview(value, root)
    except (ValueError, OSError) as err:
        return f"<unreadable: {err}>"
    return _to_wandb(shown)


def _to_wandb(shown: Any) -> Any:
    import wandb

    if hasattr(shown, "save") and hasattr(shown, "size"):  # a PIL image
        return wandb.Image(shown)
    if isinstance(shown, tuple) and len(shown) == 2:  # (waveform, sample rate)
        return wandb.Audio(shown[0], sample_rate=shown[1])
    return shown if isinstance(shown, (str, int, float)) else str(shown)


def log_table(trainer: Any, key: str, columns: list[str], rows: list[list[Any]]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key=key, columns=columns, data=rows, step=trainer.global_step)
