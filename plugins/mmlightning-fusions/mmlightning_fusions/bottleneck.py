"""Attention bottlenecks (Nagrani et al. 2021): modalities exchange information only through a few shared tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning.layers import TransformerLayer
from mmlightning_fusions.common import any_present, check_keys, concat_tokens, pool_spans, projections


class BottleneckFusion(Fusion):
    """Each layer runs every modality with the shared bottleneck tokens; the bottleneck is then averaged over
    the modalities a sample has. No token of one modality ever attends to another's directly."""

    keeps_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        dim: int = 256,
        bottlenecks: int = 4,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims)
        self.dim = dim
        self.project = projections(self.dims, dim)
        self.latents = nn.Parameter(torch.randn(bottlenecks, dim) * 0.02)  # (K, D)
        self.layers = nn.ModuleList(
            nn.ModuleDict({k: TransformerLayer(dim, heads, dropout=dropout) for k in self.dims}) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        batch, n = next(iter(features.values())).tokens.shape[0], self.latents.shape[0]
        tokens = {k: self.project[k](features[k].tokens) for k in self.dims}  # (B, N_k, D)
        masks = {k: features[k].mask for k in self.dims}
        present = torch.stack([features[k].present for k in self.dims], 1).to(self.latents.dtype)  # (B, M)
        shared = self.latents.expand(batch, n, -1)  # (B, K, D)
        latent_mask = torch.ones(batch, n, dtype=torch.bool, device=shared.device)
        layer: Any
        for layer in self.layers:
            views = []
            for key in self.dims:
                x = layer[key](
                    torch.cat([tokens[key], shared], 1), torch.cat([masks[key], latent_mask], 1)
                )  # (B, N_k + K, D)
                tokens[key], view = x[:, :-n], x[:, -n:]
                views.append(view)
            weights = present / present.sum(1, keepdim=True).clamp(min=1)  # (B, M): only modalities a sample has
            shared = torch.einsum("bm,mbkd->bkd", weights, torch.stack(views))  # (B, K, D)
        out, mask, spans = concat_tokens({k: self.norm(t) for k, t in tokens.items()}, masks)
        fused = Features.from_tokens(out, mask, any_present(features), pool_spans(out, mask, spans))
        fused.spans = spans
        return fused
