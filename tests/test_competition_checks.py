"""Regression tests of the competition regime's verification rows (models/competition/checks.py):
each built from a random valid scenario whose correct answer a check misjudged, and (for the per-type
rows) a mutation of the menu that the row must now catch."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SCN_COMPETITION_81_0

from models import run as runmod
from models import scenario

SPEED = "component"


@pytest.fixture(scope="module")
def ctx():
    return runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)


def _run(raw, ctx):
    s = scenario.from_dict(copy.deepcopy(raw), source="x.toml")
    res = runmod.run_regime(s, "competition", ctx)
    return res, res.verification


SCN_50_47 = tomllib.loads('''
name = "competition_50_47"
[technology]
sigma = 0.3216
rho = -2.057
[[technology.tokens]]
name = "tok1"
weight = 0.461339
cost = 2.11211
[[technology.tokens]]
name = "tok2"
weight = 0.5386610000000001
cost = 0.0816101
[types]
distribution = "piecewise"
breakpoints = [1.385, 2.2435, 2.385]
masses = [0.401173, 0.598827]
n = 26
[regimes.competition]
gamma_L = 0.3873
gamma_F = 0.0
c_L = 0.428874
c_F = 0.21438
task_cells = 0
convergence = [23, 46]
refine = 3
''')


def test_convergence_order_is_measured_away_from_density_jumps(ctx):
    """competition_50_47 (seed 50): the density jumps ×9 at 2.2435, inside the leader's interior region,
    so h and q^int jump there.  The 'away from thresholds' errors kept the type next to that jump (40 %
    off at N = 23): fitted orders 2.09 (q_L) and 2.57 (t) against the band [0.75, 1.25], exit 1 on a
    menu equal to the exact discrete optimum.  Types within 2 grid steps of a density breakpoint are
    now left out (orders 1.02 and 0.97), and the profit's order, whose O(1/N) constant moves with the
    jump's place in its cell, is reported with a note instead of checked."""
    res, v = _run(SCN_50_47, ctx)
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    rows = v[v.check == "leader_convergence_to_continuous"]
    assert sorted(rows.quantity) == ["observed order of max_log_err_q_L_away_from_thresholds",
                                     "observed order of max_log_err_t_away_from_thresholds"]
    assert np.all(np.abs(rows.numeric.to_numpy(float) - 1.0) <= 0.1)  # measured 1.02, 0.97
    assert any("order of rel_err_profit not checked (the density jumps at 2.2435" in n for n in res.notes)


SCN_91_9 = tomllib.loads('''
name = "competition_91_9"
[technology]
sigma = 0.6568
rho = 1.0
[[technology.tokens]]
name = "tok1"
weight = 0.420235
cost = 1.76478
[[technology.tokens]]
name = "tok2"
weight = 0.413858
cost = 0.0705206
[[technology.tokens]]
name = "tok3"
weight = 0.16590700000000003
cost = 0.236868
[types]
distribution = "piecewise"
breakpoints = [0.7917, 0.79909, 1.2172, 1.6729, 1.7917]
masses = [0.396575, 0.193621, 0.193855, 0.21594900000000006]
n = 57
[regimes.competition]
gamma_L = 0.2227
gamma_F = 0.0
c_L = 0.636046
c_F = 0.59999
task_cells = 0
refine = 10
''')


def test_theta_hi_row_after_a_density_spike(ctx):
    """competition_91_9 (seed 91): the continuous θ_hi was the spike's end 0.799, below θ_lo = 0.989
    (closed form fixed, tests/test_closed_form_competition.py); the NLP's boundary 1.4934 is now judged
    against 1.5022 and passes within one grid step, and every other row passes."""
    res, v = _run(SCN_91_9, ctx)
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    row = v[(v.check == "leader_thresholds_vs_continuous") & v.quantity.str.startswith("theta_hi")]
    assert len(row) == 1 and float(row.reference.iloc[0]) == pytest.approx(1.50224, abs=1e-4)


# ------------------------------------------------------------ per-type rows (no solver: exact menus)
def _two_model_rows(models, theta, mass, q_eff, mon_q, mon_V, mon_t, profit):
    from models.competition import checks
    from models.results import RegimeResult

    res = RegimeResult("competition")
    eff = {"q": q_eff, "objective": float(np.sum(mass * _cc().efficient_surplus(models, theta)))}
    mon = SimpleNamespace(values={"q": mon_q, "V": mon_V, "t": mon_t}, objective=profit)
    checks._two_model_checks(res, models, theta, mass, None, eff, mon)
    return res.verification


def _cc():
    from models.closed_form import competition as cc
    return cc


def _wide_span_case(sigma=0.3, gamma_L=0.6, low=0.05):
    """Default σ = 0.3, η_L = 0.9: first-best tokens ∝ θ^(1/(1−η)) = θ^10 on the leader, θ^(1/0.7) on the
    fringe; 30 equal-spaced types on [0.05, 1] span ~1e-13 in first-best spend (the 81_x class, milder).
    σ = 0.7, γ_L = 0.25 on [0, 1]: the monopolist's served fringe types spend 1.6e-9 … 5.9e-6 of the money."""
    from models.competition.units import _two_models
    from models.type_space import TypeDistribution

    models = _two_models(sigma, {"c_F": 0.3, "c_L": 0.5, "gamma_F": 0.0, "gamma_L": gamma_L})
    theta, mass = TypeDistribution("uniform", low=low, high=1.0).discretise(30)
    return models, theta, mass


def _exact(models, theta, mass):
    cc = _cc()
    eta = np.array([mm.eta for mm in models])
    q_eff = cc.efficient_quality(models, theta).T ** (1 / eta)
    ref = cc.monopolist_discrete(models, theta, mass)
    return q_eff, ref, ref["Q"].T ** (1 / eta)


