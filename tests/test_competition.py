"""Regime ``competition`` (MODEL.md 2.7): two models, task assignment, competition.

Ladder (STYLE.md): scenario validation and numpy pieces (unit), model sizes
pinned, solves optimal, values vs the closed forms of
``models.closed_form.competition``, economics (independent IC/IR audit).
Small grids (N = 16..20) keep the default run well under a minute; the full
scenario files run through ``solve.py`` are marked ``slow``.
"""
from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import competition as comp
from models import run as runmod
from models import scenario
from models.closed_form import competition as cc
from models.results import RegimeResult

SPEED = "component"  # default speed marker (conftest); unit tests override it

# NLP vs exact discrete closed forms: Ipopt tol 1e-12 on O(1)-scaled programs
# gives ~1e-8 (measured); this is the regime's own tolerance.
TOL = comp.TOL_DISCRETE
# independent audit: solver constraint tolerance level, relative to max|T|
TOL_AUDIT = comp.TOL_AUDIT
N_SMALL = 20
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ctx():
    return runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)


def _raw(root, name="competition.toml"):
    with open(root / "data" / name, "rb") as fh:
        return tomllib.load(fh)


def _small(raw, n=16, conv=(16, 32)):
    raw = copy.deepcopy(raw)
    raw["types"]["n"] = n
    raw["regimes"]["competition"].update({"convergence": list(conv), "task_cells": 10, "task_profiles": 1,
                                          "refine": 4})
    return raw


# ----------------------------------------------------------------- unit
@pytest.mark.unit
@pytest.mark.parametrize("field, value, pattern", [
    ("gamma_L", 0.5, r"regimes\.competition\.gamma_L' = 0\.5 .*0 < gamma_L < 0\.5"),
    ("gamma_L", 0.0, r"gamma_L' = 0 .*0 < gamma_L < 0\.5"),
    ("gamma_F", 0.2, r"gamma_F' = 0\.2 .*0 <= gamma_F < 0\.2"),
    ("c_F", 0.2, r"c_F' = 0\.2 .*0 < c_F < 0\.2"),
    ("c_F", -1.0, r"c_F' = -1 .*0 < c_F < 0\.2"),
    ("c_L", "cheap", r"c_L' = 'cheap' .*a number with 0 < c_L"),
    ("convergence", [60, 30], r"convergence.*strictly increasing"),
    ("task_cells", 2.5, r"task_cells' = 2\.5 .*an integer"),
    ("colour", 1, r"unknown field 'regimes\.competition\.colour'"),
])
def test_validation_names_field_and_range(root, field, value, pattern):
    raw = _raw(root)
    raw["regimes"]["competition"][field] = value
    with pytest.raises(scenario.ScenarioError, match=pattern):
        scenario.from_dict(raw, source="x.toml")


@pytest.mark.unit
def test_validation_requires_costs(root):
    raw = _raw(root)
    del raw["regimes"]["competition"]["c_L"]
    with pytest.raises(scenario.ScenarioError, match=r"required field 'regimes\.competition\.c_L'"):
        scenario.from_dict(raw, source="x.toml")


@pytest.mark.unit
def test_scenario_files_parse_with_the_two_examples(root):
    """The shipped files are MODEL.md's two uniform examples (closed_form.LEADER_FRINGE_EXAMPLES)."""
    for fname, ex in (("competition.toml", "three_regions"), ("competition_empty_middle.toml", "empty_middle")):
        s = scenario.load(root / "data" / fname)
        o = s.regimes["competition"]
        lf = cc.LEADER_FRINGE_EXAMPLES[ex]["lf"]
        assert (s.technology.sigma, o["gamma_L"], o["c_L"], o["c_F"], o["gamma_F"]) == \
            (lf.sigma, lf.gamma_L, lf.c_L, lf.c_F, 0.0)
        assert s.types.kind == "uniform" and 40 <= s.n_types <= 100
        assert o["convergence"] == [s.n_types, 2 * s.n_types, 4 * s.n_types]


