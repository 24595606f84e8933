"""mmlightning-heads: multi-label classification and regression."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_heads import MultiLabelHead, RegressionHead


def test_contracts():
    check_head(MultiLabelHead, dim=16)
    check_head(MultiLabelHead, dim=16, hidden=8)
    check_head(RegressionHead, dim=16)
    check_head(RegressionHead, dim=16, loss="huber")


def test_multilabel_reads_lists_and_separated_strings():
    head = MultiLabelHead(4)
    head.fit([["dog", "outdoor"], "cat|indoor", []])
    assert head.labels == ["cat", "dog", "indoor", "outdoor"]
    assert (
        head.target().encode("dog | outdoor").tolist()
        == [0, 1, 0, 1]
        == head.target().encode(["dog", "outdoor"]).tolist()
    )
    assert head.target().encode("").tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="label 'bird' is not one of the 4 known labels"):
        head.target().encode("bird")
    with pytest.raises(ValueError, match="expected a list of labels"):
        head.target().encode(3)


def test_multilabel_metrics_and_decode():
    head = MultiLabelHead(4, labels=["a", "b", "c"])
    head.bind(HeadContext("tags", {}))
    metrics = head.make_metrics()
    preds, target = torch.tensor([[1, 0, 1], [0, 1, 0]]), torch.tensor([[1, 0, 0], [0, 1, 0]])
    values = {}
    for name, metric in metrics.items():
        metric.update(preds, target)
        values.update(head.metric_values(name, metric.compute()))
    assert values["exact_match"] == pytest.approx(0.5) and values["precision/c"] == 0.0 and values["recall/a"] == 1.0
    assert values["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    out = head(random_features(2, 1, 4), {}, Batch(inputs={}, ids=["x", "y"]))
    assert all(set(labels) <= {"a", "b", "c"} for labels in head.target().decode(out))


def test_regression_learns_in_standard_units_and_predicts_in_the_original_ones():
    head = RegressionHead(4, dropout=0.0)
    head.bind(HeadContext("price", {}))
    head.fit([100.0, 300.0, "200"])  # a CSV gives text
    assert head.mean == pytest.approx(200.0) and head.std == pytest.approx((20000 / 3) ** 0.5)
    with torch.no_grad():
        head.regressor[-1].weight.zero_()
        head.regressor[-1].bias.fill_(1.0)  # one standard deviation above the mean
    target = torch.stack([head.target().encode(v) for v in (200.0, 200.0 + head.std)])
    out = head(random_features(2, 1, 4), {}, Batch(inputs={}, targets={"price": target}, ids=["a", "b"]))
    assert torch.allclose(out.predictions, torch.full((2,), 200.0 + head.std))
    assert out.loss.item() == pytest.approx(0.5)  # (1 - 0)^2 and (1 - 1)^2, averaged
    with pytest.raises(ValueError, match="expected a number, got 'n/a'"):
        head.target().encode("n/a")
    with pytest.raises(ValueError, match="finite"):
        head.target().encode("nan")
