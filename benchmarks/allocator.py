"""What keeping freed memory (`mmlightning.memory.keep_freed_memory`) does to a CPU training step.

    python benchmarks/allocator.py [--steps 6]

Two training steps, each timed in fresh processes with glibc's defaults and with freed memory kept, in this run
on this machine: EfficientNet-Lite0 at 160 px (batch 64, the stem and first two stages frozen, in channels-last
memory, as docs/configs/cifar10_finetune.yaml trains it) and a 6-layer, 384-wide BERT (MiniLM's shape; batch 32 of
128 tokens). Reports seconds per step, the CPU seconds per step spent in the kernel, minor page faults per step
and peak resident memory. Needs no data or weights. Writes benchmarks/results/allocator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MODELS = ("efficientnet_lite0", "bert_minilm_shape")


def efficientnet_step() -> Callable[[], None]:
    import timm
    import torch

    model = timm.create_model("tf_efficientnet_lite0", num_classes=10).to(memory_format=torch.channels_last)
    lower = [model.conv_stem, model.bn1, model.blocks[0], model.blocks[1]]
    for module in lower:
        module.eval().requires_grad_(False)
    pixels = torch.randn(64, 3, 160, 160).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (64,))
    return adamw_step(model, lambda: torch.nn.functional.cross_entropy(model(pixels), labels))


def bert_step() -> Callable[[], None]:
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    model = BertModel(config).train()
    ids = torch.randint(0, config.vocab_size, (32, 128))
    return adamw_step(model, lambda: model(input_ids=ids).last_hidden_state.mean())


def adamw_step(model: object, loss: Callable[[], object]) -> Callable[[], None]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        loss().backward()  # type: ignore[attr-defined]
        optimizer.step()
        optimizer.zero_grad()

    return step


def child(model: str, steps: int) -> dict[str, float | bool]:
    """One measurement, in this process: the allocator set (or not) before the model is built."""
    import torch

    from mmlightning.memory import keep_freed_memory

    kept = keep_freed_memory()
    torch.manual_seed(0)
    step = efficientnet_step() if model == "efficientnet_lite0" else bert_step()
    for _ in range(2):  # warm-up: kernels chosen, optimizer state allocated, the heap grown to its peak
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kept": kept,
        "seconds_per_step": round(seconds, 3),
        "kernel_seconds_per_step": round((after.ru_stime - before.ru_stime) / steps, 3),
        "page_faults_per_step": round((after.ru_minflt - before.ru_minflt) / steps),
        "peak_rss_mib": round(after.ru_maxrss / 1024),
    }


def measure(model: str, keep: bool, steps: int) -> dict[str, float | bool]:
    env = {k: v for k, v in os.environ.items() if k != "MMLIGHTNING_ALLOCATOR"}
    if not keep:
        env["MMLIGHTNING_ALLOCATOR"] = "system"
    args = [sys.executable, __file__, "--child", model, "--steps", str(steps)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    import torch

    report: dict[str, object] = {"threads": torch.get_num_threads(), "steps": args.steps, "models": {}}
    print(
        f"{'training step':<20} {'allocator':<12} {'s/step':>7} {'speed-up':>9} {'kernel s':>9} {'faults':>8} {'peak MiB':>9}"
    )
    for model in MODELS:
        runs = {"glibc default": measure(model, False, args.steps), "kept": measure(model, True, args.steps)}
        base = float(runs["glibc default"]["seconds_per_step"])
        for name, row in runs.items():
            row["vs_default"] = round(base / float(row["seconds_per_step"]), 2)
            print(
                f"{model:<20} {name:<12} {row['seconds_per_step']:>7.3f} {row['vs_default']:>8.2f}x "
                f"{row['kernel_seconds_per_step']:>9.3f} {row['page_faults_per_step']:>8} {row['peak_rss_mib']:>9}"
            )
        report["models"][model] = runs  # type: ignore[index]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "allocator.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