def test_per_type_rows_pass_the_exact_menus_and_fail_one_low_type_moved():
    """competition2 (session 7): in 81_0 the per-type q rows passed at 1e-18 with 21 types on the wrong
    model, because every type was judged on the top type's scale (~1e28 above their tokens).  Each type
    is now judged on its own scale (efficient: its first-best spend; monopolist: its θ·V_ref, floored).  The exact
    closed-form menus pass; moving one low type's tokens to the other model, or 1 % of them, fails its row
    (the monopolist's down to its resolution floor, checks.MON_TYPE_FLOOR)."""
    for case in ((), (0.7, 0.25, 0.0)):
        models, theta, mass = _wide_span_case(*case)
        q_eff, ref, q_mon = _exact(models, theta, mass)
        v = _two_model_rows(models, theta, mass, q_eff, q_mon, ref["V"], ref["t"], ref["profit"])
        assert v.quantity.str.contains("the type's own").sum() == 4 * len(theta)
        bad = v[~v.passed.astype(bool)]
        assert bad.empty, bad.to_string()
    models, theta, mass = _wide_span_case()
    q_eff, ref, q_mon = _exact(models, theta, mass)
    base = (models, theta, mass, q_eff, q_mon, ref["V"], ref["t"], ref["profit"])

    # efficient: the lowest type (θ = 0.066) on the leader instead of the fringe, same quality
    assert q_eff[0, 0] > 0 and q_eff[0, 1] == 0
    Q0 = q_eff[0, 0] ** models[0].eta
    moved = q_eff.copy()
    moved[0] = [0.0, Q0 ** (1 / models[1].eta)]
    v = _two_model_rows(models, theta, mass, moved, *base[4:])
    rows = v[(v.check == "efficient_vs_closed_form") & v.quantity.str.contains("the type's own")]
    assert not rows[rows["index"] == str(theta[0])].passed.astype(bool).all()
    # 1 % more tokens for the same type on its own model
    scaled = q_eff.copy()
    scaled[0, 0] *= 1.01
    v = _two_model_rows(models, theta, mass, scaled, *base[4:])
    row = v[(v.check == "efficient_vs_closed_form") & v.quantity.str.startswith("q[fringe]") & (v["index"] == str(theta[0]))]
    assert len(row) == 1 and not bool(row.passed.iloc[0])

    # monopolist: 1 % more tokens for a low served type spending 4e-6 of the menu's money (judged on
    # 1e-2 of the money, checks.MON_TYPE_FLOOR: 4e-6 > 1e-6; on the money itself 4e-8 < 1e-6 passed)
    models, theta, mass = _wide_span_case(0.7, 0.25, 0.0)
    q_eff, ref, q_mon = _exact(models, theta, mass)
    money = max(np.max(np.abs(ref["t"])), np.max(theta * ref["V"]))
    spend = q_mon @ np.array([mm.c for mm in models]) / money
    k = int(np.nonzero((spend > 3e-6) & (spend < 1e-4))[0][0])  # θ = 0.75, spend 3.96e-6 of the money
    own = int(np.argmax(q_mon[k]))
    scaled = q_mon.copy()
    scaled[k, own] *= 1.01
    assert 0.01 * models[own].c * q_mon[k, own] < 1e-6 * money  # invisible on the old scale
    v = _two_model_rows(models, theta, mass, q_eff, scaled, ref["V"], ref["t"], ref["profit"])
    row = v[(v.check == "monopolist_vs_discrete_closed_form") & v.quantity.str.startswith(f"q[{models[own].name}]")
            & (v["index"] == str(theta[k]))]
    assert len(row) == 1 and not bool(row.passed.iloc[0])
    # and the type on the other model fails too
    moved = q_mon.copy()
    moved[k] = 0.0
    moved[k, 1 - own] = ref["V"][k] ** (1 / models[1 - own].eta)
    v = _two_model_rows(models, theta, mass, q_eff, moved, ref["V"], ref["t"], ref["profit"])
    rows = v[(v.check == "monopolist_vs_discrete_closed_form") & v.quantity.str.contains("the type's own")
             & (v["index"] == str(theta[k]))]
    assert len(rows) == 2 and not rows.passed.astype(bool).all()


SCN_C03B = tomllib.loads('''
name = "c03b_comp_dollar_served"
[technology]
sigma = 0.4
rho = 0.0
[[technology.tokens]]
name = "input"
weight = 0.5
cost = 3.0
[[technology.tokens]]
name = "output"
weight = 0.5
cost = 15.0
[types]
distribution = "beta"
p = 2.0
q = 5.0
low = 20.0
high = 200.0
n = 80
grid = "equal-mass"
[regimes.competition]
gamma_L = 0.3
gamma_F = 0.0
c_L = 20.0
c_F = 12.0
convergence = [80, 160, 320]
refine = 4
task_cells = 0
''')


def test_beta_top_with_zero_density_runs_its_continuous_checks(ctx, monkeypatch):
    """Stranger S8-D2 (c03b_comp_dollar_served, Beta(2, 5) on [20, 200], equal-mass): h was NaN at
    θ_max, the continuous schedule 'not monotone', and the thresholds, finer-grid and convergence rows
    were all skipped on a run that exited 0.  They now run and pass: the orders on regular cells
    (checks.REGULAR_CELL; the equal-mass top cells grow as N^(−1/5)) are 0.81 (q_L), 0.86 (t), 0.93
    (profit).  A closed form off by 2 % in θ_hi still fails its row."""
    res, v = _run(SCN_C03B, ctx)
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    assert not any("not monotone" in n for n in res.notes)
    for chk in ("leader_thresholds_vs_continuous", "leader_finer_grid_choice", "leader_convergence_to_continuous"):
        assert (v.check == chk).any(), chk
    assert (v.check == "leader_convergence_to_continuous").sum() == 3
    from models.closed_form import competition as cc

    orig = cc.theta_hi
    monkeypatch.setattr(cc, "theta_hi", lambda lf, dist: 1.02 * orig(lf, dist))
    raw = copy.deepcopy(SCN_C03B)
    raw["regimes"]["competition"].pop("convergence")
    _, v2 = _run(raw, ctx)
    row = v2[(v2.check == "leader_thresholds_vs_continuous") & v2.quantity.str.startswith("theta_hi")]
    assert len(row) == 1 and not bool(row.passed.iloc[0])


