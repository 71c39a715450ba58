"""Closed forms of docs/model.md §2.7 (two models, task assignment, competition).

Everything here is numpy/scipy: each closed form is checked against an
independent numeric computation (scipy optimisation, grid search, brute force,
finite differences).  No solver, no Pyomo.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from models.closed_form import competition as C
from models.closed_form.cost import Technology, cost
from models.type_space import TypeDistribution

pytestmark = pytest.mark.unit

UNIFORM = TypeDistribution("uniform", low=0.0, high=1.0)
TWO_MODELS = (C.ModelCost(c=0.2, eta=0.5, name="base"), C.ModelCost(c=0.4, eta=0.8, name="tuned"))


# ---------------------------------------------------------------- helpers
def fringe_argmax(theta, a, sigma, c_F):
    """argmax over q_F >= 0 of θ (a + q_F)^σ − c_F q_F (concave in q_F), found from the first-order
    condition of this primitive alone: the derivative g(x) = θ σ (a + x)^(σ−1) − c_F falls in x, so
    q_F = 0 when g(0) <= 0 and otherwise the root of g, bisected (vectorised) until each bracket
    is ~1 ulp of a + q_F.  Unlike a search that compares f values (golden section
    resolves x only to ~sqrt(eps), since f is flat at its max), this pins q_F to ~1 ulp, so q̂,
    where the top-up vanishes, is not blurred by the inner search."""
    theta, a = np.broadcast_arrays(np.asarray(theta, float), np.asarray(a, float))

    def g(x):
        with np.errstate(divide="ignore"):  # a + x = 0: the marginal value is +inf, q_F > 0
            return theta * sigma * (a + x) ** (sigma - 1) - c_F

    # g(hi) < 0: (a + hi)^(σ−1) <= hi^(σ−1) < c_F/θ, so g(hi) < θ σ c_F/θ − c_F < 0
    lo = np.zeros_like(a)
    hi = (np.maximum(theta, 1e-12) / c_F) ** (1 / (1 - sigma)) + 1.0
    interior = g(lo) > 0
    # g depends on a + x only, so x is resolved once the bracket is ~1 ulp of a + x: stop there
    # (about 53 + log2(hi / (a + x)) halvings, instead of chasing x = 0 roots into subnormals)
    for _ in range(2000):
        open_ = (hi - lo) > 2 * np.finfo(float).eps * (a + hi)
        if not np.any(open_):
            break
        mid = 0.5 * (lo + hi)
        up = g(mid) > 0
        lo, hi = np.where(open_ & up, mid, lo), np.where(open_ & ~up, mid, hi)
    return np.where(interior, 0.5 * (lo + hi), 0.0)


def numeric_u(lf, theta, q):
    """u(θ, q) by numerically maximising θ (q^r + q_F)^σ − c_F q_F over q_F (no closed form used)."""
    theta, q = np.broadcast_arrays(np.asarray(theta, float), np.asarray(q, float))
    a = q ** (lf.eta / lf.sigma)  # Q_L^(1/σ) with Q_L = q^η: the model's primitive, not the solution
    x = fringe_argmax(theta, a, lf.sigma, lf.c_F)
    return x, theta * (a + x) ** lf.sigma - lf.c_F * x


def numeric_J(lf, theta, q, eps=1e-6):
    """Leader's virtual objective u − u_θ (1−F)/f − c_L q, uniform [0,1]: (1−F)/f = 1 − θ.
    u numeric (inner max), u_θ by central finite differences of the numeric u."""
    theta = np.asarray(theta, float)
    u = numeric_u(lf, theta, q)[1]
    ut = (numeric_u(lf, theta + eps, q)[1] - numeric_u(lf, theta - eps, q)[1]) / (2 * eps)
    return u - ut * (1 - theta) - lf.c_L * np.asarray(q, float)


def leader_bruteforce(lf, theta, mass, grids):
    """Discrete leader by brute force: for every q-profile on the product grid, the largest
    transfers satisfying ALL IC/IR constraints are shortest-path distances from the outside
    option (T_k ≤ T_l + u(θ_k,q_k) − u(θ_k,q_l), q_0 = T_0 = 0); infeasible profiles (negative
    cycles) are dropped.  No monotonicity or local-IC reduction is assumed."""
    n = len(theta)
    Q = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, n)
    Q0 = np.concatenate([np.zeros((len(Q), 1)), Q], axis=1)  # column 0: the outside option
    own = C.buyer_value(lf, theta[None, :], Q)  # (G, n)
    dev = C.buyer_value(lf, theta[None, :, None], Q0[:, None, :])  # (G, n, n+1): type k takes item l
    w = own[:, :, None] - dev  # edge l -> k weight
    d = np.full((len(Q), n + 1), np.inf)
    d[:, 0] = 0.0
    for _ in range(n + 1):
        d[:, 1:] = np.minimum(d[:, 1:], np.min(d[:, None, :] + w, axis=2))
    again = np.minimum(d[:, 1:], np.min(d[:, None, :] + w, axis=2))
    feasible = np.all(again >= d[:, 1:] - 1e-12, axis=1) & np.all(np.isfinite(d), axis=1)
    profit = np.where(feasible, np.sum(mass * (d[:, 1:] - lf.c_L * Q), axis=1), -np.inf)
    i = int(np.argmax(profit))
    return Q[i], profit[i]


def example_thresholds(name):
    lf, dist = C.example(name)
    d = C.leader_thresholds(lf, dist)
    return lf, dist, [v for v in (d["entry"], d["interior_from"]) if np.isfinite(v)]


# ================================================================ 1. tasks
def test_indirect_utility_matches_brute_force_assignment():
    """U = θ (Q1^(1/σ)+Q2^(1/σ))^σ equals the optimum of the per-cell assignment problem
    (task share a_i and budget shares y_ℓi, solved by SLSQP), for random Q and a random profile."""
    rng = np.random.default_rng(7)
    for _ in range(2):
        sigma = rng.uniform(0.3, 0.7)
        n = 5
        w = rng.uniform(0.1, 2.0, n)
        Q1, Q2 = rng.uniform(0.2, 3.0, 2)

        def neg(x):
            return -C.assignment_value(w, x[:n], x[n:2 * n], x[2 * n:], Q1, Q2, sigma)

        cons = [{"type": "eq", "fun": lambda x: np.mean(x[n:2 * n]) - 1.0},
                {"type": "eq", "fun": lambda x: np.mean(x[2 * n:]) - 1.0}]
        bounds = [(0.0, 1.0)] * n + [(0.0, None)] * (2 * n)
        best = None
        for _s in range(2):  # concave problem (Cobb-Douglas terms); a second start guards SLSQP
            x0 = np.concatenate([rng.uniform(0.2, 0.8, n), rng.uniform(0.5, 1.5, 2 * n)])
            x0[n:2 * n] /= x0[n:2 * n].mean()
            x0[2 * n:] /= x0[2 * n:].mean()
            r = optimize.minimize(neg, x0, method="SLSQP", bounds=bounds, constraints=cons,
                                  options={"ftol": 1e-14, "maxiter": 2000})
            if best is None or r.fun < best.fun:
                best = r
        U = C.indirect_utility(C.aggregate_type(w, sigma), Q1, Q2, sigma)
        # SLSQP stops at ftol 1e-14 on a smooth concave problem: value agrees to ~1e-8
        assert -best.fun == pytest.approx(U, rel=1e-7)
        # value-weighted model-1 share is the same at every optimum: Q1^(1/σ)/(Q1^(1/σ)+Q2^(1/σ))
        x = best.x
        Y = Q1 ** (1 / sigma) * x[n:2 * n] + Q2 ** (1 / sigma) * x[2 * n:]
        s1, _ = C.task_shares(Q1, Q2, sigma)
        # flat directions of the optimum: a near-optimal point pins the share only to ~sqrt(ftol)
        assert np.sum(x[:n] * Y) / np.sum(Y) == pytest.approx(s1, abs=1e-3)
        # the closed-form assignment attains U exactly (same arithmetic up to rounding)
        sol = C.optimal_assignment(w, Q1, Q2, sigma)
        assert C.assignment_value(w, sol["a"], sol["y1"], sol["y2"], Q1, Q2, sigma) == pytest.approx(U, rel=1e-12)
        assert sol["value"] == pytest.approx(U, rel=1e-12)
        assert np.mean(sol["y1"]) == pytest.approx(1.0, rel=1e-12)


def test_task_share_rule_constant_profile():
    """With a constant weight profile the optimal task share of model 1 is unique and equals
    Q1^(1/σ)/(Q1^(1/σ)+Q2^(1/σ)) (numeric optimum, random budgets)."""
    rng = np.random.default_rng(3)
    sigma, n = 0.45, 4
    w = np.full(n, 1.3)
    for _ in range(3):
        Q1, Q2 = rng.uniform(0.1, 4.0, 2)

        def neg(x):
            return -C.assignment_value(w, x[:n], x[n:2 * n], x[2 * n:], Q1, Q2, sigma)

        cons = [{"type": "eq", "fun": lambda x: np.mean(x[n:2 * n]) - 1.0},
                {"type": "eq", "fun": lambda x: np.mean(x[2 * n:]) - 1.0}]
        x0 = np.concatenate([np.full(n, 0.5), np.ones(2 * n)])
        r = optimize.minimize(neg, x0, method="SLSQP", bounds=[(0, 1)] * n + [(0, None)] * (2 * n),
                              constraints=cons, options={"ftol": 1e-15, "maxiter": 2000})
        s1, s2 = C.task_shares(Q1, Q2, sigma)
        assert s1 + s2 == pytest.approx(1.0, abs=1e-15)
        # as above: the share is a first-order quantity at a second-order-accurate optimum
        assert np.mean(r.x[:n]) == pytest.approx(s1, abs=1e-4)


def test_model_cost_from_technology():
    """c_ℓ from cost_coefficient reproduces cost.cost(tech, Q) = c Q^(1/η)."""
    tech = Technology(sigma=0.5, rho=0.0, alpha=(0.6, 0.4), cost=(1.0, 3.0), gamma=0.2,
                      alpha_hat=(1.0,), cost_hat=(5.0,))
    m = C.model_cost_from_technology(tech)
    Q = np.array([0.3, 1.0, 2.7])
    assert m.eta == pytest.approx(0.7, abs=1e-15)
    assert C.model_cost(m, Q) == pytest.approx(cost(tech, Q), rel=1e-13)  # same formula, rounding only
    fringe = Technology(sigma=0.5, rho=0.0, alpha=(0.6, 0.4), cost=(1.0, 3.0))
    lf = C.LeaderFringe.from_technologies(tech, fringe)
    assert (lf.eta, lf.c_F) == pytest.approx((0.7, float(cost(fringe, 1.0))), rel=1e-13)


# ================================================================ 2. efficient
def test_efficient_switch_point_is_surplus_crossing():
    """θ^e (docs/model.md formula) equals the root of S_2(θ) − S_1(θ) with each first-best surplus
    computed by numeric maximisation of θQ − c Q^(1/η)."""

    def S_num(m, t):
        r = optimize.minimize_scalar(lambda lq: -(t * np.exp(lq) - m.c * np.exp(lq / m.eta)),
                                     bounds=(-40, 40), method="bounded", options={"xatol": 1e-12})
        return -r.fun

    for models in (TWO_MODELS, C.LeaderFringe(0.5, 0.2, 0.2, 0.16).models,
                   (C.ModelCost(1.0, 0.3), C.ModelCost(0.7, 0.6))):
        te = C.efficient_switch_point(models)
        root = optimize.brentq(lambda t: S_num(models[1], t) - S_num(models[0], t), te / 5, te * 5, xtol=1e-14)
        # bounded Brent on log Q: surplus accurate to ~1e-12 relative, so the root to ~1e-8
        assert te == pytest.approx(root, rel=1e-7)
        assert C.efficient_surplus(models, te) == pytest.approx(C.first_best_surplus(models[0], te), rel=1e-12)


def test_efficient_allocation_uses_one_model():
    """Brute force over a (Q1, Q2) grid never beats the single-model first best (mixing
    never pays), and the efficient model switches at θ^e."""
    te = C.efficient_switch_point(TWO_MODELS)
    sigma = 0.5  # shared σ; the grid search maximises θ U(Q1,Q2) − C1(Q1) − C2(Q2)
    for t in (0.5 * te, 0.9 * te, 1.1 * te, 2.0 * te):
        QFB = C.efficient_quality(TWO_MODELS, t)
        qmax = 2 * max(C.first_best_quality(m, t) for m in TWO_MODELS)
        g = np.linspace(0, qmax, 801)
        Q1, Q2 = np.meshgrid(g, g, indexing="ij")
        S = C.indirect_utility(t, Q1, Q2, sigma) - C.model_cost(TWO_MODELS[0], Q1) - C.model_cost(TWO_MODELS[1], Q2)
        best = C.efficient_surplus(TWO_MODELS, t)
        assert S.max() <= best * (1 + 1e-12)  # closed form is the supremum (rounding slack)
        i, j = np.unravel_index(np.argmax(S), S.shape)
        assert min(g[i], g[j]) == 0.0  # the grid optimum is on an axis: one model
        assert C.efficient_model(TWO_MODELS, t) == (0 if t < te else 1)
        assert np.count_nonzero(QFB) == 1


# ================================================================ 3. monopolist
def test_monopolist_continuous_uniform():
    """Uniform on [0,1]: switch at (1+θ^e)/2, exclusion below 1/2, V jumps up at the switch,
    profit = S^FB/2 and consumer surplus = S^FB/4 (h = 2θ−1 is uniform on [−1,1])."""
    te = C.efficient_switch_point(TWO_MODELS)
    ts = C.monopolist_switch_type(TWO_MODELS, UNIFORM)
    assert ts == pytest.approx((1 + te) / 2, abs=1e-12)  # brentq xtol 1e-14
    assert C.exclusion_type(UNIFORM) == pytest.approx(0.5, abs=1e-12)
    out = C.monopolist_continuous(TWO_MODELS, UNIFORM, [0.49, ts - 1e-9, ts + 1e-9, 0.99])
    assert out["V"][0] == 0.0 and list(out["model"]) == [-1, 0, 1, 1]
    assert out["V"][2] > 1.5 * out["V"][1]  # a genuine jump (versioning), not a kink
    # pointwise: hV − K(V) on a fine V grid is maximised at the closed-form V
    for t in (0.6, ts - 0.01, ts + 0.01, 0.95):
        h = 2 * t - 1
        V = np.linspace(0, 3 * C.monopolist_allocation(TWO_MODELS, h)[0], 200001)
        Vc = C.monopolist_allocation(TWO_MODELS, h)[0]
        assert np.max(h * V - C.min_cost(TWO_MODELS, V)) <= h * Vc - C.min_cost(TWO_MODELS, Vc) + 1e-12
    SFB = C._expect(UNIFORM, lambda s: C.efficient_surplus(TWO_MODELS, s), [te])
    summ = C.monopolist_continuous_summary(TWO_MODELS, UNIFORM)
    # adaptive quadrature with epsrel 1e-11 on piecewise-smooth integrands
    assert summ["profit"] == pytest.approx(SFB / 2, rel=1e-8)
    assert summ["consumer_surplus"] == pytest.approx(SFB / 4, rel=1e-8)
    assert summ["total_surplus"] == pytest.approx(summ["profit"] + summ["consumer_surplus"], rel=1e-8)
    # IC/IR audit of the continuous menu on a grid
    th = np.linspace(0, 1, 301)
    o = C.monopolist_continuous(TWO_MODELS, UNIFORM, th)
    dev = th[:, None] * o["V"][None, :] - o["t"][None, :]
    assert np.max(dev - o["U"][:, None]) <= 1e-9 and o["U"].min() >= -1e-12  # quadrature error


IRONING_CASE = (np.array([1.0, 1.1, 1.5, 2.0, 2.2]), np.array([0.45, 0.05, 0.2, 0.25, 0.05]))
"""φ_2 = 1.1 − 0.4·0.5/0.05 < 0 < φ_1: types 1–2 are pooled at a positive V (ironing)."""


@pytest.mark.parametrize("seed", [*range(6), "ironing"])
def test_monopolist_discrete_matches_grid_dp(seed):
    """Exact discrete multi-model monopolist (cut-off + PAVA) vs a brute-force dynamic programme
    over a fine V grid (global on the grid, no convexity used).  Random types (lumpy masses on
    odd seeds) and a case built so that a pool is served at positive V."""
    if seed == "ironing":
        th, p = IRONING_CASE
    else:
        rng = np.random.default_rng(seed)
        n = int(rng.integers(3, 7))
        th = np.sort(rng.uniform(0.2, 2.0, n))
        p = rng.dirichlet(np.ones(n) * (0.3 if seed % 2 else 3.0))
    ex = C.monopolist_discrete(TWO_MODELS, th, p)
    bf = C.monopolist_discrete_grid(TWO_MODELS, th, p, n_grid=100001)
    phi = C.discrete_virtual_values(th, p)
    dv = bf["grid_step"]
    # the exact optimum is ≥ every grid schedule; the grid loses at most Σ p (|φ| + K'(V_max)) dv
    Kp = max(m.c / m.eta * (dv * 100000) ** (1 / m.eta - 1) for m in TWO_MODELS)
    assert ex["virtual_objective"] >= bf["value"] - 1e-12
    assert ex["virtual_objective"] - bf["value"] <= np.sum(p * (np.abs(phi) + Kp)) * dv
    # schedules agree to a few grid steps (flat pooled optimum: quadratic in ΔV)
    assert np.max(np.abs(ex["V"] - bf["V"])) <= 50 * dv
    # profit identity and an IC/IR audit of the transfers
    assert ex["profit"] == pytest.approx(ex["virtual_objective"], rel=1e-12, abs=1e-12)
    dev = th[:, None] * ex["V"][None, :] - ex["t"][None, :]
    scale = max(1.0, ex["t"].max())
    assert np.max(dev - ex["U"][:, None]) <= 1e-12 * scale and ex["U"].min() >= -1e-12 * scale
    assert np.all(np.diff(ex["V"]) >= 0)
    if seed == "ironing":
        assert ex["V"][0] == ex["V"][1] > 0 and ex["phi"][1] < 0 < ex["phi"][0]


def test_monopolist_discrete_converges_to_continuous():
    """Uniform, N = 400 equal cells: discrete profit within O(1/N) of S^FB/2."""
    th, p = UNIFORM.discretise(400)
    ex = C.monopolist_discrete(TWO_MODELS, th, p)
    cont = C.monopolist_continuous_summary(TWO_MODELS, UNIFORM)["profit"]
    assert ex["profit"] == pytest.approx(cont, rel=2e-2)  # observed ~1e-2 at N=400, rate 1/N


# ================================================================ 4. leader vs fringe
def test_limit_quality_is_where_topup_vanishes():
    """q̂(θ): numeric fringe top-up is positive just below and zero just above, and u, q_F*
    match their closed forms."""
    lf, _ = C.example("three_regions")
    for t in (0.3, 0.6, 0.9):
        qh = float(C.limit_quality(lf, t))
        qf_below, u_below = numeric_u(lf, t, qh * (1 - 1e-3))
        qf_above, _ = numeric_u(lf, t, qh * (1 + 1e-3))
        assert qf_below > 0 and qf_above == 0.0
        # zero of the top-up: bisection on the numeric top-up
        root = optimize.brentq(lambda q: float(numeric_u(lf, t, q)[0]) - 1e-12, qh * 0.5, qh * 1.5, xtol=1e-13)
        # the top-up is pinned to ~1 ulp (fringe_argmax) and falls with slope −dq_F/dq = (η/σ) q^(η/σ−1)
        # ~ 2 here, so the 1e-12 offset moves the root by ~5e-13 and brentq's xtol adds 1e-13: 1e-10
        # relative leaves 2 orders for the rounding of q^(η/σ) and of the closed form's own powers
        assert root == pytest.approx(qh, rel=1e-10)
        # both sides are differences of O(1) numbers ~ 1e-2 apart: ~1e-16 absolute each, 1e-12 is safe
        assert float(qf_below) == pytest.approx(float(C.fringe_topup(lf, t, qh * (1 - 1e-3))), abs=1e-12)
        q = np.array([0.0, 0.5 * qh, qh, 2 * qh])
        assert numeric_u(lf, t, q)[1] == pytest.approx(C.buyer_value(lf, t, q), rel=1e-12)


@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_leader_pointwise_grid_search(name):
    """Independent computation: J = u − u_θ (1−F)/f − c_L q with u from a numeric inner max and
    u_θ by finite differences, maximised over a fine log-grid of q ∪ {0} for every θ on a grid.
    The argmax is the closed-form choice among {0, q̂, q^int} (one θ-step around thresholds excluded)."""
    lf, dist, thr = example_thresholds(name)
    th = np.linspace(0.005, 0.995, 133)
    dth = th[1] - th[0]
    qmax = 1.5 * float(C.interior_quality(lf, 1.0))
    qg = np.concatenate([[0.0], np.geomspace(1e-3, qmax, 2000)])
    dlog = np.log(qg[2] / qg[1])
    J = numeric_J(lf, th[:, None], qg[None, :])
    gain = J - J[:, :1]
    i = np.argmax(gain, axis=1)
    q_num = np.where(gain[np.arange(len(th)), i] > 1e-10, qg[i], 0.0)  # 1e-10: FD noise in J
    q_cf, reg = C.leader_quantity(lf, dist, th)
    keep = np.all(np.abs(th[:, None] - np.array(thr)[None, :]) > dth, axis=1)
    assert keep.sum() >= len(th) - 2 * len(thr)
    assert np.array_equal(q_num[keep] > 0, reg[keep] > 0)
    pos = keep & (reg > 0)
    # a concave peak on the grid is within one log-step of the true maximiser
    assert np.max(np.abs(np.log(q_num[pos] / q_cf[pos]))) <= 1.01 * dlog
    # the numeric argmax is nearest to the closed-form candidate of the right region
    qh = C.limit_quality(lf, th[pos])
    qi = C.interior_quality(lf, dist.virtual_value(th[pos]))
    near = np.where(np.abs(np.log(q_num[pos] / qh)) <= np.abs(np.log(q_num[pos] / np.maximum(qi, 1e-300))), 1, 2)
    with np.errstate(divide="ignore"):  # q^int = 0 where h ≤ 0: infinitely far from q̂
        far = np.abs(np.log(qi / qh)) > 2 * dlog  # q̂ and q^int distinguishable on the grid
    assert np.array_equal(near[far], reg[pos][far])
    # and the closed-form gain equals the numeric maximum (grid loses O(dlog²) at interior peaks)
    g_cf = C.leader_gain(lf, dist, th, q_cf)
    g_num = gain[np.arange(len(th)), i]
    assert np.max(np.abs(g_cf - np.maximum(g_num, 0))[keep]) <= 1e-2 * max(1.0, np.max(g_cf))
    assert np.all(g_cf[keep] >= np.maximum(g_num, 0)[keep] - 1e-8)  # closed form is the max (FD noise)


@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_leader_region_structure(name):
    """Three-region example: regions 0 → 1 → 2 with boundaries at θ_lo, θ_hi; empty-middle
    example: 0 → 2 at θ* < θ_lo; docs/model.md's criterion h(θ_lo)/θ_lo < σ/η says which."""
    lf, dist = C.example(name)
    d = C.leader_thresholds(lf, dist)
    b = C.region_boundaries(lf, dist)
    step = 1.0 / (C.SCAN_POINTS - 1)
    if name == "three_regions":
        assert d["middle_nonempty"]
        assert [(f, t) for _, f, t in b] == [(0, 1), (1, 2)]
        assert b[0][0] == pytest.approx(d["theta_lo"], abs=step)  # grid resolution of the scan
        assert b[1][0] == pytest.approx(d["theta_hi"], abs=step)
        assert 0 < d["theta_lo"] < d["theta_hi"] < 1 and np.isnan(d["theta_star"])
    else:
        assert not d["middle_nonempty"]
        assert [(f, t) for _, f, t in b] == [(0, 2)]
        assert b[0][0] == pytest.approx(d["theta_star"], abs=step)
        assert d["theta_hi"] < d["theta_star"] < d["theta_lo"] < 1
        # the jump: q_L from 0 to q^int(θ*) > q̂(θ*)
        ts = d["theta_star"]
        qi = float(C.interior_quality(lf, dist.virtual_value(ts)))
        assert qi > 1.2 * float(C.limit_quality(lf, ts))
    assert C.leader_schedule_is_monotone(lf, dist)


