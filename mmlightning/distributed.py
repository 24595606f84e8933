"""Running a function in several CPU processes joined as under DDP: for testing components that talk across
processes (global-batch losses, metrics that gather). The testing kit re-exports :func:`run_distributed`."""

from __future__ import annotations

from typing import Any


def run_distributed(fn: Any, *args: Any, processes: int = 2) -> dict[int, Any]:
    """Run ``fn(rank, *args)`` in ``processes`` CPU processes joined in a gloo process group, as under DDP, and
    return what each rank's call returned. ``fn`` must be importable (defined at module level) and its result
    picklable. For components that talk across processes (global-batch losses, metrics that gather)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the group's rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_distributed_worker, args=(fn, args, port, processes, out), nprocs=processes, join=True)
        return dict(out)


def _distributed_worker(rank: int, fn: Any, args: tuple, port: int, processes: int, out: Any) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=processes)
    try:
        out[rank] = fn(rank, *args)
    finally:
        dist.destroy_process_group()
