"""AUROC of a two-label classification head, from its ``(B, 2)`` logits (imported when metrics are made)."""

from __future__ import annotations

from torch import Tensor
from torchmetrics.classification import BinaryAUROC


class SecondLabelAUROC(BinaryAUROC):
    """AUROC of the second label's probability, from ``(B, 2)`` logits (or ``(B,)`` scores)."""

    def update(self, preds: Tensor, target: Tensor) -> None:
        scores = preds.float().softmax(-1)[:, 1] if preds.ndim == 2 else preds.float()
        super().update(scores, target)
