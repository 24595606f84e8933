"""Multi-label classification: any number of labels per sample, a sigmoid each, thresholded metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning_heads.codecs import MultiLabelCodec
from mmlightning_heads.common import classifier, logits_of, per_label


class MultiLabelHead(Head):
    """Sigmoid + binary cross-entropy per label; F1 (micro / macro) and a per-label report at ``threshold``.

    A target is a list of labels (JSON, Parquet) or one string with the labels joined by ``separator``
    (CSV: ``"dog|outdoor"``); an empty list or string means no label applies.
    """

    supports_combine = True

    def __init__(
        self,
        dim: int,
        labels: list[str] | None = None,
        separator: str = "|",
        threshold: float = 0.5,
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_dim, self.separator, self.threshold, self.hidden, self.dropout = (
            dim,
            separator,
            threshold,
            hidden,
            dropout,
        )
        self.classifier: Any = None  # built in set_fitted
        if labels:
            self.set_fitted({"labels": list(labels)})

    def target(self) -> MultiLabelCodec:
        return MultiLabelCodec(self.labels if self.is_fitted else None, self.separator)

    def fit(self, values: Sequence[Any]) -> None:
        labels = sorted({label for value in values for label in self.target().split(value)})
        if not labels:
            raise ValueError(f"head '{self.name}' found no labels in the training split")
        self.set_fitted({"labels": labels})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        self.labels = list(state["labels"])
        self.classifier = classifier(self.in_dim, len(self.labels), self.hidden, self.dropout)

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        logits = self.classifier(fused.pooled)  # (B, L)
        target = batch.targets.get(self.name)  # (B, L) multi-hot, or None when predicting
        loss = None if target is None else F.binary_cross_entropy_with_logits(logits, target)
        return HeadOutput(loss=loss, predictions=(logits.sigmoid() >= self.threshold).long(), logits=logits)

    def combine(self, outputs: Sequence[HeadOutput]) -> HeadOutput:
        """An ensemble: the mean of the members' label probabilities, thresholded as one model's are."""
        probs = torch.stack([logits_of(out, self.name).float().sigmoid() for out in outputs]).mean(0)
        logits = torch.logit(probs, eps=1e-6)
        return HeadOutput(loss=None, predictions=(probs >= self.threshold).long(), logits=logits)

    def make_metrics(self) -> dict[str, nn.Module]:
        from torchmetrics.classification import (
            MultilabelExactMatch,
            MultilabelF1Score,
            MultilabelPrecision,
            MultilabelRecall,
        )

        n = len(self.labels)
        return {
            "exact_match": MultilabelExactMatch(n),
            "f1_micro": MultilabelF1Score(n, average="micro"),
            "f1_macro": MultilabelF1Score(n, average="macro"),
            "precision": MultilabelPrecision(n, average=None),
            "recall": MultilabelRecall(n, average=None),
            "f1": MultilabelF1Score(n, average=None),
        }

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Tensor, Tensor]:
        return output.predictions, batch.targets[self.name].long()

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        return per_label(name, value, self.labels)

    def example_targets(self, count: int) -> list[Any]:
        return [["cat", "dog", "bird"][: 1 + i % 3] for i in range(count)]
