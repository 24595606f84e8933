#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the tests: the core's (tests/) and each plugin's (plugins/*/tests).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow real-data tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m pytest "$@"
