"""Late fusion of per-modality predictions: each modality gets its own tower, heads predict per modality and
combine the predictions by averaging or with learned weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmlightning import Features, Fusion
from mmlightning_fusions.common import any_present, check_keys

COMBINE = ("mean", "learned")


class LateFusion(Fusion):
    """One token per modality from its own MLP tower; heads predict from each and combine the predictions.

    The output has a span per modality and ``weights`` ``(B, M)``: uniform over the modalities a sample has
    (``combine="mean"``) or a learned softmax over them (``combine="learned"``). A head that predicts per span
    (``ClassificationHead``) averages its per-modality predictions with these weights; any other head sees
    ``pooled``, the same weighting of the modality tokens.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        dim: int = 256,
        combine: str = "mean",
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims)
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        self.dim, self.combine = dim, combine
        hidden = hidden or dim
        self.towers = nn.ModuleDict(
            {
                key: nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
                for key, width in self.dims.items()
            }
        )
        if combine == "learned":
            self.scores = nn.Parameter(torch.zeros(len(self.dims)))  # starts as the mean
        else:
            self.register_buffer("scores", torch.zeros(len(self.dims)), persistent=False)

    def forward(self, features: Mapping[str, Features]) -> Features:
        check_keys(self.dims, features)
        keys = list(self.dims)
        tokens = torch.stack([self.towers[k](features[k].pooled) for k in keys], 1)  # (B, M, D)
        present = torch.stack([features[k].present for k in keys], 1)  # (B, M)
        scores = self.scores.expand(present.shape).masked_fill(~present, -1e4)  # (B, M)
        weights = scores.softmax(-1) * present  # (B, M); a sample with no modality gets all zeros
        pooled = (weights[..., None] * tokens).sum(1)  # (B, D)
        fused = Features.from_tokens(tokens, present, any_present(features), pooled)
        fused.spans = {k: slice(i, i + 1) for i, k in enumerate(keys)}
        fused.weights = weights
        return fused
