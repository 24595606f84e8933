"""Contrastive alignment of two modalities (CLIP / ALIGN, or SigLIP's sigmoid loss) with retrieval recall."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning_heads.codecs import GroupCodec, group_id
from mmlightning_heads.retrieval import RetrievalRecall

LOSSES = ("infonce", "sigmoid")


class ContrastiveHead(Head):
    """Pulls two modalities' embeddings of the same sample together and pushes the rest of the batch away.

    Reads the encoders' own pooled features (``encoded``), not the fused ones: a dual encoder, as in CLIP.
    Each modality gets a linear projection to ``embed_dim``; embeddings are L2-normalised.

    Args:
        modalities: the two encoder keys to align (default: the encoders, if there are exactly two).
        loss: ``"infonce"`` (symmetric cross-entropy, CLIP) or ``"sigmoid"`` (pairwise, SigLIP).
        temperature: initial temperature; learnt unless ``learn_temperature=False``.
        groups: read a target column naming the item each row belongs to (an image's id, when an image has
            several captions): rows of one group are positives for each other, and retrieval counts a hit on
            any of them. Without it every row is its own group. The column is the head's key, or
            ``--data.columns.KEY=COLUMN``.
        recall_at: the K of the Recall@K metrics, in both directions.

    In a distributed run the negatives come from the global batch: embeddings are gathered with their gradient.
    """

    def __init__(
        self,
        dim: int,
        modalities: Sequence[str] | None = None,
        embed_dim: int = 128,
        loss: str = "infonce",
        temperature: float = 0.07,
        learn_temperature: bool = True,
        groups: bool = False,
        recall_at: Sequence[int] = (1, 5, 10),
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.modalities = list(modalities) if modalities else None
        self.embed_dim, self.loss_name, self.recall_at = embed_dim, loss, tuple(recall_at)
        self.uses_target = groups
        start = math.log(1 / temperature) if loss == "infonce" else math.log(10.0)  # SigLIP starts at t' = log 10
        self.logit_scale = nn.Parameter(torch.tensor(start), requires_grad=learn_temperature)
        self.logit_bias = nn.Parameter(
            torch.tensor(-10.0 if loss == "sigmoid" else 0.0), requires_grad=loss == "sigmoid"
        )
        self.project: Any = None  # built in set_fitted

    def fit(self, values: Sequence[Any]) -> None:
        self.set_fitted({})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        keys = self.modalities or sorted(self.encoder_dims)
        unknown = [k for k in keys if k not in self.encoder_dims]
        if len(keys) != 2 or unknown:
            raise ValueError(
                f"head '{self.name}' aligns two encoders; got modalities={keys} with encoders {sorted(self.encoder_dims)} (set modalities=[A, B])"
            )
        self.keys = sorted(keys)
        self.project = nn.ModuleDict({k: nn.Linear(self.encoder_dims[k], self.embed_dim) for k in self.keys})

    def target(self) -> GroupCodec:
        return GroupCodec(getattr(self, "keys", None))

    def reads(self) -> list[str]:
        return list(self.modalities or [])

    def embeds(self) -> list[str]:
        return list(getattr(self, "keys", []))

    def embeddings(self, encoded: Mapping[str, Features]) -> dict[str, Tensor]:
        """Each present modality's normalised embedding ``(B, E)`` (zero-shot classification reads them)."""
        return {k: F.normalize(self.project[k](encoded[k].pooled), dim=-1) for k in self.keys if k in encoded}

    def similarity_scale(self) -> float:
        return float(self.logit_scale.detach().clamp(max=math.log(100.0)).exp())

    def embed(self, encoded: Mapping[str, Features]) -> Tensor:
        """Both modalities' normalised embeddings. ``-> (B, 2, E)`` in sorted key order."""
        return torch.stack([F.normalize(self.project[k](encoded[k].pooled), dim=-1) for k in self.keys], 1)

    def groups(self, batch: Batch) -> Tensor:
        """Each row's group id: the target column, or one group per row (hashed ids, unique across batches)."""
        if self.uses_target and self.name in batch.targets:
            return batch.targets[self.name]
        return torch.tensor([group_id(i) for i in batch.ids], dtype=torch.long)

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        embeddings = self.embed(encoded)  # (B, 2, E)
        loss = None
        if not self.uses_target or self.name in batch.targets:
            valid = encoded[self.keys[0]].present & encoded[self.keys[1]].present  # (B,): a pair needs both sides
            loss = self.pair_loss(embeddings, self.groups(batch).to(embeddings.device), valid)
        return HeadOutput(loss=loss, predictions=embeddings)

    def pair_loss(self, embeddings: Tensor, group: Tensor, valid: Tensor) -> Tensor:
        """``(B, 2, E)`` embeddings, ``(B,)`` groups and valid pairs -> the loss against the global batch."""
        if not valid.any():
            return embeddings.sum() * 0.0
        left, right = embeddings[:, 0], embeddings[:, 1]  # (B, E)
        all_left, all_right, all_group, all_valid = (
            gather(left),
            gather(right),
            gather(group),
            gather(valid),
        )  # (G, ...)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        positive = (group[:, None] == all_group[None, :]) & all_valid[None, :]  # (B, G)
        if self.loss_name == "sigmoid":
            logits = scale * left @ all_right.T + self.logit_bias  # (B, G)
            pair = -F.logsigmoid((2 * positive.float() - 1) * logits) * all_valid[None, :]
            return pair.sum(1)[valid].mean()
        blocked = ~all_valid[None, :]  # a pair lacking a side is no negative either
        forward = (scale * left @ all_right.T).masked_fill(blocked, -1e4)  # (B, G) left -> right
        backward = (scale * right @ all_left.T).masked_fill(blocked, -1e4)  # (B, G) right -> left
        target = positive.float() / positive.sum(1, keepdim=True).clamp(min=1)  # several positives share it
        return (F.cross_entropy(forward[valid], target[valid]) + F.cross_entropy(backward[valid], target[valid])) / 2

    def make_metrics(self) -> dict[str, nn.Module]:
        return {"recall": RetrievalRecall(self.recall_at)}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor]:
        return output.predictions, self.groups(batch).to(output.predictions.device)

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        a, b = self.keys
        names = [f"R@{k}_{a}_to_{b}" for k in self.recall_at] + [f"R@{k}_{b}_to_{a}" for k in self.recall_at]
        return dict(zip(names, map(float, value.tolist())))

    def example_targets(self, count: int) -> list[Any]:
        return [f"item{i // 2}" for i in range(count)]


def gather(tensor: Tensor) -> Tensor:
    """Concatenate a tensor over all processes, keeping the gradient of this process's part (no-op alone)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if tensor.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor), 0)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts, 0)
