#!/usr/bin/env bash
# Set up, then run the main job on the embedded default: a small SustainScore + CAS run with report and figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/interp sustain --config configs/main.yaml --out "${OUT:-runs/main}"