SCN_82_6 = tomllib.loads('''
name = "competition_82_6"

[technology]
sigma = 0.6668
rho = -35.39

[[technology.tokens]]
name = "tok1"
weight = 0.427087
cost = 1.04222

[[technology.tokens]]
name = "tok2"
weight = 0.230834
cost = 11.0187

[[technology.tokens]]
name = "tok3"
weight = 0.342079
cost = 19.1283

[types]
distribution = "beta"
low = 0.0
high = 60.228
p = 0.8955
q = 0.9668
n = 67
grid = "equal-mass"

[regimes]

[regimes.competition]
gamma_L = 0.1932
gamma_F = 0.0
c_L = 0.19064
c_F = 0.12635
task_cells = 3
task_profiles = 2
refine = 10
''')


@pytest.mark.slow  # ~80 s of CPU
def test_threshold_row_reads_unresolved_types_as_undetermined(ctx):
    """Regression (competition_82_6, fresh seed 82, after the leader program's per-type units):
    the NLP labels the lowest grid types -- each worth < TOL_DISCRETE of the profit, so
    undetermined by the program -- "interior", so it has no theta_lo / theta_hi on the grid
    and the row "disagree on whether this threshold lies on the grid" failed a correct
    menu.  The NLP's thresholds are now read on its resolved types (the unresolved ones as
    the discrete closed form's) and compared with the continuous values within one step."""
    res, v = _run(SCN_82_6, ctx)
    assert res.verified, v[~v["passed"].astype(bool)].to_string()
    rows = v[v["check"] == "leader_thresholds_vs_continuous"]
    # Since session 9's leader bounds (quantity <= 2x and price >= -1 of each type's unit) the NLP no
    # longer labels those unresolved types "interior" on this draw, so the resolved-types reading need not
    # arise here any more (comp94, session 9: the old "the case arises" assertion failed on a verified run);
    # where it does arise it must be the one used, and the on-grid disagreement row must not fail.
    if rows["quantity"].str.contains("of its resolved types").any():
        assert not rows["quantity"].str.contains("lies on the grid").any()


SCN_92_36 = tomllib.loads('''
name = "competition_92_36"

[technology]
sigma = 0.5385
rho = 0.0

[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 7.30513

[types]
distribution = "uniform"
low = 1.939
high = 2.939
n = 79

[regimes]

[regimes.competition]
gamma_L = 0.3153
gamma_F = 0.0
c_L = 0.578433
c_F = 0.18875
task_cells = 4
task_profiles = 2
refine = 5
''')


def test_threshold_within_a_step_of_the_grid_end_and_region_widths_in_the_support(ctx):
    """Regression (competition_92_36, fresh seed 92): types on [1.939, 2.939], continuous θ_lo = 1.42
    (below the support) and θ_hi = 1.9466, within one step of the first type (1.9453).  Two
    check defects failed a correct menu (every type interior in the NLP and the discrete closed
    form): "disagree on whether θ_hi lies on the grid" had no one-step allowance at the grid's
    end, and the limit region counted 0.53 wide (θ_hi − θ_lo) instead of its 0.0076 inside the
    support, so it had to hold grid types."""
    res, v = _run(SCN_92_36, ctx)
    assert res.verified, v[~v["passed"].astype(bool)].to_string()
    th = v[v["check"] == "leader_thresholds_vs_continuous"]
    assert th["quantity"].str.contains("at the grid's end").any(), th.to_string()  # the case arises
    reg = v[v["check"] == "leader_three_regions"]
    assert (reg["index"] == "regions [2]").all(), reg.to_string()


SCN_81_0 = tomllib.loads(SCN_COMPETITION_81_0)


def test_convergence_grids_get_the_lazy_all_pairs_final(ctx):
    """competition_81_0 (seed 81): Beta(0.73, 29.3), the top ~17 types have masses 1e-16 … 1e-52, below the
    solver's resolution.  The convergence grids' menus came from the starts of solving._leader_refine,
    which carry the downward adjacent IC rows only; the unresolved top items' prices drifted down until
    lower types would take them: leader_finer_grids_audit failed at an all-pairs violation of 1.35e15
    (the money scale; tol 1.2e8) at N = 22 and 44.  Now every convergence grid's best menu gets the
    lazy all-pairs final of the scenario grid (solving.leader_final), and its audit must be clean (the
    row's own tolerance, TOL_AUDIT of the scenario menu's utility scale).  The base menu is the exact
    discrete optimum on the scenario grid (the refinement's start; no scenario-grid NLP needed)."""
    from models import competition as comp
    from models.closed_form import competition as cc
    from models.competition import checks
    from models.results import RegimeResult
    s = scenario.from_dict(copy.deepcopy(SCN_81_0), source="x.toml")
    c = SCN_81_0["regimes"]["competition"]
    lf = cc.LeaderFringe(sigma=SCN_81_0["technology"]["sigma"], gamma_L=c["gamma_L"], c_L=c["c_L"], c_F=c["c_F"])
    th, ms = s.discrete_types()
    ref = cc.leader_discrete_monotone(lf, th, ms)
    base = comp.LeaderMenu(theta=th, mass=ms, q=ref["q_L"], T=ref["T"], f=ref["q_F"], objective=ref["profit"])
    res = RegimeResult("competition")
    df = checks._leader_convergence(res, lf, s, ctx, [22], base)
    v = res.verification
    rows = v[v.check.isin(["leader_finer_grids_audit", "leader_finer_grids_vs_discrete_cf"])]
    assert len(rows) == 3 and rows.passed.all(), rows.to_string()
    assert (df["status"] == "optimal").all(), df.T.to_string()


