"""Start-up: wall time of `mmlightning --help` and `mmlightning plugins` against `python -c "import lightning"`.

    python benchmarks/startup.py [--repeats 5]

Prints a table and writes benchmarks/results/startup.json. Each command runs in a fresh process; the median of
the repeats is reported, and the ratio to the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
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
    commands = {
        "import lightning (reference)": [sys.executable, "-c", "import lightning"],
        "import torch": [sys.executable, "-c", "import torch"],
        "mmlightning --help": [cli, "--help"],
        "mmlightning plugins": [cli, "plugins"],
        "mmlightning components": [cli, "components"],
    }
    wall(commands["mmlightning plugins"], 1)  # warm the file cache once
    results = {name: wall(command, args.repeats) for name, command in commands.items()}
    reference = results["import lightning (reference)"]
    print(f"{'command':<30} {'median s':>9} {'vs import lightning':>20}")
    for name, seconds in results.items():
        print(f"{name:<30} {seconds:>9.2f} {seconds / reference:>19.2f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(), "repeats": args.repeats,
                               "seconds": results, "ratio_to_import_lightning": {k: v / reference for k, v in results.items()}}, indent=2))
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
