"""Helpers the fusions share: projecting each modality and concatenating token sequences."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmlightning import Features
from mmlightning.features import masked_mean


def projections(dims: Mapping[str, int], dim: int) -> nn.ModuleDict:
    """A linear map per modality to the shared width (identity where it already matches)."""
    return nn.ModuleDict(
        {key: nn.Linear(width, dim) if width != dim else nn.Identity() for key, width in sorted(dims.items())}
    )


def concat_tokens(tokens: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, slice]]:
    """Concatenate sequences in sorted key order. ``-> (B, sum N, D), (B, sum N), spans``."""
    spans, start = {}, 0
    for key in sorted(tokens):
        spans[key] = slice(start, start + tokens[key].shape[1])
        start = spans[key].stop
    keys = sorted(tokens)
    return torch.cat([tokens[k] for k in keys], 1), torch.cat([masks[k] for k in keys], 1), spans


def pool_spans(tokens: Tensor, mask: Tensor, spans: Mapping[str, slice]) -> Tensor:
    """Average over the present modalities of each one's mean token, so a long sequence does not outweigh a short one."""
    means = torch.stack([masked_mean(tokens[:, s], mask[:, s]) for s in spans.values()], 1)  # (B, M, D)
    present = torch.stack([mask[:, s].any(1) for s in spans.values()], 1)  # (B, M)
    return masked_mean(means, present)  # (B, D)


def any_present(features: Mapping[str, Features]) -> Tensor:
    return torch.stack([f.present for f in features.values()], 1).any(1)  # (B,)


def check_keys(expected: Mapping[str, int], features: Mapping[str, Features]) -> None:
    if set(expected) != set(features):
        raise ValueError(f"this fusion was built for modalities {sorted(expected)}, got {sorted(features)}")