def test_convergence_order_is_fitted_where_the_grid_resolves_the_density():
    """competition_81_0, the exact discrete optima only (no NLP): Beta(0.73, 29.3), equal spacing.  The discrete
    virtual value is φ_k − φ(θ_k) = h/2·(1 − h|f'/f|/6 + …) on the Beta tail (checks.DENSITY_RESOLVED), so its
    error is O(1/N) only where h|f'/f| ≪ 1.  At N = 22, 44 every type has h_c|f'/f| ≥ 1.3 (the density
    falls by e^−1.3 within a cell everywhere): the fitted max-norm orders were 0.27 (q_L) and 0.70 (t) and
    the rows failed on the exact solution; now they are not checked, with a note.  At N = 176, 352 the types
    with h_c|f'/f| ≤ 1 (θ ≲ 2.0) are kept and the orders must lie in ORDER_BAND (measured 0.94 / 0.95; over
    all types 0.45 / 0.48, which failed before)."""
    from models import competition as comp
    from models.closed_form import competition as cc
    from models.competition import checks
    from models.results import RegimeResult
    s = scenario.from_dict(copy.deepcopy(SCN_81_0), source="x.toml")
    c = SCN_81_0["regimes"]["competition"]
    lf = cc.LeaderFringe(sigma=SCN_81_0["technology"]["sigma"], gamma_L=c["gamma_L"], c_L=c["c_L"], c_F=c["c_F"])
    cols = ["max_rel_err_q_L_away_from_thresholds", "max_rel_err_t_away_from_thresholds"]
    for sizes, checked in (([22, 44], False), ([176, 352], True)):
        known = {}
        for n in sizes:
            th, ms = s.types.discretise(n, s.grid)
            ref = cc.leader_discrete_monotone(lf, th, ms)
            known[n] = comp.LeaderMenu(theta=th, mass=ms, q=ref["q_L"], T=ref["T"], f=ref["q_F"], objective=ref["profit"])
        res = RegimeResult("competition")
        df = checks._leader_convergence(res, lf, s, None, sizes, known[sizes[0]], known)
        v = res.verification
        rows = v[(v.check == "leader_convergence_to_continuous") & v.quantity.str.contains("away_from")]
        if checked:
            assert len(rows) == 2 and rows.passed.all(), rows.to_string()
            lo, hi = checks.ORDER_BAND
            for col in cols:
                assert lo <= df[f"order_{col}"].iloc[0] <= hi, df.T.to_string()
        else:
            assert len(rows) == 0, rows.to_string()
            assert sum("not checked" in n and "away_from" in n for n in res.notes) == 2, res.notes


SCN_81_19 = tomllib.loads('''
name = "competition_81_19"
[technology]
sigma = 0.484
rho = -1.846
[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 2.91629
[types]
distribution = "piecewise"
breakpoints = [0.08325, 2.0419, 2.2923, 2.65706]
masses = [0.27668, 0.0676658, 0.6556542000000001]
n = 73
grid = "equal-mass"
[regimes.competition]
gamma_L = 0.4162
gamma_F = 0.0
c_L = 0.416831
c_F = 0.26192
task_cells = 0
''')


def test_threshold_at_a_density_jump_allows_the_gap_across_it(ctx):
    """competition_81_19 (seed 81): piecewise density ×6.7 up at 2.2923, which is the continuous exclusion
    type (the virtual value jumps from −0.20 to +1.93 there) and the leader's θ_hi; equal-mass grid, 73 types.
    The type at 2.2600 has its next neighbour beyond the jump (gap 0.0351): its discrete virtual value reads
    the density across it (0.58 vs φ(2.26) = −0.20), so it is served, by the exact discrete optimum too, and
    the midpoint threshold 2.2347 is 1.14 grid steps (0.0507) from 2.2923: the monopolist's exclusion row and
    the leader's θ_hi row failed on correct answers (exit 1).  Those rows now allow one step plus that gap
    (checks._break_gap) and pass; every other row passes as before."""
    res, v = _run(SCN_81_19, ctx)
    rows = v[v.quantity.isin(["exclusion type (midpoint)", "theta_hi (NLP midpoint)"])]
    assert len(rows) == 2 and rows.passed.all(), rows.to_string()
    assert rows["index"].str.contains("the gap across a density jump").all(), rows["index"].tolist()
    assert v.passed.all(), v.loc[~v.passed, ["check", "quantity", "rel_err", "tolerance"]].to_string()



# competition_122_33 (fresh seed 122), verbatim
SCN_122_33 = tomllib.loads('''
name = "competition_122_33"

[technology]
sigma = 0.3354
rho = -1.037

[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 1.8119

[types]
distribution = "beta"
low = 1.627
high = 2.627
p = 26.11
q = 3.427
n = 41
grid = "equal-mass"

[regimes]

[regimes.competition]
gamma_L = 0.1796
gamma_F = 0.0
c_L = 0.053361
c_F = 0.050662
task_cells = 6
task_profiles = 1
''')


def test_region_check_counts_widths_inside_the_grids_span(ctx):
    """Beta(26.1, 3.4) on [1.627, 2.627], equal-mass N = 41: the grid spans [2.3497, 2.6041] (the lower
    tail holds < 1/82 of the mass), the continuum's limit-pricing region is [1.627, 2.3636], and the NLP
    and the discrete closed form price all 41 types interior (the lowest type sits 0.014 below θ_hi,
    less than a grid step).  The region row measured widths on the support, called the limit region
    0.74 wide and failed on a correct menu; inside the grid's span it is 0.014 wide, and the interior
    region, 0.24 wide, holds every type."""
    res, v = _run(SCN_122_33, ctx)
    row = v[v["check"] == "leader_three_regions"]
    assert len(row) == 1 and bool(row["passed"].iloc[0]), row.to_string()
    assert row["index"].iloc[0] == "regions [2]"
    assert res.verified, v[~v["passed"].astype(bool)][["check", "quantity", "rel_err", "tolerance"]].to_string()



# --------------------------------------------------------------- convergence orders (session 12, order12)
SCN_97_13 = tomllib.loads('''
name = "competition_97_13"
[technology]
sigma = 0.2177
rho = -30.24
[[technology.tokens]]
name = "tok1"
weight = 0.278982
cost = 11.0719
[[technology.tokens]]
name = "tok2"
weight = 0.7210179999999999
cost = 4.01312
[types]
distribution = "beta"
low = 0.0
high = 1.0
p = 5.117
q = 1.0
n = 54
[regimes.competition]
gamma_L = 0.7217
gamma_F = 0.0
c_L = 0.0521975
c_F = 0.037165
task_cells = 6
task_profiles = 1
convergence = [18, 36]
''')

SCN_120_3 = tomllib.loads('''
name = "competition_120_3"
[technology]
sigma = 0.4261
rho = -0.6955
[[technology.tokens]]
name = "tok1"
weight = 0.261187
cost = 9.6086
[[technology.tokens]]
name = "tok2"
weight = 0.650958
cost = 0.849488
[[technology.tokens]]
name = "tok3"
weight = 0.08785500000000002
cost = 8.15666
[types]
distribution = "beta"
low = 1.102
high = 2.102
p = 0.7348
q = 1.0
n = 48
grid = "equal-spacing"
[regimes.competition]
gamma_L = 0.3006
gamma_F = 0.0
c_L = 0.912293
c_F = 0.58904
task_cells = 12
task_profiles = 2
convergence = [19, 38]
''')

