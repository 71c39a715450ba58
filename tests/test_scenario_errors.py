"""Malformed input through the real command line: ``solve.py`` as a subprocess.

Contract (solve.py docstring and models/scenario.py): bad input exits with
code 2, prints one line ``error: ...`` on stderr that names the field (dotted
path) and what is allowed, prints no traceback, and writes nothing.

Each subprocess spends ~1 s importing scipy/pandas/Pyomo, so all the cases
are started together (bounded by the CPU count) by one module-scoped fixture;
the parametrised tests then only read their own outcome.
"""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SCENARIO

SPEED = "integration"  # default speed marker (conftest); tests marked otherwise override it

# A small valid scenario; every case below breaks it in one place.
BASE = TINY_SCENARIO + "\n[solver]\ntol = 1e-10\n"


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"edit target {old!r} must occur once"
    return text.replace(old, new)


@dataclass
class Case:
    id: str
    files: dict[str, str]  # name -> content, written into the case folder
    must_name: list[str]  # substrings the error line must contain (field, allowed values)
    args: list[str] = field(default_factory=list)  # extra CLI args; {dir} is the case folder
    scenario: str | None = "scenario.toml"  # None: no scenario argument at all


CASES = [
    Case("sigma-ge-1", {"scenario.toml": edit("sigma = 0.5", "sigma = 1.0")},
         ["'technology.sigma'", "= 1", "0 < sigma < 1"]),
    Case("sigma-le-0", {"scenario.toml": edit("sigma = 0.5", "sigma = 0")},
         ["'technology.sigma'", "= 0", "0 < sigma < 1"]),
    # stranger S7-5: rho = -1e4 was accepted by "rho <= 1" and ended in restoration failures
    Case("rho-below-min", {"scenario.toml": edit("rho = 0.5", "rho = -1e4")},
         ["'technology.rho'", "-10000", "-50 <= rho <= 1"]),
    Case("rho-minus-inf", {"scenario.toml": edit("rho = 0.5", "rho = -inf")},
         ["'technology.rho'", "-inf", "-50 <= rho <= 1"]),
    Case("negative-token-cost", {"scenario.toml": edit("cost = 4.0", "cost = -4.0")},
         ["'technology.tokens[1].cost'", "-4", "0 < cost"]),
    Case("weights-not-summing-to-1", {"scenario.toml": edit("weight = 0.6", "weight = 0.7")},
         ["'technology.tokens[*].weight'", "1.1", "sum to 1"]),
    Case("sigma-plus-gamma-ge-1", {"scenario.toml": edit("gamma = 0.2", "gamma = 0.5")},
         ["'technology.fine_tuning.gamma'", "sigma + gamma < 1", "gamma < 1 - sigma = 0.5"]),
    Case("unknown-regime", {"scenario.toml": edit("[regimes.cost]", "[regimes.costs]")},
         ["'regimes.costs'", "a known regime: ", "cost"]),
    Case("unknown-field-typo", {"scenario.toml": edit("sigma = 0.5", "sigma = 0.5\nsimga = 0.5")},
         ["'technology.simga'", "allowed fields here: fine_tuning, rho, sigma, tokens"]),
    Case("empty-regimes-table", {"scenario.toml": edit("[regimes.cost]\nquantities = [0.5, 1.0]\n", "[regimes]\n")},
         ["'regimes'", "at least one regime", "cost"]),
    Case("n-is-1", {"scenario.toml": edit("n = 10", "n = 1")},
         ["'types.n'", "= 1", "an integer with 2 <= n <= 1000000"]),
    # stranger S8 D8: the value as typed (60.0 was shown as 60, next to "allowed: an integer")
    Case("n-is-a-float", {"scenario.toml": edit("n = 10", "n = 10.0")},
         ["'types.n' = 10.0 is invalid", "an integer with 2 <= n <= 1000000"]),
    Case("value-keeps-every-digit", {"scenario.toml": edit("sigma = 0.5", "sigma = 1.3333333333333333")},
         ["'technology.sigma' = 1.3333333333333333 is invalid", "0 < sigma < 1"]),
    Case("not-toml", {"scenario.toml": "name = 'x'\nthis is not toml\n"},
         ["scenario.toml", "not valid TOML", "line 2"]),
    Case("missing-file", {}, ["no_such.toml", "not found"], scenario="no_such.toml"),
    Case("string-for-number", {"scenario.toml": edit("sigma = 0.5", 'sigma = "0.5"')},
         ["'technology.sigma'", "'0.5'", "a number with 0 < sigma < 1"]),
    Case("beta-without-p", {"scenario.toml": edit('distribution = "uniform"', 'distribution = "beta"\nq = 2.0')},
         ["'types.p'", "missing", "0 < p"]),
    Case("piecewise-masses-length", {"scenario.toml": edit(
        'distribution = "uniform"', 'distribution = "piecewise"\nbreakpoints = [0.0, 0.5, 1.0]\nmasses = [1.0]')},
         ["'types.masses'", "2 positive masses"]),
    Case("discrete-csv-bad-header", {
        "scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "types.csv"'),
        "types.csv": "theta,weight\n0.2,0.5\n0.8,0.5\n"},
         ["'types.file'", "types.csv", "header names exactly the two columns theta and mass, in either order"]),
    # stranger17 F6: n and grid were accepted and ignored for discrete types (n = 1000 gave the CSV's 6 types)
    Case("discrete-with-n", {
        "scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "types.csv"\nn = 1000'),
        "types.csv": "theta,mass\n0.2,0.5\n0.8,0.5\n"},
         ["'types.n'", "= 1000", "rows of its CSV file", "remove the field"]),
    Case("discrete-with-grid", {
        "scenario.toml": edit('distribution = "uniform"\nn = 10',
                              'distribution = "discrete"\nfile = "types.csv"\ngrid = "equal-mass"'),
        "types.csv": "theta,mass\n0.2,0.5\n0.8,0.5\n"},
         ["'types.grid'", "equal-mass", "no grid is built"]),
    # stranger11 s17: "at least 2 rows with distinct theta values" read as satisfied by 4 distinct values
    # among 6 rows, and named no row; the rows that repeat a theta are named, and what to do
    Case("discrete-csv-duplicate-theta", {
        "scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "types.csv"'),
        "types.csv": "theta,mass\n2.0,10\n3.5,20\n5,5\n2,30\n"},
         ["'types.file[types.csv rows 2 and 5]'", "= 2.0", "one row per theta value", "sum of their masses"]),
    Case("baseline-with-2-classes", {"scenario.toml": edit(
        "gamma = 0.2\n\n[[technology.fine_tuning.classes]]\nname = \"ft\"\nweight = 1.0\ncost = 2.0\n",
        "gamma = 0.2\nbaseline = 0.5\n\n[[technology.fine_tuning.classes]]\nname = \"a\"\nweight = 0.5\ncost = 2.0\n"
        "\n[[technology.fine_tuning.classes]]\nname = \"b\"\nweight = 0.5\ncost = 3.0\n")},
         ["'technology.fine_tuning.classes'", "2 classes", "exactly one class with the baseline form"]),
    Case("negative-quality-level", {"scenario.toml": edit("quantities = [0.5, 1.0]", "quantities = [0.5, -1.0]")},
         ["'regimes.cost.quantities[1]'", "-1", "each > 0"]),
    Case("unknown-solver-route", {"scenario.toml": edit("tol = 1e-10", 'tol = 1e-10\nroute = "knitro"')},
         ["'solver.route'", "'knitro'", "one of 'auto', 'ipopt', 'cyipopt'"]),
    Case("unknown-budget-formulation", {"scenario.toml": edit(
        "[regimes.cost]", '[regimes.budgets]\nformulation = "fast"\n\n[regimes.cost]')},
         ["'regimes.budgets.formulation'", "'fast'", "one of 'auto', 'pyomo', 'structured', 'presolved'"]),
    Case("regime-flag-not-in-scenario", {"scenario.toml": BASE}, ["--regime 'budgets'", "allowed: cost"],
         args=["--regime", "budgets"]),
    Case("bad-format-value", {"scenario.toml": BASE}, ["--format", "csv, parquet, latex, md", "'csv,xls'"],
         args=["--format", "csv,xls"]),
]
# stranger S9 D1, D2: values the range allowed that then crashed (multidim profiles = 0: ValueError;
# value-scale richardson = 1: ZeroDivisionError, its only w point is w = 0)
CASES += [
    Case("multidim-profiles-0", {"scenario.toml": BASE + '\n[regimes.multidim]\nfamily = "random"\n'
                                 '[regimes.multidim.random]\nprofiles = 0\n'},
         ["'regimes.multidim.random.profiles'", "= 0", "1 <= profiles <= 100"]),
    Case("value-scale-richardson-1", {"scenario.toml": BASE + '\n[regimes.distributions]\nfamily = "value-scale"\n'
                                      '[regimes.distributions.value_scale]\ncells = 2\nrichardson = 1\n'
                                      'w = { distribution = "uniform", low = 0.0, high = 1.0, n = 2 }\n'
                                      's = { distribution = "uniform", low = 0.0, high = 1.0, n = 2 }\n'},
         ["'regimes.distributions.value_scale.richardson'", "= 1", "0 (off) or an integer 2 <= richardson <= 12"]),
]
# command-line argument errors (argparse) follow the same one-line contract
ARGPARSE_CASES = {"bad-format-value"}


