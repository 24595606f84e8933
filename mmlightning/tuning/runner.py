"""The optimizer's side of the fine-tuning strategies: parameter groups, learning-rate factors, the report.
Applying them to the model is :mod:`mmlightning.parts`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from torch import nn

from mmlightning.parts import (  # noqa: F401 - where they were first imported from
    apply_all,
    check_strategies,
    eval_modules,
    extra_losses,
    frozen_encoders,
    merge_all,
    strategies,
)
from mmlightning.strategy import top_part, top_parts

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel

log = logging.getLogger(__name__)


def param_groups(model: MultimodalModel) -> list[dict[str, Any]]:
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


def report(model: MultimodalModel, optimizer: Any | None) -> tuple[list[list[Any]], list[list[Any]]]:
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
