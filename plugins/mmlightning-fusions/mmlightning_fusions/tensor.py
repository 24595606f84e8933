"""The tensor family: tensor fusion (outer product with an appended 1) and its low-rank factorisation."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlightning import Features, Fusion
from mmlightning_fusions.common import any_present, check_keys, projections


def _with_one(x: Tensor) -> Tensor:
    return torch.cat([x, torch.ones_like(x[:, :1])], -1)  # (B, d + 1)


class TensorFusion(Fusion):
    """Tensor fusion (Zadeh et al. 2017): the outer product of every modality's [vector; 1], then a projection.

    Each pooled vector is first projected to ``factor_dim`` so the product, ``(factor_dim + 1) ** M``, stays small.
    A missing modality's vector is zero, so its factor is [0; 1]: only the other modalities' terms remain.
    """

    def __init__(self, dims: Mapping[str, int], dim: int = 256, factor_dim: int = 16, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, factor_dim)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear((factor_dim + 1) ** len(self.dims), dim), nn.GELU())

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        product = None
        for key in self.dims:
            factor = _with_one(self.project[key](features[key].pooled) * features[key].present[:, None])  # (B, f + 1)
            product = factor if product is None else (product[:, :, None] * factor[:, None, :]).flatten(1)  # (B, prod)
        return Features.from_pooled(self.out(product), any_present(features))  # (B, 1, D)


class LowRankTensorFusion(Fusion):
    """Low-rank multimodal fusion (Liu et al. 2018): tensor fusion with rank-``rank`` modality-specific factors."""

    def __init__(self, dims: Mapping[str, int], dim: int = 256, rank: int = 4, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.dim, self.rank = dim, rank
        self.factors = nn.ParameterDict(
            {k: nn.Parameter(torch.randn(rank, d + 1, dim) * (d + 1) ** -0.5) for k, d in self.dims.items()}
        )
        self.weights = nn.Parameter(torch.full((rank,), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        product = None
        for key in self.dims:
            x = _with_one(features[key].pooled * features[key].present[:, None])  # (B, d + 1)
            term = torch.einsum("bi,rio->rbo", x, self.factors[key])  # (R, B, D)
            product = term if product is None else product * term
        fused = torch.einsum("r,rbo->bo", self.weights, product) + self.bias  # (B, D)
        return Features.from_pooled(self.drop(fused), any_present(features))
