"""Interactive fusion: one modality's tokens attend to the others' (X' = X + CrossAttention(Q=X, K=V=Y))."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mmlightning import Features, Fusion
from mmlightning.layers import FeedForward, MultiHeadAttention
from mmlightning_fusions.common import any_present, check_keys, concat_tokens, pool_spans, projections


class CrossAttentionBlock(nn.Module):
    """X' = X + CrossAttention(LN(X), Y); X'' = X' + FeedForward(LN(X'))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.ff = MultiHeadAttention(dim, heads, dropout), FeedForward(dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.norm_q(x), context, key_mask=context_mask))  # (B, N, D)
        return x + self.drop(self.ff(self.norm_ff(x)))  # (B, N, D)


class CrossAttentionFusion(Fusion):
    """The query modality's tokens attend to the other modalities' tokens (one-way cross-attention)."""

    keeps_tokens = True

    has_attention = True

    def __init__(
        self,
        dims: Mapping[str, int],
        dim: int = 256,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        query: str | None = None,
    ) -> None:
        super().__init__(dims)
        if len(self.dims) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two modalities")
        self.query = query or next(iter(self.dims))
        if self.query not in self.dims:
            raise ValueError(f"query '{self.query}' is not one of the encoders: {sorted(self.dims)}")
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.blocks = nn.ModuleList(self.block(dim, heads, dropout) for _ in range(layers))
        self.norm: nn.Module = nn.LayerNorm(dim)
        self._seen: tuple[Tensor, dict[str, slice]] | None = None  # (query mask, context spans) when recording

    def block(self, dim: int, heads: int, dropout: float) -> nn.Module:
        """One cross-attention layer (subclasses swap in another kind)."""
        return CrossAttentionBlock(dim, heads, dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        tokens = {k: self.project[k](features[k].tokens) for k in self.dims}  # (B, N_k, D)
        masks = {k: features[k].mask for k in self.dims}
        others = [k for k in self.dims if k != self.query]
        context, context_mask, spans = concat_tokens(
            {k: tokens[k] for k in others}, {k: masks[k] for k in others}
        )  # (B, M, D)
        x = tokens[self.query]  # (B, N_q, D)
        last = self._last_attention()
        self._seen = (masks[self.query], spans) if last is not None and last.record else None
        for block in self.blocks:
            x = block(x, context, context_mask)  # (B, N_q, D)
        tokens[self.query] = self.norm(x)
        out, mask, spans = concat_tokens(tokens, masks)  # (B, N, D)
        fused = Features.from_tokens(out, mask, any_present(features), pool_spans(out, mask, spans))
        fused.spans = spans
        return fused

    def attention(self) -> dict[str, Tensor]:
        """The last layer's attention from the query modality's real tokens, averaged over them."""
        last = self._last_attention()
        weights = None if last is None else last.weights  # (B, N_q, M); None outside recording_attention
        if weights is None or self._seen is None:
            return {}
        query_mask, spans = self._seen
        real = query_mask.to(weights.dtype)[..., None]  # (B, N_q, 1)
        mean = (weights * real).sum(1) / real.sum(1).clamp(min=1)  # (B, M)
        return {key: mean[:, span] for key, span in spans.items()}

    def _last_attention(self) -> MultiHeadAttention | None:
        attn = getattr(self.blocks[-1], "attn", None)
        return attn if isinstance(attn, MultiHeadAttention) else None
