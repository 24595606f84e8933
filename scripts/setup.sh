#!/usr/bin/env bash
# Creates .venv (if absent) and installs the core and the five first-party plugins into it, editable.
# pip's output goes to .venv/install.log, shown only if the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
echo "installing mmlightning and its plugins into .venv (the first time downloads PyTorch; log: .venv/install.log)"
if ! { python -m pip install --upgrade pip && python -m pip install -e ".[test]" \
        -e plugins/mmlightning-text -e plugins/mmlightning-vision \
        -e plugins/mmlightning-fusions -e plugins/mmlightning-heads -e plugins/mmlightning-audio; } > .venv/install.log 2>&1; then
    tail -40 .venv/install.log
    echo "setup failed; the full log is .venv/install.log" >&2
    exit 1
fi
mmlightning plugins