@pytest.mark.unit
def test_numeric_topup_matches_closed_form():
    """The audit's bisection top-up (no closed form) agrees with (A − q^r)^+."""
    lf, _ = cc.example("three_regions")
    th = np.linspace(0.0, 1.0, 41)[:, None]
    q = np.linspace(0.0, 8.0, 33)[None, :]
    x = comp.fringe_topup_numeric(th, q**lf.r, lf.sigma, lf.c_F)
    ref = cc.fringe_topup(lf, th, q)
    # bisection to 4 ulp of the bracket: absolute agreement ~1e-15 of A ≤ 10
    assert np.max(np.abs(x - ref)) <= 1e-12


@pytest.mark.unit
def test_dual_value_is_exact_upper_bound():
    """D_k(s; a) ≥ u(θ_k, a) for every dual-feasible s, with equality at s = max(a, A):
    the exact reformulation of the deviation value used in every IC row."""
    lf, _ = cc.example("empty_middle")
    s, rng = lf.sigma, np.random.default_rng(1)
    th = rng.uniform(0.05, 1.0, 200)
    a = rng.uniform(0.0, 20.0, 200)
    u = comp.buyer_value_numeric(th, a, s, lf.c_F)
    A = comp.fringe_topup_numeric(th, 0.0, s, lf.c_F)

    def D(sv):
        return th * ((1 - s) * sv**s + s * a * sv ** (s - 1))

    s_star = np.maximum(a, A)
    assert np.all(1 - th * s / lf.c_F * s_star ** (s - 1) >= -1e-12)  # dual feasible
    assert np.max(np.abs(D(s_star) - u) / np.maximum(u, 1e-12)) <= 1e-12
    for f in (1.001, 1.1, 3.0):  # any other dual-feasible s gives a weaker bound
        assert np.all(D(s_star * f) >= u - 1e-12)


@pytest.mark.unit
def test_audit_flags_a_bad_menu_and_regions_read_off():
    lf, dist = cc.example("three_regions")
    th, ms = dist.discretise(N_SMALL)
    ref = cc.leader_discrete(lf, th, ms)
    a = comp.leader_audit(lf, th, ref["q_L"], ref["T"])
    assert a["ic"] <= 1e-12 and a["ir"] <= 1e-12
    _, qs, _ = comp._leader_scales(lf, th)
    assert np.array_equal(comp.leader_regions(lf, th, ref["q_L"], qs), ref["region"])
    T = ref["T"].copy()
    T[-1] *= 1.01  # top type overcharged: it prefers its neighbour's item
    assert comp.leader_audit(lf, th, ref["q_L"], T)["ic"] > 1e-4


@pytest.mark.unit
def test_golden_search_goes_right_on_a_left_plateau():
    vals = np.r_[np.full(30, 1.0), 1.0 + np.minimum(np.arange(31), 12) - np.maximum(np.arange(31) - 12, 0) * 2]
    calls = []

    def f(i):
        calls.append(i)
        return float(vals[i])

    assert comp._cutoff_search(f, 0, len(vals) - 1) == 42
    assert len(set(calls)) < 20


# ------------------------------------------------------------ component
def test_build_leader_sizes():
    """Pinned: 4N variables (q, T, f; s per row) and 3(N−1)+2 rows for the default row set."""
    lf, dist = cc.example("three_regions")
    th, ms = dist.discretise(10)
    m = comp.build_leader(lf, th, ms, np.zeros(10))
    import pyomo.environ as pyo

    nv = sum(1 for _ in m.component_data_objects(pyo.Var))
    nc = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    assert (nv, nc) == (4 * 10, 3 * 9 + 2)
    assert sorted(m.PAIRS) == [(k, k - 1) for k in range(1, 10)] and list(m.IR_TYPES) == [0]


