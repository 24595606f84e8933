"""Dual-stream fusions that weigh the modalities: a gated multimodal unit and attention-weighted pooling."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlightning import Features, Fusion
from mmlightning_fusions.common import any_present, check_keys, projections


def _stack_pooled(project: nn.ModuleDict, features: Mapping[str, Features]) -> tuple[Tensor, Tensor]:
    """Each modality's projected pooled vector and presence, in sorted key order. ``-> (B, M, D), (B, M)``."""
    keys = sorted(project)
    pooled = torch.stack([project[k](features[k].pooled) for k in keys], 1)  # (B, M, D)
    present = torch.stack([features[k].present for k in keys], 1)  # (B, M)
    return pooled, present


def _weighted(values: Tensor, scores: Tensor, present: Tensor) -> Tensor:
    """Softmax the scores over the present modalities and sum. ``(B, M, D), (B, M[, D]), (B, M) -> (B, D)``."""
    mask = present if scores.ndim == 2 else present[..., None]
    weights = scores.masked_fill(~mask, -1e4).softmax(1) * mask  # (B, M[, D]); nothing from a missing modality
    weights = weights if weights.ndim == 3 else weights[..., None]
    return (weights * values).sum(1)  # (B, D)


class GatedFusion(Fusion):
    """Gated multimodal unit (Arevalo et al. 2017): learned per-dimension gates choose among the modalities."""

    def __init__(self, dims: Mapping[str, int], dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.gate = nn.Linear(sum(self.dims.values()), dim * len(self.dims))
        self.drop = nn.Dropout(dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        hidden, present = _stack_pooled(self.project, features)  # (B, M, D), (B, M)
        raw = torch.cat([features[k].pooled for k in self.dims], -1)  # (B, sum D_k), zeros where missing
        gates = self.gate(raw).view(raw.shape[0], len(self.dims), self.dim)  # (B, M, D)
        fused = _weighted(torch.tanh(hidden), gates, present)  # (B, D)
        return Features.from_pooled(self.drop(fused), any_present(features))


class AttentionPoolFusion(Fusion):
    """Attention-weighted pooling over modalities: a learned score per modality, softmax, weighted sum."""

    def __init__(self, dims: Mapping[str, int], dim: int = 256, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.drop = nn.Dropout(dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        pooled, present = _stack_pooled(self.project, features)  # (B, M, D), (B, M)
        fused = _weighted(pooled, self.score(pooled).squeeze(-1), present)  # (B, D)
        return Features.from_pooled(self.drop(fused), any_present(features))
