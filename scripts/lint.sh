#!/usr/bin/env bash
# Lints with the settings in pyproject.toml: ruff (rules and formatting, 120 columns) and mypy over the core and
# the first-party plugins. Run after scripts/setup.sh; installs the pinned linters into .venv if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip install -q -e ".[lint]" >> .venv/install.log 2>&1
ruff check .
ruff format --check .
mypy
