"""Checks a command's config passes before any work starts: what would otherwise fail after the Trainer and W&B
started (a missing manifest, no checkpoint to evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmlightning.errors import ConfigError, MissingFileError

NEEDS = {"fit": "train", "validate": "val", "test": "test", "predict": "predict"}


def check_before_work(command: str | None, config: Any) -> None:
    """What would otherwise fail after the trainer and W&B started: a missing manifest, no checkpoint to evaluate."""
    if command not in NEEDS:
        return
    data, split = config.get("data") or {}, NEEDS[command]
    if not data.get(split):
        raise ConfigError(
            f"`mmlightning {command}` needs a {split} manifest: --data.{split}=PATH (JSONL, CSV or Parquet), or data.{split} in the config"
        )
    for name in ("train", "val", "test", "predict"):
        given = data.get(name)
        for path in [given] if isinstance(given, str) else list((given or {}).values()):
            if not Path(path).is_file():
                raise MissingFileError(
                    f"--data.{name}: manifest not found: {path} (paths are relative to the folder you run from)"
                )
    if command != "fit" and not config.get("ckpt_path"):
        raise ConfigError(
            f"`mmlightning {command}` uses a trained model: pass --ckpt_path RUN/checkpoints/last.ckpt with --config RUN/config.yaml "
            "(the config `mmlightning fit` saved in the run's folder)"
        )