def test_task_assignment_reproduces_indirect_utility(ctx):
    import pyomo.environ as pyo

    from models.closed_form import cost as cf

    tech = scenario.load(ROOT / "data" / "competition.toml").technology
    rng = np.random.default_rng(7)
    w = rng.uniform(0.05, 1.0, 15)
    X = rng.uniform(0.2, 2.0, (2, tech.J))
    Phi = np.array([1.0, 1.3])
    m = comp.build_assignment(tech, w, X, Phi)
    r = ctx.solve(m, "t", defaults=comp.CONVEX_SOLVER_DEFAULTS)
    assert r.ok
    Q = Phi * cf.psi(tech, X)
    U = cc.indirect_utility(cc.aggregate_type(w, tech.sigma), Q[0], Q[1], tech.sigma)
    assert r.objective == pytest.approx(U, rel=comp.TOL_ASSIGN)
    assert sum(1 for _ in m.component_data_objects(pyo.Var)) == 15 + 2 * 15 * tech.J


def test_efficient_and_monopolist_match_closed_forms(ctx):
    raw = _raw(ROOT)
    s = scenario.from_dict(_small(raw, n=N_SMALL), source="x.toml")
    models = comp._two_models(s.technology.sigma, s.regimes["competition"])
    th, ms = s.discrete_types()
    res = RegimeResult("competition")
    eff = comp._efficient(res, models, th, ms, ctx)
    mon = comp._monopolist(res, models, th, ms, ctx)
    comp._two_model_checks(res, models, th, ms, s.types, eff, mon)
    v = res.verification
    assert res.solves["efficient"].ok and res.solves["monopolist"].ok
    bad = v[~v.passed.astype(bool)]
    assert bad.empty, bad.to_string()
    ref = cc.monopolist_discrete(models, th, ms)
    assert mon.objective == pytest.approx(ref["profit"], rel=TOL)
    assert np.max(np.abs(mon.values["V"] - ref["V"])) <= TOL * ref["V"].max()


@pytest.mark.parametrize("example, regions", [("three_regions", {0, 1, 2}), ("empty_middle", {0, 2})])
def test_leader_fringe_multistart_finds_discrete_optimum(ctx, example, regions):
    """Starts (all-fringe, limit pricing, interior, cut-offs) reach leader_discrete to
    solver tolerance; the NLP's regions are the closed form's; audit clean."""
    lf, dist = cc.example(example)
    th, ms = dist.discretise(N_SMALL)
    attempts = comp.leader_multistart(lf, th, ms, ctx)
    labels = [a.label for a in attempts]
    assert labels[:3] == ["all_fringe", "limit_pricing", "interior"]
    best = comp._best_attempt(attempts)
    menu = best.values["menu"]
    ref = cc.leader_discrete(lf, th, ms)
    assert best.status == "optimal"
    assert menu.objective == pytest.approx(ref["profit"], rel=TOL)
    assert np.max(np.abs(menu.q - ref["q_L"])) <= TOL * ref["q_L"].max()
    assert np.max(np.abs(menu.T - ref["T"])) <= TOL * np.abs(ref["T"]).max()
    _, qs, _ = comp._leader_scales(lf, th)
    reg = comp.leader_regions(lf, th, menu.q, qs)
    assert np.array_equal(reg, ref["region"]) and set(reg) == regions
    a = comp.leader_audit(lf, th, menu.q, menu.T)
    assert max(a["ic"], a["ir"]) <= TOL_AUDIT * max(1.0, np.abs(menu.T).max())
    # the all-fringe start is a local optimum (the leader sells nothing): the spread is real
    assert attempts[0].objective == pytest.approx(0.0, abs=1e-6)


