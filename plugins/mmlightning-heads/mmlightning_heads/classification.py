"""Multi-class classification on the fused pooled vector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Chart, Features, Head, HeadOutput
from mmlightning.errors import ConfigError
from mmlightning_heads.codecs import LabelCodec
from mmlightning_heads.common import classifier, logits_of, per_label, safe_divide

CONFUSION_UP_TO = 20  # classes; beyond that a confusion matrix is too many numbers to log one by one


class ClassificationHead(Head):
    """Multi-class classification with accuracy, balanced accuracy, macro/weighted F1 and a per-class report
    (with two classes also the AUROC of the second label, in sorted order: ``yes`` over ``no``).

    Args:
        class_weights: ``"balanced"`` weighs each class's loss by ``n / (classes * count)`` over the training split
            (imbalanced data: each class counts as much as the others), or a weight per label in label order.
            None (the default): every sample counts the same.

    After a late fusion (``fused.weights`` set, e.g. ``LateFusion``) it predicts from each modality's span
    and combines the predictions with the fusion's weights (see :func:`late_log_probs`): late fusion.
    """

    supports_combine = True

    def __init__(
        self,
        dim: int,
        labels: list[Any] | None = None,
        hidden: int | None = None,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        class_weights: str | list[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced' or a list of numbers, got {class_weights!r}")
        self.in_dim, self.hidden, self.dropout, self.label_smoothing = dim, hidden, dropout, label_smoothing
        self.class_weights = class_weights
        self.classifier: Any = None  # built in set_fitted
        self.weight: Tensor | None
        self.register_buffer("weight", None, persistent=False)
        if labels:
            self.set_fitted({"labels": list(labels)})

    def fit(self, values: Sequence[Any]) -> None:
        numbers = [v for v in values if isinstance(v, (int, float))]
        if numbers and len(numbers) < len(values):  # JSON numbers beside strings would become classes of their own
            texts = next(v for v in values if not isinstance(v, (int, float)))
            raise ConfigError(
                f"head '{self.name}': the training split's labels mix numbers ({len(numbers)} rows, e.g. {numbers[0]!r}) and "
                f"text ({len(values) - len(numbers)} rows, e.g. {texts!r}); write every label the same way"
            )
        labels = sorted(
            set(values), key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v))
        )
        if len(labels) < 2:
            raise ValueError(
                f"head '{self.name}' found {len(labels)} distinct label(s) in the training split; classification needs at least 2"
            )
        self.set_fitted({"labels": labels, "counts": _counts(values, labels)})

    def extend(self, state: dict[str, Any], values: Sequence[Any]) -> None:
        """Continual fine-tuning: the earlier labels keep their ids; labels new in ``values`` come after them."""
        old = list(state["labels"])
        labels = old + sorted({v for v in values if v not in old}, key=str)
        self.set_fitted({"labels": labels, "counts": _counts(values, labels)})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        self.labels = list(state["labels"])
        self.classifier = classifier(self.in_dim, len(self.labels), self.hidden, self.dropout)
        self.weight = self._weights(state.get("counts"))

    def _weights(self, counts: list[int] | None) -> Tensor | None:
        if self.class_weights is None:
            return None
        if isinstance(self.class_weights, str):
            if not counts or len(counts) != len(self.labels):
                raise ConfigError(
                    f"head '{self.name}': class_weights='balanced' needs the training split's label counts; "
                    "fit the head on data, or give a weight per label"
                )
            found = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
            return found.sum() / (len(found) * found)
        if len(self.class_weights) != len(self.labels):
            raise ConfigError(
                f"head '{self.name}': class_weights gives {len(self.class_weights)} weights for {len(self.labels)} "
                f"labels ({', '.join(map(str, self.labels))}); give one per label in that order"
            )
        return torch.tensor(self.class_weights, dtype=torch.float32)

    def target(self) -> LabelCodec:
        return LabelCodec(self.labels if self.is_fitted else None)

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        target = batch.targets.get(self.name)  # (B,) or None when predicting
        if fused.weights is not None:
            logits = late_log_probs(self.classifier(fused.span_means()), fused.weights)  # (B, C) log-probabilities
        else:
            logits = self.classifier(fused.pooled)  # (B, C)
        loss = None
        if target is not None:
            weight = None if self.weight is None else self.weight.to(logits.dtype)
            loss = F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)
        return HeadOutput(loss=loss, predictions=logits.argmax(-1), logits=logits)

    def combine(self, outputs: Sequence[HeadOutput]) -> HeadOutput:
        """An ensemble: the mean of the members' class probabilities (its log as ``logits``), and its argmax."""
        probs = torch.stack([logits_of(out, self.name).float().softmax(-1) for out in outputs]).mean(0)
        logits = probs.clamp_min(1e-12).log()
        return HeadOutput(loss=None, predictions=logits.argmax(-1), logits=logits)

    def make_metrics(self) -> dict[str, nn.Module]:
        """One confusion matrix per stage; every score is read off it (one cheap update per step, not seven)."""
        from torchmetrics.classification import MulticlassConfusionMatrix

        metrics: dict[str, nn.Module] = {"report": MulticlassConfusionMatrix(len(self.labels), validate_args=False)}
        if len(self.labels) == 2:
            from mmlightning_heads.auroc import SecondLabelAUROC

            metrics["auroc"] = SecondLabelAUROC()
        return metrics

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        """The logits (the confusion matrix takes their argmax; AUROC their probabilities) and the targets."""
        scores = output.logits if output.logits is not None else output.predictions
        return scores, batch.targets[self.name]

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        if name == "auroc":
            return {"auroc": float(value)}
        return report(value, self.labels, confusion=len(self.labels) <= CONFUSION_UP_TO)

    def metric_tables(self, name: str, value: Tensor) -> dict[str, tuple[list[str], list[list[Any]]] | Chart]:
        """Per-class F1 as a bar chart, and (up to 20 classes) the confusion matrix as a table (a row per true
        label, a column per predicted label) and as a confusion-matrix chart."""
        if name == "auroc":
            return {}
        labels, counts = list(map(str, self.labels)), value.tolist()
        scores = report(value, self.labels, confusion=False)
        tables: dict[str, tuple[list[str], list[list[Any]]] | Chart] = {
            "f1_per_class": Chart(
                "bar", ["label", "f1"], [[label, scores[f"f1/{label}"]] for label in labels], "F1 per class"
            )
        }
        if len(labels) <= CONFUSION_UP_TO:
            tables["confusion"] = (
                ["true / predicted", *labels],
                [[label, *map(int, row)] for label, row in zip(labels, counts)],
            )
            tables["confusion_chart"] = Chart(
                "confusion",
                ["true", "predicted", "count"],
                [[t, p, int(counts[i][j])] for i, t in enumerate(labels) for j, p in enumerate(labels)],
                "confusion matrix",
            )
        return tables

    def example_targets(self, count: int) -> list[Any]:
        return [("cat", "dog", "bird")[i % 3] for i in range(count)]


