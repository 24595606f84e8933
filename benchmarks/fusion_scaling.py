"""How each fusion's training step grows with tokens per modality and with the number of modalities.

    python benchmarks/fusion_scaling.py [--tokens 64,256,1024,4096] [--modalities 2,3,4] [--device cpu|cuda]

For each fusion: the median time of a forward + backward step on random features (batch 2, width 64), and the
memory autograd keeps for the backward pass (bytes of saved tensors; on CUDA also the allocator's peak). A fusion
whose step passes --budget seconds is not run at larger sizes. Relative to ConcatFusion, measured in the same run.
Writes benchmarks/results/fusion_scaling.json, docs/fusion_scaling.md and, with matplotlib, docs/fusion_scaling.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from mmlightning.testing import random_features

ROOT = Path(__file__).resolve().parents[1]


def fusion_classes() -> dict[str, type]:
    from mmlightning.plugins import get_registry

    return {c.name: c.cls for c in get_registry().components("fusion")}


def measure(cls: type, modalities: int, tokens: int, device: str, repeats: int = 3) -> tuple[float, int, int]:
    dims = {f"m{i}": 64 for i in range(modalities)}
    torch.manual_seed(0)
    fusion = cls(dims, dim=64).to(device).train()
    features = {k: random_features(2, tokens, 64, seed=i) for i, k in enumerate(dims)}
    features = {
        k: type(f)(f.tokens.to(device).requires_grad_(), f.mask.to(device), f.pooled.to(device), f.present.to(device))
        for k, f in features.items()
    }
    saved = [0]

    def pack(tensor):
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    times = []
    for _ in range(repeats + 1):
        saved[0] = 0
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fusion(features)
        (out.tokens.float().pow(2).mean() + out.pooled.pow(2).mean()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    return statistics.median(times[1:]), saved[0], peak


def sweep(classes: dict, sizes: list[tuple[int, int]], device: str, budget: float) -> list[dict]:
    rows = []
    for name, cls in classes.items():
        for modalities, tokens in sizes:
            seconds, saved, peak = measure(cls, modalities, tokens, device)
            rows.append(
                {
                    "fusion": name,
                    "modalities": modalities,
                    "tokens": tokens,
                    "seconds": seconds,
                    "saved_mb": saved / 2**20,
                    "cuda_peak_mb": peak / 2**20,
                }
            )
            print(
                f"{name:<26} M={modalities} N={tokens:<5} {seconds * 1000:9.1f} ms  {saved / 2**20:9.1f} MB saved",
                flush=True,
            )
            if seconds > budget:
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="64,256,1024,4096")
    parser.add_argument("--modalities", default="2,3,4")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds; stop growing a fusion past this")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    classes = fusion_classes()
    tokens = [int(t) for t in args.tokens.split(",")]
    rows = sweep(classes, [(2, n) for n in tokens], args.device, args.budget)
    rows += sweep(classes, [(m, 256) for m in map(int, args.modalities.split(",")) if m != 2], args.device, args.budget)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "device": args.device,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    (out / "fusion_scaling.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    write_docs(rows, meta, tokens)


def write_docs(rows: list[dict], meta: dict, tokens: list[int]) -> None:
    base = {(r["modalities"], r["tokens"]): r["seconds"] for r in rows if r["fusion"] == "ConcatFusion"}
    lines = [
        "| fusion | modalities | tokens each | ms per step | vs ConcatFusion | saved for backward (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (
            r["seconds"] / base[(r["modalities"], r["tokens"])]
            if (r["modalities"], r["tokens"]) in base
            else float("nan")
        )
        lines.append(
            f"| {r['fusion']} | {r['modalities']} | {r['tokens']} | {r['seconds'] * 1000:.1f} | {ratio:.1f}x | {r['saved_mb']:.1f} |"
        )
    figure = _plot(rows, tokens)
    (ROOT / "docs" / "fusion_scaling.md").write_text(f"""# Fusion scaling

A forward + backward step of each fusion alone on random features: batch 2, width 64, as the tokens per modality
grow (two modalities) and as modalities are added (256 tokens each). Device: {meta["device"]}, {meta["threads"]}
threads, torch {meta["torch"]}. "Saved for backward" counts the bytes autograd keeps between the passes, the
activation memory that grows with the tokens. A fusion whose step passed the time budget was not run at larger
sizes. Reproduce: `python benchmarks/fusion_scaling.py`.
{figure}
{chr(10).join(lines)}
""")


def _plot(rows: list[dict], tokens: list[int]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "\n(No plot: `pip install matplotlib` and run again.)\n"
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    colours = plt.get_cmap("tab20").colors  # 20 distinct colours, and a marker each: no two fusions look alike
    for i, name in enumerate(sorted({r["fusion"] for r in rows})):
        points = [r for r in rows if r["fusion"] == name and r["modalities"] == 2]
        style = {"marker": "osD^v<>ph*"[i % 10], "color": colours[(2 * i) % 20 + (2 * i) // 20 % 2], "label": name}
        axes[0].loglog([r["tokens"] for r in points], [r["seconds"] * 1000 for r in points], **style)
        axes[1].loglog([r["tokens"] for r in points], [max(r["saved_mb"], 1e-3) for r in points], **style)
    for ax, label in zip(axes, ["ms per training step", "MB saved for backward"]):
        ax.set_xlabel("tokens per modality (2 modalities)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "fusion_scaling.png", dpi=110)
    return "\n![time and memory per step against tokens per modality](fusion_scaling.png)\n"


if __name__ == "__main__":
    main()
