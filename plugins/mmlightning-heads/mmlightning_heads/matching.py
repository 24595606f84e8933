"""Image-text matching: does this pair belong together? Negatives are hard ones, mined from contrastive similarity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning_heads.codecs import MatchCodec
from mmlightning_heads.common import classifier
from mmlightning_heads.contrastive import ContrastiveHead


class MatchingHead(Head):
    """A binary head on the fused features of a pair (ALBEF / BLIP's image-text matching).

    For every pair in the batch it builds two negatives by swapping one side: each first-modality item with a
    second-modality item of another pair, and the other way round. The swapped-in item is drawn in proportion to
    its contrastive similarity (hard negatives: similar but wrong), from an alignment this head trains alongside
    (``contrastive_weight`` of its InfoNCE loss is added). The negatives go through the model's own fusion.
    Loss: binary cross-entropy over the positives and both negatives. Logs ``acc`` over positives and
    negatives; ``predict`` writes each pair's match probability.

    Args:
        modalities: the two encoder keys (default: the model's two encoders).
        hard_negatives: draw negatives by similarity (True) or uniformly (False).
        groups: as in ``ContrastiveHead``: a column naming each row's item, so another caption of the same
            image is never taken as a negative.
    """

    def __init__(
        self,
        dim: int,
        modalities: Sequence[str] | None = None,
        embed_dim: int = 128,
        hard_negatives: bool = True,
        contrastive_weight: float = 1.0,
        groups: bool = False,
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.hard_negatives, self.contrastive_weight = hard_negatives, contrastive_weight
        self.align = ContrastiveHead(dim, modalities, embed_dim=embed_dim, groups=groups, recall_at=(1,))
        self.uses_target = groups
        self.classifier = classifier(dim, 1, hidden, dropout)

    def fit(self, values: Sequence[Any]) -> None:
        self.set_fitted({})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        self.align.bind(self.context)
        self.align.uses_target = self.uses_target
        self.align.set_fitted({})

    def target(self) -> MatchCodec:
        return MatchCodec(getattr(self.align, "keys", None))

    def reads(self) -> list[str]:
        return self.align.reads()

    def negatives(self, similarity: Tensor, same: Tensor) -> Tensor:
        """For each row, another row to pair with: ``(B, B)`` similarity, ``(B, B)`` same-group mask ``-> (B,)``."""
        if self.hard_negatives:
            weights = similarity.float().softmax(1).masked_fill(same, 0.0)
        else:
            weights = (~same).float()
        empty = weights.sum(1) <= 0
        weights[empty] = 1.0  # nothing else to choose: any row (it is left out of the loss below)
        return torch.multinomial(weights, 1).squeeze(1)

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        a, b = self.align.keys
        positive = self.classifier(fused.pooled).squeeze(-1)  # (B,)
        valid = encoded[a].present & encoded[b].present  # (B,)
        # pairs to swap need groups: the target column, or else the rows' ids (an exported graph has neither)
        has_groups = self.name in batch.targets if self.uses_target else len(batch.ids) == len(positive)
        if not has_groups:  # predicting: score the given pairs only
            return HeadOutput(loss=None, predictions=positive.sigmoid(), logits=positive)
        groups = self.align.groups(batch).to(positive.device)
        embeddings = self.align.embed(encoded)  # (B, 2, E)
        with torch.no_grad():
            similarity = embeddings[:, 0] @ embeddings[:, 1].T  # (B, B) a -> b
            same = (groups[:, None] == groups[None, :]) | ~valid[None, :]
            for_a, for_b = self.negatives(similarity, same), self.negatives(similarity.T, same)
            usable = valid & ~same[torch.arange(len(groups)), for_a] & ~same[torch.arange(len(groups)), for_b]
        swap_b = {a: encoded[a], b: encoded[b].index(for_a)}  # a's item with someone else's b
        swap_a = {a: encoded[a].index(for_b), b: encoded[b]}  # b's item with someone else's a
        negative = torch.cat(
            [self.classifier(self.fuse(swap).pooled).squeeze(-1) for swap in (swap_b, swap_a)]
        )  # (2B,)
        logits = torch.cat([positive, negative])  # (3B,)
        labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
        keep = torch.cat([valid, usable, usable])
        loss = F.binary_cross_entropy_with_logits(logits[keep], labels[keep]) if keep.any() else logits.sum() * 0.0
        if self.contrastive_weight:
            loss = loss + self.contrastive_weight * self.align.pair_loss(embeddings, groups, valid)
        return HeadOutput(loss=loss, predictions=positive.sigmoid(), logits=torch.stack([logits[keep], labels[keep]]))

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics.classification import BinaryAccuracy

        return {"acc": BinaryAccuracy()}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor] | None:
        if output.logits is None or output.logits.ndim != 2:
            return None
        logits, labels = output.logits
        return logits.sigmoid(), labels.long()

    def example_targets(self, count: int) -> list[Any]:
        return [f"item{i // 2}" for i in range(count)]
