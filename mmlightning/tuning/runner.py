"""Running a model's fine-tuning strategies: applying them, the optimizer's groups, their losses, their report."""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor, nn

from mmlightning.tuning.base import Tuning, TuningError, top_part, top_parts
from mmlightning.tuning.freeze import Freeze

log = logging.getLogger(__name__)


def strategies(model: Any) -> list[Tuning]:
    return list(getattr(model, "tuning", []))


def apply_all(model: Any) -> None:
    """Apply every strategy, in order (after fitting; again after a checkpoint's learnt state is restored)."""
    for strategy in strategies(model):
        strategy.adapt(model)


def frozen_encoders(model: Any) -> list[str]:
    """Encoders frozen whole by ``Freeze`` and touched by no other strategy: their features may be cached."""
    touched = {part for s in strategies(model) if not isinstance(s, Freeze) for part in s.touches(model)}
    keys = {k for s in strategies(model) if isinstance(s, Freeze) for k in s.whole_encoders(model)}
    return sorted(k for k in keys if f"encoders.{k}" not in touched)


def eval_modules(model: Any) -> list[nn.Module]:
    return [m for s in strategies(model) for m in s.eval_modules(model)]


def param_groups(model: Any) -> list[dict[str, Any]]:
    """The optimizer's groups: by weight decay (none on biases, norms and other 1-d parameters) and by the
    learning-rate factor the strategies set (``lr_scale``, applied by :func:`scale_rates`). Frozen parameters
    are left out, except those a strategy will unfreeze later."""
    scales: dict[str, float] = {}
    later: set[str] = set()
    for strategy in strategies(model):
        for name, factor in strategy.lr_scales(model).items():
            scales[name] = scales.get(name, 1.0) * factor
        later.update(strategy.trains_later(model))
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad or name in later:
            groups.setdefault((param.ndim >= 2, scales.get(name, 1.0)), []).append(param)
    out = []
    for (decays, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        group: dict[str, Any] = {"params": params, "lr_scale": scale}
        if not decays:
            group["weight_decay"] = 0.0
        out.append(group)
    return out or [{"params": [], "lr_scale": 1.0}]


def scale_rates(optimizer: Any) -> None:
    """Multiply each group's rate by its ``lr_scale`` (once, as the optimizer is built)."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        if "initial_lr" in group:
            group["initial_lr"] = group["lr"]


def extra_losses(model: Any, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
    losses: dict[str, Tensor] = {}
    for index, strategy in enumerate(strategies(model)):
        for name, loss in strategy.losses(model, batch, outputs, total).items():
            losses[f"{strategy.kind.lower()}{index if _twice(model, strategy) else ''}/{name}"] = loss
    return losses


def _twice(model: Any, strategy: Tuning) -> bool:
    return sum(type(s) is type(strategy) for s in strategies(model)) > 1


def merge_all(model: Any) -> list[str]:
    """Fold every strategy's additions into plain weights (for export); returns the strategies that had any."""
    done = []
    for strategy in strategies(model):
        if type(strategy).merge is not Tuning.merge:
            strategy.merge(model)
            done.append(strategy.kind)
    return done


def report(model: Any, optimizer: Any | None) -> tuple[list[list[Any]], list[list[Any]]]:
    """Rows of (part, parameters, trainable) and of (group, learning rate, weight decay, parameters)."""
    parts = []
    named = dict(model.named_parameters())
    for part in [*top_parts(model), "tuning"]:
        params = [p for n, p in named.items() if (top_part(n) == part if part != "tuning" else n.startswith("tuning."))]
        if params:
            total = sum(p.numel() for p in params)
            parts.append([part, total, sum(p.numel() for p in params if p.requires_grad)])
    groups = []
    for index, group in enumerate(optimizer.param_groups if optimizer is not None else []):
        count = sum(p.numel() for p in group["params"])
        groups.append([index, float(group["lr"]), float(group.get("weight_decay", 0.0)), count])
    return parts, groups


def check_strategies(values: Any) -> list[Tuning]:
    out = list(values or [])
    for value in out:
        if not isinstance(value, Tuning):
            raise TuningError(f"model.tuning takes fine-tuning strategies (mmlightning.tuning.Tuning), got {value!r}")
    return out
