#!/usr/bin/env bash
# Sets everything up and runs the demo: a realistic project in ./vigil-data (or $VIGIL_HOME).
# Extra arguments go to `vigil demo` (e.g. --no-serve, --home DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vigil demo "$@"
