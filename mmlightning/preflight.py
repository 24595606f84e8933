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
    _check_strategy(config.get("trainer") or {})
    data, split = config.get("data") or {}, NEEDS[command]
    if not data.get(split):
        raise ConfigError(
            f"`mmlightning {command}` needs a {split} manifest: --data.{split}=PATH (JSONL, CSV or Parquet), or data.{split} in the config"
        )
    for name in ("train", "val", "test", "predict"):
        given = data.get(name)
        for path in [given] if isinstance(given, str) else list((given or {}).values()):
            if str(path).startswith("shards://"):
                from mmlightning.data.shards import check_folder

                check_folder(path)  # whole, or a message saying how to write it again
            elif not Path(path).is_file():
                raise MissingFileError(
                    f"--data.{name}: manifest not found: {path} (paths are relative to the folder you run from)"
                )
    if command != "fit" and not config.get("ckpt_path"):
        raise ConfigError(
            f"`mmlightning {command}` uses a trained model: pass --ckpt_path RUN/checkpoints/last.ckpt with --config RUN/config.yaml "
            "(the config `mmlightning fit` saved in the run's folder)"
        )


def _check_strategy(trainer: Any) -> None:
    """FSDP without a GPU: Lightning refuses it with a traceback once the Trainer is being built; say it first."""
    strategy, accelerator = str(trainer.get("strategy") or ""), str(trainer.get("accelerator") or "auto")
    if not strategy.startswith("fsdp"):
        return
    import torch

    if accelerator == "cpu" or (accelerator in ("auto", "gpu", "cuda") and not torch.cuda.is_available()):
        raise ConfigError(
            f"--trainer.strategy={strategy} needs a GPU (Lightning's FSDP runs on CUDA only), and this run has "
            f"{'--trainer.accelerator=cpu' if accelerator == 'cpu' else 'none'}; on CPUs use --trainer.strategy=ddp "
            "(see docs/scaling.md)"
        )


ARCHITECTURE = ("encoders", "fusion", "heads", "tuning")  # what makes a checkpoint's weights fit a model


def refuse_another_model(parser: Any, config: Any, subcommand: str, saved: dict[str, Any]) -> None:
    """A checkpoint trained with another model than ``--config`` gives is refused, with the differences named
    (Lightning would otherwise put the checkpoint's settings in place of the config's without a word), unless the
    command line gives no model or ``--checkpoint_model=true`` asks for the checkpoint's."""
    hparams = {k: v for k, v in (saved.get("hyper_parameters") or {}).items() if k != "_instantiator"}
    current = config[subcommand].get("model")
    if not hparams or "_class_path" in hparams or config[subcommand].get("checkpoint_model") or not current:
        return
    if not current.get("encoders"):  # no model given: the checkpoint's is the one to use
        return
    merged = parser.parse_object({subcommand: {"model": hparams}}, config)[subcommand]["model"]
    differences: list[str] = []
    for key in ARCHITECTURE:
        _differences(f"model.{key}", _plain(current.get(key)), _plain(merged.get(key)), differences)
    if differences:
        shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more" if len(differences) > 8 else "")
        raise ConfigError(
            f"--ckpt_path {config[subcommand].get('ckpt_path')} holds another model than the config gives ({shown}). "
            "Give the run's own config (--config RUN/config.yaml), or --checkpoint_model=true to use the "
            "checkpoint's model settings in place of the config's"
        )


def _plain(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value


def _differences(where: str, given: Any, saved: Any, found: list[str]) -> None:
    if isinstance(given, dict) and isinstance(saved, dict):
        for key in sorted(set(given) | set(saved), key=str):
            _differences(f"{where}.{key}", given.get(key), saved.get(key), found)
    elif isinstance(given, list) and isinstance(saved, list) and len(given) == len(saved):
        for i, (a, b) in enumerate(zip(given, saved)):
            _differences(f"{where}[{i}]", a, b, found)
    elif given != saved:
        found.append(f"{where}: the config says {given!r}, the checkpoint {saved!r}")
