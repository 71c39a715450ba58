"""Closed forms for L >= 2 model versions (models/closed_form/versions.py, docs/model.md §2.7
"L >= 3 versions").  numpy/scipy only: every closed form against an independent computation
(brute-force argmax on dense grids, scipy optimisation, a grid dynamic programme over monotone
schedules) and, for L = 2, against the two-model closed forms of closed_form.competition, which
use other algorithms (closed-form θ^e; cut-off enumeration with PAVA on assigned costs)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from models.closed_form import competition as C
from models.closed_form import versions as V
from models.type_space import TypeDistribution

pytestmark = pytest.mark.unit

M = C.ModelCost
# small / mid / frontier: switch values θ_12 = 0.35, θ_23 = 0.75 (c_2, c_3 solved for them)
THREE = (M(0.1, 0.55, "small"), M(0.1461204074865225, 0.70, "mid"), M(0.33315258684199583, 0.85, "frontier"))
# the mid model is cheapest for some V but its surplus line never reaches the envelope
DOMINATED = (M(0.1, 0.55, "small"), M(0.2, 0.70, "mid"), M(0.33315258684199583, 0.85, "frontier"))
UNIFORM = TypeDistribution("uniform", low=0.0, high=1.0)


def test_switch_points_are_the_design_values_and_equalise_surplus():
    sw = V.switch_points(THREE)
    assert [(i, j) for i, j, _ in sw] == [(0, 1), (1, 2)]
    # the design values (c_2, c_3 were root-solved for them to ~1e-15)
    assert np.allclose([s for *_, s in sw], [0.35, 0.75], rtol=1e-12)
    for i, j, s in sw:  # S_i = S_j at the switch (definition), to round-off
        assert C.first_best_surplus(THREE[i], s) == pytest.approx(float(C.first_best_surplus(THREE[j], s)), rel=1e-12)


@pytest.mark.parametrize("models", [THREE, DOMINATED, THREE[::-1], (THREE[2], THREE[0], THREE[1])])
def test_envelope_is_the_bruteforce_argmax(models):
    """Model per type = argmax_l S_l(θ) on a dense log grid (no envelope logic), any input order."""
    th = np.geomspace(1e-3, 1e3, 20001)
    S = np.stack([C.first_best_surplus(m, th) for m in models])
    brute = np.argmax(S, axis=0)
    got = V.efficient_model(models, th)
    # ties only within round-off of a switch point
    close = np.zeros(th.shape, bool)
    for _, _, s in V.switch_points(models):
        close |= np.abs(th / s - 1) < 1e-9
    assert np.all((got == brute) | close)
    assert set(np.unique(got)) == set(V.envelope(models))
    assert np.allclose(V.efficient_surplus(models, th), S.max(axis=0), rtol=1e-13)


def test_dominated_model_is_cheapest_somewhere_but_never_sold():
    env = V.envelope(DOMINATED)
    assert env == [0, 2]
    Vg = np.geomspace(1e-4, 1e4, 20001)
    assert np.any(V.cheapest_model(DOMINATED, Vg) == 1)  # on the cost envelope ...
    th = np.linspace(0.0, 1.0, 201)[1:]
    p = np.full(len(th), 1 / len(th))
    mon = V.monopolist_discrete(DOMINATED, th, p)
    assert not np.any(mon["model"] == 1)  # ... but neither the monopolist ...
    assert not np.any(V.efficient_model(DOMINATED, th) == 1)  # ... nor the planner sells it
    bf = C.monopolist_discrete_grid(DOMINATED, th, p, n_grid=40001)  # global optimum on a V grid
    assert mon["virtual_objective"] >= bf["value"] - 1e-12 * abs(bf["value"])


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (0, 2)])
def test_L2_switch_point_equals_two_model_theta_e(pair):
    ms = [THREE[pair[0]], THREE[pair[1]]]
    (_, _, s), = V.switch_points(ms)
    assert s == pytest.approx(C.efficient_switch_point(ms), rel=1e-12)
    th = np.linspace(0.01, 2.0, 997)
    assert np.allclose(V.efficient_quality(ms, th), C.efficient_quality(ms, th), rtol=1e-13, atol=0)


GRIDS = {
    "uniform_40": (np.linspace(0.025, 1.0, 40), np.full(40, 1 / 40)),
    "beta_2_5_60": TypeDistribution("beta", low=0.0, high=1.0, p=2.0, q=5.0).discretise(60),
    # a density spike: φ not monotone, so the monopolist irons
    "spike_30": (np.linspace(0.05, 1.5, 30), np.r_[np.full(12, 1.0), np.full(3, 12.0), np.full(15, 1.0)] / 63.0),  # sums to 1
}


@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (0, 2)])
def test_L2_monopolist_equals_two_model_closed_form(grid, pair):
    """Independent check: ironing + envelope (this module) vs cut-off enumeration + PAVA (L = 2 code)."""
    th, p = GRIDS[grid]
    ms = [THREE[pair[0]], THREE[pair[1]]]
    a, b = V.monopolist_discrete(ms, th, p), C.monopolist_discrete(ms, th, p)
    scale = float(np.max(b["V"]))
    assert np.max(np.abs(a["V"] - b["V"])) <= 1e-9 * scale  # both exact up to root-finding
    assert a["profit"] == pytest.approx(b["profit"], rel=1e-10)
    assert np.array_equal(a["model"], b["model"])


@pytest.mark.parametrize("grid", list(GRIDS))
def test_L3_monopolist_is_the_global_optimum_of_the_grid_dp(grid):
    """Brute force over all monotone schedules on a V grid (no convexity, no envelope): the
    closed form is never beaten, and the DP comes within its grid error of it."""
    th, p = GRIDS[grid]
    mon = V.monopolist_discrete(THREE, th, p)
    bf = C.monopolist_discrete_grid(THREE, th, p, n_grid=60001)
    val = mon["virtual_objective"]
    assert bf["value"] <= val * (1 + 1e-12)
    # grid error: each V off by <= one step, objective flat at the optimum -> O(step) at kinks
    assert val - bf["value"] <= 1e-4 * abs(val)
    assert np.max(np.abs(bf["V"] - mon["V"])) <= 3 * bf["grid_step"] + 1e-3 * np.max(mon["V"])


def test_monopolist_regions_jumps_and_continuous_switch_types():
    th = np.linspace(0.0, 1.0, 401)[1:]
    p = np.full(len(th), 1 / len(th))
    mon = V.monopolist_discrete(THREE, th, p)
    sts = V.monopolist_switch_types(THREE, UNIFORM)
    # uniform: h = 2θ − 1, so h = θ_ij at θ = (1 + θ_ij)/2
    assert np.allclose([s for *_, s in sts], [(1 + 0.35) / 2, (1 + 0.75) / 2], rtol=1e-12)
    step = th[1] - th[0]
    for (i, j, s), jump in zip(sts, V.versioning_jumps(THREE)):
        k = int(np.nonzero((mon["model"][:-1] == i) & (mon["model"][1:] == j))[0][0])
        assert abs(0.5 * (th[k] + th[k + 1]) - s) <= step  # discrete switch within one grid step
        # the discrete φ_k ≤ θ_ij < φ_(k+1) bracket the switch value, and Q^FB is increasing, so
        # both the closed-form jump and the discrete one lie in [Q_j(φ_k) − Q_i(φ_k+1), Q_j(φ_k+1) − Q_i(φ_k)]
        f0, f1 = mon["phi_ironed"][k], mon["phi_ironed"][k + 1]
        assert f0 <= jump["h"] * (1 + V.TIE_SWITCH) and jump["h"] * (1 - V.TIE_SWITCH) <= f1  # a tie goes up
        lo = float(C.first_best_quality(THREE[j], f0) - C.first_best_quality(THREE[i], f1))
        hi = float(C.first_best_quality(THREE[j], f1) - C.first_best_quality(THREE[i], f0))
        assert lo <= jump["jump"] <= hi and lo <= mon["V"][k + 1] - mon["V"][k] <= hi
        assert hi - lo <= 0.2 * jump["jump"]  # the bracket is informative at this grid
        # both ends of the jump maximise θ_ij V − K(V) equally (versioning is a tie at the switch)
        h = jump["h"]
        f = lambda v: h * v - V.min_cost(THREE, v)  # noqa: E731
        assert f(jump["V_below"]) == pytest.approx(float(f(jump["V_above"])), rel=1e-11)
        best = optimize.minimize_scalar(lambda v: -f(v), bounds=(0, 2 * jump["V_above"]), method="bounded",
                                        options={"xatol": 1e-10})
        assert -best.fun <= f(jump["V_below"]) * (1 + 1e-9)


def test_task_assignment_value_and_shares_by_numeric_optimisation():
    rng = np.random.default_rng(7)
    s = 0.5
    for _ in range(5):
        Q = rng.uniform(0.1, 3.0, 3)
        # max over task shares a on the simplex of Σ Q_l a_l^(1-σ) (flat profile, budgets spread evenly)
        f = lambda z: -np.sum(Q * (np.exp(z) / np.exp(z).sum()) ** (1 - s))  # noqa: E731
        r = optimize.minimize(f, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15})
        a = np.exp(r.x) / np.exp(r.x).sum()
        # Σ Q a^(1-σ) with budgets y = 1: value = U(1, Q) by Lemma 1 pooling
        assert -r.fun == pytest.approx(float(V.indirect_utility(1.0, Q, s)), rel=1e-9)
        assert np.allclose(a, V.task_shares(Q, s), atol=1e-5)


def test_L2_indirect_utility_matches_two_model_form():
    Q = np.array([[0.3, 1.2, 2.0], [0.7, 0.1, 2.0]])
    assert np.allclose(V.indirect_utility(1.7, Q, 0.4), C.indirect_utility(1.7, Q[0], Q[1], 0.4), rtol=1e-14)


def test_ic_audit_passes_the_closed_form_and_fails_a_perturbed_menu():
    th, p = GRIDS["beta_2_5_60"]
    mon = V.monopolist_discrete(THREE, th, p)
    aud = V.ic_audit(th, mon["V"], mon["t"])
    assert aud["ic"] <= 1e-12 and aud["ir"] <= 1e-12
    t = mon["t"].copy()
    t[-1] *= 1.01  # the top type now prefers the next item down
    assert V.ic_audit(th, mon["V"], t)["ic"] > 1e-5


# ----------------------------------------- continuous switch types: end limits and ironing
# three versions switching at h = 0.3 and 8 (c_2, c_3 root-solved for them), for types on [0.575, 22.34]
WIDE = (M(0.1, 0.55, "small"), M(0.13577863896564055, 0.70, "mid"), M(1.3008857214564857, 0.85, "frontier"))
# competition_131_29's types: h > 0 on (θ_min, θ_min + 1.2e-4] only, minimum −1.93 near θ = 1, up-crossing of 0
# at 3.366; the grid check of the versions regime (h increasing at the types) passes at N <= 32 equal-spacing
SLIVER = TypeDistribution("beta", low=0.575, high=22.34, p=0.7886, q=4.906)
BETA_2_3 = TypeDistribution("beta", low=0.0, high=1.0, p=2.0, q=3.0)  # f(θ_max) = 0: h = 0/0 at the top


def _discrete_switches(models, dist, n):
    """{(from, to): midpoint of the two types around the switch} of the exact discrete monopolist on n
    equal-spacing types (discrete virtual values + PAVA: no h, no continuous ironing), and the grid step."""
    th, p = dist.discretise(n)
    lab = V.monopolist_discrete(models, th, p)["model"]
    ks = np.nonzero(lab[1:] != lab[:-1])[0]
    return {(int(lab[k]), int(lab[k + 1])): 0.5 * (th[k] + th[k + 1]) for k in ks}, th[1] - th[0]


@pytest.mark.parametrize("dist, models", [(BETA_2_3, THREE), (SLIVER, WIDE)], ids=["beta_2_3", "beta_sliver"])
def test_continuous_switch_and_exclusion_types_are_the_discrete_optimum_s_limit(dist, models):
    """Exclusion and switch types of the continuous-type monopolist vs the exact discrete closed form on
    20 000 types: the same switches, each within 2 grid steps (equal-spacing midpoints converge at O(1/N);
    measured 0.5-0.8 steps at N = 2000 and 20 000, and 4e-7 to 6e-5 at N = 2e5 for the sliver).
    Before: no switch at all (h(θ_max) = 0/0 = NaN for every Beta with q > 1), and the sliver's switch at
    h = 0.3 < h(θ_min+) skipped."""
    disc, step = _discrete_switches(models, dist, 20000)
    cont = {(i, j): t for i, j, t in V.monopolist_switch_types(models, dist)}
    cont[(-1, V.envelope(models)[0])] = V.monopolist_exclusion_type(dist)
    assert set(cont) == set(disc), (cont, disc)
    for key, t in cont.items():
        assert abs(disc[key] - t) <= 2 * step, (key, disc[key], t, step)


def test_regular_beta_switch_types_solve_h_equal_theta_ij():
    """Beta(2, 3) (log-concave: h increasing): each switch type solves θ − (1 − F)/f = θ_ij, with F, f from
    scipy.stats on an interior bracket (the h = 0/0 top excluded); brentq accuracy 1e-12."""
    from scipy import stats
    b = stats.beta(2.0, 3.0)
    h = lambda t: t - b.sf(t) / b.pdf(t)  # noqa: E731
    got = V.monopolist_switch_types(THREE, BETA_2_3)
    assert [(i, j) for i, j, _ in got] == [(0, 1), (1, 2)]
    for (_, _, t), (_, _, s) in zip(got, V.switch_points(THREE)):
        assert t == pytest.approx(optimize.brentq(lambda x: h(x) - s, 0.01, 0.99, xtol=1e-15), abs=1e-12)
    assert V.monopolist_exclusion_type(BETA_2_3) == pytest.approx(optimize.brentq(h, 0.01, 0.99, xtol=1e-15), abs=1e-12)


# density 0.5 / 0.05 / 0.45 on [1, 2], [2, 3], [3, 4]: h = 2θ − 3, 2θ − 12, 2θ − 4 on the three cells, i.e. up to
# 1 on the first, down to −8 at θ = 2, up to 2 at θ = 3: h = s has an up-crossing in the first cell and at θ = 3
DIP = TypeDistribution("piecewise", breakpoints=[1.0, 2.0, 3.0, 4.0], masses=[0.5, 0.05, 0.45])


@pytest.mark.parametrize("s, expected", [
    (0.0, 3.0),    # revenue θ(1 − F): 1.5·0.75 = 1.125 at the first cell's root 1.5 < 3·0.45 = 1.35 at 3
    (0.5, 3.0),    # (θ − 0.5)(1 − F): 1.25·0.625 = 0.781 at 1.75 < 2.5·0.45 = 1.125 at 3
    (-1.0, 1.0),   # h > −1 just above θ_min: revenue 2 at θ_min beats 4·0.45 = 1.8 at 3 (everyone served)
    (3.5, 3.75),   # only the last cell reaches 3.5: 2θ − 4 = 3.5
    (4.5, np.nan),  # h < 4.5 everywhere (h ≤ θ)
])
def test_ironed_threshold_on_a_dip_is_the_revenue_argmax(s, expected):
    """The type from which the ironed h̄ exceeds s, where h = s has several up-crossings: the argmax of
    (θ − s)(1 − F(θ)) (hand values above), which a brute force over 400 001 types agrees with to one step."""
    got = V.ironed_threshold(DIP, s)
    if np.isnan(expected):
        assert np.isnan(got)
        return
    assert got == pytest.approx(expected, abs=1e-12)
    t = np.linspace(1.0, 4.0, 400001)
    assert abs(t[np.argmax((t - s) * DIP.sf(t))] - got) <= t[1] - t[0]


def test_switch_type_on_a_dip_is_where_the_discrete_optimum_switches():
    """Two versions switching at h = 0.5 on the dip: the exact discrete optimum (PAVA) on 3000 types excludes
    every type below θ = 3 and sells the second model from there (h̄ jumps from < 0 to 2 at θ = 3; the first
    model is never sold), where the ironed thresholds at 0 and 0.5 both say; the root of h = 0.5 in the
    first cell (1.75) is not a switch of the optimum."""
    two = (THREE[0], M(_c_for_switch(THREE[0], 0.70, 0.5), 0.70, "mid"))
    assert V.switch_points(two)[0][2] == pytest.approx(0.5, rel=1e-12)
    (_, _, t), = V.monopolist_switch_types(two, DIP)
    assert t == pytest.approx(3.0, abs=1e-12)
    assert V.monopolist_exclusion_type(DIP) == pytest.approx(3.0, abs=1e-12)
    disc, step = _discrete_switches(two, DIP, 3000)
    assert set(disc) == {(-1, 1)} and abs(disc[(-1, 1)] - 3.0) <= step


def _c_for_switch(m0, eta, theta_ij):
    """Cost c of a model with this η whose surplus line crosses m0's at θ_ij (root-solved, S_0 = S_1)."""
    return optimize.brentq(lambda c: float(C.first_best_surplus(m0, theta_ij) - C.first_best_surplus(M(c, eta), theta_ij)),
                           1e-9, 1e9, xtol=1e-300, rtol=4 * np.finfo(float).eps)
