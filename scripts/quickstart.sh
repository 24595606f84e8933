#!/usr/bin/env bash
# Sets up (scripts/setup.sh), makes the quickstart dataset, trains the text + image model and each modality
# alone, and prints their validation metrics. A few minutes on 2 CPU cores; W&B logs offline under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python examples/quickstart/make_dataset.py quickstart_data
python examples/quickstart/run.py "$@"
