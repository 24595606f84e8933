"""Interactive fusions where every modality attends: bidirectional co-attention and a cross-modal encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning.layers import TransformerStack
from mmlightning_fusions.common import any_present, check_keys, concat_tokens, pool_spans, projections
from mmlightning_fusions.cross_attention import CrossAttentionBlock


def _fused(tokens: dict, masks: dict, features: Mapping[str, Features]) -> Features:
    out, mask, spans = concat_tokens(tokens, masks)  # (B, N, D), (B, N)
    fused = Features.from_tokens(out, mask, any_present(features), pool_spans(out, mask, spans))
    fused.spans = spans
    return fused


class CoAttentionFusion(Fusion):
    """Bidirectional co-attention: each modality's tokens attend to all the others' (ViLBERT-style co-layers)."""

    keeps_tokens = True

    def __init__(
        self, dims: Mapping[str, int], dim: int = 256, layers: int = 1, heads: int = 4, dropout: float = 0.1
    ) -> None:
        super().__init__(dims)
        if len(self.dims) < 2:
            raise ValueError("CoAttentionFusion needs at least two modalities")
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({k: CrossAttentionBlock(dim, heads, dropout) for k in self.dims}) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        tokens = {k: self.project[k](features[k].tokens) for k in self.dims}  # (B, N_k, D)
        masks = {k: features[k].mask for k in self.dims}
        layer: Any
        for layer in self.blocks:  # every modality updates from the others' tokens of the previous layer
            updated = {}
            for key in self.dims:
                others = [k for k in self.dims if k != key]
                context, context_mask, _ = concat_tokens(
                    {k: tokens[k] for k in others}, {k: masks[k] for k in others}
                )  # (B, M, D)
                updated[key] = layer[key](tokens[key], context, context_mask)  # (B, N_k, D)
            tokens = updated
        return _fused({k: self.norm(t) for k, t in tokens.items()}, masks, features)


class CrossModalEncoderFusion(Fusion):
    """A cross-modal encoder: per-modality Transformer layers, then joint layers over the concatenation."""

    keeps_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        dim: int = 256,
        modality_layers: int = 1,
        joint_layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.own = nn.ModuleDict({k: TransformerStack(dim, modality_layers, heads, dropout=dropout) for k in self.dims})
        self.types = nn.ParameterDict({k: nn.Parameter(torch.randn(dim) * 0.02) for k in self.dims})
        self.joint = TransformerStack(dim, joint_layers, heads, dropout=dropout)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        masks = {k: features[k].mask for k in self.dims}
        tokens = {
            k: self.own[k](self.project[k](features[k].tokens), masks[k]) + self.types[k] for k in self.dims
        }  # (B, N_k, D)
        x, mask, spans = concat_tokens(tokens, masks)  # (B, N, D)
        x = self.joint(x, mask)  # (B, N, D)
        fused = Features.from_tokens(x, mask, any_present(features), pool_spans(x, mask, spans))
        fused.spans = spans
        return fused