@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_leader_thresholds_vs_numeric_roots(name):
    """θ_lo, θ_hi, θ* from the closed forms vs roots of the fully numeric virtual objective."""
    lf, dist = C.example(name)
    d = C.leader_thresholds(lf, dist)
    qh = lambda t: float(C.limit_quality(lf, t))  # noqa: E731  (checked in the top-up test)
    # θ_lo: Δ(θ, q̂(θ)) = J(θ, q̂) − J(θ, 0) changes sign
    gain_qh = lambda t: float(numeric_J(lf, t, qh(t)) - numeric_J(lf, t, 0.0))  # noqa: E731
    r_lo = optimize.brentq(gain_qh, 0.2, 0.99, xtol=1e-12)
    # FD step 1e-6 across the kink of u_θ at q̂ shifts Δ by O(1e-6): root to ~1e-5
    assert d["theta_lo"] == pytest.approx(r_lo, abs=1e-5)
    # θ_hi: the right derivative of J in q at q̂ turns positive (q^int leaves q̂).  Both FD points
    # sit strictly above q̂: at q̂ itself u_θ has a kink in θ, and the central θ-difference of u
    # there is off by O(ε), which the q-difference would amplify by 1/δ.
    dl = 1e-4
    dJ = lambda t: float(numeric_J(lf, t, qh(t) * (1 + 2 * dl)) - numeric_J(lf, t, qh(t) * (1 + dl)))  # noqa: E731
    r_hi = optimize.brentq(dJ, 0.55, 0.99, xtol=1e-12)
    assert d["theta_hi"] == pytest.approx(r_hi, abs=5e-5)  # the FD slope is taken at q̂(1+1.5δ): O(δ) shift
    if name == "empty_middle":
        # θ*: the best gain on [q̂, ∞) (concave there) crosses zero

        def best_gain(t):
            r = optimize.minimize_scalar(lambda lq: -float(numeric_J(lf, t, np.exp(lq)) - numeric_J(lf, t, 0.0)),
                                         bounds=(np.log(qh(t)), np.log(qh(t)) + 6), method="bounded",
                                         options={"xatol": 1e-8})  # value error O(xatol²)
            return -r.fun

        r_star = optimize.brentq(best_gain, d["theta_hi"] + 1e-3, 0.99, xtol=1e-9)
        assert d["theta_star"] == pytest.approx(r_star, abs=1e-5)  # FD noise in J, as above
        assert not np.isfinite(C.theta_star(*C.example("three_regions")))


