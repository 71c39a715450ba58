#!/usr/bin/env bash
# Set up (if needed) and run the default test suite (slow tests excluded;
# `bash tools/test.sh -m ""` runs everything).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
