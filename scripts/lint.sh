#!/usr/bin/env bash
# Lints with the settings in pyproject.toml: ruff (rules and formatting, 120 columns), mypy over the core and the
# first-party plugins (type-checked against the contracts), mypy --strict over the contracts and the public names,
# and lint-imports (the floors of docs/architecture.md, no cycles). Run after scripts/setup.sh; installs the pinned
# linters into .venv if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip install -q -e ".[lint]" >> .venv/install.log 2>&1
ruff check .
ruff format --check .
mypy
mypy --strict --follow-imports=silent mmlightning/__init__.py mmlightning/contracts.py mmlightning/features.py \
    mmlightning/processing.py mmlightning/strategy.py mmlightning/bundle.py mmlightning/model.py
lint-imports