@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_leader_transfers_envelope_and_ic(name):
    """U'(θ) = u_θ(θ, q_L(θ)) by finite differences of U = u(θ,q) − T; all IC/IR hold on a grid;
    profit identities E[T − c_L q] = E[Δ] and profit + CS = total surplus."""
    lf, dist, thr = example_thresholds(name)
    th = np.linspace(0.01, 0.99, 99)
    th = th[np.all(np.abs(th[:, None] - np.array(thr)[None, :]) > 1e-3, axis=1)]
    dl = 1e-5
    up = C.leader_continuous(lf, dist, th + dl)["U"]
    dn = C.leader_continuous(lf, dist, th - dl)["U"]
    out = C.leader_continuous(lf, dist, th)
    dU = (up - dn) / (2 * dl)
    # quad error 1e-11 / step 1e-5 plus O(step²): 1e-6 relative is ample
    assert dU == pytest.approx(C.buyer_value_theta(lf, th, out["q_L"]), rel=1e-6, abs=1e-8)
    # IC / IR on a fine grid (continuous menu evaluated at types it was not solved on)
    g = np.linspace(0, 1, 401)
    o = C.leader_continuous(lf, dist, g)
    assert C.menu_ic_violation(lf, g, o["q_L"], o["T"]) <= 1e-9 * max(1.0, o["T"].max())  # quad error
    assert np.all(o["T"][o["region"] == 0] == 0) and np.all(o["rent"][o["region"] < 2] <= 1e-12)
    # limit pricing charges the fringe cost of the same quality: T = c_F q̂^r
    r1 = o["region"] == 1
    assert o["T"][r1] == pytest.approx(lf.c_F * o["q_L"][r1] ** lf.r, rel=1e-12)
    assert np.all(o["q_F"][o["region"] > 0] <= 1e-12 * max(1.0, o["q_F"].max()))
    s = C.leader_summary(lf, dist)
    from scipy.integrate import simpson

    gg = np.linspace(0, 1, 20001)
    og = C.leader_continuous(lf, dist, gg)
    prof_T = simpson(og["T"] - lf.c_L * og["q_L"], x=gg)
    assert prof_T == pytest.approx(s["profit"], rel=1e-4)  # Simpson across the jump/kinks: O(h)
    assert s["profit"] + s["consumer_surplus"] == pytest.approx(s["total_surplus"], rel=1e-9)


