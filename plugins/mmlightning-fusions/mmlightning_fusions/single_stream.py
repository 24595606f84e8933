"""Single-stream (early, modality-agnostic) fusion: one Transformer over all modalities' tokens."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning.layers import TransformerStack
from mmlightning_fusions.common import any_present, check_keys, concat_tokens, pool_spans, projections


class SingleStreamFusion(Fusion):
    """One Transformer over the concatenation of every modality's tokens, with modality-type embeddings."""

    keeps_tokens = True

    def __init__(
        self, dims: Mapping[str, int], dim: int = 256, layers: int = 2, heads: int = 4, dropout: float = 0.1
    ) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.types = nn.ParameterDict({key: nn.Parameter(torch.randn(dim) * 0.02) for key in self.dims})
        self.stack = TransformerStack(dim, layers, heads, dropout=dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        tokens = {k: self.project[k](features[k].tokens) + self.types[k] for k in self.dims}  # (B, N_k, D)
        x, mask, spans = concat_tokens(tokens, {k: features[k].mask for k in self.dims})  # (B, N, D), (B, N)
        x = self.stack(x, mask)  # (B, N, D)
        fused = Features.from_tokens(x, mask, any_present(features), pool_spans(x, mask, spans))
        fused.spans = spans
        return fused
