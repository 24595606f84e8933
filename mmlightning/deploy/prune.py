"""Magnitude pruning with a short re-fine-tune: the smallest weights of the Linear and convolution layers set to zero
(one threshold over all of them, PyTorch's global unstructured L1 pruning), then a few epochs on the run's own
training data with the zeros held, then made permanent.

    mmlightning prune --ckpt_path RUN/checkpoints/NAME.ckpt --sparsity 0.5 --epochs 1 --out pruned/

``pruned/`` gets ``checkpoints/pruned.ckpt`` and the run's ``config.yaml``, so ``mmlightning export``, ``serve`` and
``validate`` take it like any checkpoint. Frozen encoders are left whole unless ``--include_frozen`` (their
weights would not be re-fine-tuned).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import prune

from mmlightning.errors import ConfigError
from mmlightning.trained import CONFIG_FILE, find_checkpoint, read_checkpoint, run_folder

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def targets(model: MultimodalModel, include_frozen: bool = False) -> list[tuple[nn.Module, str]]:
    """The weights to prune: every Linear / convolution weight of the parts that train (all, with include_frozen)."""
    parts: list[nn.Module] = [model.fusion, *model.heads.values()]
    parts += [enc for key, enc in model.encoders.items() if include_frozen or key not in model.frozen]
    return [(m, "weight") for part in parts for m in part.modules() if isinstance(m, PRUNABLE)]


def sparsity(pairs: Sequence[tuple[nn.Module, str]]) -> float:
    total = sum(getattr(m, name).numel() for m, name in pairs)
    zeros = sum(int((getattr(m, name) == 0).sum()) for m, name in pairs)
    return zeros / max(total, 1)


def prune_run(
    ckpt_path: str | Path, out: str | Path, amount: float, epochs: int = 1, include_frozen: bool = False
) -> dict[str, Any]:
    import lightning.pytorch as pl
    import yaml

    from mmlightning.data.datamodule import MultimodalDataModule

    if not 0.0 < amount < 1.0:
        raise ConfigError(f"--sparsity must be between 0 and 1 (the share of weights set to zero), got {amount}")
    from mmlightning.module import MultimodalModule

    model = MultimodalModule.load_from_checkpoint(find_checkpoint(ckpt_path), map_location="cpu", weights_only=True)
    config_path = run_folder(ckpt_path) / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(
            f"no config.yaml beside the checkpoint's run ({config_path}): prune re-fine-tunes on its data"
        )
    config = yaml.safe_load(config_path.read_text())
    pairs = targets(model.model, include_frozen)
    if not pairs:
        raise ConfigError("nothing to prune: no Linear or convolution layer trains in this model (--include_frozen?)")
    for module, name in pairs:  # global pruning flattens each weight with view(), which channels-last memory refuses
        weight = getattr(module, name)
        weight.data = weight.data.contiguous()
    prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=amount)
    data = {k: v for k, v in config["data"].items() if k not in ("test", "predict")}
    datamodule = MultimodalDataModule(**data)
    folder = Path(out)
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        default_root_dir=str(folder),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )
    if epochs > 0:
        trainer.fit(model, datamodule)  # the pruning masks keep the zeros at zero
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
    for module, name in pairs:
        prune.remove(module, name)  # permanent: plain weights with zeros, nothing extra to load
    reached = sparsity(pairs)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copy(config_path, folder / "config.yaml")
    target = folder / "checkpoints" / "pruned.ckpt"
    # the original checkpoint (its config, processors, plugin versions) with the pruned, re-fine-tuned weights
    state = read_checkpoint(ckpt_path)
    state["state_dict"] = model.state_dict()
    state.pop("optimizer_states", None)
    state.pop("lr_schedulers", None)
    torch.save(state, target)
    return {"checkpoint": str(target), "sparsity": reached, "pruned_tensors": len(pairs), "metrics": metrics}