@pytest.mark.parametrize("types,mass", [((0.45, 0.6, 0.9), (0.3, 0.4, 0.3)),
                                        ((0.5, 0.65, 0.95), (0.2, 0.5, 0.3)),
                                        ((0.2, 0.83, 0.97), (0.4, 0.3, 0.3))])
def test_leader_discrete_vs_brute_force(types, mass):
    """Discrete leader (pointwise max of the discrete virtual gain + binding adjacent IC) vs a
    brute force over q-profiles with optimal transfers under ALL IC/IR constraints, refined
    by successive zooming."""
    lf, _ = C.example("three_regions" if types[0] != 0.2 else "empty_middle")
    th, p = np.array(types), np.array(mass)
    ex = C.leader_discrete(lf, th, p)
    assert C.menu_ic_violation(lf, th, ex["q_L"], ex["T"]) <= 1e-12 * max(1.0, ex["T"].max())
    assert ex["profit"] == pytest.approx(ex["virtual_objective"], rel=1e-12)
    qmax = 1.3 * float(C.interior_quality(lf, th[-1]))
    grids = [np.concatenate([[0.0], np.geomspace(1e-2, qmax, 59)])] * 3
    best_q, best = leader_bruteforce(lf, th, p, grids)
    for ratio in (1.3, 1.05, 1.01, 1.002, 1.0004):  # zoom around the incumbent
        grids = [np.concatenate([[0.0], q * np.geomspace(1 / ratio, ratio, 25)]) if q > 0
                 else np.concatenate([[0.0], np.geomspace(1e-4, 1e-2, 5)]) for q in best_q]
        best_q, best = leader_bruteforce(lf, th, p, grids)
    assert best <= ex["profit"] + 1e-12  # the closed form is the optimum
    assert best == pytest.approx(ex["profit"], rel=1e-6)  # zoomed grid: ~ratio² relative loss
    assert best_q == pytest.approx(ex["q_L"], rel=2e-3, abs=1e-3)


