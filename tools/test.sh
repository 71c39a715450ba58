#!/usr/bin/env bash
# Set up (if needed) and run the default test suite (slow tests excluded;
# `bash tools/test.sh -m ""` runs everything).
# Two worker processes (pytest-xdist): the solves (Ipopt + MUMPS) and the
# solve.py subprocesses are single-threaded, so one pytest process keeps one of
# the 2 cores busy.  --dist loadfile keeps each test file on one worker, so a
# module-scoped fixture (one shared solve or solve.py run checked by several
# tests) is computed once; --no-loadscope-reorder hands the files out in the
# order tests/conftest.py gives them (longest first, HEAVY_FIRST).  More cores:
# PYTEST_WORKERS=N; serial: PYTEST_WORKERS=0 (or pass `-n 0`, which overrides).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
