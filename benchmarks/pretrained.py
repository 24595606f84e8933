"""Pretrained encoders on real data: fit each shipped pretrained config (MVSA frozen and fine-tuned, CIFAR-10,
Flickr8k retrieval, CoNLL-2003 NER with and without case features and a CRF) from the CLI, time it (wall and CPU
seconds, user + system), keep its metrics (and its test split's, where the config has one), and time the epochs of
the frozen MVSA config with and without the feature cache. `cifar10_ensemble` fits the CIFAR-10 config on seeds 0
and 1 and scores the two as one (`mmlightning ensemble`); its CPU seconds are the two fits' and the ensemble's.

    python benchmarks/pretrained.py [--only mvsa_frozen] [--epochs N]

Needs ../shared/data (beside the repository) and the offline weights `bash scripts/setup.sh` installs; skips with a
message when the data is absent. Writes benchmarks/results/pretrained.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NER = ["val/tags/f1", "test/tags/precision", "test/tags/recall", "test/tags/f1"]
PLAIN = ["--model.encoders.tokens.init_args.case=false", "--model.heads.tags.init_args.crf=false"]
ARGS = {"conll2003_minilm_plain": PLAIN}  # name -> the CLI arguments that make it
RUNS = {  # name -> (config, metrics to report)
    "mvsa_frozen": ("mvsa_pretrained_frozen.yaml", ["val/label/acc", "val/label/f1_weighted"]),
    "mvsa_finetune": ("mvsa_pretrained_finetune.yaml", ["val/label/acc", "val/label/f1_weighted"]),
    "cifar10_frozen": ("cifar10_pretrained.yaml", ["val/label/acc"]),  # val is the test split here
    "cifar10_finetune": ("cifar10_finetune.yaml", ["val/label/acc"]),
    "cifar10_ensemble": ("cifar10_finetune.yaml", ["seed0/label/acc", "seed1/label/acc", "ensemble/label/acc"]),
    "flickr8k_frozen": ("flickr8k_pretrained.yaml", ["val/align/R@5_image_to_text", "val/align/R@5_text_to_image"]),
    "conll2003_minilm": ("conll2003_minilm.yaml", NER),
    "conll2003_minilm_plain": ("conll2003_minilm.yaml", NER),
}


def fit(name: str, config: str, extra: list[str], out: Path) -> dict:
    results = out / f"pretrained_{name}.json"
    command = [
        "mmlightning",
        "fit",
        "--config",
        str(ROOT / "docs" / "configs" / config),
        f"--results_path={results}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={out / 'runs' / name}",
        *extra,
    ]
    start, cpu = time.perf_counter(), _child_cpu()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")])),
    }
    subprocess.run(command, check=True, cwd=ROOT, env=env)  # the epoch timer imports from benchmarks/
    found = {**json.loads(results.read_text()), "fit_seconds": round(time.perf_counter() - start, 1)}
    found["fit_cpu_seconds"] = round(_child_cpu() - cpu, 1)  # user + system, all cores
    if name.startswith("conll2003"):  # scored on its test split too (CIFAR-10's validation split is its test split)
        tested = out / f"pretrained_{name}_test.json"
        run_config = str(Path(found["run_dir"]) / "config.yaml")
        test = ["mmlightning", "test", "--config", run_config, f"--ckpt_path={found['checkpoint']}"]
        subprocess.run([*test, f"--results_path={tested}", "--trainer.enable_progress_bar=false"], check=True, cwd=ROOT)
        found.update(json.loads(tested.read_text()))
    return found


def ensemble_of_seeds(name: str, config: str, extra: list[str], out: Path, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """Fit ``config`` once per seed, then score the fits as one ensemble on the test split; the times add up."""
    fits = [fit(f"{name}_seed{seed}", config, [*extra, f"--seed_everything={seed}"], out) for seed in seeds]
    start, cpu = time.perf_counter(), _child_cpu()
    folder = out / "runs" / name
    command = ["mmlightning", "ensemble", "--ckpt_path", *(f["checkpoint"] for f in fits)]
    rows = str(DATA / "cifar10" / "test.jsonl")
    subprocess.run([*command, "--rows", rows, "--out", str(folder), "--no_wandb"], check=True, cwd=ROOT)
    report = json.loads((folder / "ensemble.json").read_text())
    found = {
        "fit_seconds": round(sum(f["fit_seconds"] for f in fits) + time.perf_counter() - start, 1),
        "fit_cpu_seconds": round(sum(f["fit_cpu_seconds"] for f in fits) + _child_cpu() - cpu, 1),
        "epochs": fits[0]["epochs"],
        "ensemble/label/acc": report["ensemble"]["label"]["acc"],
    }
    for seed, member in zip(seeds, report["members"]):
        found[f"seed{seed}/label/acc"] = member["label"]["acc"]
    return found


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def epoch_seconds(extra: list[str], out: Path, cache: bool) -> list[float]:
    """Per-epoch wall times of the frozen MVSA config, two epochs, read from the timing callback's file."""
    times = out / f"epochs_cache_{cache}.json"
    fit(
        f"epochs_cache_{cache}",
        RUNS["mvsa_frozen"][0],
        [
            *extra,
            "--trainer.max_epochs=2",
            f"--model.cache_frozen={str(cache).lower()}",
            "--trainer.callbacks+=epoch_timer.EpochTimer",
            f"--trainer.callbacks.init_args.path={times}",
        ],
        out,
    )
    return json.loads(times.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--no-cache-timing", action="store_true")
    args = parser.parse_args()
    if not (DATA / "mvsa_single" / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    extra = [f"--trainer.max_epochs={args.epochs}"] if args.epochs else []
    report: dict = {"runs": {}}
    for name in args.only or sorted(RUNS):
        config, keys = RUNS[name]
        make = ensemble_of_seeds if name == "cifar10_ensemble" else fit
        found = make(name, config, [*ARGS.get(name, []), *extra], out)
        report["runs"][name] = {
            "config": f"docs/configs/{config}",
            "fit_seconds": found["fit_seconds"],
            "fit_cpu_seconds": found["fit_cpu_seconds"],
            "epochs": found["epochs"],
            **{k: found.get(k) for k in keys},
        }
    if not args.no_cache_timing:
        with_cache, without = epoch_seconds([], out, True), epoch_seconds([], out, False)
        report["cache"] = {
            "epoch_seconds_with_cache": with_cache,
            "epoch_seconds_without": without,
            "second_epoch_speedup": round(without[1] / with_cache[1], 2),
        }
    (out / "pretrained.json").write_text(json.dumps(report, indent=2))
    print(f"\n{'run':<22} {'fit s':>7} {'CPU s':>7} {'epochs':>7}  metrics")
    for name, row in report["runs"].items():
        shown = ", ".join(f"{k} {row[k]:.3f}" for k in RUNS[name][1] if row.get(k) is not None)
        print(f"{name:<22} {row['fit_seconds']:>7.0f} {row['fit_cpu_seconds']:>7.0f} {row['epochs']:>7}  {shown}")
    if "cache" in report:
        c = report["cache"]
        print(
            f"\nfrozen encoders, epoch seconds: with the cache {c['epoch_seconds_with_cache']}, without {c['epoch_seconds_without']}; second epoch {c['second_epoch_speedup']}x faster"
        )


if __name__ == "__main__":
    main()