@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_leader_discrete_converges(name):
    """Uniform equal cells: discrete regions equal the continuous ones away from thresholds and
    the profit error halves when N doubles (O(1/N))."""
    lf, dist, thr = example_thresholds(name)
    cont = C.leader_summary(lf, dist)["profit"]
    err = []
    for n in (100, 200):
        th, p = dist.discretise(n)
        ex = C.leader_discrete(lf, th, p)
        err.append(ex["profit"] - cont)
        keep = np.all(np.abs(th[:, None] - np.array(thr)[None, :]) > 2.0 / n, axis=1)
        assert np.array_equal(ex["region"][keep], C.leader_quantity(lf, dist, th)[1][keep])
    assert 1.7 < err[0] / err[1] < 2.3  # observed ≈ 1.99


# ================================================================ 5. welfare
@pytest.mark.parametrize("name", sorted(C.LEADER_FRINGE_EXAMPLES))
def test_welfare_comparison(name):
    """Efficient ≥ both; the monopolist owning both models earns at least the leader's profit
    (it can replicate the leader's outcome with fewer buyer options); identities hold."""
    lf, dist = C.example(name)
    w = C.welfare_comparison(lf, dist)
    for k in ("efficient", "monopolist", "leader_fringe"):
        assert w[k]["profit"] + w[k]["consumer_surplus"] == pytest.approx(w[k]["total_surplus"], rel=1e-9)
    assert w["efficient"]["total_surplus"] > w["leader_fringe"]["total_surplus"] > 0
    assert w["efficient"]["total_surplus"] > w["monopolist"]["total_surplus"] > 0
    assert w["monopolist"]["profit"] > w["leader_fringe"]["profit"] > 0
    assert w["leader_fringe"]["consumer_surplus"] > w["monopolist"]["consumer_surplus"]
    # uniform: the multi-model monopolist keeps profit = S^FB/2 (quadrature epsrel 1e-11)
    assert w["monopolist"]["profit"] == pytest.approx(w["efficient"]["total_surplus"] / 2, rel=1e-8)


@pytest.mark.parametrize("name,types,mass", [
    ("three_regions", (0.531, 0.677, 0.852), (0.608, 0.119, 0.273)),
    ("three_regions", (0.569, 0.604, 0.91), (0.468, 0.1, 0.432)),
    ("empty_middle", (0.742, 0.845, 0.951), (0.696, 0.097, 0.207))])
def test_leader_discrete_monotone_vs_brute_force(name, types, mass):
    """A light middle type: the pointwise schedule falls (q_2 < q_1), so it is not IC and its
    profit is an infeasible upper bound (repro competition_11_4: the NLP was 'a local optimum
    1.6 % below' it).  The ironed optimum (DP + exact block values) is IC and matches a brute
    force over q-profiles under ALL IC/IR constraints (no monotonicity assumed)."""
    lf, _ = C.example(name)
    th, p = np.array(types), np.array(mass)
    pw = C.leader_discrete(lf, th, p, allow_nonmonotone=True)
    assert np.any(np.diff(pw["q_L"]) < 0)
    assert C.menu_ic_violation(lf, th, pw["q_L"], pw["T"]) > 1e-3  # the pointwise menu is not IC
    ex = C.leader_discrete_monotone(lf, th, p)
    assert ex["ironed"] and (0, 1) in ex["blocks"]
    assert C.menu_ic_violation(lf, th, ex["q_L"], ex["T"]) <= 1e-12 * max(1.0, ex["T"].max())
    assert ex["profit"] == pytest.approx(ex["virtual_objective"], rel=1e-12)
    assert ex["profit"] < pw["profit"]
    qmax = 1.3 * float(C.interior_quality(lf, th[-1]))
    grids = [np.concatenate([[0.0], np.geomspace(1e-2, qmax, 59)])] * 3
    best_q, best = leader_bruteforce(lf, th, p, grids)
    for ratio in (1.3, 1.05, 1.01, 1.002, 1.0004):  # zoom around the incumbent
        grids = [np.concatenate([[0.0], q * np.geomspace(1 / ratio, ratio, 25)]) if q > 0
                 else np.concatenate([[0.0], np.geomspace(1e-4, 1e-2, 5)]) for q in best_q]
        best_q, best = leader_bruteforce(lf, th, p, grids)
    assert best <= ex["profit"] + 1e-12  # nothing IC earns more
    assert best == pytest.approx(ex["profit"], rel=1e-6)  # zoomed grid: ~ratio² relative loss
    assert best_q == pytest.approx(ex["q_L"], rel=2e-3, abs=1e-3)


def test_leader_discrete_monotone_is_the_pointwise_one_when_monotone():
    lf, dist = C.example("three_regions")
    th, p = dist.discretise(40)
    a, b = C.leader_discrete(lf, th, p), C.leader_discrete_monotone(lf, th, p)
    assert not b["ironed"]
    np.testing.assert_array_equal(a["q_L"], b["q_L"])


# ---------------------------------------------------- a fringe that fine-tunes (γ_F > 0)
TUNED = C.TunedFringe(sigma=0.5, gamma_L=0.2, gamma_F=0.08, c_L=0.2, c_F=0.16)


def test_tuned_topup_is_the_global_max_of_the_non_concave_problem():
    """u(θ, q_L) = max(g(0), g(x₂)) vs an exhaustive search over 20,001 top-ups (log grid, no
    first-order condition), for 20 types × 41 leader items: never beaten, and within the grid's
    resolution; both branches (corner and interior) occur."""
    th = np.linspace(0.05, 1.0, 20)
    q = np.concatenate([[0.0], np.geomspace(1e-3, 200, 40)])
    T, Qq = np.meshgrid(th, q, indexing="ij")
    r = C.tuned_topup(TUNED, T, Qq)
    xs = np.concatenate([[0.0], np.geomspace(1e-9, 1e4, 20001)])
    g = T[..., None] * ((Qq**TUNED.r)[..., None] + xs**TUNED.kappa) ** TUNED.sigma - TUNED.c_F * xs
    ub = g.max(axis=-1)
    assert np.max(ub - r["u"]) <= 1e-14 * np.max(r["u"])  # the exact value is the max
    assert np.max(r["u"] - ub) <= 1e-6 * np.max(r["u"])  # grid ratio 1.0017: O(ratio−1)² loss
    assert 0.2 < r["interior"].mean() < 0.9
    # the interior point is a stationary point beyond the peak of h (a local maximum)
    i = r["interior"]
    x2, a = r["x2"][i], (Qq**TUNED.r)[i]
    assert np.all(x2 >= C.tuned_peak(TUNED, a))
    h = T[i] * TUNED.sigma * TUNED.kappa * x2 ** (TUNED.kappa - 1) * (a + x2**TUNED.kappa) ** (TUNED.sigma - 1)
    np.testing.assert_allclose(h, TUNED.c_F, rtol=1e-12)


