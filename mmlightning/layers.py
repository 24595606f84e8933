"""Transformer building blocks for plugins: attention through ``scaled_dot_product_attention``, padding- and
missing-aware (a query with no real key gets zeros, never NaN)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None, cross-attention otherwise."""

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.0, context_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}; choose heads that divide dim")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.record = False  # see recording_attention
        self.weights: Tensor | None = None

    def forward(
        self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        context = x if context is None else context
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)  # (B, h, N, d/h)
        k, v = (
            self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        )  # (B, h, M, d/h) each
        mask, valid = _attention_mask(key_mask, n, causal, x.device)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal and mask is None)
        if self.record:
            self.weights = _weights(q, k, mask, causal).mean(1).detach()  # (B, N, M) averaged over heads
        y = y.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        if valid is not None:
            y = y * valid[:, None, None].to(y.dtype)  # queries with no real key get nothing
        return self.out(y)


@contextmanager
def recording_attention(module: nn.Module) -> Iterator[None]:
    """Within it, each :class:`MultiHeadAttention` in ``module`` keeps its last forward's attention weights as
    ``.weights`` ``(B, N, M)`` (the mean over heads); fusions read them in ``Fusion.attention``. Outside it nothing
    is kept, and training never pays for it."""
    layers = [m for m in module.modules() if isinstance(m, MultiHeadAttention)]
    for layer in layers:
        layer.record = True
    try:
        yield
    finally:
        for layer in layers:
            layer.record, layer.weights = False, None


def _weights(q: Tensor, k: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
    """The softmax attention ``scaled_dot_product_attention`` applies. ``-> (B, h, N, M)``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, N, M)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif causal:
        scores = scores.masked_fill(~torch.ones(scores.shape[-2:], dtype=torch.bool).tril().to(q.device), float("-inf"))
    return scores.softmax(-1)


def _attention_mask(
    key_mask: Tensor | None, n: int, causal: bool, device: torch.device
) -> tuple[Tensor | None, Tensor | None]:
    """A boolean SDPA mask ``(B, 1, N|1, M)`` that never masks a whole row, and which samples had a real key."""
    if key_mask is None:
        return None, None
    valid = key_mask.any(-1)  # (B,)
    keys = key_mask | ~valid[:, None]  # (B, M) a row with no real key attends anywhere; zeroed after
    mask = keys[:, None, None, :]  # (B, 1, 1, M)
    if causal:
        m = key_mask.shape[-1]
        mask = mask & torch.ones(n, m, dtype=torch.bool, device=device).tril()[None, None]  # (B, 1, N, M)
        mask = mask | ~mask.any(-1, keepdim=True)
    return mask, valid


class FeedForward(nn.Sequential):
    """Position-wise feed-forward: Linear, GELU, dropout, Linear."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class TransformerLayer(nn.Module):
    """Pre-norm Transformer layer: self-attention, optional cross-attention, feed-forward, each residual."""

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        mult: int = 4,
        dropout: float = 0.0,
        cross: bool = False,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), MultiHeadAttention(dim, heads, dropout)
        self.cross = MultiHeadAttention(dim, heads, dropout, context_dim) if cross else None
        self.norm_cross = nn.LayerNorm(dim) if cross else None
        self.norm2, self.ff = nn.LayerNorm(dim), FeedForward(dim, mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_mask=mask, causal=causal))  # (B, N, D)
        if self.cross is not None and self.norm_cross is not None and context is not None:
            x = x + self.drop(self.cross(self.norm_cross(x), context, key_mask=context_mask))  # (B, N, D)
        return x + self.drop(self.ff(self.norm2(x)))  # (B, N, D)


class TransformerStack(nn.Module):
    """A stack of :class:`TransformerLayer` with a final layer norm."""

    def __init__(
        self,
        dim: int,
        layers: int = 2,
        heads: int = 4,
        mult: int = 4,
        dropout: float = 0.0,
        cross: bool = False,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, mult, dropout, cross, context_dim) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask, context, context_mask, causal)  # (B, N, D)
        return self.norm(x)


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """The fixed sine/cosine position table of Vaswani et al. ``-> (length, dim)``."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (D/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table
