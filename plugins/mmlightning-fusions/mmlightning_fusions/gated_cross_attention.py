"""Flamingo-style gated cross-attention: tanh gates initialised at zero, so training starts from the query alone."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlightning import Features, Fusion
from mmlightning.layers import FeedForward, MultiHeadAttention
from mmlightning_fusions.common import any_present, check_keys, concat_tokens, pool_spans, projections


class GatedCrossAttentionBlock(nn.Module):
    """X' = X + tanh(a) * CrossAttention(LN(X), Y); X'' = X' + tanh(b) * FeedForward(LN(X')); a = b = 0 at first."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.ff = MultiHeadAttention(dim, heads, dropout), FeedForward(dim, dropout=dropout)
        self.gate_attn, self.gate_ff = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        x = x + torch.tanh(self.gate_attn) * self.attn(self.norm_q(x), context, key_mask=context_mask)  # (B, N, D)
        return x + torch.tanh(self.gate_ff) * self.ff(self.norm_ff(x))  # (B, N, D)


class GatedCrossAttentionFusion(Fusion):
    """The query modality attends to the others through tanh gates that start closed (Flamingo)."""

    def __init__(self, dims: Mapping[str, int], dim: int = 256, layers: int = 1, heads: int = 4, dropout: float = 0.1, query: str | None = None) -> None:
        super().__init__(dims)
        if len(self.dims) < 2:
            raise ValueError("GatedCrossAttentionFusion needs at least two modalities")
        self.query = query or next(iter(self.dims))
        if self.query not in self.dims:
            raise ValueError(f"query '{self.query}' is not one of the encoders: {sorted(self.dims)}")
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.blocks = nn.ModuleList(GatedCrossAttentionBlock(dim, heads, dropout) for _ in range(layers))

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        tokens = {k: self.project[k](features[k].tokens) for k in self.dims}  # (B, N_k, D)
        masks = {k: features[k].mask for k in self.dims}
        others = [k for k in self.dims if k != self.query]
        context, context_mask, _ = concat_tokens({k: tokens[k] for k in others}, {k: masks[k] for k in others})  # (B, M, D)
        for block in self.blocks:
            tokens[self.query] = block(tokens[self.query], context, context_mask)  # (B, N_q, D)
        out, mask, spans = concat_tokens(tokens, masks)
        fused = Features.from_tokens(out, mask, any_present(features), pool_spans(out, mask, spans))
        fused.spans = spans
        return fused