COMP_EDGE = Path(__file__).resolve().parent.parent / "bench" / "notes" / "session11" / "comp_edge_recon.toml"


def _lf(raw):
    from models.closed_form import competition as cc
    c = raw["regimes"]["competition"]
    return cc.LeaderFringe(sigma=raw["technology"]["sigma"], gamma_L=c["gamma_L"], c_L=c["c_L"], c_F=c["c_F"])


def _exact_convergence(raw, sizes, monkeypatch=None, eps=None, key="q_L"):
    """checks._leader_convergence on the exact discrete optima (no NLP); optionally with the continuous
    closed form's ``key`` off by the factor 1 + eps (a mutant the order row must catch)."""
    from models import competition as comp
    from models.closed_form import competition as cc
    from models.competition import checks
    from models.results import RegimeResult
    s = scenario.from_dict(copy.deepcopy(raw), source="x.toml")
    lf = _lf(raw)
    known = {}
    for n in sizes:
        th, ms = s.types.discretise(n, s.grid)
        ref = cc.leader_discrete_monotone(lf, th, ms)
        known[n] = comp.LeaderMenu(theta=th, mass=ms, q=ref["q_L"], T=ref["T"], f=ref["q_F"], objective=ref["profit"])
    if eps is not None:
        orig = cc.leader_continuous

        def mutant(*a, **k):
            out = dict(orig(*a, **k))
            out[key] = out[key] * (1 + eps)
            return out
        monkeypatch.setattr(cc, "leader_continuous", mutant)
    res = RegimeResult("competition")
    df = checks._leader_convergence(res, lf, s, None, sizes, known[sizes[0]], known)
    v = res.verification
    rows = v[v.check == "leader_convergence_to_continuous"].set_index("quantity")
    return res, df, rows


Q_ROW = "observed order of max_log_err_q_L_away_from_thresholds"
T_ROW = "observed order of max_log_err_t_away_from_thresholds"
P_ROW = "observed order of rel_err_profit"


def test_order_of_an_error_amplified_by_q_proportional_to_phi_power_m_is_fitted_on_its_log(monkeypatch):
    """competition_97_13 (seed 97; Beta(5.1, 1), η = 0.9394, so q ∝ φ^m with m = 1/(1 − η) = 16.5): on the
    exact discrete optima at N = 18, 36 the relative errors of q_L and t (0.66, 0.27) fitted orders 1.28 and
    1.26 against the band [0.75, 1.25] and the rows failed on a correct answer.  q_d/q_c = e^μ,
    μ = m·log(φ_k/φ(θ_k)) = O(h), and e^μ − 1 has the two-grid order log2(1 + √(1 + E)) (1.19 at E = 0.66).
    The rows now fit the log error (checks._log_err), linear in μ: orders 1.075 / 1.059.  The relative
    orders are still reported (and still outside the band: the same data).  A reference off by 10 % still
    fails its row: an order row resolves a mutant ε once ε ≳ 0.14·e_c against the sign of the error
    (e_c = 0.51 here, the coarse log error), so the factor is 10 % on this coarse pair."""
    res, df, rows = _exact_convergence(SCN_97_13, [18, 36])
    assert {Q_ROW, T_ROW} <= set(rows.index) and rows.loc[[Q_ROW, T_ROW], "passed"].all(), rows.to_string()
    lo, hi = 0.95, 1.15  # the DENSITY_RESOLVED expansion's own two-grid shift is ≤ 0.15
    assert lo <= rows.loc[Q_ROW, "numeric"] <= hi and lo <= rows.loc[T_ROW, "numeric"] <= hi, rows.to_string()
    assert df["order_max_rel_err_q_L_away_from_thresholds"].iloc[0] > 1.25, df.T.to_string()
    for key, row in (("q_L", Q_ROW), ("T", T_ROW)):
        with monkeypatch.context() as mp:
            _, _, bad = _exact_convergence(SCN_97_13, [18, 36], mp, eps=0.1, key=key)
        assert row in bad.index and not bool(bad.loc[row, "passed"]), (key, bad.to_string())


def test_t_order_carries_the_rent_jump_at_theta_star(monkeypatch):
    """competition_120_3 (seed 120; Beta(0.73, 1), the leader enters at θ* = 1.937 on q^int, where the rent
    density (q^η − A^σ)^+ jumps by J): the discrete U integrates each cell with its lower type's q, so it
    misses J·(θ_j − θ*) on every type above the first served one, θ_j, and θ_j − θ* moves within a cell as N
    changes.  N·(U_d − U_c) at the top type (scale max T) is −0.19, −0.01, −0.06, −0.17 at N = 19 … 152;
    with the jump term of checks._rent_jump_offset it is constant (−0.052 … −0.055).  The t order on the
    exact optima was 1.30 (band 1 ± 0.25, exit 1); with the term it is 0.994.  A 2 % mutant of T_c fails."""
    from models.closed_form import competition as cc
    from models.competition import checks
    s = scenario.from_dict(copy.deepcopy(SCN_120_3), source="x.toml")
    lf = _lf(SCN_120_3)
    thr = cc.leader_thresholds(lf, s.types)
    raw_err, fixed_err = [], []
    for n in (19, 38, 76, 152):
        th, ms = s.types.discretise(n, s.grid)
        ref = cc.leader_discrete_monotone(lf, th, ms)
        cont = cc.leader_continuous(lf, s.types, th)
        sc = float(np.max(np.abs(cont["T"])))
        du = float(ref["U"][-1] - cont["U"][-1])
        off = float(checks._rent_jump_offset(lf, s.types, th, ref["q_L"], thr)[-1])
        raw_err.append(n * du / sc)
        fixed_err.append(n * (du + off) / sc)  # U_d − U_c = −offset + C·h
    raw_err, fixed_err = np.array(raw_err), np.array(fixed_err)
    # the jump term's size J·h spans the raw spread; what is left is C·h(1 + O(h))
    assert np.ptp(raw_err) > 0.5 * np.abs(raw_err).max(), raw_err
    assert np.ptp(fixed_err) < 0.1 * np.abs(fixed_err).max(), fixed_err
    res, df, rows = _exact_convergence(SCN_120_3, [19, 38])
    assert rows["passed"].all() and {Q_ROW, T_ROW, P_ROW} <= set(rows.index), rows.to_string()
    assert df["order_max_rel_err_t_away_from_thresholds"].iloc[0] > 1.25, df.T.to_string()
    with monkeypatch.context() as mp:
        _, _, bad = _exact_convergence(SCN_120_3, [19, 38], mp, eps=0.02, key="T")
    assert not bool(bad.loc[T_ROW, "passed"]), bad.to_string()


