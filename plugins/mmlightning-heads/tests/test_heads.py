"""mmlightning-heads: the classification head's contract, label handling and metrics."""

from __future__ import annotations

import pytest
import torch

from mmlightning import Batch, Features, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_heads import ClassificationHead


def test_contract():
    check_head(ClassificationHead, dim=16)
    check_head(ClassificationHead, dim=16, hidden=8)


def test_labels_learnt_sorted_and_numbers_accepted_as_text():
    head = ClassificationHead(8)
    head.fit([3, 1, 2, 1])
    assert head.labels == [1, 2, 3]
    assert head.target().encode(2).item() == 1 and head.target().encode("2").item() == 1  # a CSV gives "2"
    with pytest.raises(ValueError, match="label 7 is not one of the 3 known labels"):
        head.target().encode(7)


def test_one_label_is_not_a_classification():
    with pytest.raises(ValueError, match="needs at least 2"):
        ClassificationHead(8).fit(["same", "same"])


def test_metrics_and_per_class_report():
    head = ClassificationHead(4, labels=["neg", "pos"])
    head.bind(HeadContext("label", {}))
    metrics = head.make_metrics()
    preds, target = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 0, 1])
    values = {}
    for name, metric in metrics.items():
        metric.update(preds, target)
        values.update(head.metric_values(name, metric.compute()))
    assert values["acc"] == pytest.approx(0.75)
    assert values["precision/pos"] == pytest.approx(2 / 3) and values["recall/neg"] == pytest.approx(0.5)
    assert (
        values["confusion/neg/pos"] == 1.0 and values["confusion/pos/pos"] == 2.0 and values["confusion/pos/neg"] == 0.0
    )
    tables = head.metric_tables("report", metrics["report"].compute())
    columns, rows = tables["confusion"]
    assert columns == ["true / predicted", "neg", "pos"] and rows == [["neg", 1, 1], ["pos", 0, 2]]
    chart = tables["confusion_chart"]
    assert chart.kind == "confusion" and chart.rows == [
        ["neg", "neg", 1],
        ["neg", "pos", 1],
        ["pos", "neg", 0],
        ["pos", "pos", 2],
    ]
    bars = tables["f1_per_class"]
    assert bars.kind == "bar" and bars.rows == [["neg", pytest.approx(2 / 3)], ["pos", pytest.approx(0.8)]]
    out = head(random_features(2, 1, 4), {}, Batch(inputs={}, ids=["a", "b"]))
    assert out.loss is None and set(head.target().decode(out)) <= {"neg", "pos"}


def test_the_report_read_off_the_confusion_matrix_matches_torchmetrics():
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    g = torch.Generator().manual_seed(0)
    preds, target = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (200,), generator=g)
    preds[preds == 3] = 0  # class 4 never occurs and class 3 is never predicted: zero denominators
    target[target == 3] = 1
    head = ClassificationHead(4, labels=["a", "b", "c", "d", "e"])
    metric = head.make_metrics()["report"]
    for chunk in range(4):  # updated batch by batch, as in an epoch
        metric.update(preds[chunk * 50 : (chunk + 1) * 50], target[chunk * 50 : (chunk + 1) * 50])
    values = head.metric_values("report", metric.compute())
    n = 5
    assert values["acc"] == pytest.approx(float(multiclass_accuracy(preds, target, n, average="micro")))
    assert values["f1_macro"] == pytest.approx(float(multiclass_f1_score(preds, target, n, average="macro")))
    assert values["f1_weighted"] == pytest.approx(float(multiclass_f1_score(preds, target, n, average="weighted")))
    for name, fn in {"precision": multiclass_precision, "recall": multiclass_recall, "f1": multiclass_f1_score}.items():
        expected = fn(preds, target, n, average=None).tolist()
        assert [values[f"{name}/{label}"] for label in head.labels] == pytest.approx(expected)
    assert sum(values[f"confusion/{t}/{p}"] for t in head.labels for p in head.labels) == 200


def test_after_a_late_fusion_the_head_combines_per_modality_predictions():
    torch.manual_seed(0)
    head = ClassificationHead(4, labels=["a", "b", "c"]).eval()
    head.bind(HeadContext("label", {}))
    present = torch.tensor([[True, True], [True, False]])  # sample 1 lacks the second modality
    fused = Features.from_tokens(torch.randn(2, 2, 4), present)  # one token per modality, as LateFusion gives
    fused.spans, fused.weights = {"image": slice(0, 1), "text": slice(1, 2)}, torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    out = head(fused, {}, Batch(inputs={}, ids=["0", "1"]))
    log_probs = head.classifier(fused.tokens).log_softmax(-1)  # (B, M, C): each modality's own prediction
    assert torch.allclose(out.logits[0], (0.25 * log_probs[0, 0] + 0.75 * log_probs[0, 1]).log_softmax(-1), atol=1e-6)
    assert torch.allclose(out.logits[1], log_probs[1, 0], atol=1e-6)  # nothing from the missing modality
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(2))
    batch = Batch(inputs={}, targets={"label": torch.tensor([0, 2])}, ids=["0", "1"])
    assert torch.isfinite(head(fused, {}, batch).loss)


def test_balanced_class_weights_balanced_accuracy_and_auroc():
    head = ClassificationHead(4, class_weights="balanced")
    head.bind(HeadContext("label", {}))
    head.fit(["a"] * 6 + ["b"] * 2)
    assert head.weight.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2)])  # n / (classes * count)
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.0]])
    target = torch.tensor([0, 0, 1, 1])
    plain = torch.nn.functional.cross_entropy(logits, target, weight=head.weight)
    batch = Batch(inputs={}, targets={"label": target}, ids=list("wxyz"))
    with torch.no_grad():
        head.classifier = torch.nn.Identity()
        out = head(Features.from_pooled(logits), {}, batch)
    assert out.loss == pytest.approx(float(plain))
    values = {}
    for name, metric in head.make_metrics().items():
        metric.update(*head.metric_inputs(out, batch))
        values.update(head.metric_values(name, metric.compute()))
    assert values["acc"] == 0.75 and values["balanced_acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert values["auroc"] == pytest.approx(1.0)  # every "b" scores higher than every "a"
    with pytest.raises(Exception, match="gives 3 weights for 2 labels"):
        ClassificationHead(4, labels=["a", "b"], class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="'balanced' or a list"):
        ClassificationHead(4, class_weights="even")
