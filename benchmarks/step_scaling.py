"""How a training step's cost grows with batch size and text length, on whatever device is here.

    python benchmarks/step_scaling.py [--batches 8,16,32,64] [--lengths 32,64,128,256] [--steps 6] [--device cpu|cuda] [--precision 32|bf16]

The model is the one `overhead.py` times (text Transformer + timm ViT + cross-attention fusion + classifier),
trained through its plain forward/backward/AdamW loop on random batches: once per batch size at text length 48,
once per text length at batch 16. Reports the median seconds per step, samples per second, and on CUDA the peak
memory. The same script runs unchanged on a GPU. Writes benchmarks/results/step_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from overhead import build_model, sync

OUT = Path(__file__).parent / "results" / "step_scaling.json"


def batch_of(size: int, length: int, device: str, vocab: int):
    from mmlightning import Batch

    ones = torch.ones(size, dtype=torch.bool, device=device)
    inputs = {
        "text": {
            "ids": torch.randint(5, vocab, (size, length), device=device),
            "mask": torch.ones(size, length, dtype=torch.bool, device=device),
            "present": ones,
        },
        "image": {"pixels": torch.randn(size, 3, 64, 64, device=device), "present": ones},
    }
    return Batch(
        inputs=inputs, targets={"label": torch.randint(0, 4, (size,), device=device)}, ids=[str(i) for i in range(size)]
    )


def step_time(model, batch, steps: int, device: str, precision: str) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 2):
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(batch)["label"].loss
        loss.backward()
        optimizer.step()
        sync(device)
        if i >= 2:  # the first two warm up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="8,16,32,64")
    parser.add_argument("--lengths", default="32,64,128,256")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    args = parser.parse_args()
    model = build_model(args.device)
    model.encoders["text"].positions.data = torch.randn(512, 128, device=args.device) * 0.02  # room for long texts
    vocab = model.encoders["text"].embed.num_embeddings
    rows = []
    runs = [(b, 48) for b in map(int, args.batches.split(","))] + [(16, n) for n in map(int, args.lengths.split(","))]
    print(f"{'batch':>6} {'text tokens':>12} {'s / step':>9} {'samples/s':>10} {'peak MB':>8}")
    for size, length in runs:
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = step_time(model, batch_of(size, length, args.device, vocab), args.steps, args.device, args.precision)
        peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
        rows.append(
            {
                "batch": size,
                "text_tokens": length,
                "seconds_per_step": seconds,
                "samples_per_second": size / seconds,
                "peak_mb": peak,
            }
        )
        print(f"{size:>6} {length:>12} {seconds:>9.3f} {size / seconds:>10.1f} {peak if peak is not None else '-':>8}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "device": args.device,
                "device_name": device_name,
                "precision": args.precision,
                "threads": torch.get_num_threads(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
