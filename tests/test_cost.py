"""Regime ``cost`` (docs/model.md §2.1): the cost-of-quality NLP against the closed form.

Ladder (STYLE.md): build (variables and constraints pinned) -> solve
(optimal) -> values (X, Z, C(Q), C'(Q) from the dual vs
``models.closed_form.cost``) -> identities of the closed form itself, which
need no NLP.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import pytest

from models import cost, solver
from models.closed_form import cost as cf

SOLVER_OPTIONS = {"tol": 1e-10}

# Three technologies of docs/model.md §2.1.
CES = cf.Technology(  # CES x CES, J = 2, K = 2, rho and rho_hat non-zero
    sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 4.0),
    gamma=0.2, rho_hat=-0.5, alpha_hat=(0.3, 0.7), cost_hat=(2.0, 3.0),
    token_names=("input", "output"), ft_names=("ft_a", "ft_b"),
)
COBB_DOUGLAS = cf.Technology(  # rho = 0, K = 1
    sigma=0.4, rho=0.0, alpha=(0.5, 0.5), cost=(1.0, 3.0),
    gamma=0.3, rho_hat=0.0, alpha_hat=(1.0,), cost_hat=(2.0,),
)
BASELINE = cf.Technology(  # x1^a x2^b (b0 + z)^gamma, J = 2 Cobb-Douglas, K = 1, b0 > 0
    sigma=0.5, rho=0.0, alpha=(0.6, 0.4), cost=(1.0, 4.0),
    gamma=0.2, alpha_hat=(1.0,), cost_hat=(2.0,), baseline=0.5,
)
NO_FINE_TUNING = cf.Technology(sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 4.0))  # gamma = 0

QBAR = cf.baseline_constants(BASELINE)["Qbar"]  # 0.745...
QUANTITIES = {
    "ces": [0.25, 0.5, 1.0, 2.0],
    "cobb-douglas": [0.25, 0.5, 1.0, 2.0],
    # two below Q̄ (Z = 0, fine-tuning not bought) and two above
    "baseline": [0.3 * QBAR, 0.7 * QBAR, 1.5 * QBAR, 4.0 * QBAR],
    "no-fine-tuning": [0.25, 0.5, 1.0, 2.0],
}
TECHS = {"ces": CES, "cobb-douglas": COBB_DOUGLAS, "baseline": BASELINE, "no-fine-tuning": NO_FINE_TUNING}

# Tolerances (observed errors in brackets).
# Homogeneous forms: the optimum is interior; at tol 1e-10 Ipopt's primal
# point is accurate to ~1e-11 relative and the spend, being first-order
# flat at the optimum, much better.
TOL_HOMOGENEOUS = {"C": 1e-9, "X": 1e-8, "Z": 1e-8, "dual": 1e-8}  # [1e-16, 3e-12, 2e-12, 5e-11]
# Baseline form: below Q̄ the optimum sits on the bound Z >= 0, which Ipopt
# relaxes by bound_relax_factor 1e-8, so Z = -1e-8 there and the spend is
# ĉ·1e-8 too low per level; interior-point complementarity at the bound
# perturbs the duals at the same order.
TOL_BASELINE = {"C": 1e-8, "X": 1e-7, "Z_abs": 2e-8, "dual": 1e-7}  # [9e-10, 5e-10, 1e-8, 8e-9]


def _solve(name):
    tech, qs = TECHS[name], QUANTITIES[name]
    m = cost.build(tech, qs)
    r = solver.solve(m, options=dict(SOLVER_OPTIONS))
    L = list(m.LEVELS)
    X = np.array([[pyo.value(m.X[q, j]) for j in m.TOKENS] for q in L])
    Z = np.array([[pyo.value(m.Z[q, k]) for k in m.FT] for q in L])[:, : tech.K]
    return m, r, X, Z


@pytest.fixture(scope="module")
def solved():
    """Each technology solved once for the whole module (4 small NLPs, ~0.1 s each)."""
    return {name: _solve(name) for name in TECHS}


# ------------------------------------------------------------------- build
# (variables incl. fixed, constraints, variables Ipopt sees) for 4 levels.
# Change these only with a comment saying why the model grew.
BUILD_SIZES = {
    "ces": (16, 4, 16),  # 4 levels x (J=2 X + K=2 Z); one quality row per level
    "cobb-douglas": (12, 4, 12),  # 4 x (2 + 1)
    "baseline": (12, 4, 12),  # 4 x (2 + 1)
    "no-fine-tuning": (12, 4, 8),  # Z (one per level) exists but is fixed at 0
}


@pytest.mark.component
@pytest.mark.parametrize("name", list(TECHS))
def test_build_size(name, solved):
    m, r, _, _ = solved[name]
    n_var = sum(1 for _ in m.component_data_objects(pyo.Var))
    n_con = sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True))
    n_obj = sum(1 for _ in m.component_data_objects(pyo.Objective, active=True))
    assert (n_var, n_con, r.n_variables) == BUILD_SIZES[name]
    assert r.n_constraints == n_con
    assert n_obj == 1
    assert len(m.LEVELS) == 4 and len(m.TOKENS) == TECHS[name].J
    assert isinstance(m.dual, pyo.Suffix)  # the regime reads C'(Q) from it


@pytest.mark.unit
def test_build_names_read_like_the_math():
    m = cost.build(CES, [1.0, 2.0])
    assert m.quality[1].name == "quality[1]"
    # X >= 0 (Ipopt stays strictly inside, so powers < 1 are evaluated at x > 0);
    # an absolute floor 1e-9 made valid levels infeasible (findings C1)
    assert m.X[1, 0].lb == 0.0
    assert cost.build(BASELINE, [1.0]).Z[0, 0].lb == 0.0  # baseline: fine-tuning optional


@pytest.mark.component
def test_inputs_below_the_old_floor_are_solved():
    """σ = 0.25, one class: Q = 0.001 needs X = Q^(1/σ) = 1e-12, below the
    old absolute bound X >= 1e-9 (infeasible, dual off by 2e3)."""
    tech = cf.Technology(sigma=0.25, rho=0.0, alpha=(1.0,), cost=(1.0,), token_names=("tok",))
    res = _run_cost(tech, qs=(0.001, 0.5))
    assert res.converged and res.verified, res.verification[["quantity", "rel_err", "tolerance"]]


@pytest.mark.component
def test_priced_out_class_is_judged_on_the_inputs_scale():
    """ρ = 0.97: the dear class's X is ~1e-44; judged on its own scale a
    correct NLP had relative errors ~1e44 (findings C2)."""
    tech = cf.Technology(sigma=0.5, rho=0.97, alpha=(0.7, 0.3), cost=(0.4, 6.8), token_names=("cheap", "dear"))
    assert cf.inputs(tech, np.array([1.0]))[0][0, 1] < 1e-30
    res = _run_cost(tech)
    assert res.converged and res.verified, res.verification[["quantity", "rel_err", "tolerance"]]


@pytest.mark.component
@pytest.mark.parametrize("case", ["budget_20_12", "budget_21_4"])
def test_ipopt_absolute_tests_in_the_models_units(case):
    """Random draws (seed 20/21): σ = 0.1 Cobb-Douglas (input scale 1e-16 at
    Q = 0.025) and σ = 0.05, ρ = 0.991 (spend 9e8).  Correct to 3e-15, Ipopt
    ran to max_iter / 'very little progress': its unscaled dual test
    (dual_inf_tol = 1 $/Mtok) cannot be met in these units.
    gain.unit_tolerances states the absolute tests in the model's units."""
    if case == "budget_20_12":
        tech = cf.Technology(sigma=0.1, rho=0.0, alpha=(0.188221, 0.811779), cost=(13.1177, 47.2459),
                             token_names=("tok1", "tok2"))
        qs = (0.0251952, 1.47357, 1.88924)
    else:
        tech = cf.Technology(sigma=0.05, rho=0.9909, alpha=(0.249926, 0.750074), cost=(0.411036, 1.4194),
                             token_names=("tok1", "tok2"))
        qs = (0.0080297, 0.0608764, 2.73087)
    res = _run_cost(tech, qs=qs)
    assert res.converged and res.verified, res.verification[["quantity", "rel_err", "tolerance"]]
    # O(1) models keep Ipopt's defaults
    assert cost.build(CES, [1.0])._unit_tolerances["constr_viol_tol"] == pytest.approx(1e-4)


