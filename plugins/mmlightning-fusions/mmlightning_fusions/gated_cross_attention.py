"""Flamingo-style gated cross-attention: tanh gates initialised at zero, so training starts from the query alone."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlightning.layers import FeedForward, MultiHeadAttention
from mmlightning_fusions.cross_attention import CrossAttentionFusion


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


class GatedCrossAttentionFusion(CrossAttentionFusion):
    """The query modality attends to the others through tanh gates that start closed (Flamingo)."""

    def __init__(
        self,
        dims: Mapping[str, int],
        dim: int = 256,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        query: str | None = None,
    ) -> None:
        super().__init__(dims, dim, layers, heads, dropout, query)
        self.norm = nn.Identity()  # with closed gates the query passes through unchanged

    def block(self, dim: int, heads: int, dropout: float) -> nn.Module:
        return GatedCrossAttentionBlock(dim, heads, dropout)
