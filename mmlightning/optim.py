"""Optimizer parameter groups (no weight decay on norms and biases) and a warm-up + cosine schedule."""

from __future__ import annotations

import math

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def param_groups(model: nn.Module) -> list[dict]:
    """Two groups: weights that decay (the optimizer's ``weight_decay``), and biases/norms/embeddings' 1-d params that do not."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class WarmupCosine(LambdaLR):
    """Linear warm-up then cosine decay to ``min_ratio`` of the base rate, stepped every optimizer step.

    Args:
        warmup: warm-up steps (an int), or a fraction of the total steps (a float below 1).
        total_steps: defaults to the Trainer's estimate of the run's optimizer steps.
    """

    def __init__(
        self, optimizer: Optimizer, warmup: float = 0.05, total_steps: int | None = None, min_ratio: float = 0.0
    ) -> None:
        self.warmup, self.total_steps, self.min_ratio = warmup, total_steps, min_ratio
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        total = self.total_steps or 0
        warmup = int(self.warmup * total) if self.warmup < 1 else int(self.warmup)
        if step < warmup:
            return (step + 1) / warmup
        if total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / (total - warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