# ------------------------------------------------------------------- solve
@pytest.mark.component
@pytest.mark.parametrize("name", list(TECHS))
def test_solve_optimal(name, solved):
    m, r, X, Z = solved[name]
    assert r.status is solver.Status.OPTIMAL
    assert r.iterations > 0
    # the quality constraints hold at the solution (Ipopt's constr_viol_tol is 1e-4,
    # but at tol 1e-10 the primal residual is ~1e-12 on these O(1) rows)
    for q in m.LEVELS:
        body = pyo.value(m.quality[q].body)
        assert body == pytest.approx(pyo.value(m.Q[q]), rel=1e-9)


# ------------------------------------------------------------------ values
def _rel_inf(num, ref):
    """The project's verification rule: |num - ref| / max|ref| (results.compare)."""
    num, ref = np.asarray(num, float), np.asarray(ref, float)
    return float(np.max(np.abs(num - ref)) / np.max(np.abs(ref)))


@pytest.mark.component
@pytest.mark.parametrize("name", ["ces", "cobb-douglas", "no-fine-tuning"])
def test_homogeneous_matches_closed_form(name, solved):
    tech, qs = TECHS[name], np.asarray(QUANTITIES[name])
    m, r, X, Z = solved[name]
    tol = TOL_HOMOGENEOUS
    Xc, Zc = cf.inputs(tech, qs)
    C = X @ np.asarray(tech.cost) + (Z @ np.asarray(tech.cost_hat) if tech.K else 0.0)
    assert _rel_inf(C, cf.cost(tech, qs)) <= tol["C"]
    # each level's spend in units of its own cost (cost.build: m._weight)
    assert r.objective == pytest.approx(float((cf.cost(tech, qs) / m._weight).sum()), rel=tol["C"])
    assert _rel_inf(X, Xc) <= tol["X"]
    if tech.K:
        assert _rel_inf(Z, Zc) <= tol["Z"]
    duals = np.array([r.duals[m.quality[q]] for q in m.LEVELS])
    suffix = np.array([m.dual[m.quality[q]] for q in m.LEVELS])
    mc = cf.marginal_cost(tech, qs)
    # the dual of "Ψ·Φ == Q" in a minimisation of spend/weight is C'(Q)/weight > 0
    assert np.all(duals > 0)
    assert np.max(np.abs(duals * m._weight / mc - 1)) <= tol["dual"]
    assert np.array_equal(duals, suffix)