def test_tuned_topup_is_continuous_in_gamma_F_at_zero():
    """γ_F → 0: u converges to the γ_F = 0 value of LeaderFringe at rate O(γ_F)."""
    th = np.linspace(0.05, 1.0, 20)
    q = np.concatenate([[0.0], np.geomspace(1e-3, 200, 40)])
    T, Qq = np.meshgrid(th, q, indexing="ij")
    lf = TUNED.at_gamma_F_zero()
    ref = C.buyer_value(lf, T, Qq)
    errs = []
    for gF in (1e-2, 1e-3, 1e-4):
        tf = C.TunedFringe(sigma=0.5, gamma_L=0.2, gamma_F=gF, c_L=0.2, c_F=0.16)
        errs.append(np.max(np.abs(C.tuned_buyer_value(tf, T, Qq) - ref)) / np.max(ref))
    assert errs[-1] < 1e-4
    assert errs[0] / errs[1] == pytest.approx(10, rel=0.1) and errs[1] / errs[2] == pytest.approx(10, rel=0.1)


def _beta_1_21_grid(n=74):
    from models import scenario
    raw = {"name": "b", "technology": {"sigma": 0.6252, "rho": 1.0, "tokens": [{"name": "t", "weight": 1.0, "cost": 1.0}]},
           "types": {"distribution": "beta", "low": 0.0, "high": 1.0, "p": 1.0, "q": 21.0, "n": n},
           "regimes": {"cost": {}}}
    return scenario.from_dict(raw, source="x.toml").discrete_types()


def test_discrete_virtual_values_are_exact_for_tiny_tails():
    """versions_33_12 (found by the versions regime): Beta(1, 21), top-type masses 1e-11..1e-40.
    1 − cumsum(p) is round-off once the tail is < 1e-13; φ must match the exactly summed tail."""
    import math
    th, p = _beta_1_21_grid()
    tail = np.array([math.fsum(p[k + 1:]) for k in range(len(p))])
    ref = th - np.append(np.diff(th), 0.0) * tail / p
    np.testing.assert_allclose(C.discrete_virtual_values(th, p), ref, rtol=1e-12, atol=0)


def test_monopolist_discrete_is_invariant_to_the_money_scale():
    """θ and both costs × λ multiply every value by λ, so the optimal V cannot change.  The former
    tie rule GAIN_TOL·max(1, |best|) was absolute below profit 1 (here 4.8e-4): cut-offs within
    2e-10 relative tied and the top types were pooled at a wrong V (versions_33_12)."""
    th, p = _beta_1_21_grid()
    out = []
    for lam in (1.0, 1e6):
        models = (C.ModelCost(0.262521 * lam, 0.6252 + 0.03876, "a"), C.ModelCost(11.5713 * lam, 0.6252 + 0.1688, "b"))
        out.append(C.monopolist_discrete(models, th * lam, p))
    assert out[1]["profit"] == pytest.approx(1e6 * out[0]["profit"], rel=1e-9)
    np.testing.assert_allclose(out[0]["V"], out[1]["V"], rtol=1e-9, atol=0)


def test_theta_star_at_an_upward_jump_of_the_virtual_value():
    """competition_hyp (lead's Hypothesis draw, session 6): piecewise density with a spike on
    [0.42479, 0.44891]; h jumps up at 0.44891 and the leader enters there on q^int (the exact discrete
    optimum and the NLP serve from the first grid type above it).  θ* compared q^int with q̂ at the
    entry point itself, where h is the left limit, and came out NaN ('NLP and continuous closed form
    disagree on whether this threshold lies on the grid', exit 1).  Now θ* is the jump point."""
    dist = TypeDistribution("piecewise", breakpoints=[0.0, 0.42479, 0.44891, 0.606531],
                            masses=[0.155021, 0.0664374, 0.7785416])
    lf = C.LeaderFringe(sigma=0.3405, gamma_L=0.5704, c_L=0.176398, c_F=0.068841)
    thr = C.leader_thresholds(lf, dist)
    assert not thr["middle_nonempty"]
    assert thr["theta_star"] == pytest.approx(0.44891, abs=1e-9)
    th, ms = dist.discretise(53)
    ref = C.leader_discrete_monotone(lf, th, ms)
    k = int(np.argmax(ref["region"] > 0))
    assert th[k - 1] < thr["theta_star"] < th[k] and ref["region"][k] == 2


@pytest.mark.unit
def test_exclusion_type_is_the_up_crossing_of_h_for_a_beta_density_with_p_below_1():
    """Regression (competition_90_3, session 6): Beta(0.9949, 0.5691) on [0.06158, 7.80671] has an
    infinite density at θ_min, so h(θ_min) = θ_min > 0 at that point and h ≈ −13 right above it.
    exclusion_type returned the first sign change (the down-crossing at θ_min, 0.0616); the lowest
    served type is where h turns positive (between the grid types 4.879 and 5.068 of the discrete
    closed form, which excludes every type below 5.07)."""
    dist = TypeDistribution("beta", low=0.06158, high=7.80671, p=0.9949, q=0.5691)
    x = C.exclusion_type(dist)
    assert 4.8787 < x < 5.0676
    assert abs(dist.virtual_value(x)) <= 1e-8 * 7.80671
    assert dist.virtual_value(x - 1e-3) < 0 < dist.virtual_value(x + 1e-3)
    assert dist.virtual_value(0.06158 + 1e-6) < 0  # h is negative just above θ_min


# competition_72_4 (seed 72): 11 types from a file (equal-mass masses normalised), σ = 0.3849, γ_L = 0.5343.
# The pointwise schedule drops at θ = 0.6986 (mass 0.068): ironing needed.
TYPES_72_4 = np.array([0.0, 0.045149, 0.0549366, 0.301974, 0.418763, 0.571221, 0.622108, 0.698572, 0.719839,
                       0.825561, 0.865062])
MASS_72_4 = np.array([0.3202, 0.6198, 0.4397, 0.08196, 0.3495, 0.6729, 0.6477, 0.06783, 0.7723, 0.6666, 0.2303])


@pytest.mark.parametrize("grid", [C.IRON_GRID, 11])
def test_ironed_reference_beats_a_known_monotone_schedule(grid):
    """competition_72_4: the DP's linear q-grid (step 4e3 for q up to 1.5e7) pooled types 5–7 at q = 875;
    the NLP found {5} at 830 and {6, 7} at 920, +1.7e-7 of the profit, and failed q_L/T rows against the
    worse reference.  Any monotone schedule's Σ p_k Δ_k is a lower bound of the optimum: the reference
    must reach that of the NLP's schedule, with the default grid (now linear + geometric) and with a
    grid of 11 points (the partition's local search: split / merge pooled blocks)."""
    p = MASS_72_4 / MASS_72_4.sum()
    lf = C.LeaderFringe(sigma=0.3849, gamma_L=0.5343, c_L=0.208725, c_F=0.19432)
    q_nlp = np.array([0, 0, 0, 0, 0, 830.401101, 919.725099, 919.725297, 1.57111808e5, 7.05239186e6, 1.54576450e7])
    n = len(p)
    tail = np.maximum(1 - np.cumsum(p), 0)
    tn = np.append(TYPES_72_4[1:], TYPES_72_4[-1])
    lower = sum(p[k] * float(C.leader_discrete_gain(lf, TYPES_72_4[k], tn[k], tail[k] / p[k] if k < n - 1 else 0.0,
                                                     q_nlp[k])) for k in range(n))
    ref = C.leader_discrete_monotone(lf, TYPES_72_4, p, grid=grid)
    assert ref["ironed"] and (5, 5) in ref["blocks"] and (6, 7) in ref["blocks"]
    assert ref["profit"] >= lower - 1e-12 * abs(lower)
    assert ref["profit"] == pytest.approx(ref["virtual_objective"], rel=1e-12)


