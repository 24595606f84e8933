"""Dev accuracy on AV digits for every fusion and each modality alone: same encoders, same budget, from the CLI.

    python benchmarks/av_digits.py [--epochs 6] [--only ConcatFusion,BottleneckFusion]

With --only, the other runs' figures are kept from the last full run (same epochs) in the results JSON.

Needs ../shared/data/av_digits (beside the repository); exits with a message when it is absent. Each run is
`mmlightning fit --config docs/configs/av_digits.yaml --model.fusion=NAME` (single modalities: the other encoder
removed, ConcatFusion over the one left). Writes benchmarks/results/av_digits.json and docs/av_digits.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "av_digits"
CONFIG = ROOT / "docs" / "configs" / "av_digits.yaml"
OUT = ROOT / "benchmarks" / "results"


def fusions() -> list[str]:
    from mmlightning_fusions.plugin import FUSIONS

    return [path.split(":")[1] for path in FUSIONS]


def run(name: str, config: dict, epochs: int) -> dict:
    slug = name.replace(" ", "_")
    path, results = OUT / f"av_{slug}.yaml", OUT / f"av_{slug}.json"
    path.write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    command = [
        "mmlightning",
        "fit",
        "--config",
        str(path),
        f"--trainer.max_epochs={epochs}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_checkpointing=false",
        f"--results_path={results}",
    ]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    metrics = json.loads(results.read_text())
    return {
        "dev_accuracy": metrics["val/label/acc"],
        "dev_f1_macro": metrics["val/label/f1_macro"],
        "seconds": round(time.perf_counter() - start),
    }


def variants(base: dict, only: set[str] | None) -> dict[str, dict]:
    out = {}
    for keep in ("image", "audio"):
        alone = copy.deepcopy(base)
        alone["model"]["encoders"] = {keep: base["model"]["encoders"][keep]}
        out[f"{keep} only"] = alone
    for fusion in fusions():
        config = copy.deepcopy(base)
        config["model"]["fusion"] = {"class_path": fusion, "init_args": {"dim": 64}}
        out[fusion] = config
        if fusion == "LateFusion":  # late fusion of predictions: averaged above, learned weights here
            learned = copy.deepcopy(config)
            learned["model"]["fusion"]["init_args"]["combine"] = "learned"
            out["LateFusion learned"] = learned
    return {k: v for k, v in out.items() if not only or k in only}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated run names")
    args = parser.parse_args()
    if not (DATA / "train.jsonl").is_file():
        print(f"skipped: {DATA} not found (the shared datasets sit beside the repository)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(CONFIG.read_text())
    base["data"] = {**base["data"], "train": str(DATA / "train.jsonl"), "val": str(DATA / "dev.jsonl")}
    saved = OUT / "av_digits.json"
    only = set(filter(None, args.only.split(",")))
    results = {}
    if only and saved.is_file() and json.loads(saved.read_text())["epochs"] == args.epochs:
        results = json.loads(saved.read_text())["results"]  # --only re-runs some and keeps the rest
    for name, config in variants(base, only).items():
        results[name] = run(name, config, args.epochs)
        print(
            f"{name:<28} dev accuracy {results[name]['dev_accuracy']:.3f}  macro F1 {results[name]['dev_f1_macro']:.3f}  ({results[name]['seconds']} s)",
            flush=True,
        )
    saved.write_text(json.dumps({"epochs": args.epochs, "results": results}, indent=2))
    write_table(results, args.epochs)


def write_table(results: dict, epochs: int) -> None:
    rows = "\n".join(
        f"| {name} | {r['dev_accuracy']:.3f} | {r['dev_f1_macro']:.3f} | {r['seconds']} |"
        for name, r in results.items()
    )
    (ROOT / "docs" / "av_digits.md").write_text(f"""# AV digits: every fusion, and each modality alone

Dev accuracy on `../shared/data/av_digits` (2,400 train, 300 dev; 10 classes), each trained from scratch with the
same encoders (a timm `test_resnet` on the 32 px image, a 2-layer `AudioEncoder` on 40 log-mel bins), the same
optimizer and {epochs} epochs, on a 2-core CPU. Single runs with seed 0: differences of a point or two are noise.
`LateFusion` is late fusion of predictions: a tower and a prediction per modality, combined as the weighted mean
of their log-probabilities, uniform or with learned weights (`--model.fusion.combine=learned`). Averaging the
probabilities instead reached only 0.850 (uniform) and 0.807 (learned), below audio alone, so the head does not.

```bash
python benchmarks/av_digits.py --epochs {epochs}          # all of them (writes this page)
mmlightning fit --config docs/configs/av_digits.yaml --model.fusion=BottleneckFusion --trainer.max_epochs={epochs}   # one
```

| run | dev accuracy | dev macro F1 | seconds (2 CPU cores) |
|---|---|---|---|
{rows}
""")


if __name__ == "__main__":
    sys.exit(main())
