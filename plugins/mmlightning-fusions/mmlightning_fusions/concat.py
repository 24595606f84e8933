"""Dual-stream (late) fusion: concatenate the pooled vectors and project them."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning_fusions.common import any_present, check_keys


class ConcatFusion(Fusion):
    """Concatenates each modality's pooled vector (zeros where missing) and projects to ``dim``."""

    def __init__(self, dims: Mapping[str, int], dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = nn.Sequential(nn.Linear(sum(self.dims.values()), dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        pooled = torch.cat([features[key].pooled for key in self.dims], -1)  # (B, sum D_k) sorted keys
        return Features.from_pooled(self.project(pooled), any_present(features))  # (B, 1, D)
