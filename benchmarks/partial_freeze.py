"""What a training step of an image CNN costs with channels-last memory and with its lower stages frozen.

    python benchmarks/partial_freeze.py [--model tf_efficientnet_lite0] [--size 160] [--batch 64] [--steps 6]

Eight ways to train timm's network on random pictures, timed in this run on this machine: a plain PyTorch loop
over the whole network (the baseline), the same in channels-last memory, and mmlightning's ``TimmEncoder``
(channels-last by default) with and without the ``Freeze`` strategy on the stem and the first two stages; that in
bf16 autocast (``--trainer.precision=bf16-mixed``; fast where the CPU has AMX or AVX-512 bf16) with every
convolution in bf16 and with the depthwise ones kept in fp32 (``fp32_depthwise``, the default); then with the
depthwise kernels frozen too (their weight gradient is the slowest kernel of a CPU backward pass), in fp32 and in
bf16, as ``docs/configs/cifar10_finetune.yaml`` does. Needs no data. Writes benchmarks/results/partial_freeze.json and
prints seconds per step and each one's ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
LOWER = ["image.model.conv_stem", "image.model.bn1", "image.model.blocks.0", "image.model.blocks.1"]
DEPTHWISE = ["image.model.blocks.*.conv_dw.weight"]


def timed(step: Callable[[], None], steps: int) -> float:
    step()  # warm-up: allocations, kernels chosen
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def training_step(
    forward: Callable[[], torch.Tensor], model: nn.Module, labels: torch.Tensor, bf16: bool = False
) -> Callable[[], None]:
    """One AdamW step on ``model``'s trainable weights, the loss from ``forward``'s logits (in bf16 autocast, as
    Lightning's ``bf16-mixed`` runs it, when ``bf16``)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(forward(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def framework_step(
    name: str, pixels: torch.Tensor, labels: torch.Tensor, freeze: list[str], bf16: bool = False, fp32_dw: bool = True
) -> Callable[[], None]:
    """mmlightning's encoder with a linear classifier; ``freeze``: the parts a Freeze strategy holds."""
    from mmlightning.tuning import Freeze
    from mmlightning_vision import TimmEncoder

    encoder = TimmEncoder(name, image_size=pixels.shape[-1], augment=False, fp32_depthwise=fp32_dw)
    holder = nn.Module()  # the shape Freeze's parts are named in
    holder.encoders = nn.ModuleDict({"image": encoder})
    holder.classifier = nn.Linear(encoder.dim, 10)
    holder.train()
    if freeze:
        strategy = Freeze(freeze)
        strategy.adapt(holder)
        for module in strategy.eval_modules(holder):
            module.eval()
    return training_step(lambda: holder.classifier(encoder({"pixels": pixels}).pooled), holder, labels, bf16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    import timm

    torch.manual_seed(0)
    pixels = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    plain = timm.create_model(args.model, num_classes=10).train()
    fast = timm.create_model(args.model, num_classes=10).train().to(memory_format=torch.channels_last)
    fast_pixels = pixels.contiguous(memory_format=torch.channels_last)
    runs = {
        "plain PyTorch, whole network": training_step(lambda: plain(pixels), plain, labels),
        "plain PyTorch, channels-last": training_step(lambda: fast(fast_pixels), fast, labels),
        "TimmEncoder, whole network": framework_step(args.model, pixels, labels, []),
        "TimmEncoder, stem + 2 stages frozen": framework_step(args.model, pixels, labels, LOWER),
        "stem + 2 stages frozen, bf16, all bf16": framework_step(args.model, pixels, labels, LOWER, True, False),
        "stem + 2 stages frozen, bf16": framework_step(args.model, pixels, labels, LOWER, bf16=True),
        "+ depthwise kernels frozen, fp32": framework_step(args.model, pixels, labels, LOWER + DEPTHWISE),
        "+ depthwise kernels frozen, bf16": framework_step(args.model, pixels, labels, LOWER + DEPTHWISE, True),
    }
    seconds = {name: timed(step, args.steps) for name, step in runs.items()}
    base = seconds["plain PyTorch, whole network"]
    report = {
        "model": args.model,
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "runs": {
            name: {"seconds_per_step": round(s, 3), "vs_plain": round(base / s, 2)} for name, s in seconds.items()
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "partial_freeze.json").write_text(json.dumps(report, indent=2))
    print(f"{args.model} at {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"{'training step':<42} {'s/step':>8} {'speed-up':>9}")
    for name, row in report["runs"].items():
        print(f"{name:<42} {row['seconds_per_step']:>8.3f} {row['vs_plain']:>8.2f}x")


if __name__ == "__main__":
    main()
