"""Caption metrics over a split: corpus BLEU-4 and ROUGE-L, each input scored against all its references."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


class CaptionScores(Metric):
    """``update(hypotheses, references)``: a generated text per row and ``(group, reference)`` per row.

    Rows of one group are one input (an image with five captions): its first hypothesis is scored against
    every reference of the group. ``compute()`` gives ``[BLEU-4, ROUGE-L F]`` over the groups. Text is
    compared as the tokenizer decodes it (lower-cased), split on spaces. Under DDP ``compute()`` gathers every
    process's texts first (the states are strings, which torchmetrics cannot sync), so each scores them all.
    """

    full_state_update = False
    seen: Tensor  # a metric state (add_state)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("seen", default=torch.zeros(()), dist_reduce_fx="sum")
        self.hypotheses: dict[str, str] = {}
        self.references: dict[str, list[str]] = {}

    def update(self, hypotheses: Sequence[str], references: Sequence[tuple[str, str]]) -> None:
        for hypothesis, (group, reference) in zip(hypotheses, references):
            self.hypotheses.setdefault(group, hypothesis)
            self.references.setdefault(group, []).append(reference)
        self.seen += len(hypotheses)

    def compute(self) -> Tensor:
        from torchmetrics.functional.text import bleu_score

        by_group, refs_by_group = self._gathered()
        groups = sorted(by_group)
        if not groups:
            return torch.zeros(2)
        hypotheses = [by_group[g] for g in groups]
        references = [refs_by_group[g] for g in groups]
        bleu = bleu_score(hypotheses, references, n_gram=4)
        rouge = sum(max(rouge_l(h, r) for r in refs) for h, refs in zip(hypotheses, references)) / len(groups)
        return torch.stack([bleu.float(), torch.tensor(float(rouge))])

    def _gathered(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Every process's hypotheses and references (a group's rows may be spread over processes)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.hypotheses, self.references
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.hypotheses, self.references))
        hypotheses: dict[str, str] = {}
        references: dict[str, list[str]] = {}
        for their_hypotheses, their_references in parts:
            for group, text in their_hypotheses.items():
                hypotheses.setdefault(group, text)
            for group, texts in their_references.items():
                references.setdefault(group, []).extend(texts)
        return hypotheses, references

    def reset(self) -> None:
        super().reset()
        self.hypotheses, self.references = {}, {}


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1: from the longest common subsequence of words."""
    h, r = hypothesis.split(), reference.split()
    if not h or not r:
        return 0.0
    previous = [0] * (len(r) + 1)
    for word in h:
        current = [0]
        for j, other in enumerate(r):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(h), lcs / len(r)
    return 2 * precision * recall / (precision + recall)