def test_profit_order_needs_the_linear_regime_of_q_proportional_to_phi_power_100(monkeypatch):
    """σ + γ_L = 0.99 (bench/notes/session11/comp_edge_recon.toml: c_F = 0.999 c_L, Beta(0.5, 0.5) on [1, 3],
    grids 40/80/160): q ∝ φ^100, and on the exact discrete optima the discrete q is e^1.7 times the
    continuous one at the top at N = 40.  The three order rows failed (3.85, 3.83, −0.32).  Now:
    - q_L and t are fitted on their log errors over a θ-set fixed by the coarse cells (checks.DENSITY_RESOLVED;
      with the type's own point only, the coarse grid's top type, e^1.69 off, counted on N = 40 alone: 3.25),
      linear in the exponent's error: 1.03 / 1.03, and a 10 % mutant of q_c fails;
    - the profit, a sum of per-type e^μ − 1, is not in its linear regime (checks.PROFIT_LINEAR:
      μ̄ = 1.69 > 0.5 at N = 40; errors 0.10, 0.21, 0.16): its row is not checked, and the note names the
      coarsest grid it needs (N ≳ 40·1.69/0.5 = 135)."""
    from models.competition import checks
    raw = tomllib.loads(COMP_EDGE.read_text())
    res, df, rows = _exact_convergence(raw, [40, 80, 160])
    assert set(rows.index) == {Q_ROW, T_ROW} and rows["passed"].all(), rows.to_string()
    mu = float(df["profit_weighted_log_q_err_coarsest"].iloc[0])
    assert mu > checks.PROFIT_LINEAR
    note = [n for n in res.notes if "order of rel_err_profit not checked" in n]
    assert len(note) == 1 and "PROFIT_LINEAR" in note[0], res.notes
    assert f"N ≳ {int(np.ceil(40 * mu / checks.PROFIT_LINEAR))}" in note[0], note
    with monkeypatch.context() as mp:
        _, _, bad = _exact_convergence(raw, [40, 80, 160], mp, eps=0.1, key="q_L")
    assert not bool(bad.loc[Q_ROW, "passed"]), bad.to_string()


@pytest.mark.slow  # ~60 s of CPU: both scenarios end to end (NLPs on the scenario and convergence grids)
@pytest.mark.parametrize("raw", [SCN_97_13, SCN_120_3], ids=["97_13", "120_3"])
def test_order_scenarios_are_verified_end_to_end(ctx, raw):
    """The two scenarios of the session-11 open item exit 0: every row passes, the order rows included."""
    res, v = _run(raw, ctx)
    assert res.converged and v.passed.all(), v.loc[~v.passed.astype(bool), ["check", "quantity", "rel_err"]].to_string()
    assert {Q_ROW, T_ROW} <= set(v.loc[v.check == "leader_convergence_to_continuous", "quantity"])



# ------------------------------------------------- theta_lo off the grid through unresolved types (122_3)
def _thresholds_122_3(unserved, resolved):
    """checks._leader_thresholds on competition_122_3's grid (Beta(17.13, 5.72) on [0.7451, 1.7451], N = 79):
    the discrete closed form limit-prices every type (θ_lo = 0.345 lies below the support), and the 'NLP'
    is that menu with the types ``unserved`` left unserved; ``resolved`` marks the types the NLP resolves."""
    from models.closed_form import competition as cc
    from models.competition import checks
    from models.results import RegimeResult
    from models.type_space import TypeDistribution
    lf = cc.LeaderFringe(sigma=0.28, gamma_L=0.1333, c_L=0.09146, c_F=0.087529)
    dist = TypeDistribution("beta", low=0.7451, high=1.7451, p=17.13, q=5.72)
    th, ms = dist.discretise(79, "equal-spacing")
    ref = cc.leader_discrete_monotone(lf, th, ms)
    reg = np.asarray(ref["region"]).copy()
    reg[unserved] = 0
    res = RegimeResult("competition")
    checks._leader_thresholds(res, lf, dist, th, reg, ref, resolved)
    v = res.verification
    rows = v[(v.check == "leader_thresholds_vs_continuous") & v.quantity.str.startswith("theta_lo")] \
        if len(v) else v
    return res, rows, th, ms, ref, cc.leader_thresholds(lf, dist)


def test_theta_lo_on_the_grid_only_through_unresolved_types_is_a_note():
    """competition_122_3 (topup12): the continuous θ_lo = 0.345 is below the support; the NLP left the three
    lowest types (p ≤ 7e-21, below its resolution) unserved, so its entry midpoint 0.783 was compared with
    0.345 within one step (1.27 against 0.147) and the run exited 1 on a correct menu.  Read on the resolved
    types the NLP has no entry on the grid either: a note, no row.  The row still runs, and fails, when a
    resolved type is the one left unserved, or when nothing says which types are resolved."""
    n = 79
    lo3 = np.arange(3)
    resolved = np.ones(n, bool)
    resolved[lo3] = False
    res, rows, th, ms, ref, cont = _thresholds_122_3(lo3, resolved)
    assert cont["theta_lo"] < th[0] and bool(cont["middle_nonempty"]), cont
    assert np.all(np.asarray(ref["region"]) > 0) and ms[:3].max() < 1e-19, ms[:3]
    assert rows.empty, rows.to_string()
    assert any("theta_lo lies on the grid only through types below the NLP's resolution" in x for x in res.notes)
    # the same three types, but the NLP claims to resolve them: the row is checked and fails (0.783 vs 0.345)
    for rs in (np.ones(n, bool), None):
        res, rows, *_ = _thresholds_122_3(lo3, rs)
        assert len(rows) == 1 and not bool(rows.passed.iloc[0]), rows.to_string()
        assert not any("only through types below" in x for x in res.notes)
    # a resolved type (the fifth) is unserved too: the NLP's entry is on the grid through it, so the row runs
    res, rows, *_ = _thresholds_122_3(np.arange(5), resolved)
    assert len(rows) == 1 and not bool(rows.passed.iloc[0]), rows.to_string()


