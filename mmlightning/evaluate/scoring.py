"""Scoring a trained model's outputs outside a Trainer run, with each head's own metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmlightning.contracts import Batch, Head, HeadOutput


class Scores:
    """Each head's fresh metrics; ``update`` with a batch's outputs, ``values`` for the flat numbers."""

    def __init__(self, heads: Mapping[str, Head]) -> None:
        self.heads = dict(heads)
        self.metrics: dict[str, dict[str, Any]] = {key: head.make_metrics() for key, head in self.heads.items()}

    def update(self, outputs: Mapping[str, HeadOutput], batch: Batch) -> None:
        for key, head in self.heads.items():
            inputs = head.metric_inputs(outputs[key], batch) if key in batch.targets else None
            if inputs is not None:
                for metric in self.metrics[key].values():
                    metric.update(*inputs)

    def values(self) -> dict[str, dict[str, float]]:
        """``{head: {metric: value}}``; a head no batch had targets for has no values."""
        found: dict[str, dict[str, float]] = {}
        for key, head in self.heads.items():
            values: dict[str, float] = {}
            for name, metric in self.metrics[key].items():
                if getattr(metric, "update_count", 0):
                    values.update(head.metric_values(name, metric.compute()))
            found[key] = values
        return found


def headline(values: Mapping[str, float]) -> dict[str, float]:
    """The scores worth a table column: those without a per-class or per-cell part (``f1/cat``, ``confusion/...``)."""
    return {name: value for name, value in values.items() if "/" not in name}
