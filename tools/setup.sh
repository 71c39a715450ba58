#!/usr/bin/env bash
# Idempotent project set-up for the pip route on Debian/Ubuntu (run as root or
# with sudo available).  Every step checks first and does nothing when its
# result is already there, so a second run takes about a second.
#   1. Debian packages: libamplsolver-dev (AMPL Solver Library), cmake, g++,
#      make, pkg-config (and python3-venv if venv is missing); TeX
#      (texlive-latex-base, texlive-latex-recommended) for the LaTeX tables' test.
#   2. .venv with the pinned requirements.txt.
#   3. PyNumero's ASL library, built from Pyomo's own shipped sources, into
#      the project-local PYOMO_CONFIG_DIR .pyomo/lib.
#   4. cyipopt built against the Ipopt 3.14.19 bundled in the pinned casadi
#      wheel (fallback: the cyipopt-wheels wheel).
#   5. the project's AMPL `ipopt` driver (tools/ampl_ipopt) for the tests of
#      the executable route; not put on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[setup] $*" >&2; }

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3 found; install Python 3.11" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# ---- 1. Debian packages -------------------------------------------------
need=()
for p in libamplsolver-dev cmake g++ make pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c "import sysconfig,os,sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'],'Python.h')) else 1)"; then
  need+=(python3-venv python3-dev)
fi
# pdflatex + booktabs/longtable for the .tex tables' compile test (~76 MB, ~45 s once)
tex=()
for p in texlive-latex-base texlive-latex-recommended; do
  dpkg -s "$p" >/dev/null 2>&1 || tex+=("$p")
done
if [ ${#need[@]} -gt 0 ] || [ ${#tex[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#tex[@]} -gt 0 ]; then
  log "apt-get install --no-install-recommends ${tex[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${tex[@]}" >/dev/null
fi

# ---- 2. virtual environment ---------------------------------------------
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
if [ ! -x "$VPY" ]; then
  log "creating .venv with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.requirements.sha256"
REQ_SUM="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQ_SUM" ]; then
  BUILT=1
  log "installing requirements.txt into .venv"
  "$VPY" -m pip install -q --upgrade pip
  "$VPY" -m pip install -q -r requirements.txt
  echo "$REQ_SUM" > "$STAMP"
fi
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# ---- 3. PyNumero ASL library ---------------------------------------------
ASL_LIB="$ROOT/.pyomo/lib/libpynumero_ASL.so"
if [ ! -f "$ASL_LIB" ]; then
  BUILT=1
  log "building libpynumero_ASL.so from Pyomo's sources"
  ASL_INC=/usr/include/ampl-netlib-solvers
  ASL_SO="$(dpkg -L libamplsolver-dev | grep -E '/libamplsolver\.so$' | head -1)"
  BUILD="$ROOT/.build/pynumero"
  rm -rf "$BUILD"; mkdir -p "$BUILD"
  cmake -S "$SITE/pyomo/contrib/pynumero/src" -B "$BUILD" \
        -DCMAKE_BUILD_TYPE=Release -DASL_INCLUDE_DIR="$ASL_INC" -DASL_LIBRARY="$ASL_SO" >"$BUILD/cmake.log" 2>&1
  cmake --build "$BUILD" --target pynumero_ASL -j 2 >"$BUILD/build.log" 2>&1
  mkdir -p "$ROOT/.pyomo/lib"
  cp "$(find "$BUILD" -name libpynumero_ASL.so | head -1)" "$ASL_LIB.tmp"
  mv "$ASL_LIB.tmp" "$ASL_LIB"
fi

# ---- 4. cyipopt -----------------------------------------------------------
CYIPOPT_VERSION=1.7.0
if ! "$VPY" -c "import cyipopt" >/dev/null 2>&1; then
  CAS="$SITE/casadi"
  PC="$ROOT/.build/pkgconfig"
  mkdir -p "$PC"
  cat > "$PC/ipopt.pc" <<PCEOF
prefix=$CAS
libdir=\${prefix}
includedir=\${prefix}/include/coin-or
Name: Ipopt
Description: Ipopt bundled in the casadi wheel
Version: 3.14.19
Cflags: -I\${includedir}
Libs: -L\${libdir} -lipopt
PCEOF
  BUILT=1
  log "building cyipopt $CYIPOPT_VERSION against casadi's Ipopt"
  "$VPY" -m pip install -q cython==3.3.1 setuptools==84.2.1 wheel==0.48.0
  # $ORIGIN/../casadi: the extension finds casadi's libipopt wherever the
  # venv lives; --no-cache-dir so no wheel built elsewhere is reused.
  if ! PKG_CONFIG_PATH="$PC" LDFLAGS='-Wl,-rpath,$ORIGIN/../casadi' \
       "$VPY" -m pip install -q --no-cache-dir --no-build-isolation \
       --no-binary cyipopt "cyipopt==$CYIPOPT_VERSION" \
     || ! "$VPY" -c "import cyipopt" >/dev/null 2>&1; then
    log "build against casadi failed; falling back to cyipopt-wheels"
    "$VPY" -m pip uninstall -q -y cyipopt >/dev/null 2>&1 || true
    "$VPY" -m pip install -q "cyipopt-wheels==1.7.0.dev0"
  fi
fi
# ---- 5. the AMPL-protocol ipopt executable for the tests of route "ipopt" ---
# (tools/ampl_ipopt: NL in, SOL out, around casadi's Ipopt; ~2 s, idempotent).
# It stays in .build/ampl_ipopt/bin, NOT on PATH: only the tests put it there.
if [ -f "$SITE/casadi/include/coin-or/IpTNLP.hpp" ]; then
  VPY="$VPY" bash "$ROOT/tools/ampl_ipopt/build.sh" >/dev/null
fi
[ "${BUILT:-0}" = 1 ] || exit 0  # nothing was (re)built: the last check still holds
"$VPY" - <<'PYEOF'
import models.solver as s
routes = s.available_routes()
if not routes:
    raise SystemExit("setup: " + s.INSTALL_HINT)
PYEOF
