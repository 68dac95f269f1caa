#!/usr/bin/env bash
# Set up, lint (ruff), type-check (mypy), then run the whole test suite (CPU, embedded model, notebooks included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .                 # lint (rules in pyproject.toml [tool.ruff])
.venv/bin/python -m mypy              # type check (pyproject.toml [tool.mypy]: files, ratchet list)
PYTHONPATH=$PWD .venv/bin/lint-imports  # layer contracts of interp/ (pyproject.toml [tool.importlinter])
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
