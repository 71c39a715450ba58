"""Regression tests of the competition leader program (γ_F = 0), session 9 (issue 11).

Each test is built from a reproduction of a failing random scenario and fails on the code before its fix;
the reference is the exact discrete closed form (cc.leader_discrete_monotone), which the NLP never sees.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SCN_COMPETITION_81_0

from models import competition as comp
from models import run as runmod
from models import scenario
from models.closed_form import competition as cc
from models.competition import audits, programs, solving

TOL = comp.TOL_DISCRETE  # NLP vs exact discrete closed form (audits.TOL_DISCRETE: ~1e-8 measured, 1e-6 bar)


@pytest.fixture
def ctx():
    return runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)


def _types(dist: dict, sigma: float = 0.9):
    raw = {"name": "t", "technology": {"sigma": sigma, "rho": 0.5,
                                       "tokens": [{"name": "tok1", "weight": 1.0, "cost": 1.0}]},
           "types": dist, "regimes": {"cost": {}}}
    return scenario.from_dict(raw, source="x.toml").discrete_types()


# competition_91_24 (seed 91): Beta(0.77, 2.10) on [0, 5.2], 22 equal-mass types, σ = 0.9, σ + γ_L = 0.922
SCN_91_24 = ({"distribution": "beta", "low": 0.0, "high": 5.20039, "p": 0.7678, "q": 2.098, "n": 22,
              "grid": "equal-mass"},
             {"sigma": 0.9, "gamma_L": 0.02237, "c_L": 0.139328, "c_F": 0.11854})


def test_leader_converges_when_low_types_are_below_the_solvers_resolution(ctx):
    """competition_91_24: leader tokens ∝ θ^12.9, the four lowest types can gain nothing (first-best gain
    0), types 4–10 together < 2e-8 of the profit.  Before: (a) the fringe unit F_k was floored at
    1e-12·max A ~ 1e-16 > A_0 ~ 1e-28, so the lowest type's dual point could not reach its optimum and its
    IR row was violated by 1e7 of its money unit even at the exact optimum; (b) unbounded q̃, T̃ of the
    unresolvable types drifted (q̃ ~ 1e3, T̃ ~ −1e5): none of 26 starts converged ('acceptable' /
    'infeasible').  Now every regime start and the exact optimum itself end 'optimal' at the discrete optimum."""
    dist, p = SCN_91_24
    th, ms = _types(dist, p["sigma"])
    lf = cc.LeaderFringe(**p)
    ref = cc.leader_discrete_monotone(lf, th, ms)
    q_limit, q_int = solving._leader_start_guesses(lf, th, ms)
    _, qs, _ = programs._leader_scales(lf, th)
    starts = {"all_fringe": (np.zeros(len(th)), None), "limit_pricing": (q_limit, None),
              "interior": (np.maximum(q_int, programs.FLOOR * qs), None),
              "exact optimum": (ref["q_L"], ref["T"])}
    for label, (q0, T0) in starts.items():
        menu = solving.solve_leader(lf, th, ms, ctx, label, q0, T0)
        assert menu.result.status.value == "optimal", (label, menu.result.message)
        assert menu.objective == pytest.approx(ref["profit"], rel=TOL), label
        # exported menu: the types that can gain nothing get the outside option (q = 0, T = 0)
        assert np.all(menu.q[:4] == 0.0) and np.all(menu.T[:4] == 0.0), label


def test_leader_program_bounds_hold_at_the_exact_optimum():
    """The bounds q̃ ≤ Q_UB, T̃ ≥ T_LB and s̃ ≥ S_LO added for 91_24 must not cut off the optimum: the exact
    discrete optimum (binding downward IC) lies inside them with the dual points at their optimum."""
    dist, p = SCN_91_24
    th, ms = _types(dist, p["sigma"])
    lf = cc.LeaderFringe(**p)
    ref = cc.leader_discrete_monotone(lf, th, ms)
    m = programs.build_leader_nondim(lf, th, ms, ref["q_L"], ref["T"])
    import pyomo.environ as pyo
    for c in m.component_data_objects(pyo.Constraint, active=True):
        # rows are in each type's own money unit: the exact menu meets them to round-off (1e-9 of that unit)
        assert pyo.value(c.body) >= pyo.value(c.lower) - 1e-9, c.name
    for v in m.component_data_objects(pyo.Var):
        assert (v.lb is None or v.value >= v.lb) and (v.ub is None or v.value <= v.ub), v.name
    Qu = m._q_unit
    served = ref["q_L"] > 0
    assert np.all(ref["q_L"][served] / m._leader_tokens[0] / Qu[served] <= programs.Q_UB)


SCN_92_33 = """
name = "competition_92_33"
[technology]
sigma = 0.7349
rho = -1.503
[[technology.tokens]]
name = "tok1"
weight = 0.224884
cost = 0.929905
[[technology.tokens]]
name = "tok2"
weight = 0.404302
cost = 0.265891
[[technology.tokens]]
name = "tok3"
weight = 0.370814
cost = 23.878
[types]
distribution = "beta"
low = 0.0
high = 1.0
p = 1.0
q = 18.53
n = 17
[regimes.competition]
gamma_L = 0.1741
gamma_F = 0.0
c_L = 0.221845
c_F = 0.20681
task_cells = 10
task_profiles = 2
refine = 9
"""


def test_leader_with_massless_top_types_converges_and_is_verified(ctx):
    """competition_92_33 (fresh seed 92): Beta(1, 18.5), the three top types have mass ~0, c_F/c_L = 0.93.
    Before: the leader's best start ended 'acceptable' after its retries (session 8); with the box of the
    unresolvable types (programs.Q_UB, T_LB) every start converges, but the top type's NLP top-up f stayed
    at 2.4e6 tokens (buyer's best 0) and the unweighted 'own-item utility with the NLP's top-up' row failed
    at 2.6e-3 on a type that no gradient pins (exported q_F and U are the numeric top-up's; all-pairs IC/IR
    hold).  The row now judges the resolved types, like every per-type row; the leader rows all pass."""
    import tomllib
    res = runmod.run_regime(scenario.from_dict(tomllib.loads(SCN_92_33), source="x.toml"), "competition", ctx)
    assert res.solves["leader_fringe"].ok, res.solves["leader_fringe"].message
    v = res.verification
    lead = v[v["check"].str.startswith("leader")]
    assert len(lead) and lead["passed"].all(), lead.loc[~lead["passed"], ["check", "quantity", "rel_err"]].to_string()


def _scn_92_33():
    import tomllib
    raw = tomllib.loads(SCN_92_33)
    th, ms = scenario.from_dict(raw, source="x.toml").discrete_types()
    c = raw["regimes"]["competition"]
    return th, ms, cc.LeaderFringe(sigma=raw["technology"]["sigma"], gamma_L=c["gamma_L"], c_L=c["c_L"], c_F=c["c_F"])


def test_leader_lazy_rows_of_a_massless_top_type_converge_without_retries(ctx):
    """competition_92_33, the lazy IC step alone, from the exact discrete optimum: the top type (mass 1.6e-23,
    profit gradient of its price 6e-15 of the objective scale, below Ipopt's tol 1e-12) is placed by the
    barrier only; its price drifts to the centre of its box, below what the types under it would pay, and
    the all-pairs audit finds (k, 16) violated for every k < 16.  Before: all 16 rows were added; the
    re-solve (16 nearly parallel rows on one unresolved item, multipliers ~ mu) stalled at a dual
    infeasibility ~5e-11 with a regularised Hessian and ended 'acceptable' at tol 1e-12 on this CPU and
    after 'mu_init' and 'tol = 1e-10' retries only 'optimal' (X86_V3) or still 'acceptable' (X86_V4).
    Now only the adjacent row (15, 16) is added (single crossing: the adjacent rows imply the rest) and the
    re-solve is 'optimal' at tol 1e-12 with no retry; the menu passes the all-pairs audit."""
    th, ms, lf = _scn_92_33()
    ref = cc.leader_discrete_monotone(lf, th, ms)
    menu = solving.solve_leader(lf, th, ms, ctx, "exact optimum", ref["q_L"], ref["T"], lazy=True)
    assert menu.result.status.value == "optimal", menu.result.message
    assert "retried" not in menu.result.message, menu.result.message
    assert menu.objective == pytest.approx(ref["profit"], rel=TOL)
    aud = comp.leader_audit(lf, th, menu.q, menu.T)
    assert not np.any(aud["viol"] > comp.TOL_AUDIT * audits._utility_scale(menu.T, aud["U"]))


def test_adjacent_ic_rows_imply_all_pairs_on_monotone_menus():
    """The claim behind solving._adjacent_rows (no solver): on a monotone menu whose adjacent rows hold in
    both directions, every pair holds.  Prices are drawn anywhere between the binding upward and binding
    downward adjacent price steps, T_k − T_(k−1) ∈ [u(θ_(k−1), q_k) − u(θ_(k−1), q_(k−1)),
    u(θ_k, q_k) − u(θ_k, q_(k−1))], on the quantities of 92_33's exact optimum and on random monotone ones.
    The all-pairs numpy audit then must find no IC row violated beyond round-off (1e-12 of the utility
    scale; the audit's own tolerance is TOL_AUDIT = 1e-7).  Also: lowering the top type's price so that
    every type wants its item makes _adjacent_rows add the single row (N−2, N−1)."""
    th, ms, lf = _scn_92_33()
    ref = cc.leader_discrete_monotone(lf, th, ms)
    rng = np.random.default_rng(3)
    N = len(th)

    def u(i, q):
        return comp.buyer_value_numeric(th[i], np.asarray(q, float) ** lf.r, lf.sigma, lf.c_F)

    for trial in range(20):
        q = ref["q_L"] if trial == 0 else np.sort(rng.uniform(0, 1, N) ** 3) * ref["q_L"][-1] * 2
        T = np.zeros(N)
        T[0] = float(u(0, q[0]) - u(0, 0.0))  # IR of the lowest type binding
        for k in range(1, N):
            lo = float(u(k - 1, q[k]) - u(k - 1, q[k - 1]))
            hi = float(u(k, q[k]) - u(k, q[k - 1]))
            assert lo <= hi * (1 + 1e-12) + 1e-300  # increasing differences (single crossing)
            T[k] = T[k - 1] + lo + rng.uniform() * (hi - lo)
        aud = comp.leader_audit(lf, th, q, T)
        scale = audits._utility_scale(T, aud["U"])
        assert np.max(aud["viol"][:, :-1]) <= 1e-12 * scale, trial
    # the top type's price lowered until every lower type prefers its item
    T = ref["T"].copy()
    T[-1] = -0.2 * ref["T"][-1]
    aud = comp.leader_audit(lf, th, ref["q_L"], T)
    thr = comp.TOL_AUDIT * audits._utility_scale(T, aud["U"])
    bad = [(int(k), int(l)) for k, l in np.argwhere(aud["viol"] > thr) if l < N]
    assert {(k, l) for k, l in bad} >= {(k, N - 1) for k in range(5, N - 1)}  # the served types all want it
    assert solving._adjacent_rows(aud["viol"], bad, thr) == {(N - 2, N - 1)}


def test_leader_converges_when_the_fringe_is_negligible_against_the_leader(ctx):
    """competition_81_3 (seed 81): σ = 0.27, σ + γ_L = 0.946, 33 uniform types on [0, 17.7]: leader first bests
    ∝ θ^18.6 span 40 decades, the fringe's stand-alone purchases A_k are ~1e-156 of the top type's unit.
    Before: pow(s, σ − 1) was taken of dual points s ~ A_k (its Hessian s^(σ−3) ~ 1e434 overflows) and the
    fringe unit was floored above A_k: every start of 37 ended 'Restoration failed' at iteration 1-6.  With
    every power taken of an O(1) number (buyer tokens in each type's own unit W_k = Qu_k^r) the starts reach
    the discrete optimum."""
    th, ms = _types({"distribution": "piecewise", "breakpoints": [0.0, 17.6796], "masses": [1.0], "n": 33}, 0.2709)
    lf = cc.LeaderFringe(sigma=0.2709, gamma_L=0.6755, c_L=0.0631618, c_F=0.055971)
    ref = cc.leader_discrete_monotone(lf, th, ms)
    q_limit, q_int = solving._leader_start_guesses(lf, th, ms)
    for label, (q0, T0) in {"exact optimum": (ref["q_L"], ref["T"]), "limit_pricing": (q_limit, None)}.items():
        menu = solving.solve_leader(lf, th, ms, ctx, label, q0, T0)
        assert menu.result.status.value == "optimal", (label, menu.result.message)
        assert menu.objective == pytest.approx(ref["profit"], rel=TOL), label


# competition_94_6 (fresh seed 94): piecewise density on [1.791, 2.791] jumping up at 2.6296 and 2.7557, σ = 0.4081
SCN_94_6 = """
name = "competition_94_6"
[technology]
sigma = 0.4081
rho = 1.0
[[technology.tokens]]
name = "tok1"
weight = 0.434156
cost = 0.214768
[[technology.tokens]]
name = "tok2"
weight = 0.565844
cost = 0.198784
[types]
distribution = "piecewise"
breakpoints = [1.791, 2.6296, 2.7557, 2.791]
masses = [0.339742, 0.458821, 0.2014370000000001]
n = 56
grid = "equal-spacing"
[regimes.competition]
gamma_L = 0.03793
gamma_F = 0.0
c_L = 0.100948
c_F = 0.097441
task_cells = 10
task_profiles = 1
convergence = [26, 52]
"""
LF_94_6 = cc.LeaderFringe(sigma=0.4081, gamma_L=0.03793, c_L=0.100948, c_F=0.097441)


def test_leader_convergence_order_is_fitted_on_one_theta_set_for_every_grid():
    """competition_94_6: the continuous interior region starts at the breakpoint 2.6296 (θ_hi) and is 0.16 of
    the support wide.  Every type's discrete-vs-continuous error is C(θ)/N (N·err 0.125…0.13 in the
    limit-pricing region, 0.30…0.31 in the interior one, N = 26…208), but at N = 26 every interior type lies
    within 2 own-grid steps of a breakpoint and at N = 52 not: the 'away' maximum switched region between
    the grids and its fitted order was −0.31 (q_L) and 0.0006 (t) on the exact discrete optima (the NLP
    matched them to 1.8e-11).  The window is now 2 steps of the coarsest grid on every N."""
    import tomllib
    from models.competition import checks
    from models.results import RegimeResult
    s = scenario.from_dict(tomllib.loads(SCN_94_6), source="x.toml")
    known = {}
    for n in (26, 52):
        th, ms = s.types.discretise(n, s.grid)
        ref = cc.leader_discrete_monotone(LF_94_6, th, ms)
        known[n] = comp.LeaderMenu(theta=th, mass=ms, q=ref["q_L"], T=ref["T"], f=ref["q_F"], objective=ref["profit"])
    res = RegimeResult("competition")
    df = checks._leader_convergence(res, LF_94_6, s, None, [26, 52], known[26], known)
    v = res.verification
    rows = v[v.check == "leader_convergence_to_continuous"]
    assert len(rows) == 2 and rows.passed.all(), rows.to_string()
    lo, hi = checks.ORDER_BAND
    for col in ("max_rel_err_q_L_away_from_thresholds", "max_rel_err_t_away_from_thresholds"):
        assert lo <= df[f"order_{col}"].iloc[0] <= hi, df.T.to_string()


@pytest.mark.slow
def test_leader_scenario_94_6_is_verified(ctx):
    """competition_94_6 end to end: the NLP menus on the convergence grids equal the discrete closed form and
    every leader row, the convergence orders included, passes."""
    import tomllib
    res = runmod.run_regime(scenario.from_dict(tomllib.loads(SCN_94_6), source="x.toml"), "competition", ctx)
    v = res.verification
    lead = v[v["check"].str.startswith("leader")]
    assert len(lead) and lead["passed"].all(), lead.loc[~lead["passed"], ["check", "quantity", "rel_err"]].to_string()


SCN_96_0 = """
name = "competition_96_0"
[technology]
sigma = 0.2265
rho = 1.0
[[technology.tokens]]
name = "tok1"
weight = 0.0611477
cost = 12.9207
[[technology.tokens]]
name = "tok2"
weight = 0.79848
cost = 12.882
[[technology.tokens]]
name = "tok3"
weight = 0.1403723
cost = 0.0743506
[types]
distribution = "beta"
low = 1.568
high = 3.41168
p = 7.496
q = 6.942
n = 43
[regimes.competition]
gamma_L = 0.3079
gamma_F = 0.0
c_L = 0.661902
c_F = 0.054981
task_cells = 9
task_profiles = 2
"""


def test_leader_serving_nobody_judges_types_on_the_profit_rows_scale(ctx):
    """competition_96_0 (fresh seed 96): c_L = 12·c_F, the exact discrete and continuous leader profits are 0
    (θ* off the grid).  The NLP's best start sells the top type (mass 9.4e-9) a loss-making item: profit
    −6.2e-9, 5.8e-10 of the money unit, which the profit row passes.  Before: the types' profit weights were
    divided by |profit| = 0, so that type counted as resolved, and the region row, the own-item utility row
    and both θ* rows failed on it (exit 1).  The weights now use the profit row's own scale."""
    import tomllib
    res = runmod.run_regime(scenario.from_dict(tomllib.loads(SCN_96_0), source="x.toml"), "competition", ctx)
    v = res.verification
    lead = v[v["check"].str.startswith("leader")]
    assert len(lead) and lead["passed"].all(), lead.loc[~lead["passed"], ["check", "quantity", "rel_err"]].to_string()
    prof = lead[(lead["check"] == "leader_vs_discrete_closed_form") & (lead["quantity"] == "profit")]
    assert len(prof) == 1 and float(prof["reference"].iloc[0]) == 0.0  # the case arises: the exact profit is 0


# competition_81_0 (seed 81): Beta(0.73, 29.3) on [0, 2.36], masses of the top types 1e-16 … 1e-52 at N = 56
SCN_81_0 = SCN_COMPETITION_81_0


def test_leader_discrete_uses_the_exact_mass_above_each_type():
    """competition_81_0 (seed 81): Beta(0.73, 29.3) on [0, 2.36], N = 1408 equal-spacing types.  ρ_k = (1 − P_k)/p_k
    was formed from 1 − cumsum(p), pure round-off (~1e-16) once the mass above k is below ~1e-13: wrong by
    more than 1e-3 on 570 of 1408 types; the pointwise schedule came out non-monotone and the ironing DP
    pooled every type above θ ≈ 1.89 at q = 4.68e12 (continuous q up to 4.2e15).  Reference here: the mass
    above each type as an exact suffix sum (math.fsum), and each type's own exact argmax of its discrete
    virtual gain with that ρ_k; the schedule is then monotone, so no ironing."""
    import math
    import tomllib
    from models.closed_form import competition as cc
    raw = tomllib.loads(SCN_81_0)
    s = scenario.from_dict(raw, source="x.toml")
    c = raw["regimes"]["competition"]
    lf = cc.LeaderFringe(sigma=raw["technology"]["sigma"], gamma_L=c["gamma_L"], c_L=c["c_L"], c_F=c["c_F"])
    th, ms = s.types.discretise(1408, s.grid)
    ref = cc.leader_discrete_monotone(lf, th, ms)
    n = len(th)
    q_exp = np.array([cc._leader_discrete_argmax(lf, th[k], th[min(k + 1, n - 1)],
                                                 math.fsum(ms[k + 1:]) / ms[k] if k < n - 1 else 0.0)[0]
                      for k in range(n)])
    assert np.all(np.diff(q_exp) >= 0)  # pointwise maximisers monotone: nothing to iron
    assert not ref["ironed"]
    # same candidates and root finder, only ρ_k summed differently (round-off ~1e-16 of ρ_k): equal to the
    # root finder's own accuracy, xtol ROOT_XTOL = 1e-14 of the bracket's end (measured 4.8e-15)
    np.testing.assert_allclose(ref["q_L"], q_exp, rtol=1e-12, atol=0.0)


# competition_122_14 (fresh seed 122): σ = 0.05, σ + γ_L = 0.819, piecewise density on [1.819, 2.819], 22 equal-mass types
SCN_122_14 = ({"distribution": "piecewise", "breakpoints": [1.819, 2.4385, 2.5027, 2.6381, 2.819],
               "masses": [0.178036, 0.381209, 0.334302, 0.10645300000000002], "n": 22, "grid": "equal-mass"},
              {"sigma": 0.05, "gamma_L": 0.769, "c_L": 0.0986195, "c_F": 0.039165})


def _scn_122_14():
    dist, p = SCN_122_14
    th, ms = _types(dist, p["sigma"])
    lf = cc.LeaderFringe(**p)
    return th, ms, lf, cc.leader_discrete_monotone(lf, th, ms)


def test_leader_dual_points_of_a_negligible_fringe_keep_a_finite_hessian():
    """competition_122_14: r = η_L/σ = 16.4, so the fringe's stand-alone purchase A_k is φ_k = A_k/Qu_k^r ~ 1e-108 of
    each type's leader unit in fringe tokens (its quality is still ~4e-6 of the leader's: φ^σ).  The dual point of
    a deviation to a limit-priced or unserved item sits at s ~ A_k, i.e. x = s/W_k ~ φ_k, and the program took
    pow(x, σ − 1), whose Hessian (σ−1)(σ−2)x^(σ−3) ~ 1e319 is inf in double, at the exact discrete optimum itself
    (entries (q[0], q[0]), (s[1,0], s[1,0]), ...).  The pair's dual value is now α_k b^σ[(1−σ)s̃^σ + σ w s̃^(σ−1)]
    with b^σ and w = a_l/(A_k + a_l) formed from L = log(a_l/A_k) (softplus, logistic) and the KKT row
    s̃ + w − 1 ≥ 0 (s ≥ A_k): no power of a number outside O(1).  Needs PyNumero's ASL (route 'cyipopt')."""
    from models import solver
    if not solver._cyipopt_available():
        pytest.skip("PyNumero's ASL library is not available (route 'cyipopt')")
    from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP
    th, ms, lf, ref = _scn_122_14()
    phi = programs._leader_scales(lf, th)[0] / programs.leader_type_scale(lf, th) ** lf.r
    assert np.max(phi ** (lf.sigma - 3)) == np.inf  # the premise: x^(σ−3) at x = φ_k leaves double range
    nlp = PyomoNLP(programs.build_leader_nondim(lf, th, ms, ref["q_L"], ref["T"]))
    nlp.set_duals(np.ones(nlp.n_constraints()))  # every row's Hessian enters the Lagrangian's
    H = nlp.evaluate_hessian_lag().toarray()
    names = nlp.primals_names()
    assert np.all(np.isfinite(H)), [(names[i], names[j]) for i, j in np.argwhere(~np.isfinite(H))[:6]]


def test_leader_converges_when_the_fringe_is_below_1e_100_of_the_leader_in_tokens(ctx):
    """competition_122_14 (see above): before, 'Restoration failed' / 'error in step computation' from each of the
    26 starts of the scenario and from the exact discrete optimum; now each regime start and the exact optimum
    end 'optimal', at the discrete optimum (the all-fringe start at its local optimum 'serve nobody')."""
    th, ms, lf, ref = _scn_122_14()
    _, qs, _ = programs._leader_scales(lf, th)
    q_limit, q_int = solving._leader_start_guesses(lf, th, ms)
    starts = {"all_fringe": (np.zeros(len(th)), None), "limit_pricing": (q_limit, None),
              "interior": (np.maximum(q_int, programs.FLOOR * qs), None), "exact optimum": (ref["q_L"], ref["T"])}
    for label, (q0, T0) in starts.items():
        menu = solving.solve_leader(lf, th, ms, ctx, label, q0, T0)
        assert menu.result.status.value == "optimal", (label, menu.result.message)
        want = 0.0 if label == "all_fringe" else ref["profit"]
        assert menu.objective == pytest.approx(want, rel=TOL, abs=TOL * ref["profit"]), label


# competition_92_9 (seed 92) and competition_180_33 (seed 180): the leader's top item, measured in fringe tokens
# (q^r, r = η_L/σ), leaves double range: 1e710 and 1e330 tokens against stand-alone fringe purchases of O(1)
SCN_92_9 = ({"distribution": "piecewise", "breakpoints": [0.0, 8.7283, 22.806, 33.442, 36.3749],
             "masses": [0.16576, 0.22244, 0.388039, 0.223761], "n": 55, "grid": "equal-mass"},
            {"sigma": 0.05, "gamma_L": 0.8971, "c_L": 0.354912, "c_F": 0.15215})
SCN_180_33 = ({"distribution": "uniform", "low": 0.7583, "high": 73.0075, "n": 76, "grid": "equal-mass"},
              {"sigma": 0.1, "gamma_L": 0.8281, "c_L": 0.191135, "c_F": 0.085378})


@pytest.mark.parametrize("scn", [SCN_92_9, SCN_180_33], ids=["92_9", "180_33"])
def test_leader_works_when_the_top_item_leaves_double_range_in_fringe_tokens(ctx, scn):
    """Homogeneity leaves the leader program one token unit (q^r and the fringe's x add), and the former unit made
    the fringe-token unit qs^r itself: for these scenarios Units raised OverflowError ('numbers out of
    double-precision range at units.py:47', exit 1), and the audit and closed form formed q^r = inf (audit nan).
    Now (units._leader_units) fringe tokens are measured in A(θ_max) with the money unit kept at the top type's
    leader money; an item with q^r = inf needs no top-up and its value is θ·q^η (cc.leader_tokens,
    audits.leader_tokens_numeric).  The NLP from the exact discrete optimum and from no leader sales both end
    'optimal' at the discrete optimum, whose all-pairs audit is clean."""
    dist, p = scn
    th, ms = _types(dist, p["sigma"])
    lf = cc.LeaderFringe(**p)
    _, qs, _ = programs._leader_scales(lf, th)
    assert lf.r * np.log(qs) > np.log(np.finfo(float).max)  # the premise: the top item is beyond 1.8e308 fringe tokens
    ref = cc.leader_discrete_monotone(lf, th, ms)
    assert np.all(np.isfinite(ref["q_L"])) and np.all(np.isfinite(ref["T"])) and np.isfinite(ref["total_surplus"])
    aud = audits.leader_audit(lf, th, ref["q_L"], ref["T"])
    scale = audits._utility_scale(ref["T"], aud["U"])
    assert np.isfinite(aud["ic"]) and np.isfinite(aud["ir"]) and max(aud["ic"], aud["ir"]) <= audits.TOL_AUDIT * scale
    for label, (q0, T0) in {"exact optimum": (ref["q_L"], ref["T"]), "all_fringe": (np.zeros(len(th)), None)}.items():
        menu = solving.solve_leader(lf, th, ms, ctx, label, q0, T0)
        assert menu.result.status.value == "optimal", (label, menu.result.message)
        assert menu.objective == pytest.approx(ref["profit"], rel=TOL), label


SCN_180_33_TOML = """
name = "competition_180_33"
[technology]
sigma = 0.1
rho = 0.968
[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 0.321244
[types]
distribution = "uniform"
low = 0.7583
high = 73.0075
n = 76
grid = "equal-mass"
[regimes.competition]
gamma_L = 0.8281
gamma_F = 0.0
c_L = 0.191135
c_F = 0.085378
task_cells = 12
task_profiles = 2
convergence = [28, 56]
refine = 3
"""


@pytest.mark.slow  # ~25 s: the whole regime, convergence grids included
def test_competition_180_33_is_verified(ctx):
    """competition_180_33 (fresh seed 180) verbatim: before, the regime stopped with 'numbers out of double-precision
    range (OverflowError) at units.py:47 (token)', exit 1; now every row (efficient, monopolist, leader, finer
    grids, convergence) is computed and passes."""
    import tomllib
    res = runmod.run_regime(scenario.from_dict(tomllib.loads(SCN_180_33_TOML), source="x.toml"), "competition", ctx)
    assert res.error is None, res.error
    v = res.verification
    assert len(v) > 500 and v["passed"].all(), v.loc[~v["passed"], ["check", "quantity", "rel_err"]].to_string()
    assert (v["check"] == "leader_vs_discrete_closed_form").sum() >= 5
    assert (v["check"] == "leader_convergence_to_continuous").any() or any("convergence" in n for n in res.notes)
