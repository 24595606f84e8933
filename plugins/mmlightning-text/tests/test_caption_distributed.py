"""CaptionScores across two processes (gloo, CPU): each process scores every process's captions."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmlightning_text.metrics import CaptionScores

HYPOTHESES = ["a dog runs on grass", "a dog runs on grass", "a man climbs a rock", "two children play", "two children play"]
REFERENCES = [("img1", "a brown dog runs on the grass"), ("img1", "a dog running in a field"), ("img2", "a man climbs a rock wall"),
              ("img3", "two children play in the sand"), ("img3", "children playing on a beach")]
SPLIT = 4  # img1 and img2 on process 0; img3 split: its first caption on process 0, its second on process 1


def worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        metric = CaptionScores()
        rows = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
        metric.update(HYPOTHESES[rows], REFERENCES[rows])
        out[rank] = metric.compute().tolist()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_score_all_captions():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(worker, args=(free_port(), out), nprocs=2, join=True)
        results = dict(out)
    whole = CaptionScores()
    whole.update(HYPOTHESES, REFERENCES)
    expected = whole.compute().tolist()
    half = CaptionScores()
    half.update(HYPOTHESES[:SPLIT], REFERENCES[:SPLIT])
    assert half.compute().tolist() != expected  # one process's share alone scores differently
    assert results[0] == results[1] and torch.allclose(torch.tensor(results[0]), torch.tensor(expected))
