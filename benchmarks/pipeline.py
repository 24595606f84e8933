"""Data pipeline throughput: samples per second from manifest to batch, against what a training step consumes.

    python benchmarks/pipeline.py [--batches 30] [--workers 0,1,2] [--only mvsa_single,av_digits]

For each shipped config (image + text on MVSA-Single, audio + image on AV digits) the model and datamodule are
built exactly as `mmlightning fit --config` builds them (`run=False`), the tokenizer and labels are learnt from
the training split, and then:
- loader: samples per second out of the training DataLoader (read, decode, augment, tokenize, collate) with
  0, 1 and 2 worker processes, after the first batch (worker start-up) is discarded;
- step: samples per second of the config's training step (forward, backward, AdamW) on batches already in memory.
The loader keeps up when its rate is above the step's. Needs ../shared/data beside the repository; writes
benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "pipeline.json"
CONFIGS = {"mvsa_single": "mvsa_single.yaml", "av_digits": "av_digits.yaml", "cifar10": "cifar10_finetune.yaml"}


def build(config: str):
    from mmlightning import MultimodalDataModule, MultimodalModule
    from mmlightning.binding import bind
    from mmlightning.plugins import get_registry
    from mmlightning.training import MultimodalCLI

    get_registry().import_all()  # as `mmlightning fit` does: short class names resolve among imported classes

    cli = MultimodalCLI(
        MultimodalModule,
        MultimodalDataModule,
        run=False,
        auto_configure_optimizers=False,
        args=["--config", str(ROOT / "docs" / "configs" / config), "--trainer.logger=false"],
        save_config_callback=None,
    )
    model, data = cli.model, cli.datamodule
    bind(model, data)  # as the Trainer's DataBinding does: the model learns from the training rows
    return model, data


def loader_rate(data, workers: int, batches: int) -> float:
    data.num_workers = workers
    loader = data._loader("train", shuffle=True)
    iterator = iter(loader)
    next(iterator)  # worker start-up is a one-off
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(iterator))
    rate = seen / (time.perf_counter() - start)
    del iterator
    return rate


def step_rate(model, data, batches: int) -> float:
    data.num_workers = 0
    loader = iter(data._loader("train", shuffle=True))
    ready = [next(loader) for _ in range(min(batches, 10) + 2)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        outputs = model(batch)
        sum(out.loss for out in outputs.values() if out.loss is not None).backward()
        optimizer.step()

    for batch in ready[:2]:  # warm-up
        step(batch)
    start = time.perf_counter()
    for batch in ready[2:]:
        step(batch)
    return sum(len(b) for b in ready[2:]) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    import logging
    import os

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    os.chdir(ROOT)  # the configs name the data relative to the repository root
    results = {}
    for name, config in CONFIGS.items():
        if args.only and name not in args.only.split(","):
            continue
        model, data = build(config)
        result = {"batch_size": data.batch_size, "loader": {}, "step": step_rate(model, data, args.batches)}
        for workers in map(int, args.workers.split(",")):
            result["loader"][workers] = loader_rate(data, workers, args.batches)
        results[name] = result
        print(f"\n{name} (batch {data.batch_size}): training step consumes {result['step']:.1f} samples/s")
        for workers, rate in result["loader"].items():
            print(f"  loader, {workers} workers: {rate:8.1f} samples/s  ({rate / result['step']:.2f}x the step)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"machine": platform.platform(), "cpus": __import__("os").cpu_count(), "results": results}, indent=2)
    )
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
