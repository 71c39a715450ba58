"""Property-based tests over the documented scenario space (Hypothesis).

Property: every *valid* scenario -- drawn by ``tests/scenario_strategies.py``
from the ranges the README and ``validate_options`` document -- run through
``solve.py`` (``solve.main`` in-process: same argument parsing, validation,
run, export and exit code as the command line) exits 0.  A non-zero exit is
allowed only when every failing row is on ``ALLOWLIST``: a check that
reports a genuine, explained discrepancy (a finding about the theory or the
method, with its id in /work/coord/findings.md).  The allowlist is empty:
no failure is accepted as genuine today.

Profiles
--------
* default suite: a few derandomized draws per family with small N (types
  capped at ``SMALL_N``, no convergence study, Lemma checks off), ~40 s;
  deterministic (``derandomize=True``, no example database).
* ``slow``: ``LARGE_EXAMPLES`` draws per family, full generator ranges.

Regression cases: scenarios of ``bench/valid_scenarios.py`` (seed 0) that
failed in run 1 or run 2 (findings.md) are replayed by index in
``test_bench_regression``; each must exit 0.  Three that are fixed run in the
default suite; the others (fixed but slow, or still open) are in the slow
profile with their finding id, so the default suite is green honestly and
``-m slow`` shows what is open.  The Hypothesis draws themselves are
deterministic (derandomize), so a failing draw of the small profile is kept
by construction; ``SMALL_OPEN`` lists the families whose draws fail today.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import solve
import scenario_strategies as S

SPEED = "integration"

SMALL_N = 24          # types per scenario in the default profile
SMALL_EXAMPLES = {"budget": 4, "competition": 1, "two-type": 2, "value-scale": 1, "versions": 1, "multidim": 1, "plans": 2}
LARGE_EXAMPLES = {"budget": 60, "competition": 15, "two-type": 15, "value-scale": 6, "versions": 10, "multidim": 8, "plans": 15}

# The pricing-plans family is composed in bench/valid_scenarios.py (plans_scenario) from the generators'
# helpers; the same drawer feeds Hypothesis here, so the property covers every regime.
_V_SPEC = importlib.util.spec_from_file_location("valid_scenarios_for_properties",
                                                 Path(__file__).resolve().parent.parent / "bench" / "valid_scenarios.py")
V = importlib.util.module_from_spec(_V_SPEC)
_V_SPEC.loader.exec_module(V)
FAMILIES = tuple(S.FAMILIES) + ("plans",)


def strategy(family: str):
    """Hypothesis strategy of ``ScenarioSpec`` for one family (every family of bench/valid_scenarios.py)."""
    if family != "plans":
        return S.strategy(family)

    @st.composite
    def _plans(draw):
        return V.plans_scenario(S.HypothesisDraw(draw), name="plans_hyp")

    return _plans()

# (regime, check prefix) -> reason (finding id).  Empty: every failure is a defect.
ALLOWLIST: dict[tuple[str, str], str] = {}


def small(spec: S.ScenarioSpec) -> S.ScenarioSpec:
    """The same scenario made cheap: at most SMALL_N types, no convergence
    studies, Lemma/task checks small, value-scale grids at most 3x3."""
    spec = copy.deepcopy(spec)
    t = spec.tree
    if "n" in t["types"]:
        t["types"]["n"] = min(t["types"]["n"], SMALL_N)
    for name, opts in t["regimes"].items():
        opts.pop("convergence", None)
        if name == "budgets":
            opts["lemma_cells"] = 0
            if opts.get("ic") != "local" and t["types"].get("n", 25) > SMALL_N:
                opts["ic"] = "local"
        if name in ("competition", "versions"):
            opts["task_cells"] = min(opts.get("task_cells", 4), 4)
            opts["task_profiles"] = 1
        if name == "distributions" and "value_scale" in opts:
            vs = opts["value_scale"]
            vs.pop("convergence", None)
            vs["w"]["n"] = min(vs["w"]["n"], 3)
            vs["s"]["n"] = min(vs["s"]["n"], 3)
            vs["cells"] = vs["s"]["n"]
            opts["ic"] = "lazy"
    return spec


def run_spec(spec: S.ScenarioSpec, tmp_path) -> tuple[int, str, pd.DataFrame | None]:
    """solve.main on the scenario file; returns (exit code, stderr, failing rows)."""
    path = spec.write(tmp_path / "scn")
    out = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = solve.main([str(path), "--out", str(out), "--quiet"])
    ver = out / spec.name / "verification.csv"
    bad = None
    if ver.is_file():
        df = pd.read_csv(ver)
        bad = df[~df["passed"].astype(bool)]
    return code, err.getvalue(), bad


def allowed(bad: pd.DataFrame) -> bool:
    return len(bad) > 0 and all(any(r["regime"] == reg and str(r["check"]).startswith(pre)
                                    for reg, pre in ALLOWLIST) for _, r in bad.iterrows())


def describe(spec, code, err, bad) -> str:
    lines = [f"{spec.name} [{', '.join(spec.features)}] exit {code}", S.to_toml(spec.tree)]
    if err.strip():
        lines.append("stderr: " + err.strip().splitlines()[-1])
    if bad is not None and len(bad):
        for (reg, chk, q), g in bad.groupby(["regime", "check", "quantity"], sort=False):
            w = g.loc[g["rel_err"].astype(float).idxmax()] if g["rel_err"].notna().any() else g.iloc[0]
            lines.append(f"  FAILED {reg} / {chk} / {q}: {len(g)} rows, worst rel_err {w['rel_err']:.3g} "
                         f"(tol {w['tolerance']:.3g}) at index {w['index']}")
    return "\n".join(lines)


def check_property(spec, tmp_path):
    code, err, bad = run_spec(spec, tmp_path)
    if code == 0:
        return
    if code == 1 and bad is not None and allowed(bad):
        return
    pytest.fail(describe(spec, code, err, bad), pytrace=False)


def _settings(n, shrink=False):
    # no shrinking by default: one solve.py run costs seconds and shrinking a
    # failure took ~6 min per family; the failing draw is reported in full
    # (TOML + failing rows) and can be replayed.  derandomize + no database:
    # the same draws on every machine and every run.
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    phases=phases, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------ default profile
# Families whose small-profile draws fail on the current code: in the slow
# profile until the finding is fixed (then delete the entry; the draws are
# deterministic, so the entry is exact).
# (B8 budget and K5 competition draws: fixed in the working tree at 12:36, back in the default suite)
# (two-type, findings.md D5: passes since session 5 -- measured 19:20 UTC session 6, 23 s -- back in the default suite)
# (plans, session 16's second small draw: CSV types with θ = 0, 2.2e-308, 1.2e-127, 8.9e-28 among O(1) types,
#  every linear start an Ipopt error: fixed in session 17 by plans.SUB_ULP, 54b9c20 -- back in the default suite)
SMALL_OPEN: dict[str, str] = {}


def _small_params():
    return [pytest.param(f, marks=[pytest.mark.slow] if f in SMALL_OPEN else [], id=f) for f in FAMILIES]


@pytest.mark.parametrize("family", _small_params())
def test_valid_scenarios_verify_small(family, tmp_path_factory):
    @_settings(SMALL_EXAMPLES[family])
    @given(spec=strategy(family))
    def prop(spec):
        check_property(small(spec), tmp_path_factory.mktemp("p"))

    prop()


# --------------------------------------------------------------- large profile
@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_valid_scenarios_verify_large(family, tmp_path_factory):
    @_settings(LARGE_EXAMPLES[family])
    @given(spec=strategy(family))
    def prop(spec):
        check_property(spec, tmp_path_factory.mktemp("p"))

    prop()


# ----------------------------------------------------------- regression cases
# bench/valid_scenarios.py --seed 0 scenarios that failed in run 1 (e6aa200) or
# run 2 (1c2207e), with the finding id (/work/coord/findings.md; repro under
# /work/coord/repro/).  Each must exit 0.
BENCH_FAILURES = {
    ("budget", 0): "B1", ("budget", 1): "C2", ("budget", 3): "B10", ("budget", 5): "B2", ("budget", 6): "H2",
    ("budget", 7): "B1", ("budget", 10): "B1", ("budget", 12): "B11", ("budget", 13): "C2", ("budget", 14): "H1,B12",
    ("budget", 16): "B11", ("budget", 18): "C1", ("budget", 20): "B4", ("budget", 22): "H1", ("budget", 23): "H2",
    ("budget", 24): "C1", ("budget", 25): "H1", ("budget", 27): "H1,B12", ("budget", 30): "H2", ("budget", 31): "B3",
    ("budget", 32): "H1,B12", ("budget", 34): "H1", ("budget", 35): "H3,H6", ("budget", 42): "B12",
    ("budget", 44): "B12", ("budget", 46): "B12", ("budget", 50): "B12", ("budget", 54): "B12",
    ("competition", 0): "H3,H5", ("competition", 1): "K2,K6", ("competition", 4): "H4,K2", ("competition", 5): "K2",
    ("competition", 8): "K3", ("competition", 9): "K1",
    ("two-type", 1): "D3", ("two-type", 2): "H3,D6", ("two-type", 3): "H1,D7", ("two-type", 4): "H1",
    ("two-type", 5): "D2", ("two-type", 7): "H1",
    ("value-scale", 0): "H3", ("value-scale", 1): "D3", ("value-scale", 2): "P2", ("value-scale", 3): "D1",
}
# Exit 0 in run 2 (1c2207e): budget 1, 5, 6, 7, 10, 13, 18, 22, 23, 24, 30, 31, 34; competition 5, 8;
# two-type 4.  Three of them (one per fixed defect class, a few seconds each) run in the default suite;
# the rest are in the slow profile with the still-open ones.
DEFAULT_REGRESSION = {("budget", 13): "C2 fixed", ("budget", 30): "H2 fixed", ("budget", 34): "H1 fixed"}


def _regression_params():
    out = []
    for (fam, i), fid in sorted(BENCH_FAILURES.items()):
        marks = [] if (fam, i) in DEFAULT_REGRESSION else [pytest.mark.slow]
        out.append(pytest.param(fam, i, id=f"{fam}:{i}[{fid}]", marks=marks))
    return out


@pytest.mark.parametrize("family, index", _regression_params())
def test_bench_regression(family, index, tmp_path):
    check_property(S.draw_scenario(family, 0, index), tmp_path)


# ------------------------------------------------------------ the generators
@pytest.mark.unit
@pytest.mark.parametrize("family", S.FAMILIES)
def test_generated_scenarios_are_valid(family, tmp_path):
    """Every generated scenario passes validation (the generators stay inside
    the documented ranges; a rejection here is a generator bug or a changed range)."""
    from models import scenario

    for i in range(40):
        spec = S.draw_scenario(family, 123, i)
        scenario.load(spec.write(tmp_path / f"{family}_{i}"))
