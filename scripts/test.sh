#!/usr/bin/env bash
# Set up, then run the whole test suite (CPU, embedded model, notebooks included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
