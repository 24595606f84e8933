"""What the testing kit feeds a head: a stand-in fusion, text-like word ids, and a tiny fit that must lower the loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mmlightning.contracts import Batch, Fusion, Head
from mmlightning.features import Features


class ContractError(AssertionError):
    """A component broke its contract; the message says which rule (``mmlightning.testing.ContractError``)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def with_word_ids(features: Features) -> Features:
    """Text-like word ids: token i came from word i - 1, the first token (and padding) from none."""
    b, n = features.mask.shape
    word_ids = (torch.arange(n) - 1).expand(b, n).clone()  # (B, N)
    features.word_ids = word_ids.masked_fill(~features.mask, -1)
    return features


class PooledFusion(Fusion):
    """The kit's stand-in for a model's fusion: a linear map of the concatenated pooled vectors."""

    def __init__(self, dims: Mapping[str, int], dim: int) -> None:
        super().__init__(dims)
        self.dim, self.project = dim, torch.nn.Linear(sum(self.dims.values()), dim)

    def forward(self, features: Mapping[str, Features]) -> Features:
        present = torch.stack([features[k].present for k in self.dims], 1).any(1)
        return Features.from_pooled(self.project(torch.cat([features[k].pooled for k in self.dims], -1)), present)


def tiny_fit(head: Head, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> None:
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    head.train()
    first: float | None = None
    for _ in range(30):
        optimizer.zero_grad()
        loss: Any = head(fused, encoded, batch).loss
        first = float(loss.detach()) if first is None else first
        loss.backward()
        optimizer.step()
    _require(
        first is not None and float(loss.detach()) < first,
        f"{type(head).__name__}: 30 steps on one batch did not lower the loss ({first:.4f} -> {float(loss.detach()):.4f})",
    )
