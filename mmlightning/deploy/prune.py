"""Magnitude pruning with a short re-fine-tune: the smallest weights of the Linear and convolution layers set to zero
(one threshold over all of them, PyTorch's global unstructured L1 pruning), then a few epochs on the run's own
training data with the zeros held, then made permanent.

    mmlightning prune --ckpt_path RUN/checkpoints/NAME.ckpt --sparsity 0.5 --epochs 1 --out pruned/

It is an ordinary ``fit`` of the run's own config (its Trainer settings, precision and logger included) with two
additions: ``InitFrom`` the checkpoint (every part), and the :class:`Pruning` callback, which prunes once the weights
are loaded, holds the zeros while the run trains and writes every checkpoint with plain, permanent weights (in the
manner of Lightning's ``ModelPruning``). ``pruned/`` holds that run's folder, so ``mmlightning export``, ``serve``
and ``validate`` take its checkpoint like any other. Frozen encoders are left whole unless ``--include_frozen``
(their weights would not be re-fine-tuned).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.nn.utils import prune

from mmlightning.errors import ConfigError
from mmlightning.trained import find_checkpoint, run_config

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


class Pruning(Callback):
    """Global unstructured L1 pruning of ``amount`` of the trainable Linear and convolution weights as training
    starts (after ``InitFrom`` loaded them), the zeros held while training, and the weights made permanent in every
    checkpoint and at the end."""

    def __init__(self, amount: float, include_frozen: bool = False) -> None:
        if not 0.0 < amount < 1.0:
            raise ConfigError(f"--sparsity must be between 0 and 1 (the share of weights set to zero), got {amount}")
        self.amount, self.include_frozen = amount, include_frozen
        self.pairs: list[tuple[nn.Module, str]] = []
        self.reached = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.pairs = targets(pl_module.model, self.include_frozen)  # type: ignore[arg-type]
        if not self.pairs:
            raise ConfigError(
                "nothing to prune: no Linear or convolution layer trains in this model (--include_frozen?)"
            )
        for module, name in self.pairs:  # global pruning flattens each weight with view(), which channels-last refuses
            weight = getattr(module, name)
            weight.data = weight.data.contiguous()
        prune.global_unstructured(self.pairs, pruning_method=prune.L1Unstructured, amount=self.amount)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.endswith("_orig")]:  # weight = weight_orig * weight_mask, as saved plainly
            base = key[: -len("_orig")]
            if base + "_mask" in state:
                state[base] = state.pop(key) * state.pop(base + "_mask")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.reached = sparsity(self.pairs)
        for module, name in self.pairs:
            prune.remove(module, name)  # permanent: plain weights with zeros, nothing extra to load


def prune_run(
    ckpt_path: str | Path, out: str | Path, amount: float, epochs: int = 1, include_frozen: bool = False
) -> dict[str, Any]:
    """Prune a trained run to ``amount`` sparsity and re-fine-tune it for ``epochs`` as an ordinary ``fit`` of its
    own config; returns the new checkpoint, the sparsity reached, the number of tensors pruned and the metrics."""
    from mmlightning.training import fit

    pruning = Pruning(amount, include_frozen)
    if epochs < 1:
        raise ConfigError(f"--epochs must be 1 or more (the zeros are made during a re-fine-tune), got {epochs}")
    checkpoint = find_checkpoint(ckpt_path)
    config = run_config(checkpoint)
    if not config.get("data"):
        raise ConfigError(f"no config.yaml beside the checkpoint's run ({checkpoint}): prune re-fine-tunes on its data")
    config = {k: v for k, v in config.items() if k not in ("ckpt_path", "results_path", "predictions_path")}
    config["data"] = {k: v for k, v in config["data"].items() if k not in ("test", "predict")}
    model = dict(config["model"])
    parts = ["encoders", "fusion", "heads"]
    start = {"class_path": "mmlightning.tuning.InitFrom", "init_args": {"checkpoint": str(checkpoint), "parts": parts}}
    model["tuning"] = [*(model.get("tuning") or []), start]
    trainer = {k: v for k, v in (config.get("trainer") or {}).items() if k not in ("max_steps", "min_epochs")}
    trainer.update(max_epochs=epochs, default_root_dir=str(Path(out)))
    if isinstance(trainer.get("logger"), dict):  # the run's W&B logger, writing beside the pruned run
        trainer["logger"] = {
            **trainer["logger"],
            # absolute: W&B's service process may run in another folder than this one
            "init_args": {**trainer["logger"].get("init_args", {}), "save_dir": str(Path(out).resolve())},
        }
    found = fit({**config, "model": model, "trainer": trainer}, callbacks=[pruning])
    metrics = {k: float(v) for k, v in found.items() if k.startswith("val/")}
    return {
        "checkpoint": found["checkpoint"],
        "sparsity": pruning.reached,
        "pruned_tensors": len(pruning.pairs),
        "metrics": metrics,
        "run_dir": found["run_dir"],
    }
