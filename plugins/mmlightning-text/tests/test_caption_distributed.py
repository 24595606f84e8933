"""CaptionScores across two processes (gloo, CPU): each process scores every process's captions."""

from __future__ import annotations

import torch

from mmlightning.testing import run_distributed
from mmlightning_text.metrics import CaptionScores

HYPOTHESES = [
    "a dog runs on grass",
    "a dog runs on grass",
    "a man climbs a rock",
    "two children play",
    "two children play",
]
REFERENCES = [
    ("img1", "a brown dog runs on the grass"),
    ("img1", "a dog running in a field"),
    ("img2", "a man climbs a rock wall"),
    ("img3", "two children play in the sand"),
    ("img3", "children playing on a beach"),
]
SPLIT = 4  # img1 and img2 on process 0; img3 split: its first caption on process 0, its second on process 1


def score_share(rank: int) -> list[float]:
    metric = CaptionScores()
    rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
    metric.update(HYPOTHESES[rows], REFERENCES[rows])
    return metric.compute().tolist()


def test_two_processes_score_all_captions():
    results = run_distributed(score_share)
    whole = CaptionScores()
    whole.update(HYPOTHESES, REFERENCES)
    expected = whole.compute().tolist()
    half = CaptionScores()
    half.update(HYPOTHESES[:SPLIT], REFERENCES[:SPLIT])
    assert half.compute().tolist() != expected  # one process's share alone scores differently
    assert results[0] == results[1] and torch.allclose(torch.tensor(results[0]), torch.tensor(expected))
