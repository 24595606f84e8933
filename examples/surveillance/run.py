"""Train the surveillance model, then score each target with each modality removed (`mmlightning robustness`).

Run by scripts/surveillance.sh after the dataset is made; `--epochs N` changes the budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).parent
HEADS = ("alert", "digit", "spoken")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the config's max_epochs")
    parser.add_argument("--work", type=Path, default=Path("surveillance_data/runs"))
    args = parser.parse_args()
    config = yaml.safe_load((HERE / "config.yaml").read_text())
    if args.epochs:
        config["trainer"]["max_epochs"] = args.epochs
    args.work.mkdir(parents=True, exist_ok=True)
    path, results = args.work / "config.yaml", args.work / "results.json"
    path.write_text(yaml.safe_dump(config))
    print("training video + audio + text on alert, digit and spoken ...", flush=True)
    command = ["mmlightning", "fit", "--config", str(path), f"--results_path={results}"]
    subprocess.run([*command, "--trainer.enable_progress_bar=false"], check=True)
    checkpoint = json.loads(results.read_text())["checkpoint"]
    print("scoring the val clips with each modality removed ...", flush=True)
    out = args.work / "robustness"
    subprocess.run(
        ["mmlightning", "robustness", "--ckpt_path", checkpoint, "--out", str(out), "--severities", "1"], check=True
    )
    report = json.loads((out / "robustness.json").read_text())
    shown = [c for c in report["conditions"] if c["corruption"] in (None, "removed")]
    print(f"\nval accuracy ({report['rows']} clips), each target with each modality removed:")
    print(f"{'input':<16}" + "".join(f"{head:>9}" for head in HEADS))
    for condition in shown:
        scores = [condition["metrics"][head]["acc"] for head in HEADS]
        print(f"{condition['condition']:<16}" + "".join(f"{score:>9.3f}" for score in scores))
    print(f"\nthe full table, corruptions included: {out / 'robustness.md'}")


if __name__ == "__main__":
    main()
