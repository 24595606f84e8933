"""Entity-level precision / recall / F1 as the CoNLL evaluation script counts them (type and span must match)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def chunks(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entities in one IOB1/IOB2/BIOES tag sequence as (type, start, end), following conlleval.

    A chunk starts at B-/S-, or at I-/E- after O or after a different type; it ends before O, B-, S-, or a
    different type, and after E-/S-.
    """
    found: set[tuple[str, int, int]] = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-") if tag != "O" else ("O", "", "")
        ends = kind is not None and (prefix in ("O", "B", "S") or label != kind)
        if kind is not None and ends:
            found.add((kind, start, i))
            kind = None
        if prefix != "O" and (kind is None or prefix in ("B", "S")):
            kind, start = label, i
        if kind is not None and prefix in ("E", "S"):
            found.add((kind, start, i + 1))
            kind = None
    return found


class EntityF1(Metric):
    """Counts predicted, gold and matching entities over a split; ``compute()`` gives
    ``[precision, recall, f1]`` overall then ``f1`` per entity type (``types`` order), all micro-averaged.

    ``update(preds, target)``: ``(B, W)`` tag ids per word, ``-100`` past each sentence's end (in ``target``).
    """

    full_state_update = False
    correct: Tensor  # metric states (add_state)
    predicted: Tensor
    gold: Tensor

    def __init__(self, tags: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tags = list(tags)
        self.types = sorted({tag.partition("-")[2] for tag in self.tags if tag != "O"})
        for name in ("correct", "predicted", "gold"):
            self.add_state(name, default=torch.zeros(len(self.types) + 1, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        index = {kind: i for i, kind in enumerate(self.types)}
        counts = torch.zeros(3, len(self.types) + 1, dtype=torch.long)
        for pred_row, gold_row in zip(preds.tolist(), target.tolist()):
            length = sum(1 for t in gold_row if t != -100)
            predicted = chunks([self.tags[t] if 0 <= t < len(self.tags) else "O" for t in pred_row[:length]])
            gold = chunks([self.tags[t] for t in gold_row[:length]])
            for row, found in enumerate((predicted & gold, predicted, gold)):
                for kind, _, _ in found:
                    counts[row, index[kind]] += 1
        counts[:, -1] = counts[:, :-1].sum(1)
        self.correct += counts[0].to(self.correct.device)
        self.predicted += counts[1].to(self.predicted.device)
        self.gold += counts[2].to(self.gold.device)

    def compute(self) -> Tensor:
        precision = self.correct.float() / self.predicted.clamp(min=1)
        recall = self.correct.float() / self.gold.clamp(min=1)
        f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
        return torch.cat([torch.stack([precision[-1], recall[-1], f1[-1]]), f1[:-1]])
