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