# ------------------------------------------------- session 14 (comp14): three seed-130/131 scenarios
SCN_131_48 = tomllib.loads('''
name = "competition_131_48"
[technology]
sigma = 0.5907
rho = -0.7604
[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 0.814014
[types]
distribution = "beta"
low = 0.0
high = 5.75044
p = 1.025
q = 25.95
n = 43
grid = "equal-mass"
[regimes.competition]
gamma_L = 0.1977
gamma_F = 0.0
c_L = 1.44488
c_F = 0.43154
task_cells = 8
task_profiles = 1
convergence = [28, 56]
''')


def test_profit_order_is_not_fitted_when_the_coarsest_grid_misses_the_leaders_market():
    """competition_131_48 (seed 131; Beta(1.025, 25.95) on [0, 5.75], equal-mass): the leader enters at
    θ* = 4.43, above which the mass is ~1e-16, so no type of the N = 28 and 56 grids lies in its market: the
    exact discrete profit is 0, the relative error 1 on both grids and the fitted 'order' ~0 failed the band
    [0.75, 1.25] on an exact answer (the NLP: 6e-11).  checks.PROFIT_LINEAR's μ̄ came out 0 (an empty weighted
    mean read as 'linear regime'); it is now unbounded and the row a note.  The row is still checked (and a
    mutant fails it) where the grid reaches the market: test_t_order_carries_the_rent_jump_at_theta_star."""
    res, df, rows = _exact_convergence(SCN_131_48, [28, 56])
    assert (df["profit_discrete_cf"] == 0).all() and (df["rel_err_profit"] == 1).all(), df.T.to_string()
    assert P_ROW not in rows.index, rows.to_string()
    note = [n for n in res.notes if "order of rel_err_profit not checked" in n]
    assert len(note) == 1 and "no type of the coarsest grid" in note[0], res.notes


SCN_130_21 = tomllib.loads('''
name = "competition_130_21"
[technology]
sigma = 0.5643
rho = 0.9913
[[technology.tokens]]
name = "tok1"
weight = 1.0
cost = 0.1432
[types]
distribution = "beta"
low = 0.0
high = 1.46649
p = 0.7662
q = 20.09
n = 11
[regimes.competition]
gamma_L = 0.02699
gamma_F = 0.0
c_L = 0.0603941
c_F = 0.054841
task_cells = 9
task_profiles = 2
convergence = [17, 34]
''')


def _theta_hi_row(raw, n, shift=0):
    """checks._leader_thresholds on the exact discrete menu of ``raw`` at N = n (optionally with its first
    ``shift`` interior types relabelled limit-priced, a θ_hi ``shift`` types too high): the θ_hi row."""
    from models.closed_form import competition as cc
    from models.competition import checks
    from models.results import RegimeResult
    s = scenario.from_dict(copy.deepcopy(raw), source="x.toml")
    lf = _lf(raw)
    th, ms = s.types.discretise(n, s.grid)
    ref = cc.leader_discrete_monotone(lf, th, ms)
    reg = np.asarray(ref["region"]).copy()
    k = int(np.argmax(reg == 2))
    reg[k:k + shift] = 1
    res = RegimeResult("competition")
    checks._leader_thresholds(res, lf, s.types, th, reg, ref, np.ones(n, bool))
    v = res.verification
    return v[(v.check == "leader_thresholds_vs_continuous") & v.quantity.str.startswith("theta_hi")], th, ref


def test_theta_hi_allows_the_discrete_limit_pricing_band_above_it():
    """competition_130_21 (seed 130; Beta(0.77, 20.1), N = 11): the NLP equals the exact discrete closed form,
    whose θ_hi midpoint 0.667 lies 1.56 steps above the continuous 0.459 (the row allowed one step: exit 1).
    A discrete type is interior only above the *next* type's limit quality (q^int(φ_k) ≥ q̂(θ_(k+1))): that
    band shifts the discrete threshold up by ≈ (a/θ)/G' steps, 2.7 here where q^int and q̂ cross at a narrow
    angle (checks._limit_band_shift), and the exact discrete midpoints stay 0.9 … 1.6 steps above θ_hi up to
    N = 176 -- not a coarse-grid effect.  The row now allows that shift above θ_hi, one step below it as
    before; a θ_hi two types further up (beyond the shift plus a step) still fails, and so does the shift on a
    uniform scenario (0.14 steps: data/competition.toml keeps its one-step window, nearly)."""
    from models.competition import checks
    rows, th, ref = _theta_hi_row(SCN_130_21, 11)
    assert len(rows) == 1 and bool(rows.passed.iloc[0]), rows.to_string()
    assert "limit-pricing band" in rows["index"].iloc[0], rows.to_string()
    step = th[1] - th[0]
    assert rows.numeric.iloc[0] - rows.reference.iloc[0] > 1.5 * step  # beyond the old one-step window
    bad, *_ = _theta_hi_row(SCN_130_21, 11, shift=3)
    assert len(bad) == 1 and not bool(bad.passed.iloc[0]), bad.to_string()
    s = scenario.from_dict(copy.deepcopy(SCN_130_21), source="x.toml")
    band = checks._limit_band_shift(_lf(SCN_130_21), s.types, float(rows.reference.iloc[0]), step)
    assert 2.5 * step < band < 3.0 * step, band / step
    default = tomllib.loads((Path(__file__).resolve().parent.parent / "data" / "competition.toml").read_text())
    ds = scenario.from_dict(copy.deepcopy(default), source="x.toml")
    from models.closed_form import competition as cc
    lf = _lf(default)
    c = cc.leader_thresholds(lf, ds.types)["theta_hi"]
    assert checks._limit_band_shift(lf, ds.types, c, 0.05) < 0.2 * 0.05


