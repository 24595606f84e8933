"""Train the quickstart model, and the same model on each modality alone, then print their metrics.

Run by scripts/quickstart.sh after the dataset is made; `--epochs N` changes the budget.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent


def variants(config: dict) -> dict[str, dict]:
    """The fused model, and one model per modality (same encoder, a concatenation fusion over one input)."""
    out = {"text + image": config}
    for keep in ("text", "image"):
        alone = copy.deepcopy(config)
        alone["model"]["encoders"] = {keep: config["model"]["encoders"][keep]}
        alone["model"]["freeze"] = [key for key in config["model"].get("freeze", []) if key == keep]
        alone["model"]["fusion"] = {"class_path": "ConcatFusion", "init_args": {"dim": 64}}
        alone["trainer"]["logger"] = False  # no W&B run of its own: its checkpoint and config go in its own folder
        alone["trainer"]["default_root_dir"] = f"runs/{keep}_only"
        out[f"{keep} only"] = alone
    return out


def train(name: str, config: dict, work: Path) -> dict:
    slug = name.replace(" + ", "_").replace(" ", "_")
    path, results = work / f"{slug}.yaml", work / f"{slug}.json"
    path.write_text(yaml.safe_dump(config))
    print(f"training {name} ...", flush=True)
    subprocess.run(
        [
            "mmlightning",
            "fit",
            "--config",
            str(path),
            f"--results_path={results}",
            "--trainer.enable_progress_bar=false",
        ],
        check=True,
    )
    return json.loads(results.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the config's max_epochs")
    parser.add_argument("--work", type=Path, default=Path("quickstart_data/runs"))
    args = parser.parse_args()
    config = yaml.safe_load((HERE / "config.yaml").read_text())
    if args.epochs:
        config["trainer"]["max_epochs"] = args.epochs
    args.work.mkdir(parents=True, exist_ok=True)
    results = {name: train(name, variant, args.work) for name, variant in variants(config).items()}
    print("\nquickstart: validation on 300 held-out samples (3 balanced classes; chance is 0.333)\n")
    print(f"{'model':<14} {'accuracy':>9} {'macro F1':>9}")
    for name, metrics in results.items():
        print(f"{name:<14} {metrics['val/label/acc']:>9.3f} {metrics['val/label/f1_macro']:>9.3f}")
    fused = results["text + image"]
    print(
        f"\nThe fused model's run: {fused['run_dir']} (checkpoint {fused['checkpoint']}); W&B logged offline under runs/wandb."
    )


if __name__ == "__main__":
    sys.exit(main())