# competition_91_9 (seed 91): piecewise density with a spike of mass 0.40 on [0.7917, 0.79909]
DIST_91_9 = TypeDistribution("piecewise", breakpoints=[0.7917, 0.79909, 1.2172, 1.6729, 1.7917],
                             masses=[0.396575, 0.193621, 0.193855, 0.215949])
LF_91_9 = C.LeaderFringe(sigma=0.6568, gamma_L=0.2227, c_L=0.636046, c_F=0.59999)


def test_theta_hi_is_the_limit_to_interior_boundary_after_a_density_spike():
    """competition_91_9: on the spike h ≈ θ, so q^int > q̂ there, and h drops to −0.47 right after it.
    θ_hi was the first sign change of q^int − q̂ (the spike's end 0.79909, below θ_lo = 0.989, where
    nobody buys from the leader); the NLP and the discrete closed form switch from limit pricing to
    q^int near 1.49.  Reference: the regions of an independent brute force of the pointwise problem
    (numeric top-up, finite-difference u_θ, the density's own hazard, grid search in q)."""
    lf, dist = LF_91_9, DIST_91_9
    lo, hi = dist.support
    th = np.linspace(lo + 1e-6, hi - 1e-6, 301)
    q = np.geomspace(1e-2, 1e4, 801)  # the menu's q_L run 0.73 … 1.9e3
    haz = dist.sf(th) / dist.pdf(th)
    eps = 1e-6

    def J(t, qq, hz):  # u − u_θ (1 − F)/f − c_L q, all numeric
        u = numeric_u(lf, t, qq)[1]
        ut = (numeric_u(lf, t + eps, qq)[1] - numeric_u(lf, t - eps, qq)[1]) / (2 * eps)
        return u - ut * hz - lf.c_L * qq

    T, Qg = np.meshgrid(th, q, indexing="ij")
    D = J(T, Qg, haz[:, None]) - J(th, np.zeros_like(th), haz)[:, None]
    i = np.argmax(D, axis=1)
    served = D[np.arange(len(th)), i] > 1e-9

    def topup(t, qq):  # the buyer's numeric fringe top-up at leader quantity qq
        A = qq ** lf.r
        return fringe_argmax(t, A, lf.sigma, lf.c_F)

    # limit pricing: the argmax is the first grid q without a top-up (q̂ within one q-step)
    limit = topup(th, q[np.maximum(i - 1, 0)]) > 1e-9
    reg = np.where(~served, 0, np.where(limit, 1, 2))
    ch = [(th[j], th[j + 1], reg[j], reg[j + 1]) for j in np.nonzero(np.diff(reg))[0]]
    assert [(a, b) for _, _, a, b in ch] == [(0, 1), (1, 2)]
    d = C.leader_thresholds(lf, dist)
    assert d["middle_nonempty"] and d["theta_lo"] < d["theta_hi"]
    step = th[1] - th[0]
    # entry: Δ(θ, q̂) crosses 0 with slope ~ c_F r q̂^(r−1) q̂' − c_L q̂' and the q-grid misses q̂ by up to
    # one step (dlog = 0.017): ~2 θ-steps; interior: q^int/q̂ must exceed one q-step, which moves the
    # brute-force switch up by dlog / (d ln(q^int/q̂)/dθ ≈ 20) ≈ 1e-3 — one θ-step of margin for each
    assert ch[0][0] - 2 * step <= d["theta_lo"] <= ch[0][1] + 2 * step
    assert ch[1][0] - step <= d["theta_hi"] <= ch[1][1] + step
    # the failing run's row: NLP midpoint 1.49345 (types 1.48468 | 1.50223, N = 57) within one grid step
    assert abs(d["theta_hi"] - 0.5 * (1.48468246 + 1.50222632)) <= 1.50222632 - 1.48468246
    # and the scan of the closed-form schedule itself has its 1 → 2 boundary there
    b = C.region_boundaries(lf, dist)
    assert [(f, t) for _, f, t in b] == [(0, 1), (1, 2)]
    assert b[1][0] == pytest.approx(d["theta_hi"], abs=(hi - lo) / (C.SCAN_POINTS - 1))


def test_virtual_value_and_hazard_take_their_limits_where_the_density_vanishes():
    """Stranger S8-D2 (c03b_comp_dollar_served): Beta(2, 5) on [20, 200] has f(200) = 0, so
    (1 − F)/f was 0/0 = NaN at θ_max; the leader's quantity came out 0 there, the continuous schedule
    'not monotone', and every continuous comparison and the convergence study were skipped on a run
    that exited 0.  The limits: (1 − F)/f → 0 at the top (h → θ), +∞ at a bottom where f = 0."""
    dist = TypeDistribution("beta", low=20.0, high=200.0, p=2.0, q=5.0)
    lf = C.LeaderFringe(sigma=0.4, gamma_L=0.3, c_L=20.0, c_F=12.0)
    assert float(C.virtual_value(dist, 200.0)) == 200.0
    assert float(C.virtual_value(dist, 20.0)) == -np.inf
    # the limit is approached continuously: (1 − F)/f ≈ (θ_max − θ)/q just below the top
    eps = 1e-4
    assert float(C.virtual_value(dist, 200.0 - eps)) == pytest.approx(200.0 - eps - eps / 5.0, abs=1e-9)
    with np.errstate(all="raise"):  # no RuntimeWarning reaches stderr
        q, reg = C.leader_quantity(lf, dist, np.linspace(20.0, 200.0, 101))
    assert reg[-1] == 2 and q[-1] > q[-2] > 0
    assert C.leader_schedule_is_monotone(lf, dist)


def test_pooled_block_argmax_with_flat_marginal_costs():
    """versions_100_12 / 100_21 (fresh seed 100): a pooled block on two models with η = 0.913 and 0.936 — the
    marginal costs v^(1/η−1) are nearly flat, the root lies near 1e29 — made brentq in v raise "Failed to
    converge after 100 iterations" (a traceback on a valid scenario).  The root is now taken in log v; check it
    against the first-order condition directly."""
    models = (C.ModelCost(0.0302494, 0.91345), C.ModelCost(7.06204, 0.93618))
    S, a = 0.03143405238205551, {0: 0.0016548036971798439, 1: 3.4513243889150955e-24}
    v = C._block_argmax(S, a, models)
    marginal = sum(w * models[l].c / models[l].eta * v ** (1 / models[l].eta - 1) for l, w in a.items())
    # first-order condition S = Σ a_ℓ c_ℓ/η_ℓ v^(1/η_ℓ−1) to the root's x-tolerance (ROOT_XTOL in log v:
    # relative 1e-14 in v moves the marginal by (1/η − 1)·1e-14 ≈ 1e-15 of itself)
    assert marginal == pytest.approx(S, rel=1e-12)
    assert 1e28 < v < 1e31


# competition_122_3 (fresh seed 122): Beta(17.13, 5.72) on [0.7451, 1.7451], N = 79, σ = 0.28, γ_L = 0.1333,
# c_F/c_L = 0.96.  The lowest types' masses are 5e-29 … 1e-16, so ρ_k = (1 − P_k)/p_k reaches 1.9e28.
LF_122_3 = C.LeaderFringe(sigma=0.28, gamma_L=0.1333, c_L=0.09146, c_F=0.087529)
DIST_122_3 = TypeDistribution("beta", low=0.7451, high=1.7451, p=17.13, q=5.72)


