"""Regression of one number per sample: MSE loss on standardised targets, MSE / RMSE / MAE / R² in the target's units."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning_heads.codecs import NumberCodec, number
from mmlightning_heads.common import classifier


class RegressionHead(Head):
    """Predicts a number. Targets are standardised with the training split's mean and spread, so the loss
    is well scaled whatever the units; predictions and metrics are in the original units.

    Args:
        loss: ``"mse"`` or ``"huber"`` (less swayed by outliers).
    """

    supports_combine = True

    def __init__(self, dim: int, hidden: int | None = None, dropout: float = 0.1, loss: str = "mse") -> None:
        super().__init__()
        if loss not in ("mse", "huber"):
            raise ValueError(f"loss must be 'mse' or 'huber', got {loss!r}")
        self.loss_name = loss
        self.regressor = classifier(dim, 1, hidden, dropout)

    def fit(self, values: Sequence[Any]) -> None:
        numbers = [number(v) for v in values]
        if len(numbers) < 2:
            raise ValueError(f"head '{self.name}' needs at least 2 training targets, got {len(numbers)}")
        mean = sum(numbers) / len(numbers)
        std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))
        self.set_fitted({"mean": mean, "std": std if std > 0 else 1.0})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        self.mean, self.std = float(state["mean"]), float(state["std"])

    def target(self) -> NumberCodec:
        return NumberCodec()

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        scaled = self.regressor(fused.pooled).squeeze(-1)  # (B,) in standard units
        target = batch.targets.get(self.name)  # (B,) original units, or None when predicting
        loss = None
        if target is not None:
            wanted = (target - self.mean) / self.std
            loss = F.mse_loss(scaled, wanted) if self.loss_name == "mse" else F.huber_loss(scaled, wanted)
        return HeadOutput(loss=loss, predictions=scaled * self.std + self.mean)

    def combine(self, outputs: Sequence[HeadOutput]) -> HeadOutput:
        """An ensemble: the mean of the members' predictions."""
        return HeadOutput(loss=None, predictions=torch.stack([out.predictions.float() for out in outputs]).mean(0))

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

        return {
            "mse": MeanSquaredError(),
            "rmse": MeanSquaredError(squared=False),
            "mae": MeanAbsoluteError(),
            "r2": R2Score(),
        }

    def example_targets(self, count: int) -> list[Any]:
        return [10.0 + 3.0 * i for i in range(count)]
