"""Running a model's fine-tuning strategies over it: applying them, what they keep frozen, their extra losses,
merging what they added into plain weights. The model calls these; the optimizer's side is in
:mod:`mmlightning.tuning.runner`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from mmlightning.strategy import Tuning, TuningError

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


def strategies(model: MultimodalModel) -> list[Tuning]:
    return list(getattr(model, "tuning", []))


def apply_all(model: MultimodalModel) -> None:
    """Apply every strategy, in order (after fitting; again after a checkpoint's learnt state is restored)."""
    for strategy in strategies(model):
        strategy.adapt(model)


def frozen_encoders(model: MultimodalModel) -> list[str]:
    """Encoders frozen whole (``Freeze``) and touched by no other strategy: their features may be cached."""
    touched = {part for s in strategies(model) if not s.keeps_weights for part in s.touches(model)}
    keys = {k for s in strategies(model) for k in s.frozen_whole(model)}
    return sorted(k for k in keys if f"encoders.{k}" not in touched)


def frozen_stems(model: MultimodalModel) -> list[str]:
    """Encoders not frozen whole whose stem (``Encoder.stem``) is frozen and touched by no other strategy: the stem's
    features may be cached while the layers over it train."""
    touched = {part for s in strategies(model) if not s.keeps_weights for part in s.touches(model)}
    keys = []
    for key, encoder in model.encoders.items():
        stem = encoder.stem()
        params = [] if stem is None else list(stem.parameters())
        if key not in model.frozen and f"encoders.{key}" not in touched and params:
            if not any(p.requires_grad for p in params):
                keys.append(key)
    return keys


def eval_modules(model: MultimodalModel) -> list[nn.Module]:
    return [m for s in strategies(model) for m in s.eval_modules(model)]


def extra_losses(model: MultimodalModel, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
    losses: dict[str, Tensor] = {}
    for index, strategy in enumerate(strategies(model)):
        for name, loss in strategy.losses(model, batch, outputs, total).items():
            losses[f"{strategy.kind.lower()}{index if _twice(model, strategy) else ''}/{name}"] = loss
    return losses


def _twice(model: MultimodalModel, strategy: Tuning) -> bool:
    return sum(type(s) is type(strategy) for s in strategies(model)) > 1


def merge_all(model: MultimodalModel) -> list[str]:
    """Fold every strategy's additions into plain weights (for export); returns the strategies that had any."""
    done = []
    for strategy in strategies(model):
        if strategy.merges:
            strategy.merge(model)
            done.append(strategy.kind)
    return done


def check_strategies(values: Any) -> list[Tuning]:
    out = list(values or [])
    for value in out:
        if not isinstance(value, Tuning):
            raise TuningError(f"model.tuning takes fine-tuning strategies (mmlightning.tuning.Tuning), got {value!r}")
    return out