@pytest.mark.component
def test_baseline_matches_closed_form(solved):
    tech, qs = BASELINE, np.asarray(QUANTITIES["baseline"])
    m, r, X, Z = solved["baseline"]
    tol = TOL_BASELINE
    Xc, Zc = cf.inputs(tech, qs)
    below = qs <= QBAR
    assert below.tolist() == [True, True, False, False]
    # closed form: no fine-tuning below Q̄, some above
    assert np.all(Zc[below] == 0) and np.all(Zc[~below] > 0.1)
    C = X @ np.asarray(tech.cost) + Z @ np.asarray(tech.cost_hat)
    assert _rel_inf(C, cf.cost(tech, qs)) <= tol["C"]
    assert _rel_inf(X, Xc) <= tol["X"]
    assert np.max(np.abs(Z - Zc)) <= tol["Z_abs"]  # judged on the Q-scale: Z = 0 on two levels
    assert np.all(Z[below] <= tol["Z_abs"])
    duals = np.array([r.duals[m.quality[q]] for q in m.LEVELS]) * m._weight
    assert np.max(np.abs(duals / cf.marginal_cost(tech, qs) - 1)) <= tol["dual"]


@pytest.mark.component
def test_regime_run_verifies():
    """The regime's own run() on a tiny scenario reports every check passed."""
    from types import SimpleNamespace

    from models.run import Context

    scn = SimpleNamespace(technology=CES)
    ctx = Context(route=solver.pick_route("auto"), options=dict(SOLVER_OPTIONS), user_options=dict(SOLVER_OPTIONS),
                  progress=lambda *a: None)
    res = cost.run(scn, {"quantities": QUANTITIES["ces"]}, ctx)
    try:
        ver = res.verification
        assert res.converged and res.verified
        # one row per level for each of C, C', X[input], X[output], Z[ft_a], Z[ft_b]
        assert len(ver) == 6 * len(QUANTITIES["ces"])
        assert set(ver["quantity"]) == {"C(Q)", "C'(Q) from dual", "X[input]", "X[output]", "Z[ft_a]", "Z[ft_b]"}
        assert ver["passed"].all()
        # issue 11: a failed row would say what it means for the exported table
        assert (ver["advice"] == cost.ADVICE).all()
    finally:
        from models import plotting

        for fig in res.figures.values():
            plotting.close(fig)


