"""What a fit prints: one line per epoch, then the best and last validation scores and where the run is."""

from __future__ import annotations

import torch

from mmlightning.callbacks import EpochSummary, _headline


def test_headline_keeps_losses_and_overall_scores_only():
    metrics = {
        "train/loss_epoch": torch.tensor(0.9),
        "train/loss_step": torch.tensor(0.8),
        "val/loss": torch.tensor(0.7),
        "val/label/acc": torch.tensor(0.6),
        "val/label/recall/pos": torch.tensor(0.5),
        "val/label/confusion/a/b": torch.tensor(3.0),
    }
    found = _headline(metrics)
    assert sorted(found) == ["train/loss", "val/label/acc", "val/loss"] and abs(found["val/loss"] - 0.7) < 1e-6


def test_the_table_shows_the_best_and_the_last_epoch():
    summary = EpochSummary()
    summary.history = [
        {"val/loss": 0.9, "val/label/acc": 0.5},
        {"val/loss": 0.6, "val/label/acc": 0.7},
        {"val/loss": 0.8, "val/label/acc": 0.72},
    ]
    table = summary.table("runs/run-x")
    assert "best (epoch 2)" in table and "last (epoch 3)" in table
    assert (
        "val/label/acc" in table
        and "0.7000" in table
        and "0.7200" in table
        and table.endswith("run saved in runs/run-x")
    )


def test_an_evaluation_prints_its_confusion_matrix_as_counts():
    from mmlightning.callbacks import results_table

    metrics = {
        "val/loss": torch.tensor(0.5),
        "val/label/acc": torch.tensor(0.75),
        "val/label/recall/a": torch.tensor(1.0),
    }
    metrics |= {
        f"val/label/confusion/{t}/{p}": torch.tensor(float(n))
        for (t, p), n in {("a", "a"): 2, ("a", "b"): 0, ("b", "a"): 1, ("b", "b"): 1}.items()
    }
    table = results_table(metrics, "val")
    assert "val/label/acc  0.7500" in table and "recall" not in table
    assert "     a       2       0" in table and "     b       1       1" in table
