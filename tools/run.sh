#!/usr/bin/env bash
# Set up (if needed) and run the main job: python solve.py [args].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" solve.py "$@"
