#!/usr/bin/env bash
# Build the project's AMPL-protocol `ipopt` executable (ampl_ipopt.cpp, see its
# header) into .build/ampl_ipopt/bin/ipopt (and the exit hook exit_guard.c
# into .build/ampl_ipopt/lib/libexitguard.so), against the Ipopt bundled in the
# .venv's casadi wheel and Debian's libamplsolver (tools/setup.sh installs
# both).  Idempotent: rebuilt only when the source or this script changed.
# Prints the executable's path.  The folder is NOT put on PATH (the solver
# layer prefers an `ipopt` on PATH; the tests add it for their own scope).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VPY="${VPY:-$ROOT/.venv/bin/python}"
OUT="$ROOT/.build/ampl_ipopt"
EXE="$OUT/bin/ipopt"
SRC="$ROOT/tools/ampl_ipopt/ampl_ipopt.cpp"
GUARD_SRC="$ROOT/tools/ampl_ipopt/exit_guard.c"
GUARD="$OUT/lib/libexitguard.so"
SUM="$(cat "$SRC" "$GUARD_SRC" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ -x "$EXE" ] && [ -f "$GUARD" ] && [ "$(cat "$OUT/source.sha256" 2>/dev/null)" = "$SUM" ]; then
  echo "$EXE"; exit 0
fi
CAS="$("$VPY" -c 'import casadi, os; print(os.path.dirname(casadi.__file__))')"
ASL_INC=/usr/include/ampl-netlib-solvers
ASL_SO="$(dpkg -L libamplsolver-dev 2>/dev/null | grep -E '/libamplsolver\.so$' | head -1)"
[ -f "$CAS/include/coin-or/IpTNLP.hpp" ] || { echo "build.sh: no Ipopt headers in $CAS" >&2; exit 1; }
[ -n "$ASL_SO" ] && [ -f "$ASL_INC/asl_pfgh.h" ] || { echo "build.sh: libamplsolver-dev is not installed" >&2; exit 1; }
mkdir -p "$OUT/bin"
g++ -O2 -std=c++17 -w -I"$CAS/include/coin-or" -I"$ASL_INC" "$SRC" -o "$EXE.tmp" \
    -L"$CAS" -l:libipopt.so.3 "$ASL_SO" -ldl -Wl,-rpath,"$CAS"
mv "$EXE.tmp" "$EXE"
# the exit hook models/solver.py loads (see exit_guard.c)
mkdir -p "$OUT/lib"
gcc -O2 -shared -fPIC "$GUARD_SRC" -o "$GUARD.tmp"
mv "$GUARD.tmp" "$GUARD"
echo "$SUM" > "$OUT/source.sha256"
echo "$EXE"
