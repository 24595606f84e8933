"""What the heads share: the classifier layers and per-label metric names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def classifier(in_dim: int, out_dim: int, hidden: int | None, dropout: float) -> nn.Sequential:
    """Dropout, an optional GELU hidden layer, and a linear layer to ``out_dim``."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    width = in_dim
    if hidden:
        layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, out_dim))


def per_label(name: str, value: Tensor, labels: Sequence[Any]) -> dict[str, float]:
    """A scalar metric as is; a per-class vector as ``name/LABEL``."""
    if value.numel() == 1:
        return {name: float(value)}
    return {f"{name}/{label}": float(v) for label, v in zip(labels, value.tolist())}


def safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, with 0 where ``den`` is 0."""
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))


def logits_of(output: Any, name: str) -> Tensor:
    """An ensemble member's logits (``HeadOutput.logits``); a clear error when the member gave none."""
    if output.logits is None:
        raise ValueError(f"head '{name}': an ensemble member gave no logits to average")
    return output.logits
