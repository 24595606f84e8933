"""AV clips (video + its sound track + an access-log line): every target's dev accuracy, each modality removed, the
loader against the training step, and the frozen frame encoder's feature cache. Every run is a CLI command.

    python benchmarks/video.py [--epochs 10] [--skip fit,frozen,loader]

1. fit: `mmlightning fit --config docs/configs/av_clips.yaml` (alert, digit, spoken and motion as one multi-task
   model), its wall and CPU time (this process's children), and each epoch's time from its log.
2. robustness: `mmlightning robustness --severities 1` on that run's checkpoint: every target with each modality
   removed at test, and each corruption at full strength.
3. loader: clips per second out of the training DataLoader with 2 workers (decode, sample, augment, collate) against
   clips per second of the config's training step on batches already in memory (as benchmarks/pipeline.py).
4. frozen: the frame encoder frozen (`--model.freeze=[video.frames]`, no augmentation), on the video alone (digit
   and motion): the first epoch computes the frame features, later ones read them from the cache while the temporal
   Transformer trains; the ratio of the first epoch's time to the later ones'.

Needs ../shared/data/av_clips beside the repository (skips with a message otherwise). Writes
benchmarks/results/video.json; the figures go into docs/results.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mmlightning.machine import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "av_clips"
CONFIG = ROOT / "docs" / "configs" / "av_clips.yaml"
OUT = ROOT / "benchmarks" / "results"
HEADS = ("alert", "digit", "spoken", "motion")
EPOCH = re.compile(r"epoch (\d+)/(\d+) \((\d+(?:\.\d+)?) s\)")


def cli(args: list[str], name: str) -> tuple[str, float, float]:
    """Run `mmlightning ARGS`; its log (stderr), wall seconds and CPU seconds. A failure shows the log's tail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(["mmlightning", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (OUT / f"video_{name}.log").write_text(done.stderr)
    if done.returncode:
        sys.exit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stderr, wall, cpu


def epochs_of(log: str) -> list[float]:
    return [float(m.group(3)) for m in EPOCH.finditer(log)]


def fit(epochs: int) -> dict:
    results = OUT / "video_fit.json"
    log, wall, cpu = cli(
        ["fit", "--config", str(CONFIG), f"--trainer.max_epochs={epochs}", "--trainer.logger=false",
         "--trainer.enable_progress_bar=false", "--trainer.default_root_dir=benchmarks/results/video_runs",
         f"--results_path={results}"],
        "fit",
    )  # fmt: skip
    metrics = json.loads(results.read_text())
    return {
        "dev_accuracy": {head: metrics[f"val/{head}/acc"] for head in HEADS},
        "checkpoint": metrics["checkpoint"],
        "epochs": epochs,
        "wall_s": round(wall),
        "cpu_s": round(cpu),
        "epoch_s": epochs_of(log),
    }


def robustness(checkpoint: str) -> dict:
    out = OUT / "video_robustness"
    cli(["robustness", "--ckpt_path", checkpoint, "--out", str(out), "--severities", "1", "--no_wandb"], "robustness")
    report = json.loads((out / "robustness.json").read_text())
    return {c["condition"]: {h: c["metrics"][h]["acc"] for h in HEADS} for c in report["conditions"]}


def loader(batches: int) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline import build, loader_rate, step_rate

    os.chdir(ROOT)
    model, data = build(CONFIG.name)
    step = step_rate(model, data, batches)
    rate = loader_rate(data, 2, batches)
    return {"step_clips_per_s": step, "loader_clips_per_s_2_workers": rate, "ratio": rate / step}


def frozen(epochs: int) -> dict:
    """The video alone (digit and motion), the frame encoder frozen and no augmentation (so its features can be
    cached); the temporal Transformer, the fusion and the heads train."""
    config = yaml.safe_load(CONFIG.read_text())
    video = config["model"]["encoders"]["video"]
    video["init_args"]["augment"] = False
    config["model"]["encoders"] = {"video": video}
    config["model"]["heads"] = {h: config["model"]["heads"][h] for h in ("digit", "motion")}
    config["model"]["freeze"] = ["video.frames"]
    config["data"].pop("columns", None)
    path, results = OUT / "video_frozen.yaml", OUT / "video_frozen.json"
    path.write_text(yaml.safe_dump(config))
    log, wall, cpu = cli(
        ["fit", "--config", str(path), f"--trainer.max_epochs={epochs}", "--trainer.logger=false",
         "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false", f"--results_path={results}"],
        "frozen",
    )  # fmt: skip
    times = epochs_of(log)
    metrics = json.loads(results.read_text())
    later = sum(times[1:]) / max(1, len(times) - 1)
    return {
        "epoch_s": times,
        "first_over_later": times[0] / max(later, 1e-9),
        "dev_accuracy": {head: metrics[f"val/{head}/acc"] for head in ("digit", "motion")},
        "wall_s": round(wall),
        "cpu_s": round(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's max_epochs")
    parser.add_argument("--frozen_epochs", type=int, default=4)
    parser.add_argument("--skip", default="", help="comma-separated: fit, frozen, loader")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    skip = set(args.skip.split(",")) - {""}
    path = OUT / "video.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    found.update({"machine": platform.platform(), "cpus": os.cpu_count(), "cpu": machine().line()})
    if "loader" not in skip:
        found["loader"] = loader(20)
        print(f"loader (2 workers) {found['loader']['loader_clips_per_s_2_workers']:.0f} clips/s, training step "
              f"{found['loader']['step_clips_per_s']:.1f} clips/s: {found['loader']['ratio']:.1f}x", flush=True)  # fmt: skip
    if "fit" not in skip:
        found["fit"] = fit(args.epochs or yaml.safe_load(CONFIG.read_text())["trainer"]["max_epochs"])
        found["robustness"] = robustness(found["fit"]["checkpoint"])
        print(f"fit: {found['fit']['wall_s']} s wall, {found['fit']['cpu_s'] / 60:.1f} CPU-minutes", flush=True)
    if "frozen" not in skip:
        found["frozen"] = frozen(args.frozen_epochs)
    path.write_text(json.dumps(found, indent=2))
    print(table(found))
    print(f"written to {path}")


def table(found: dict) -> str:
    lines = [f"machine: {found.get('cpu')}, {found.get('cpus')} CPUs"]
    if "robustness" in found:
        lines.append("\n| input | " + " | ".join(HEADS) + " |\n|---|" + "---|" * len(HEADS))
        for condition, scores in found["robustness"].items():
            lines.append(f"| {condition} | " + " | ".join(f"{scores[h]:.3f}" for h in HEADS) + " |")
    if "fit" in found:
        fit = found["fit"]
        lines.append(f"\nfit: {fit['epochs']} epochs, {fit['wall_s']} s wall, {fit['cpu_s'] / 60:.1f} CPU-minutes; "
                     f"epochs {fit['epoch_s']}")  # fmt: skip
    if "loader" in found:
        got = found["loader"]
        lines.append(f"loader: {got['loader_clips_per_s_2_workers']:.0f} clips/s (2 workers) vs step "
                     f"{got['step_clips_per_s']:.1f} clips/s = {got['ratio']:.1f}x")  # fmt: skip
    if "frozen" in found:
        got = found["frozen"]
        lines.append(f"frozen frame encoder: epochs {got['epoch_s']} s, first / later = {got['first_over_later']:.1f}x; "
                     f"dev {got['dev_accuracy']}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
