"""Dual-stream (late) fusion: concatenate the pooled vectors and project them."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning_fusions.common import any_present, check_keys


class ConcatFusion(Fusion):
    """Concatenates each modality's pooled vector (zeros where missing) and projects to ``dim``.

    ``dim=None`` keeps the concatenation as it is (no projection, no parameters): a head then reads the encoders'
    own features, as a linear probe or few-shot classifier over frozen encoders does.
    """

    def __init__(self, dims: Mapping[str, int], dim: int | None = 256, dropout: float = 0.1) -> None:
        super().__init__(dims)
        width = sum(self.dims.values())
        self.dim = width if dim is None else dim
        self.project: nn.Module = (
            nn.Dropout(dropout) if dim is None else nn.Sequential(nn.Linear(width, dim), nn.GELU(), nn.Dropout(dropout))
        )

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        pooled = torch.cat([features[key].pooled for key in self.dims], -1)  # (B, sum D_k) sorted keys
        return Features.from_pooled(self.project(pooled), any_present(features))  # (B, 1, D)
