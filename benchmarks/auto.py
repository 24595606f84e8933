"""`mmlightning auto` on every single-label real dataset in ../shared/data: the roles it infers (no overrides), and
per preset the dev metric and the wall time, within a time limit. Each fit runs in its own process, holding 10% of
the training rows out to pick checkpoints (the dev split is only scored, never seen in training or selection).

    python benchmarks/auto.py [--only mvsa_single] [--preset fast] [--time_limit 300]

Needs ../shared/data beside the repository (skips with a message when absent) and the offline weights
`bash scripts/setup.sh` installs. Writes benchmarks/results/auto.json and prints a Markdown table (docs/auto.md).
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
# dataset -> (train, dev, the dev metric to report, the roles a correct inference gives)
DATASETS = {
    "mvsa_single": ("train", "dev", "acc", {"id": "id", "text": "text", "image": "image", "label": "label"}),
    "clothing_reviews": (
        "train",
        "dev",
        "acc",
        {
            "id": "id",
            "text": "text",
            "age": "numeric",
            "positive_feedback": "numeric",
            "division": "categorical",
            "department": "categorical",
            "class": "categorical",
            "rating": "derived",
            "label": "label",
        },
    ),
    "ham10000": (
        "train",
        "dev",
        "acc",
        {
            "id": "id",
            "image": "image",
            "age": "numeric",
            "sex": "categorical",
            "site": "categorical",
            "malignant": "derived",
            "label": "label",
        },
    ),
    "adult": (
        "train",
        "val",
        "acc",
        {
            "id": "id",
            "age": "numeric",
            "workclass": "categorical",
            "fnlwgt": "numeric",
            "education": "categorical",
            "education_num": "numeric",
            "marital_status": "categorical",
            "occupation": "categorical",
            "relationship": "categorical",
            "race": "categorical",
            "sex": "categorical",
            "capital_gain": "numeric",
            "capital_loss": "numeric",
            "hours_per_week": "numeric",
            "native_country": "categorical",
            "label": "label",
        },
    ),
    "california": (
        "train",
        "val",
        "rmse",
        {
            "id": "id",
            **{
                c: "numeric"
                for c in (
                    "MedInc",
                    "HouseAge",
                    "AveRooms",
                    "AveBedrms",
                    "Population",
                    "AveOccup",
                    "Latitude",
                    "Longitude",
                )
            },
            "label": "label",
        },
    ),
    "cifar10": ("train", "test", "acc", {"id": "id", "image": "image", "label": "label"}),
    "av_digits": (
        "train",
        "dev",
        "acc",
        {"id": "id", "image": "image", "audio": "audio", "speaker": "categorical", "label": "label"},
    ),
}

ONE = """
import json, sys, time
from mmlightning.auto.predictor import Predictor
dataset, train, dev, preset, limit, folder = sys.argv[1:7]
start = time.monotonic()
predictor = Predictor(label="label", preset=preset, path=folder).fit(train, time_limit=float(limit))
fit_seconds = time.monotonic() - start
scores = predictor.evaluate(dev)
print("RESULT " + json.dumps({"fit_seconds": fit_seconds, "scores": scores, "summary": predictor.fit_summary(), "leaderboard": predictor.leaderboard()}, default=str))
"""


def run(dataset: str, preset: str, limit: float) -> dict:
    train, dev, metric, expected = DATASETS[dataset]
    folder = OUT / "auto_runs" / f"{dataset}-{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    args = [
        sys.executable,
        "-c",
        ONE,
        dataset,
        str(DATA / dataset / f"{train}.jsonl"),
        str(DATA / dataset / f"{dev}.jsonl"),
        preset,
        str(limit),
        str(folder),
    ]
    began = time.monotonic()
    done = subprocess.run(
        args, capture_output=True, text=True, env={"WANDB_MODE": "offline", **__import__("os").environ}
    )
    wall = time.monotonic() - began
    (OUT / "auto_logs").mkdir(parents=True, exist_ok=True)
    (OUT / "auto_logs" / f"{dataset}-{preset}.log").write_text(done.stdout + done.stderr)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not found:
        return {
            "dataset": dataset,
            "preset": preset,
            "error": (done.stderr or done.stdout)[-1500:],
            "wall_seconds": wall,
        }
    result = json.loads(found[-1][len("RESULT ") :])
    roles = {c["column"]: c["role"] for c in result["summary"]["roles"]["columns"]}
    wrong = {c: (roles.get(c), r) for c, r in expected.items() if roles.get(c) != r}
    return {
        "dataset": dataset,
        "preset": preset,
        "time_limit": limit,
        "metric": metric,
        "dev": result["scores"].get(metric),
        "dev_scores": {k: v for k, v in result["scores"].items() if "/" not in k},
        "fit_seconds": round(result["fit_seconds"], 1),
        "wall_seconds": round(wall, 1),
        "roles": roles,
        "roles_wrong": wrong,
        "task": result["summary"]["roles"]["task"],
        "leaderboard": result["leaderboard"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=list(DATASETS))
    parser.add_argument("--preset", nargs="*", default=["fast"])
    parser.add_argument("--time_limit", type=float, default=300)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is not there (the real datasets live beside the repository)")
        return 0
    from mmlightning.machine import machine

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "auto.json"
    results = json.loads(path.read_text()).get("results", []) if path.is_file() else []
    for dataset in args.only:
        for preset in args.preset:
            print(f"{dataset} {preset} (time limit {args.time_limit:.0f} s) ...", flush=True)
            result = run(dataset, preset, args.time_limit)
            results = [r for r in results if (r["dataset"], r["preset"]) != (dataset, preset)] + [result]
            path.write_text(json.dumps({"machine": machine().line(), "results": results}, indent=2))
            print(json.dumps({k: v for k, v in result.items() if k not in ("leaderboard", "roles")}), flush=True)
    print("\n| dataset | preset | dev metric | dev | fit (s) | time limit (s) | roles right |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['dataset']} | {r['preset']} | error | | | | |")
            continue
        shown = f"{100 * r['dev']:.2f}" if r["metric"] == "acc" else f"{r['dev']:.4f}"
        print(
            f"| {r['dataset']} | {r['preset']} | {r['metric']} | {shown} | {r['fit_seconds']:.0f} | {r['time_limit']:.0f} | {'all' if not r['roles_wrong'] else r['roles_wrong']} |"
        )
    print(f"\nmachine: {machine().line()}; written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
