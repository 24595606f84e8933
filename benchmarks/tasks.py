"""The task heads on real data, each trained from the CLI with a shipped config, then tested on its test split.

    python benchmarks/tasks.py [--only conll2003,flickr8k,flickr8k_caption,cifar10,mvsa_multitask] [--epochs N]

Each run is `mmlightning fit --config docs/configs/NAME.yaml`, then, where the data has a test split,
`mmlightning test --config RUN/config.yaml --ckpt_path RUN/checkpoints/LAST.ckpt`. Needs ../shared/data beside
the repository; exits with a message when it is absent. Writes benchmarks/results/tasks.json (merged with earlier
runs, so --only re-runs some and keeps the rest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results"
TASKS = {  # name: (config, data folder, metrics to report)
    "conll2003": (
        "conll2003_ner.yaml",
        "conll2003",
        ["tags/precision", "tags/recall", "tags/f1", "tags/f1/PER", "tags/f1/LOC", "tags/f1/ORG", "tags/f1/MISC"],
    ),
    "flickr8k": (
        "flickr8k_contrastive.yaml",
        "flickr8k_1k",
        [f"align/R@{k}_{d}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)],
    ),
    "flickr8k_caption": ("flickr8k_caption.yaml", "flickr8k_1k", ["caption/bleu4", "caption/rougeL"]),
    "cifar10": ("cifar10.yaml", "cifar10", ["label/acc", "label/f1_macro"]),
    "mvsa_multitask": (
        "mvsa_single_multitask.yaml",
        "mvsa_single",
        ["label/acc", "label/f1_weighted", "label/f1_macro"]
        + [f"align/R@{k}_{d}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)],
    ),
}


def cli(*args: str) -> None:
    done = subprocess.run(
        ["mmlightning", *args, "--trainer.enable_progress_bar=false"], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"failed: mmlightning {' '.join(args)}\n{done.stderr[-3000:]}")


def run(name: str, epochs: int | None) -> dict:
    config, _, metrics = TASKS[name]
    fit_json, test_json = OUT / f"task_{name}_fit.json", OUT / f"task_{name}_test.json"
    extra = [f"--trainer.max_epochs={epochs}"] if epochs else []
    start = time.perf_counter()
    cli("fit", "--config", f"docs/configs/{config}", f"--results_path={fit_json}", *extra)
    fitted = json.loads(fit_json.read_text())
    seconds = round(time.perf_counter() - start)
    result = {
        "config": config,
        "epochs": fitted["epochs"],
        "fit_seconds": seconds,
        "val": {m: fitted.get(f"val/{m}") for m in metrics},
    }
    run_config = Path(fitted["run_dir"]) / "config.yaml"
    if "test:" in (ROOT / "docs" / "configs" / config).read_text():
        cli("test", "--config", str(run_config), f"--ckpt_path={fitted['checkpoint']}", f"--results_path={test_json}")
        tested = json.loads(test_json.read_text())
        result["test"] = {m: tested.get(f"test/{m}") for m in metrics}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated task names: " + ", ".join(TASKS))
    parser.add_argument("--epochs", type=int, default=None, help="override the configs' max_epochs")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        sys.exit(f"unknown task {unknown}; choose from {', '.join(TASKS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    saved = OUT / "tasks.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    for name in names:
        folder = DATA / TASKS[name][1]
        if not folder.is_dir():
            print(f"{name}: skipped, {folder} not found (the shared datasets sit beside the repository)")
            continue
        results[name] = run(name, args.epochs)
        saved.write_text(json.dumps(results, indent=2))
        shown = {
            split: {k: round(v, 4) for k, v in results[name].get(split, {}).items() if v is not None}
            for split in ("val", "test")
        }
        print(
            f"{name} ({results[name]['epochs']} epochs, {results[name]['fit_seconds']} s): {json.dumps(shown)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
