#!/usr/bin/env bash
# Creates .venv (if absent) and installs the core and the four first-party plugins into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]" \
    -e plugins/mmlightning-text -e plugins/mmlightning-vision \
    -e plugins/mmlightning-fusions -e plugins/mmlightning-heads
mmlightning plugins