# -------------------------------------------- closed-form identities (no NLP)
GRID = np.geomspace(0.05, 5.0, 25)
ALL = [CES, COBB_DOUGLAS, BASELINE, NO_FINE_TUNING]
IDS = ["ces", "cobb-douglas", "baseline", "no-fine-tuning"]


@pytest.mark.unit
@pytest.mark.parametrize("tech", [CES, COBB_DOUGLAS], ids=["ces", "cobb-douglas"])
def test_spend_split(tech):
    # c·X = (σ/η) C and ĉ·Z = (γ/η) C; pure floating-point arithmetic: 1e-12
    X, Z = cf.inputs(tech, GRID)
    C = cf.cost(tech, GRID)
    assert X @ np.asarray(tech.cost) == pytest.approx(tech.sigma / tech.eta * C, rel=1e-12)
    assert Z @ np.asarray(tech.cost_hat) == pytest.approx(tech.gamma / tech.eta * C, rel=1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("tech", ALL, ids=IDS)
def test_inputs_reach_quality_at_cost(tech):
    # the closed-form inputs produce exactly Q and cost exactly C(Q) (rounding only: 1e-12)
    X, Z = cf.inputs(tech, GRID)
    assert cf.psi(tech, X) * cf.phi(tech, Z) == pytest.approx(GRID, rel=1e-12)
    spend = X @ np.asarray(tech.cost) + (Z @ np.asarray(tech.cost_hat) if tech.K else 0.0)
    assert spend == pytest.approx(cf.cost(tech, GRID), rel=1e-12)


@pytest.mark.unit
@pytest.mark.parametrize("tech", ALL, ids=IDS)
def test_marginal_cost_is_derivative_of_cost(tech):
    # central difference with h = 1e-5 Q: truncation h^2 C'''/(6 C') ~ 1e-10,
    # round-off eps C / (h C') ~ 1e-10 relative; 1e-7 for margin.  The
    # baseline's Q̄ (C is C¹ there but C'' jumps) is kept >= 100h from every grid point.
    grid = GRID[np.abs(GRID / QBAR - 1) > 1e-3]
    h = 1e-5 * grid
    fd = (cf.cost(tech, grid + h) - cf.cost(tech, grid - h)) / (2 * h)
    assert cf.marginal_cost(tech, grid) == pytest.approx(fd, rel=1e-7)


@pytest.mark.unit
def test_baseline_cost_is_continuous_and_c1_at_qbar():
    k = cf.baseline_constants(BASELINE)
    assert k["Qbar"] == pytest.approx(QBAR)
    eps = 1e-8
    lo, hi = QBAR * (1 - eps), QBAR * (1 + eps)
    mc = float(cf.marginal_cost(BASELINE, QBAR))
    # Continuity: across Q̄ the cost rises by exactly C'·ΔQ (a jump of even
    # 1e-12 would move this ratio by 1e-5).  Round-off: eps_mach C / (C' ΔQ) ~ 5e-9.
    jump = float(cf.cost(BASELINE, hi) - cf.cost(BASELINE, lo))
    assert jump / (mc * (hi - lo)) == pytest.approx(1.0, abs=1e-6)
    # C¹: the two branches of C' agree at Q̄ (relative change over ΔQ ~ C''ΔQ/C' ~ 1e-8)
    assert float(cf.marginal_cost(BASELINE, hi)) == pytest.approx(float(cf.marginal_cost(BASELINE, lo)), rel=1e-6)
    assert k["hbar"] == pytest.approx(mc, rel=1e-12)
    # the branches really switch at Q̄: no fine-tuning below, some above
    _, Z = cf.inputs(BASELINE, np.array([QBAR * 0.999, QBAR * 1.001]))
    assert Z[0, 0] == 0.0 and Z[1, 0] > 0


@pytest.mark.unit
@pytest.mark.parametrize("tech", ALL, ids=IDS)
def test_marginal_cost_increasing(tech):
    # C convex (docs/model.md §2.1), including across Q̄ for the baseline form
    grid = np.sort(np.concatenate([GRID, [QBAR]]))
    assert np.all(np.diff(cf.marginal_cost(tech, grid)) > 0)


@pytest.mark.unit
@pytest.mark.parametrize("tech", ALL, ids=IDS)
def test_inverse_marginal_cost_inverts(tech):
    # Q -> C'(Q) -> Q: powers and their inverses only, so 1e-12
    grid = np.concatenate([GRID, [QBAR]])
    assert cf.inverse_marginal_cost(tech, cf.marginal_cost(tech, grid)) == pytest.approx(grid, rel=1e-12)
    assert np.all(cf.inverse_marginal_cost(tech, np.array([-1.0, 0.0])) == 0.0)


# ------------------------------------ CES exponent at its ends (issue 11, 1)
A2, C2 = np.array([0.6, 0.4]), np.array([1.0, 4.0])


@pytest.mark.unit
def test_perfect_substitutes_unit_cost_and_corner_inputs():
    """ρ = 1 (allowed by rho <= 1) used to divide by 1-ρ (ZeroDivisionError):
    the limit is p = min_j c_j/α_j with only the cheapest class bought."""
    assert cf.unit_cost(A2, C2, 1.0) == pytest.approx(1.0 / 0.6, rel=1e-15)
    u = cf.unit_demands(A2, C2, 1.0)
    assert u[1] == 0.0 and u[0] == pytest.approx(1 / 0.6, rel=1e-15)
    assert cf.ces_index(u, A2, 1.0) == pytest.approx(1.0, rel=1e-15)
    # the CES tends to it as ρ -> 1 (error O(1-ρ): s = 1/(1-ρ) -> infinity)
    assert abs(cf.unit_cost(A2, C2, 1 - 1e-6) / cf.unit_cost(A2, C2, 1.0) - 1) < 1e-5
    # exact tie: equal index shares α_j x_j (deterministic), spend = p
    a3, c3 = np.array([0.2, 0.3, 0.5]), np.array([1.0, 1.5, 4.0])
    u3 = cf.unit_demands(a3, c3, 1.0)
    assert np.allclose(a3[:2] * u3[:2], 0.5, rtol=1e-15) and u3[2] == 0.0
    assert u3 @ c3 == pytest.approx(cf.unit_cost(a3, c3, 1.0), rel=1e-15)
    assert cf.tie_groups(a3, c3, 1.0) == [[0, 1]]
    assert cf.tie_groups(A2, C2, 1.0) == [] and cf.tie_groups(a3, c3, 0.5) == []


@pytest.mark.unit
def test_ces_exponent_near_zero_and_very_negative_keep_accuracy():
    """ρ -> 0: the power form (Σ a^s c^(1-s))^(1/(1-s)) lost ~1e-16/|ρ|
    (4 digits at ρ = 1e-12); log1p/expm1 keep the Cobb-Douglas limit to
    O(ρ).  ρ -> -inf: the Leontief limit Σ c_j."""
    cd = cf.unit_cost(A2, C2, 0.0)
    for r in (1e-14, 1e-12, -1e-12, 1e-9):
        assert abs(cf.unit_cost(A2, C2, r) / cd - 1) < 10 * abs(r)  # O(ρ) (the derivative is O(1))
        x = np.array([2.0, 0.3])
        assert abs(cf.ces_index(x, A2, r) / cf.ces_index(x, A2, 0.0) - 1) < 10 * abs(r)
    for r in (-50.0, -1e4, -1e8):
        p = cf.unit_cost(A2, C2, r)
        assert np.isfinite(p) and abs(p / C2.sum() - 1) < 0.2 / (1 - r) * 20
        u = cf.unit_demands(A2, C2, r)
        assert u @ C2 == pytest.approx(p, rel=1e-12) and cf.ces_index(u, A2, r) == pytest.approx(1, rel=1e-10)
    # an input at 0 with ρ < 0: index 0 (the limit), no overflow warning
    with np.errstate(all="raise"):
        assert cf.ces_index(np.array([0.0, 1.0]), A2, -30.0) == 0.0


def _run_cost(tech, qs=(0.25, 0.5, 1.0, 2.0)):
    from types import SimpleNamespace

    from models.run import Context

    ctx = Context(route=solver.pick_route("auto"), options={}, user_options={}, progress=lambda *a: None,
                  figures=False)
    return cost.run(SimpleNamespace(technology=tech), {"quantities": list(qs)}, ctx)


@pytest.mark.component
@pytest.mark.parametrize("case", ["rho1-dominated", "rho1-tie", "rho1-ft-tie", "rho-1e-5", "rho-minus-20"])
def test_cost_regime_verifies_at_the_ends_of_rho(case):
    """The NLP agrees with the closed form at ρ = 1 (corner; a tie compared
    through the tied classes' index), small |ρ| (tolerance of the gain's
    round-off) and very negative ρ (normalised power form)."""
    base = dict(sigma=0.5, gamma=0.2, alpha_hat=(1.0,), cost_hat=(2.0,), token_names=("a", "b", "c")[:2],
                ft_names=("f", "g"))
    tech = {
        "rho1-dominated": cf.Technology(rho=1.0, alpha=(0.6, 0.4), cost=(1.0, 4.0), **base),
        "rho1-tie": cf.Technology(**{**base, "token_names": ("a", "b", "c")}, rho=1.0, alpha=(0.2, 0.3, 0.5),
                                  cost=(1.0, 1.5, 4.0)),
        "rho1-ft-tie": cf.Technology(**{**base, "alpha_hat": (0.5, 0.5), "cost_hat": (2.0, 2.0)}, rho=0.5,
                                     alpha=(0.6, 0.4), cost=(1.0, 4.0), rho_hat=1.0),
        "rho-1e-5": cf.Technology(rho=1e-5, alpha=(0.6, 0.4), cost=(1.0, 4.0), **base),
        "rho-minus-20": cf.Technology(rho=-20.0, alpha=(0.6, 0.4), cost=(1.0, 4.0), **base),
    }[case]
    res = _run_cost(tech)
    v = res.verification
    assert res.converged, res.status()
    assert v["passed"].all(), v[~v["passed"]][["quantity", "rel_err", "tolerance"]]
    if "tie" in case:
        assert any("tied classes" in q for q in v["quantity"])


@pytest.mark.unit
def test_tiny_nonzero_rho_is_rejected_with_one_line(tmp_path):
    from models import scenario

    src = (Path(__file__).resolve().parent.parent / "data" / "default.toml").read_text()
    bad = tmp_path / "tiny_rho.toml"
    bad.write_text(src.replace("rho = 0.5 ", "rho = 1e-8 ", 1))
    with pytest.raises(scenario.ScenarioError, match=r"technology\.rho.*1e-06"):
        scenario.load(bad)


@pytest.mark.component
def test_near_leontief_cost_nlp_has_ray_rows():
    """budget_70_19 (ρ = −16.06, three token classes, costs 47 / 2.7 / 0.30):
    the cost NLP had no ray rows, the mix drifted off the cost-minimising ray
    (X[tok2] 2.3e5 Mtok against 4.1 at Q = 1.7) and Ipopt's restoration failed
    after 2,761 iterations.  With the menu NLP's ray rows (budgets.RAY_RHO) it
    converges and every level verifies."""
    tech = cf.Technology(sigma=0.4143, rho=-16.06, alpha=(0.104004, 0.399483, 0.496513),
                         cost=(47.0671, 2.72416, 0.303531), token_names=("tok1", "tok2", "tok3"))
    qs = (0.00979197, 1.70655, 2.35554, 2.79907)
    res = _run_cost(tech, qs)
    v = res.verification
    assert res.converged, res.status()  # was 'restoration failed'
    assert v["passed"].all(), v[~v["passed"]][["quantity", "rel_err", "tolerance"]]
    assert hasattr(cost.build(tech, np.asarray(qs)), "ray")


def test_levels_weighted_by_their_own_cost():
    """budget_85_89 (σ = 0.2325, ρ = −0.4873, two token classes; levels
    Q = 0.0187, 0.659, 1.125 cost 4e-8 ... 3.6): with one money unit for all
    levels the cheapest level's KKT conditions weighed 1e-8; Ipopt stalled at
    a primal violation of 7e-7 (line-search steps 3e-5) and ran to max_iter
    (3,000), C(Q) 4.1e-7 and X[tok2] 4.6e-7 off.  Each level alone: 6
    iterations.  The objective now takes each level's spend in units of its
    own cost."""
    tech = cf.Technology(sigma=0.2325, rho=-0.4873, alpha=(0.766364, 0.233636), cost=(1.035, 1.26037),
                         token_names=("tok1", "tok2"))
    res = _run_cost(tech, (0.0187207, 0.65917, 1.12525))
    v = res.verification
    assert res.converged, res.status()  # was max_iterations
    assert res.solves["cost"].iterations < 100
    assert v["passed"].all(), v[~v["passed"]][["quantity", "rel_err", "tolerance"]]


def test_unbought_baseline_fine_tuning_scaled_by_its_cost_equivalent():
    """budget_88_2 (σ = 0.1, ρ = 0.9863, baseline b = 0.112, levels below Q̄,
    C = 5.6e-19 ... 4.8e-11, no fine-tuning bought): with each level in its own
    cost units, z scaled by b had a bound multiplier ~ĉ·b/C = 1e18 (scaled);
    Ipopt ended at z = −3e-18 and C(Q) 2.9e-7 off.  z's scale is now at least
    C(Q)/ĉ."""
    tech = cf.Technology(sigma=0.1, rho=0.9863, alpha=(0.161374, 0.838626), cost=(3.23859, 1.62822),
                         gamma=0.08001, alpha_hat=(1.0,), cost_hat=(4.5905,), baseline=0.112425,
                         token_names=("tok1", "tok2"), ft_names=("ft1",))
    res = _run_cost(tech, (0.0117391, 0.0135409, 0.0135674, 0.0729316))
    v = res.verification
    assert res.converged, res.status()
    assert v["passed"].all(), v[~v["passed"]][["quantity", "rel_err", "tolerance"]]  # C(Q) was 2.9e-7 off


@pytest.mark.component
@pytest.mark.parametrize("case", ["J1-rho-1e-6", "K1-rho_hat-1e-6"])
def test_single_class_small_positive_rho_converges(case):
    """budgets16 (cost16_4, cost16_1/8): one token class (or one fine-tuning class) with a small ρ > 0 -- allowed,
    ρ is moot for one class -- but the NLP evaluates (1·x^ρ)^(1/ρ), round-off ~1e-16/ρ: at tol 1e-12 Ipopt ended
    'acceptable' (C(Q) 3e-11 off, every row 'solve not converged').  evaluation_tol counts a single class with
    ρ > 0 too (1e-15/ρ = 1e-9)."""
    tech = {
        "J1-rho-1e-6": cf.Technology(sigma=0.258, rho=1e-6, alpha=(1.0,), cost=(2.5955,), gamma=0.461,
                                     rho_hat=-20.0, alpha_hat=(1.0,), cost_hat=(12.5063,), token_names=("t",),
                                     ft_names=("f",)),
        "K1-rho_hat-1e-6": cf.Technology(sigma=0.312, rho=-49.99, alpha=(1.0,), cost=(9.2,), gamma=0.159,
                                         rho_hat=1e-6, alpha_hat=(1.0,), cost_hat=(19.68,), token_names=("t",),
                                         ft_names=("f",)),
    }[case]
    assert cf.evaluation_tol(tech) == pytest.approx(1e-9)
    res = _run_cost(tech, (1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3))
    v = res.verification
    assert res.converged, res.status()  # was 'acceptable'
    assert v["passed"].all(), v[~v["passed"]][["quantity", "rel_err", "tolerance"]]