def test_exclusion_type_is_where_the_ironed_virtual_value_turns_positive():
    """competition_131_29 (seed 131; Beta(0.7886, 4.906) on [0.575, 22.34], N = 23): h > 0 on a sliver
    (θ_min, θ_min + 1.2e-4] (p < 1: f = ∞ at θ_min) and < 0 up to 3.366.  exclusion_type returned θ_min because
    h > 0 just above it, and the exact discrete monopolist's exclusion midpoint 2.47 missed 0.575 by 3.3 steps
    (exit 1).  The lowest served type is where the ironed h̄ turns positive: the largest argmax of θ(1 − F(θ))
    (closed_form.competition.exclusion_type).  Independently: a 2e6-point argmax of θ·(1 − F) and mass-weighted
    PAVA on the discrete virtual values of N = 2000 types (own code here) put it at 3.366.  The row passes on
    the exact discrete menu and fails with three more types excluded."""
    from models import competition as comp
    from models.closed_form import competition as cc
    from models.results import RegimeResult
    from models.type_space import TypeDistribution
    dist = TypeDistribution("beta", low=0.575, high=22.3372, p=0.7886, q=4.906)
    lo, hi = dist.support
    assert cc.virtual_value(dist, lo + 1e-6) > 0 > cc.virtual_value(dist, lo + 1e-2)  # the sliver
    t = np.linspace(lo, hi, 2_000_001)
    x_rev = float(t[np.argmax(t * dist.sf(t))])
    th, ms = dist.discretise(2000, "equal-spacing")
    phi = cc.discrete_virtual_values(th, ms)
    blocks = []  # [Σ p φ, Σ p, count]: pool adjacent violators, mass-weighted
    for k in range(len(th)):
        blocks.append([phi[k] * ms[k], ms[k], 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            b = blocks.pop()
            blocks[-1] = [blocks[-1][0] + b[0], blocks[-1][1] + b[1], blocks[-1][2] + b[2]]
    ironed = np.concatenate([[b[0] / b[1]] * b[2] for b in blocks])
    k = int(np.argmax(ironed > 0))
    x = cc.exclusion_type(dist)
    assert abs(x - x_rev) <= 2 * (t[1] - t[0]) and th[k - 1] <= x <= th[k], (x, x_rev, th[k - 1], th[k])
    assert abs(cc.virtual_value(dist, x)) < 1e-8
    # the row on the exact discrete menu of the scenario's grid
    th, ms = dist.discretise(23, "equal-spacing")
    models = comp._two_models(0.4047, {"c_F": 0.55353, "c_L": 1.46303, "gamma_F": 0.0, "gamma_L": 0.2734})
    ref = cc.monopolist_discrete(models, th, ms)

    def row(V):
        res = RegimeResult("competition")
        comp._monopolist_continuous_checks(res, models, th, dist, V, np.asarray(ref["model"]), ms, V_ref=ref["V"])
        v = res.verification
        return v[v.quantity == "exclusion type (midpoint)"]

    r = row(ref["V"])
    assert len(r) == 1 and bool(r.passed.iloc[0]), r.to_string()
    V = np.asarray(ref["V"], float).copy()
    j = int(np.nonzero(V > 0)[0][0])
    V[j:j + 3] = 0.0
    assert not bool(row(V).passed.iloc[0])


@pytest.mark.unit
def test_exclusion_row_is_checked_when_the_nlp_serves_every_type():
    """The exclusion row used to be skipped when the NLP served the grid's lowest type, so a menu serving
    types the theory excludes passed unchecked.  On 131_29's distribution (continuous exclusion type 3.366,
    the ironing argument above; grid from 0.575) a menu that also serves the excluded types must fail a row;
    on a uniform [1, 2] (h = 2θ − 2 ≥ 0: every type served, exclusion type = θ_min = 1) the exact discrete
    menu passes it, and a grid that serves nobody is checked from the top."""
    from models import competition as comp
    from models.closed_form import competition as cc
    from models.results import RegimeResult
    from models.type_space import TypeDistribution
    models = comp._two_models(0.4047, {"c_F": 0.55353, "c_L": 1.46303, "gamma_F": 0.0, "gamma_L": 0.2734})

    def rows(dist, th, ms, V, ref):
        res = RegimeResult("competition")
        comp._monopolist_continuous_checks(res, models, th, dist, V, np.asarray(ref["model"]), ms, V_ref=ref["V"])
        v = res.verification
        return v[v.quantity.str.contains("exclusion type")]

    dist = TypeDistribution("beta", low=0.575, high=22.3372, p=0.7886, q=4.906)
    th, ms = dist.discretise(23, "equal-spacing")
    ref = cc.monopolist_discrete(models, th, ms)
    V = np.asarray(ref["V"], float).copy()
    j = int(np.nonzero(V > 0)[0][0])
    assert j >= 2  # the premise: the exact menu excludes the bottom types
    V[:j] = V[j]  # serve them all with the first served item
    r = rows(dist, th, ms, V, ref)
    assert len(r) == 1 and "serves every type" in r["quantity"].iloc[0] and not bool(r.passed.iloc[0]), r.to_string()
    # a correct menu that serves every type passes
    uni = TypeDistribution("uniform", low=1.0, high=2.0)
    th, ms = uni.discretise(20, "equal-spacing")
    ref = cc.monopolist_discrete(models, th, ms)
    assert np.all(np.asarray(ref["V"]) > 0)  # the premise
    r = rows(uni, th, ms, np.asarray(ref["V"], float), ref)
    assert len(r) == 1 and "serves every type" in r["quantity"].iloc[0] and bool(r.passed.iloc[0]), r.to_string()
    # serving nobody where the theory serves the top half fails
    uni0 = TypeDistribution("uniform", low=0.0, high=1.0)
    th, ms = uni0.discretise(20, "equal-spacing")
    ref = cc.monopolist_discrete(models, th, ms)
    r = rows(uni0, th, ms, np.zeros(len(th)), ref)
    assert len(r) == 1 and "serves no type" in r["quantity"].iloc[0] and not bool(r.passed.iloc[0]), r.to_string()