def _gain_decimal(lf, tk, tn, rho, q, digits=60):
    """Δ_k(q) = (1+ρ)D(θ_k, q) − ρD(θ_(k+1), q) − c_L q straight from its definition, in `digits`-digit
    decimal arithmetic (the float inputs converted exactly): u(θ, a) = max_x θ(a + x)^σ − c_F x with the
    maximiser a + x = max(a, A), A = (θσ/c_F)^(1/(1−σ)) (first-order condition of a concave problem)."""
    import decimal
    from decimal import Decimal as Dm
    with decimal.localcontext() as cx:
        cx.prec = digits
        s, cF, cL, r = Dm(lf.sigma), Dm(lf.c_F), Dm(lf.c_L), Dm(lf.sigma + lf.gamma_L) / Dm(lf.sigma)
        a = Dm(float(q)) ** r if q > 0 else Dm(0)

        def u(th, a):
            A = (Dm(th) * s / cF) ** (1 / (1 - s))
            top = max(a, A)
            return Dm(th) * top**s - cF * (top - a)

        def D(th):
            return u(th, a) - u(th, Dm(0))

        return float((1 + Dm(rho)) * D(tk) - Dm(rho) * D(tn) - cL * Dm(float(q)))


def test_discrete_gain_has_no_round_off_of_rho_times_a_utility():
    """competition_122_3: ρ_k up to 1.9e28 at the lowest types.  Δ_k was formed as (1+ρ)D_k − ρD_(k+1), a
    difference of two utilities multiplied by ρ: round-off of ~1e12 (Δ_1 = 1.7e7 where the exact value is
    0.0908), so the pointwise maximisers came out 0, 2.32, 0, 0, 0, 2.46, … and the ironing DP pooled
    nothing.  Reference: the definition in 60-digit decimal arithmetic.  Tolerance 1e-10 of the larger of
    |D_k| + c_L q and ρ·|D_(k+1) − D_k| (the terms the float evaluation adds; the rent step's series /
    expm1 forms are good to ≤ 1e-12 relative, the float powers to ~1e-15), plus the reference's spread
    over a 4-eps change of q (the conditioning of Δ_k itself at q̂_k)."""
    th, p = DIST_122_3.discretise(79, "equal-spacing")
    n = len(th)
    tail = C._mass_above(p)
    lf = LF_122_3
    checked = 0
    for k in list(range(7)) + [40, 77]:
        rho = tail[k] / p[k]
        qh, qn = float(C.limit_quality(lf, th[k])), float(C.limit_quality(lf, th[k + 1]))
        for q in (0.5 * qh, qh, 0.5 * (qh + qn), qn, 1.5 * qn, 10 * qn):
            got = float(C.leader_discrete_gain(lf, th[k], th[k + 1], rho, np.array([q]))[0])
            ref = _gain_decimal(lf, th[k], th[k + 1], rho, q)
            dk = _gain_decimal(lf, th[k], th[k + 1], 0.0, q) + lf.c_L * q  # D_k
            rent = abs(ref - (dk - lf.c_L * q)) / rho if rho > 0 else 0.0  # |D_(k+1) − D_k|
            scale = max(abs(dk) + lf.c_L * q, rho * rent)
            # plus the reference's own spread over q·(1 ± 4 eps): the float form is backward stable (A_k, q^r
            # carry a few ulp), and at q = q̂_k, Δ_k moves by ~ρ_k c_F A_k (1 − σ) ε δε there (7e-10 at k = 1)
            cond = max(abs(_gain_decimal(lf, th[k], th[k + 1], rho, q * (1 + e)) - ref) for e in (4e-16, -4e-16))
            assert abs(got - ref) <= 1e-10 * scale + cond, (k, q, got, ref, scale, cond)
            checked += 1
    assert checked == 54 and tail[0] / p[0] > 1e28  # the case arises


def test_leader_discrete_limit_prices_the_light_bottom_types_without_ironing():
    """competition_122_3's grid: every type of the support is above the break-even quality's entry
    (θ_lo = 0.345 < θ_min), so each bottom type's exact gain at its limit quality q̂_k is
    Δ_k(q̂_k) = c_F A_k − c_L q̂_k > 0, independent of ρ_k (D_k = D_(k+1) = c_F q^r up to q̂_k), while above
    q̂_k the rent term −ρ_k E_k with ρ_k ≥ 1e15 makes Δ_k fall within ~1/ρ_k of q̂_k: q_k = q̂_k to double
    precision.  Before: the reference said 'the pointwise discrete schedule is not monotone; reference =
    the ironed discrete optimum (pooled: )' and put q = 0, 0.869, 1.661, 1.661, 1.667 on types 0–4."""
    th, p = DIST_122_3.discretise(79, "equal-spacing")
    lf = LF_122_3
    ref = C.leader_discrete_monotone(lf, th, p)
    assert not ref["ironed"]
    assert np.all(np.diff(ref["q_L"]) >= 0)
    k = np.arange(5)
    qh = C.limit_quality(lf, th[k])
    A = C.fringe_stand_alone(lf, th[k])
    assert np.all(lf.c_F * A - lf.c_L * qh > 0)  # the case: limit pricing pays at each of them
    np.testing.assert_allclose(ref["q_L"][k], qh, rtol=1e-12, atol=0.0)
    assert np.all(ref["region"][k] == 1)


def test_continuous_leader_schedule_is_monotone_where_the_hazard_is_huge():
    """Beta(17.13, 5.72) (competition_122_3): (1 − F)/f ~ 1e52 at the second scan point.  Where the upper
    candidate is the limit quality q̂, the rent u_θ(q̂) − u_θ(0) is exactly 0 (the buyer stops topping up
    there), but max(A^σ, q̂^η) − A^σ was round-off ~1e-16·A^σ, which the hazard made a rent of ~1e36: 12 of
    the 4001 scan points came out unserved between limit-priced neighbours, leader_schedule_is_monotone
    said False and the regime skipped every continuous comparison.  Every type here sells at least q̂
    (θ_lo = 0.345 lies below the support), with gain c_F A − c_L q̂ at q̂."""
    lf, dist = LF_122_3, DIST_122_3
    assert C.theta_lo(lf) < dist.support[0]
    t = np.linspace(*dist.support, C.SCAN_POINTS)[:200]
    assert np.max(C._hazard(dist, t[1:])) > 1e50  # the case arises
    q, reg = C.leader_quantity(lf, dist, t)
    qh = C.limit_quality(lf, t)
    np.testing.assert_array_equal(reg, 1)
    np.testing.assert_array_equal(q, qh)
    g = C.leader_gain(lf, dist, t, qh)
    np.testing.assert_allclose(g, lf.c_F * C.fringe_stand_alone(lf, t) - lf.c_L * qh, rtol=1e-12)
    assert C.leader_schedule_is_monotone(lf, dist)


@pytest.mark.unit
def test_cumulative_integral_pieces_do_not_grow_with_the_money_unit():
    """stranger15 F0: data/competition.toml with θ on [0, 1e6] (money × 1e6) was OOM-killed at 23.6 GB: the
    longest piece of a cumulative integral was an absolute 0.01 of θ, so 1e8 pieces.  The piece count must be
    the same in any unit, and the integral must scale with it: ∫_0^θ s² ds = θ³/3 in both."""
    from models.closed_form import competition as cc
    theta = np.linspace(0.05, 1.0, 40)
    for breaks in ((), (0.5,)):
        n1 = len(cc._integration_pieces(0.0, theta, breaks)[0])
        n6 = len(cc._integration_pieces(0.0, theta * 1e6, tuple(b * 1e6 for b in breaks))[0])
        assert n1 == n6 and n1 < 10_000, (n1, n6)
    for s in (1.0, 1e6):
        got = cc._cumulative_integral(lambda x: x**2, 0.0, theta * s)
        assert np.allclose(got, (theta * s) ** 3 / 3, rtol=1e-12, atol=0), s
