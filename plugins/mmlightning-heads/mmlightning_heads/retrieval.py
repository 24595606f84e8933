"""Recall@K for cross-modal retrieval over a whole split, with several items per group (captions per image)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


class RetrievalRecall(Metric):
    """Recall@K in both directions over every pair seen this epoch.

    ``update(embeddings, groups)``: ``(B, 2, E)`` normalised embeddings (two modalities) and ``(B,)`` group ids.
    Within a group, rows whose embedding repeats (the same image listed once per caption) count once, so
    with 5 captions per image, image -> text ranks all captions for each distinct image and text -> image
    ranks the distinct images for each caption; a query scores a hit when a top-K item shares its group.
    ``compute()`` gives ``[a->b @ each K, b->a @ each K]``.
    """

    full_state_update = False
    embeddings: Any  # metric states: a list while updating, a tensor once gathered
    groups: Any

    def __init__(self, recall_at: Sequence[int] = (1, 5, 10), **kwargs) -> None:
        super().__init__(**kwargs)
        self.recall_at = tuple(recall_at)
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("groups", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: Tensor, groups: Tensor) -> None:
        self.embeddings.append(embeddings.detach().float())
        self.groups.append(groups.detach())

    def compute(self) -> Tensor:
        embeddings = torch.cat(self.embeddings) if isinstance(self.embeddings, list) else self.embeddings  # (N, 2, E)
        groups = torch.cat(self.groups) if isinstance(self.groups, list) else self.groups  # (N,)
        sides = [distinct(embeddings[:, i], groups) for i in range(2)]
        (a, a_groups), (b, b_groups) = sides
        return torch.cat(
            [recall(a, a_groups, b, b_groups, self.recall_at), recall(b, b_groups, a, a_groups, self.recall_at)]
        )


def distinct(embeddings: Tensor, groups: Tensor, tol: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Drop rows that repeat an earlier row of the same group. ``(N, E), (N,) -> (M, E), (M,)``."""
    keep = torch.ones(len(groups), dtype=torch.bool, device=groups.device)
    order = torch.argsort(groups, stable=True)
    sorted_groups = groups[order]
    starts = torch.ones_like(sorted_groups, dtype=torch.bool)
    starts[1:] = sorted_groups[1:] != sorted_groups[:-1]
    bounds = torch.nonzero(starts).flatten().tolist() + [len(groups)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = order[start:stop]
        if len(rows) < 2:
            continue
        close = torch.cdist(embeddings[rows], embeddings[rows]) < tol  # (n, n)
        earlier = torch.tril(close, diagonal=-1).any(1)  # equals a row before it
        keep[rows[earlier]] = False
    return embeddings[keep], groups[keep]


def recall(queries: Tensor, query_groups: Tensor, gallery: Tensor, gallery_groups: Tensor, ks: Sequence[int]) -> Tensor:
    """Share of queries with an item of their group in the top K of the gallery, for each K."""
    scores = queries @ gallery.T  # (Q, G)
    top = scores.topk(min(max(ks), gallery.shape[0]), dim=1).indices  # (Q, K)
    hits = gallery_groups[top] == query_groups[:, None]  # (Q, K)
    return torch.stack([hits[:, :k].any(1).float().mean() for k in ks])
