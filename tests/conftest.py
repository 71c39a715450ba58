"""Shared test fixtures.

* ``ROOT`` -- the project folder; it is put on ``sys.path`` so that tests
  import ``models`` exactly as ``solve.py`` does.
* ``run_solve`` -- runs ``solve.py`` in a subprocess with this interpreter
  (the project's ``.venv/bin/python`` when pytest is started from it) and
  returns ``(returncode, stdout, stderr)``.
* ``out_dir`` -- a not-yet-existing output folder inside ``tmp_path``.

Speed markers (IDAES style): every test carries exactly one of ``unit``
(pure Python, milliseconds), ``component`` (a few small Ipopt solves) or
``integration`` (a subprocess: ``solve.py`` or a writer to kill).  A module
may set ``SPEED = "unit"`` (etc.) as the default for its tests that carry no
speed marker of their own; ``slow`` is declared in pytest.ini and is excluded
from the default run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLVE_PY = ROOT / "solve.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# A subprocess that runs longer than this is hung, not slow: solve.py on a
# tiny scenario takes ~2 s (1 s of it importing scipy/pandas/Pyomo).
SUBPROCESS_TIMEOUT = 120


SPEEDS = {
    "unit": "pure Python, no solver, milliseconds",
    "component": "a few small Ipopt solves",
    "integration": "runs solve.py (or another script) in a subprocess",
}


def pytest_configure(config):
    for name, what in SPEEDS.items():
        config.addinivalue_line("markers", f"{name}: {what}")


# Test files whose default tests take longest (seconds of the serial suite, summed
# per file, measured at load ~5 on 2 cores, session 9), longest first.  Under
# pytest-xdist (tools/test.sh: -n 2 --dist loadfile --no-loadscope-reorder) the
# files are handed to the workers in collection order, so these go first and the
# many short files fill the end: longest-first keeps both cores busy to the last
# minute (alphabetical order ended the run with test_versions.py, ~100 s, alone).
# Only the order changes, never which tests run; a file not listed keeps its place.
HEAVY_FIRST = ("test_competition.py", "test_budgets.py", "test_competition_checks.py", "test_versions.py",
               "test_scenario_errors.py", "test_distributions.py", "test_mutation.py", "test_hardening.py",
               "test_sweep.py", "test_closed_form_competition.py", "test_multidim.py", "test_report.py",
               "test_faults.py", "test_plans.py")


def pytest_collection_modifyitems(config, items):
    """Give tests without a speed marker of their own their module's ``SPEED``;
    in an xdist worker, put the files of HEAVY_FIRST first (stable sort)."""
    for item in items:
        default = getattr(getattr(item, "module", None), "SPEED", None)
        if default and not any(m.name in SPEEDS for m in item.iter_markers()):
            item.add_marker(getattr(pytest.mark, default))
    if hasattr(config, "workerinput"):  # every worker sorts alike, so their collections stay identical
        rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda it: rank.get(it.path.name, len(rank)))


def solve_command(*args) -> list[str]:
    """The argv that runs ``solve.py`` with the interpreter running the tests."""
    return [sys.executable, str(SOLVE_PY), *map(str, args)]


def run_solve_cli(*args, cwd=None, timeout: float = SUBPROCESS_TIMEOUT) -> tuple[int, str, str]:
    """Run ``solve.py ARGS`` and return ``(returncode, stdout, stderr)``."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # solve.py must find `models` on its own
    proc = subprocess.run(solve_command(*args), cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def run_solve():
    """``run_solve(*args, cwd=None)`` -> ``(returncode, stdout, stderr)``."""
    return run_solve_cli


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An output folder that does not exist yet (solve.py must create it, or not)."""
    return tmp_path / "out"


# The smallest valid scenario (cost regime, 10 types): the base the bad-input
# tests mutate one field of.
TINY_SCENARIO = """\
name = "case"

[technology]
sigma = 0.5
rho = 0.5

[[technology.tokens]]
name = "input"
weight = 0.6
cost = 1.0

[[technology.tokens]]
name = "output"
weight = 0.4
cost = 4.0

[technology.fine_tuning]
gamma = 0.2

[[technology.fine_tuning.classes]]
name = "ft"
weight = 1.0
cost = 2.0

[types]
distribution = "uniform"
n = 10

[regimes.cost]
quantities = [0.5, 1.0]
"""


# ------------------------------------------------ the executable route (ipopt on PATH)
def _build_ampl_ipopt() -> Path:
    """The project's AMPL-protocol ``ipopt`` (tools/ampl_ipopt: an NL-in/SOL-out
    driver around the pinned Ipopt), built once (~2 s; cached by source hash)."""
    proc = subprocess.run(["bash", str(ROOT / "tools" / "ampl_ipopt" / "build.sh")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "VPY": sys.executable})
    if proc.returncode != 0:  # tools/setup.sh installs what it needs: a failure, not a skip
        pytest.fail("could not build the AMPL ipopt driver (tools/ampl_ipopt/build.sh): "
                    + (proc.stderr.strip() or proc.stdout.strip())[-2000:])
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def ipopt_executable() -> Path:
    """An ``ipopt`` executable: the one on PATH (conda), else the project's own driver."""
    import shutil

    found = shutil.which("ipopt")
    return Path(found) if found else _build_ampl_ipopt()