def _counts(values: Sequence[Any], labels: Sequence[Any]) -> list[int]:
    """How many of ``values`` each label has, in label order (one pass over the values)."""
    found = Counter(values)
    return [found[label] for label in labels]


def late_log_probs(logits: Tensor, weights: Tensor) -> Tensor:
    """Combine per-modality predictions: the weighted mean of their log-probabilities, renormalised.

    ``(B, M, C)`` logits, ``(B, M)`` weights (zero for a missing modality) ``-> (B, C)`` log-probabilities.
    This is a weighted geometric mean of the modalities' probabilities (a product of experts), so each
    modality's evidence adds up; on AV digits it beat the arithmetic mean of probabilities by 8 points.
    """
    return (weights[..., None] * logits.log_softmax(-1)).sum(1).log_softmax(-1)


def report(matrix: Tensor, labels: Sequence[Any], confusion: bool = True) -> dict[str, float]:
    """Accuracy, macro / weighted F1 and per-class precision, recall and F1 read off a confusion matrix.

    ``matrix[i, j]`` counts samples of true class i predicted as j. A score with a zero denominator is 0;
    macro F1 averages over the classes present in the targets or the predictions (as torchmetrics does).
    With ``confusion`` the matrix itself comes back too, as ``confusion/TRUE/PRED``.
    """
    matrix = matrix.double()
    hits, support, predicted = matrix.diag(), matrix.sum(1), matrix.sum(0)
    precision, recall = safe_divide(hits, predicted), safe_divide(hits, support)
    f1 = safe_divide(2 * hits, support + predicted)
    seen = (support + predicted) > 0
    values = {
        "acc": float(safe_divide(hits.sum(), matrix.sum())),
        "balanced_acc": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "f1_macro": float(f1[seen].mean()) if seen.any() else 0.0,
        "f1_weighted": float(safe_divide((f1 * support).sum(), support.sum())),
        **per_label("precision", precision, labels),
        **per_label("recall", recall, labels),
        **per_label("f1", f1, labels),
    }
    if confusion:
        values.update(
            {f"confusion/{t}/{p}": float(matrix[i, j]) for i, t in enumerate(labels) for j, p in enumerate(labels)}
        )
    return values
