#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, unit and integration tests, doctests.
# Extra arguments go to pytest (e.g. -k ingest, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
# pytest exits 5 when it collects no test: that is a failure too, and set -e makes it one
.venv/bin/python -m pytest "$@"