@pytest.fixture
def exe_on_path(ipopt_executable, monkeypatch) -> Path:
    """Put ``ipopt_executable`` first on PATH for one test (Pyomo's executable cache rehashed
    on entry and exit), so that route "ipopt" runs it through Pyomo's NL writer / SOL reader."""
    from pyomo.common import Executable

    monkeypatch.setenv("PATH", f"{ipopt_executable.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    Executable("ipopt").rehash()
    yield ipopt_executable
    monkeypatch.undo()
    Executable("ipopt").rehash()


def compile_latex(tmp_path: Path, inputs, clearpage: bool = True) -> str:
    """Compile ``inputs`` (.tex paths, or names relative to ``tmp_path``) in one
    plain article with the packages the README names (booktabs, longtable; no
    geometry: export fits the article's 345 pt text width); assert pdflatex
    succeeds and return its log.  tools/setup.sh installs pdflatex, so on the pip
    route (and in CI) its absence is a failure; elsewhere (conda: no TeX) a skip."""
    import shutil

    if shutil.which("pdflatex") is None:
        if os.environ.get("CI") or (ROOT / ".venv").is_dir():
            pytest.fail("pdflatex is missing: run `bash tools/setup.sh` (texlive-latex-base/-recommended)")
        pytest.skip("no TeX engine in this environment (conda route)")
    sep = "\\clearpage" if clearpage else ""
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage{longtable}\\usepackage[utf8]{inputenc}"
        "\\begin{document}\n" + "\n".join(f"\\input{{{p}}}{sep}" for p in inputs) + "\n\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    return (tmp_path / "doc.log").read_text(errors="replace")


# competition_81_0 (bench/valid_scenarios.py seed 81): Beta(0.73, 29.3) on [0, 2.36], masses of the top types
# 1e-16 … 1e-52 at N = 56; used by test_competition_leader.py and test_competition_checks.py
SCN_COMPETITION_81_0 = """
name = "competition_81_0"
[technology]
sigma = 0.49
rho = -0.607
[[technology.tokens]]
name = "tok1"
weight = 0.571557
cost = 32.1176
[[technology.tokens]]
name = "tok2"
weight = 0.393723
cost = 0.359732
[[technology.tokens]]
name = "tok3"
weight = 0.034720000000000084
cost = 0.191604
[types]
distribution = "beta"
low = 0.0
high = 2.35968
p = 0.7303
q = 29.27
n = 56
[regimes.competition]
gamma_L = 0.4407
gamma_F = 0.0
c_L = 0.181373
c_F = 0.12666
task_cells = 6
task_profiles = 2
convergence = [22, 44]
"""
