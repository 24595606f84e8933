"""Fine-tuning strategies on MVSA-Single with pretrained encoders: which to pick on a CPU budget.

Every run is `mmlightning fit` on docs/configs/mvsa_pretrained_finetune.yaml (all-MiniLM-L6-v2 text, ImageNet
EfficientNet-Lite0 image kept frozen with its features cached on disk and shared by the runs) with one
`--model.tuning` choice on the text encoder, the same epochs and text length. It records dev accuracy and
weighted F1, the parameters the optimizer trains, seconds per epoch and the process's peak memory (max RSS).

    python benchmarks/finetuning.py [--only lora --only full] [--epochs 2] [--max_length 48]

Needs ../shared/data beside the repository (skips with a message without it). Writes
benchmarks/results/finetuning.json and prints the table that docs/finetuning.md shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CONFIG = ROOT / "docs" / "configs" / "mvsa_pretrained_finetune.yaml"
# name -> (what it is, model settings, learning rate)
STRATEGIES: dict[str, tuple[str, dict, float]] = {
    "frozen": ("Freeze both encoders: fusion + head only", {"freeze": ["text", "image"]}, 1e-3),
    "full": ("full fine-tuning of the text encoder", {}, 5e-5),
    "llrd": (
        "full + LayerwiseLRDecay 0.7",
        {"tuning": [{"class_path": "LayerwiseLRDecay", "init_args": {"parts": ["text"], "decay": 0.7}}]},
        2e-4,
    ),
    "gradual": (
        "GradualUnfreeze from epoch 1",
        {"tuning": [{"class_path": "GradualUnfreeze", "init_args": {"parts": ["text"], "start": 1}}]},
        1e-4,
    ),
    "lora": (
        "LoRA rank 8 on every linear layer",
        {"tuning": [{"class_path": "LoRA", "init_args": {"parts": ["text"], "rank": 8}}]},
        5e-4,
    ),
    "prompt": (
        "PromptTuning, 8 deep prompts",
        {"tuning": [{"class_path": "PromptTuning", "init_args": {"parts": ["text"], "length": 8, "deep": True}}]},
        1e-3,
    ),
    "fgm": (
        "full + Adversarial FGM (epsilon 1)",
        {"tuning": [{"class_path": "Adversarial", "init_args": {"parts": ["text"], "epsilon": 1.0}}]},
        5e-5,
    ),
    "distill": ("frozen encoders + Distillation from `full`", {"freeze": ["text", "image"]}, 1e-3),
}


def fit(name: str, settings: dict, lr: float, args: argparse.Namespace, out: Path) -> dict:
    folder = out / "finetuning" / name
    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(CONFIG.read_text())  # the shipped config, with this strategy's settings
    config["model"].update(settings, cache_dir=str(out / "feature_cache"))
    config["model"]["encoders"]["text"]["init_args"]["max_length"] = args.max_length
    config["model"]["optimizer"]["init_args"]["lr"] = lr
    config["trainer"]["max_epochs"] = args.epochs
    config["data"] = {k: str(ROOT / v) if k in ("train", "val") else v for k, v in config["data"].items()}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    results, probe = folder / "fit.json", folder / "probe.json"
    command = [
        "mmlightning",
        "fit",
        "--config",
        str(folder / "config.yaml"),
        f"--results_path={results}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={folder / 'runs'}",
        "--trainer.callbacks+=run_probe.RunProbe",
        f"--trainer.callbacks.init_args.path={probe}",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{name}: mmlightning fit failed (status {status}); see its output above")
    found, probed = json.loads(results.read_text()), json.loads(probe.read_text())
    seconds = probed["epoch_seconds"]
    return {
        "dev_acc": found["val/label/acc"],
        "dev_f1_weighted": found["val/label/f1_weighted"],
        "trained_parameters": probed["trained_parameters"],
        "all_parameters": probed["all_parameters"],
        "seconds_per_epoch": round(sum(seconds[1:] or seconds) / len(seconds[1:] or seconds), 1),
        "epoch_seconds": seconds,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "fit_seconds": round(time.perf_counter() - start, 1),
        "checkpoint": found["checkpoint"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(STRATEGIES), action="append")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max_length", type=int, default=48)
    args = parser.parse_args()
    if not (DATA / "mvsa_single" / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    out = ROOT / "benchmarks" / "results"
    path = out / "finetuning.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    for name in args.only or list(STRATEGIES):
        what, settings, lr = STRATEGIES[name]
        if name == "distill":
            teacher = table.get("full", {}).get("checkpoint")
            if not teacher or not Path(teacher).is_file():
                print("distill: skipped, it needs the `full` run's checkpoint first (--only full)")
                continue
            settings = {**settings, "tuning": [{"class_path": "Distillation", "init_args": {"teacher": teacher}}]}
        print(f"== {name}: {what} (lr {lr}, {args.epochs} epochs, text max_length {args.max_length})", flush=True)
        table[name] = {"strategy": what, "lr": lr, "epochs": args.epochs, **fit(name, settings, lr, args, out)}
        path.write_text(json.dumps(table, indent=2))
    print("\n| strategy | dev acc | dev wF1 | trained parameters | s/epoch | peak RSS |\n|---|---|---|---|---|---|")
    for name, row in table.items():
        print(
            f"| {name}: {row['strategy']} | {100 * row['dev_acc']:.1f} | {100 * row['dev_f1_weighted']:.1f} | "
            f"{row['trained_parameters']:,} | {row['seconds_per_epoch']} | {row['peak_rss_mb']:,} MB |"
        )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