@dataclass
class Outcome:
    case: Case
    folder: Path
    out: Path
    returncode: int
    stdout: str
    stderr: str


def _run_case(run_solve, case: Case, base: Path) -> Outcome:
    folder = base / case.id
    folder.mkdir()
    for name, text in case.files.items():
        (folder / name).write_text(text)
    out = folder / "out"
    argv = ([str(folder / case.scenario)] if case.scenario else []) + ["--out", str(out)] + case.args
    rc, so, se = run_solve(*argv, cwd=folder)
    return Outcome(case, folder, out, rc, so, se)


def _selected_case_ids(session) -> set[str]:
    """Cases that the collected (selected) tests of this module will look at."""
    ids = set()
    for item in session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module.__name__ == __name__:
            if "case" in params:
                ids.add(params["case"].id)
            if "case_id" in params:
                ids.add(params["case_id"])
    return ids


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, run_solve) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("malformed")
    wanted = _selected_case_ids(request.session) or {c.id for c in CASES}
    workers = max(2, min(8, (os.cpu_count() or 2)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {c.id: pool.submit(_run_case, run_solve, c, base) for c in CASES if c.id in wanted}
        return {k: f.result() for k, f in futures.items()}


def test_case_ids_distinct_and_enough():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    assert len(ids) >= 12


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_malformed_input_exits_2_with_one_clear_line(case, outcomes):
    o = outcomes[case.id]
    assert o.returncode == 2, (o.stdout, o.stderr)
    assert "Traceback" not in o.stderr and "Traceback" not in o.stdout
    assert not o.out.exists(), "bad input must not write anything"
    lines = [ln for ln in o.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, o.stderr
    err = [ln for ln in lines if ln.startswith("error:")]
    assert len(err) == 1, o.stderr
    for text in case.must_name:
        assert text in err[0], f"{text!r} not in {err[0]!r}"
    assert o.stdout == "", o.stdout


@pytest.mark.parametrize("case_id", sorted(ARGPARSE_CASES))
def test_cli_argument_error_is_one_error_line(case_id, outcomes):
    lines = [ln for ln in outcomes[case_id].stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


# ------------------------------------------------------ not converged: exit 1
def test_max_iter_2_exits_1_and_reports_not_converged(tmp_path, out_dir, run_solve):
    scn = tmp_path / "tiny.toml"
    scn.write_text(edit("tol = 1e-10", "tol = 1e-10\nmax_iter = 2").replace('name = "case"', 'name = "tiny"'))
    rc, so, se = run_solve(str(scn), "--out", str(out_dir), "--quiet", cwd=tmp_path)
    assert rc == 1, (so, se)
    assert "Traceback" not in se
    run_dir = out_dir / "tiny"
    with open(run_dir / "verification.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cost_rows = [r for r in rows if r["regime"] == "cost"]
    assert cost_rows, "the regime's checks are still reported"
    assert all(r["passed"] == "False" for r in cost_rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    reg = summary["regimes"]["cost"]
    assert reg["converged"] is False and reg["verified"] is False
    assert reg["status"].startswith("not converged")
    assert reg["checks_failed"] == reg["checks"] == len(cost_rows)
    assert reg["solves"]["cost"]["status"] == "max_iterations"
    assert reg["solves"]["cost"]["iterations"] == 2
    assert "NOT VERIFIED" in so


@pytest.mark.component
def test_unconverged_solve_never_verifies_even_if_values_are_close(tmp_path):
    """In-process companion of the test above.  Ipopt is stopped one iteration
    short of its own convergence (max_iter = n - 1, MAX_ITERATIONS) at a point
    already within the checks' tolerances: only the run layer's rule "never
    report a non-converged solve as verified" can fail it."""
    from models import run, scenario

    scn_file = tmp_path / "close.toml"
    scn_file.write_text(BASE)
    scn = scenario.load(scn_file)
    full = run.run_regime(scn, "cost", run.Context(route="cyipopt", options=scn.solver["options"],
                                                   user_options=scn.solver["user_options"],
                                                   progress=lambda *a: None, figures=False))
    n = full.solves["cost"].iterations
    opts = {**scn.solver["user_options"], "max_iter": n - 1}
    ctx = run.Context(route="cyipopt", options=scn.solver["options"], user_options=opts,
                      progress=lambda *a: None)
    res = run.run_regime(scn, "cost", ctx)
    try:
        ver = res.verification
        assert res.solves["cost"].status.value == "max_iterations"
        assert (ver["rel_err"] <= ver["tolerance"]).all(), "premise: the values alone would pass"
        assert not ver["passed"].any()
        assert not res.converged and not res.verified
    finally:
        from models import plotting

        for fig in res.figures.values():
            plotting.close(fig)


def test_help_exits_0(run_solve):
    rc, so, se = run_solve("--help")
    assert rc == 0, se
    assert so.startswith("usage: solve.py")
    for flag in ("--out", "--format", "--route", "--regime"):
        assert flag in so
    assert "Exit codes" in so


@pytest.mark.unit
def test_csv_masses_are_normalised_without_overflow_or_underflow(tmp_path):
    """stranger15 F1: a CSV of finite masses 1e308 each summed to inf, every type got mass 0 and the budgets
    regime died in a ZeroDivisionError (exit 1, a traceback).  The README says masses are weights normalised
    to sum 1: only their ratios matter, so 1e308 : 1e308 : 5e307 and 5e-324-scale weights load as 0.4/0.4/0.2."""
    from models import scenario
    for rows, want in (([(1, 1e308), (2, 1e308), (3, 5e307)], [0.4, 0.4, 0.2]),
                       ([(1, 2e-310), (2, 2e-310), (3, 1e-310)], [0.4, 0.4, 0.2])):
        (tmp_path / "t.csv").write_text("theta,mass\n" + "".join(f"{a},{m!r}\n" for a, m in rows))
        (tmp_path / "s.toml").write_text(edit('distribution = "uniform"\nn = 10',
                                              'distribution = "discrete"\nfile = "t.csv"'))
        th, ms = scenario.load(tmp_path / "s.toml").discrete_types()
        assert np.allclose(ms, want, rtol=1e-12, atol=0) and np.all(np.isfinite(ms)), ms