def test_lazy_ic_generation_adds_violated_rows(ctx):
    """With every IR row but only half the IC rows, full extraction violates IC; the
    audit adds those rows and the re-solve reaches the discrete optimum."""
    lf, dist = cc.example("three_regions")
    N = 12
    th, ms = dist.discretise(N)
    ref = cc.leader_discrete(lf, th, ms)
    pairs = [(k, k - 1) for k in range(2, N, 2)]
    menu = comp.solve_leader(lf, th, ms, ctx, "lazy", ref["q_L"], pairs=pairs, ir_types=range(N), lazy=True)
    assert len(menu.pairs) > len(pairs)
    assert menu.objective == pytest.approx(ref["profit"], rel=TOL)


def test_regime_small_scenario_verifies(ctx):
    """The whole regime on N = 16 (convergence 16, 32): every check passes."""
    s = scenario.from_dict(_small(_raw(ROOT)), source="x.toml")
    res = runmod.run_regime(s, "competition", ctx)
    v = res.verification
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    for t in ("leader_fringe", "thresholds", "welfare", "leader_fringe_convergence", "leader_fringe_starts",
              "monopolist", "efficient", "task_assignment", "audit"):
        assert t in res.tables
    assert set(res.figures) == {"leader_fringe_quantities", "leader_fringe_transfers", "thresholds_vs_cF",
                                "two_model_benchmarks"}
    lf_tab = res.tables["leader_fringe"]
    assert {"q_L", "Q_L", "q_F", "Q_F", "t", "U", "u_0", "region"} <= set(lf_tab.columns)
    w = res.tables["welfare"]
    assert set(w.regime) == {"efficient", "multi-model monopolist", "leader vs fringe"}
    from models import plotting

    for f in res.figures.values():
        plotting.close(f)


def test_gamma_F_positive_skips_leader_fringe(ctx):
    raw = _small(_raw(ROOT), n=12, conv=())
    raw["regimes"]["competition"]["gamma_F"] = 0.05
    del raw["regimes"]["competition"]["convergence"]
    s = scenario.from_dict(raw, source="x.toml")
    res = runmod.run_regime(s, "competition", ctx)
    assert "leader_fringe" not in res.tables
    assert any("gamma_F > 0" in n for n in res.notes)
    assert res.verified, res.verification[~res.verification.passed.astype(bool)].to_string()


# ---------------------------------------------------------- integration
@pytest.mark.integration
def test_solve_py_small_scenario(run_solve, tmp_path, out_dir):
    """solve.py end to end on a 16-type copy of data/competition.toml."""
    src = (ROOT / "data" / "competition.toml").read_text()
    src = re.sub(r"^n = \d+", "n = 16", src, flags=re.M)
    src = re.sub(r"^convergence = .*$", "convergence = [16, 32]", src, flags=re.M)
    src = re.sub(r"^task_cells = .*$", "task_cells = 10", src, flags=re.M)
    f = tmp_path / "small.toml"
    f.write_text(src)
    code, out, err = run_solve(f, "--out", out_dir, "--quiet")
    assert code == 0, out + err
    d = out_dir / "competition" / "competition"
    w = pd.read_csv(d / "welfare.csv")
    assert {"profit", "consumer_surplus", "total_surplus", "who_serves_whom"} <= set(w.columns)
    assert (out_dir / "competition" / "figures" / "competition" / "leader_fringe_quantities.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("fname", ["competition.toml", "competition_empty_middle.toml"])
def test_solve_py_shipped_scenarios(run_solve, out_dir, fname):
    """The shipped scenario files (N = 60, convergence 60/120/240): exit 0, outputs written."""
    code, out, err = run_solve(ROOT / "data" / fname, "--out", out_dir, "--quiet")
    assert code == 0, out + err
    name = fname.removesuffix(".toml")
    d = out_dir / name / "competition"
    for t in ("welfare", "thresholds", "leader_fringe", "leader_fringe_convergence"):
        assert (d / f"{t}.csv").is_file()
    ver = pd.read_csv(out_dir / name / "verification.csv")
    assert ver.passed.all()
