#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: lint, unit and integration tests, doctests.
# Extra arguments go to pytest (e.g. -k ingest, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,torch
# the report tests render pages in headless Chromium (Debian's package); install it where we can
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed (sudo apt-get install chromium): the browser tests will be skipped"
  fi
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
# pytest exits 5 when it collects no test: that is a failure too, and set -e makes it one
.venv/bin/python -m pytest "$@"
