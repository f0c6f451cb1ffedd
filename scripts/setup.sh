#!/usr/bin/env bash
# Sets up a virtual environment in .venv with Vigil installed (editable) and the given extras.
# usage: bash scripts/setup.sh [EXTRAS]     e.g. bash scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || python=python

if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    # Debian and Ubuntu ship venv separately
    rm -rf .venv
    if command -v apt-get >/dev/null; then
      echo "installing python3-venv with apt-get"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    "$python" -m venv .venv
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# the torch extra: take the CPU build of torch first, so the extra's range installs nothing more
if [[ ",$extras," == *",torch,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet --editable "$spec"
