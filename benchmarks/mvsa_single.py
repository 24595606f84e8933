"""Accuracy on MVSA-Single: train docs/configs/mvsa_single.yaml from the CLI, then validate it on dev.

    python benchmarks/mvsa_single.py [--fusion CrossAttentionFusion] [extra mmlightning fit flags...]

Needs ../shared/data/mvsa_single (beside the repository); exits with a message when it is absent.
Writes benchmarks/results/mvsa_single_<fusion>.json with dev accuracy, macro and weighted F1 and the time taken.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "mvsa_single"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", default="CrossAttentionFusion")
    args, extra = parser.parse_known_args()
    if not (DATA / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    fit_json, val_json = out / f"mvsa_fit_{args.fusion}.json", out / f"mvsa_val_{args.fusion}.json"
    config = [
        "--config",
        str(ROOT / "docs" / "configs" / "mvsa_single.yaml"),
        f"--data.train={DATA / 'train.jsonl'}",
        f"--data.val={DATA / 'dev.jsonl'}",
    ]
    start = time.perf_counter()
    subprocess.run(
        [
            "mmlightning",
            "fit",
            *config,
            f"--model.fusion={args.fusion}",
            f"--results_path={fit_json}",
            "--trainer.enable_progress_bar=false",
            *extra,
        ],
        check=True,
        cwd=ROOT,
    )
    fit_seconds = time.perf_counter() - start
    fitted = json.loads(fit_json.read_text())
    run_config = str(Path(ROOT, fitted["run_dir"], "config.yaml"))
    subprocess.run(
        [
            "mmlightning",
            "validate",
            "--config",
            run_config,
            "--ckpt_path",
            str(Path(ROOT, fitted["checkpoint"])),
            "--trainer.logger=false",
            f"--results_path={val_json}",
        ],
        check=True,
        cwd=ROOT,
    )
    metrics = json.loads(val_json.read_text())
    result = {
        "fusion": args.fusion,
        "epochs": fitted["epochs"],
        "fit_seconds": round(fit_seconds),
        "dev_accuracy": metrics["val/label/acc"],
        "dev_f1_macro": metrics["val/label/f1_macro"],
        "dev_f1_weighted": metrics["val/label/f1_weighted"],
    }
    (out / f"mvsa_single_{args.fusion}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
