"""Two nodes against one process: the quickstart config trained once in one process (batch 32) and once as two
torchrun "nodes" of one process each (batch 16 each, rendezvous on 127.0.0.1, DDP over gloo), on this machine.

    python benchmarks/multinode.py                 # the quickstart config as shipped (dropout 0.1)
    python benchmarks/multinode.py --no_dropout    # dropout off: nothing random depends on a process's share

Self-contained (makes the quickstart dataset); prints the validation metrics of both, their difference in points
and the wall time, and writes benchmarks/results/multinode.json. Each node gets one thread (OMP_NUM_THREADS=1), as
one core of a two-core machine; the one-process run gets both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("val/label/acc", "val/label/f1_macro", "val/loss", "train/loss_epoch")


def fit(work: Path, config: Path, batch: int, nodes: int, extra: list[str]) -> tuple[dict, float]:
    work.mkdir(parents=True, exist_ok=True)
    args = ["fit", "--config", str(config), f"--data.batch_size={batch}", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false", "--results_path=fit.json", "--trainer.accelerator=cpu", *extra]  # fmt: skip
    start = time.perf_counter()
    if nodes == 1:
        subprocess.run([sys.executable, "-m", "mmlightning.cli.main", *args], cwd=work, check=True)
    else:
        sys.path.insert(0, str(ROOT))
        from mmlightning.deploy.local import free_port

        port, started = free_port(), []
        for rank in range(nodes):
            command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", "--nproc_per_node=1",
                       f"--node_rank={rank}", "--master_addr=127.0.0.1", f"--master_port={port}", "-m",
                       "mmlightning.cli.main", *args, f"--trainer.num_nodes={nodes}", "--trainer.devices=1",
                       "--trainer.strategy=ddp"]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            started.append(subprocess.Popen(command, cwd=work, env=env))
        if any(node.wait() != 0 for node in started):
            raise SystemExit("a node failed; see its output above")
    return json.loads((work / "fit.json").read_text()), time.perf_counter() - start


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no_dropout", action="store_true", help="the fusion's and the head's dropout set to 0")
    options = parser.parse_args()
    extra = (
        ["--model.fusion.init_args.dropout=0", "--model.heads.label.init_args.dropout=0"] if options.no_dropout else []
    )
    work = ROOT / "benchmarks" / "results" / ("multinode_no_dropout" if options.no_dropout else "multinode")
    data = work / "data"
    subprocess.run([sys.executable, str(ROOT / "examples/quickstart/make_dataset.py"), str(data)], check=True)
    config = work / "config.yaml"
    config.write_text((ROOT / "examples/quickstart/config.yaml").read_text().replace("quickstart_data/", f"{data}/"))
    one, one_s = fit(work / "one", config, 32, 1, extra)
    two, two_s = fit(work / "two", config, 16, 2, extra)
    rows = [{"metric": k, "one_process": one.get(k), "two_nodes": two.get(k)} for k in KEYS]
    print(f"\n{'metric':<22} {'1 process, batch 32':>20} {'2 nodes, batch 16 each':>24} {'difference':>11}")
    for row in rows:
        a, b = row["one_process"], row["two_nodes"]
        row["difference"] = None if a is None or b is None else b - a
        print(f"{row['metric']:<22} {a:>20.4f} {b:>24.4f} {row['difference']:>+11.5f}")
    print(f"{'wall time (s)':<22} {one_s:>20.1f} {two_s:>24.1f}")
    out = work.with_suffix(".json")
    found = {"dropout": not options.no_dropout, "rows": rows, "seconds": {"one": one_s, "two": two_s}}
    out.write_text(json.dumps(found, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
