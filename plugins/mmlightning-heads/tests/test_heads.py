"""mmlightning-heads: the classification head's contract, label handling and metrics."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch
from mmlightning.testing import check_head, random_features
from mmlightning_heads import ClassificationHead


def test_contract():
    check_head(ClassificationHead, dim=16)
    check_head(ClassificationHead, dim=16, hidden=8)


def test_labels_learnt_sorted_and_numbers_accepted_as_text():
    head = ClassificationHead(8)
    head.fit([3, 1, 2, 1])
    assert head.labels == [1, 2, 3]
    assert head.encode_target(2).item() == 1 and head.encode_target("2").item() == 1  # a CSV gives "2"
    with pytest.raises(ValueError, match="label 7 is not one of the 3 known labels"):
        head.encode_target(7)


def test_one_label_is_not_a_classification():
    with pytest.raises(ValueError, match="needs at least 2"):
        ClassificationHead(8).fit(["same", "same"])


def test_metrics_and_per_class_report():
    head = ClassificationHead(4, labels=["neg", "pos"])
    head.name = "label"
    metrics = head.make_metrics()
    preds, target = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1])
    values = {}
    for name, metric in metrics.items():
        metric.update(preds, target)
        values.update(head.metric_values(name, metric.compute()))
    assert values["acc"] == pytest.approx(0.75)
    assert values["precision/pos"] == pytest.approx(2 / 3) and values["recall/neg"] == pytest.approx(0.5)
    out = head(random_features(2, 1, 4), {}, Batch(inputs={}, ids=["a", "b"]))
    assert out.loss is None and set(head.decode(out)) <= {"neg", "pos"}
