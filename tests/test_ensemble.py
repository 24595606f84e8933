"""Ensembles: `Head.combine` on each head that has one, and `mmlightning ensemble` over real checkpoints."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from tuning_helpers import cli_fit

from mmlightning import Head, HeadOutput
from mmlightning.cli.main import main
from mmlightning.errors import ConfigError
from mmlightning.evaluate.ensemble import shared_heads
from mmlightning.trained import load_run
from mmlightning_heads import ClassificationHead, MultiLabelHead, RegressionHead

from conftest import write_rows


@pytest.fixture(scope="module")
def members(shapes_data, tmp_path_factory):
    """Two different models of the same task: one and two epochs on the shapes data."""
    return [cli_fit(shapes_data, tmp_path_factory.mktemp(f"member{n}"), epochs=n) for n in (1, 2)]


def test_classification_averages_the_members_probabilities():
    head = ClassificationHead(4, labels=["a", "b", "c"])
    one = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    two = torch.tensor([[0.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    out = head.combine([HeadOutput(None, one.argmax(-1), one), HeadOutput(None, two.argmax(-1), two)])
    mean = (one.softmax(-1) + two.softmax(-1)) / 2
    assert torch.allclose(out.logits.exp(), mean, atol=1e-6)
    assert out.predictions.tolist() == [1, 2]  # the first row: b's 0.47 mean beats a's 0.40


def test_multilabel_and_regression_combine_their_own_way():
    labels = MultiLabelHead(4, labels=["x", "y"])
    high, low = torch.tensor([[3.0, -3.0]]), torch.tensor([[-1.0, -3.0]])
    out = labels.combine([HeadOutput(None, (high > 0).long(), high), HeadOutput(None, (low > 0).long(), low)])
    assert out.predictions.tolist() == [[1, 0]]  # x: (0.95 + 0.27) / 2 >= 0.5
    assert torch.allclose(out.logits.sigmoid(), (high.sigmoid() + low.sigmoid()) / 2, atol=1e-5)
    numbers = RegressionHead(4)
    out = numbers.combine([HeadOutput(None, torch.tensor([1.0, 2.0])), HeadOutput(None, torch.tensor([3.0, 6.0]))])
    assert out.predictions.tolist() == [2.0, 4.0]


def test_the_command_scores_each_member_and_the_mean_of_their_probabilities(
    members, shapes_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    paths = [run.checkpoint for run in members]
    rows = str(shapes_data / "val.jsonl")
    predictions = tmp_path / "ensemble.jsonl"
    args = ["--ckpt_path", *paths, "--rows", rows, "--out", str(tmp_path / "e"), "--batch_size", "20"]
    assert main(["ensemble", *args, "--predictions_path", str(predictions)]) == 0
    shown = capsys.readouterr().out
    assert "| label | acc |" in shown and "48 rows, 2 members, precision 32" in shown
    assert list((tmp_path / "e" / "wandb").glob("offline-run-*/run-*.wandb"))
    report = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    for run, member in zip(members, report["members"]):  # each member alone: what its own fit measured
        assert member["label"]["acc"] == pytest.approx(run.metrics["val/label/acc"], abs=1e-6)
    # the ensemble, by hand: each model's softmax over the val rows, averaged
    lines = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()]
    probs, bundle = [], None
    for path in paths:
        run = load_run(path)
        model, bundle = run.model, run.bundle
        with torch.no_grad():
            probs.append(model(bundle(lines, shapes_data))["label"].logits.softmax(-1))
    assert bundle is not None
    labels = bundle.codecs["label"].labels
    chosen = [labels[i] for i in torch.stack(probs).mean(0).argmax(-1).tolist()]
    expected = sum(c == row["label"] for c, row in zip(chosen, lines)) / len(lines)
    assert report["ensemble"]["label"]["acc"] == pytest.approx(expected, abs=1e-6)
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [p["label"] for p in written] == chosen
    assert all(sum(p["label_scores"].values()) == pytest.approx(1, abs=1e-3) for p in written)


class NoCombine(ClassificationHead):
    supports_combine = False  # a head that does not say how to average outputs
    combine = Head.combine


def test_bad_ensembles_are_refused_with_what_to_do(members, shapes_data, capsys):
    assert main(["ensemble", "--ckpt_path", members[0].checkpoint]) == 2
    assert "needs two or more checkpoints" in capsys.readouterr().err
    lines = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()]
    lines[2].pop("label")
    rows = write_rows(shapes_data / "val_one_unlabelled.jsonl", lines)
    args = ["ensemble", "--ckpt_path", members[0].checkpoint, members[1].checkpoint, "--rows", str(rows)]
    assert main([*args, "--no_wandb"]) == 2
    assert "1 of 48 rows have no 'label' (the first: row 3)" in capsys.readouterr().err
    lines = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()]
    lines[4]["image"] = "images/not_there.png"
    rows = write_rows(shapes_data / "val_one_missing_image.jsonl", lines)
    assert main([*args[:-1], str(rows), "--no_wandb"]) == 2
    error = capsys.readouterr().err
    assert f"{rows}, row 5: " in error and "not_there.png" in error and "Traceback" not in error
    first, second = (load_run(run.checkpoint).model for run in members)
    paths = ["a.ckpt", "b.ckpt"]
    assert shared_heads([first, second], paths) == ["label"]
    second.heads["label"].set_fitted({"labels": ["other", "labels"]})
    with pytest.raises(ConfigError, match="fitted to other labels or values"):
        shared_heads([first, second], paths)
    with pytest.raises(ConfigError, match="no head to ensemble"):
        shared_heads([first, SimpleNamespace(heads={"score": RegressionHead(4)})], paths)
    first.heads["label"].__class__ = NoCombine
    with pytest.raises(ConfigError, match=r"head 'label' \(NoCombine\) does not say how to combine"):
        shared_heads([first, first], paths)


def test_precision_auto_scores_in_what_this_cpu_computes_fastest(members, shapes_data, monkeypatch):
    from mmlightning.evaluate.ensemble import ensemble

    monkeypatch.setattr("mmlightning.machine.choose_precision", lambda accelerator: ("32-true", "no bf16 here"))
    paths = [run.checkpoint for run in members]
    report = ensemble(paths, str(shapes_data / "val.jsonl"), precision="auto")
    assert report["precision"] == "32-true"
    monkeypatch.setattr("mmlightning.machine.choose_precision", lambda accelerator: ("bf16-mixed", "native"))
    assert ensemble(paths, str(shapes_data / "val.jsonl"), precision="auto")["precision"] == "bf16-mixed"
