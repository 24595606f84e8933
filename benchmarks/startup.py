"""Start-up: wall time of `mmlightning --help`, `plugins` and `fit` to its first step, against `import lightning`.

    python benchmarks/startup.py [--repeats 5]

Prints a table and writes benchmarks/results/startup.json. Each command runs in a fresh process; the median of
the repeats is reported, and the ratio to the reference measured in the same run. "fit to first step" is
`mmlightning fit` of the quickstart config on 64 generated samples with `--trainer.max_steps=1` and no
validation, logger or checkpoint: start-up, reading and checking the data, learning the tokenizer, building the
model and one training step (the quickstart's own data, made in a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "startup.json"


def wall(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cli = shutil.which("mmlightning")
    if cli is None:
        sys.exit("mmlightning is not installed here: run `bash scripts/setup.sh` and activate .venv first")
    root = Path(__file__).resolve().parents[1]
    data = Path(tempfile.mkdtemp(prefix="mml-startup-"))
    subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "quickstart" / "make_dataset.py"),
            str(data),
            "--train",
            "64",
            "--val",
            "8",
        ],
        check=True,
        capture_output=True,
    )
    commands = {
        "import lightning (reference)": [sys.executable, "-c", "import lightning"],
        "import torch": [sys.executable, "-c", "import torch"],
        "mmlightning --help": [cli, "--help"],
        "mmlightning plugins": [cli, "plugins"],
        "mmlightning components": [cli, "components"],
        "mmlightning fit to first step": [
            cli,
            "fit",
            "--config",
            str(root / "examples" / "quickstart" / "config.yaml"),
            f"--data.train={data / 'train.jsonl'}",
            "--data.val=null",
            "--trainer.max_steps=1",
            "--trainer.logger=false",
            "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={data}",
            "--data.num_workers=0",
        ],
    }
    wall(commands["mmlightning plugins"], 1)  # warm the file cache once
    results = {name: wall(command, args.repeats) for name, command in commands.items()}
    reference = results["import lightning (reference)"]
    print(f"{'command':<32} {'median s':>9} {'vs import lightning':>20}")
    for name, seconds in results.items():
        print(f"{name:<32} {seconds:>9.2f} {seconds / reference:>19.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "repeats": args.repeats,
                "seconds": results,
                "ratio_to_import_lightning": {k: v / reference for k, v in results.items()},
            },
            indent=2,
        )
    )
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
