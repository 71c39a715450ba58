r"""Pricing plans a provider can post (issue 14): linear API pricing and the
best K-plan menu, as independent (Pyomo-free) computations.  No Pyomo here.

Linear API pricing (derived)
----------------------------
Every token class is sold at m times its marginal cost, no fee.  At prices
m·c_j the cheapest mix for a quality Q is the cost-minimising mix at c (all
prices scale by m), so Q costs the buyer m·C(Q); type θ buys
:math:`\max_Q \theta Q - mC(Q)`, i.e. :math:`C'(Q)=\theta/m`.  The seller earns
:math:`\Pi(m)=(m-1)\sum_k p_k C(Q_k(m))`.  Homogeneous C(Q)=cQ^{1/η}:
:math:`C(Q(\theta,m))\propto(\theta/m)^{1/(1-\eta)}`, so
:math:`\Pi(m)\propto(m-1)m^{-1/(1-\eta)}`, maximised at :math:`m^*=1/\eta` for
every type distribution (θ ≥ 0); every type with θ > 0 is served.
``linear_optimum`` finds m* by a bracketing (scan + golden-section) search on
Π(m) that does not use this formula.

Best K-plan menu on a discrete grid (derived)
---------------------------------------------
Single crossing (θQ − t has slope Q in θ): the types choosing each plan form
contiguous intervals of the type order and the excluded types a prefix.  Fix
the blocks B_1 < … < B_K (block b = types s_b … s_{b+1}−1, types below s_1
excluded).  Within a block every type gets the same item; the tightest
downward constraint of block b is its lowest type θ_{s_b}, the tightest upward
one its highest.  Dropping the upward ones and binding the downward chain,
:math:`t_b=\sum_{a\le b}\theta_{s_a}(Q_a-Q_{a-1})`, profit is
:math:`\sum_b P_b(\varphi_bQ_b-C(Q_b))` with :math:`P_b` the block's mass and
:math:`\varphi_b=\theta_{s_b}-(\theta_{s_{b+1}}-\theta_{s_b})W_{b+1}/P_b`
(W = mass of all served blocks above): Mussa–Rosen on "block types"
(θ_{s_b}, P_b).  Its solution (``cb.discrete_menu`` with ironing) satisfies the
dropped upward rows (t_{b+1} − t_b = θ_{s_{b+1}} ΔQ ≥ θ_max(B_b) ΔQ), so
``block_menu`` is the exact optimum for the given blocks.  Every K-plan menu
induces such blocks, so the best K-plan menu is the best block partition.

Because W_b is the mass of all types from s_b up, Q_b's objective weight
:math:`a_b=\theta_{s_b}S(s_b)-\theta_{s_{b+1}}S(s_{b+1})` (S(i) = mass of
types ≥ i) depends only on the block's own two ends.  Without the
monotonicity of Q the program separates into blocks, block [s, e] worth
:math:`P\,S^{FB}(a/P)` (first-best surplus at the virtual value a/P, 0 if
a ≤ 0), and ``best_k_plans_dp`` maximises that sum by dynamic programming over the
partitions whose block virtual values are non-decreasing (for those the
separable value is attained; every other partition is worth, after ironing,
as much as a coarser one of those -- see the function), which is the exact
optimum.  ``DPResult.certified`` re-checks the chosen blocks' order.
``brute_force_k_plans`` enumerates every partition (small N) through
``block_menu``, a check of the DP that shares only ``cb.discrete_menu``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from models.closed_form import budgets as cb
from models.closed_form import cost as cf


# ------------------------------------------------------------ linear pricing
def linear_demand(tech: cf.Technology, theta, m: float) -> np.ndarray:
    """Quality type θ buys when every token costs m × marginal cost: C'(Q) = θ/m."""
    return cf.inverse_marginal_cost(tech, np.asarray(theta, float) / m)


def linear_outcome(tech: cf.Technology, theta, mass, m: float) -> dict:
    """Quantities, spend and welfare of linear pricing at multiplier m."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    Q = linear_demand(tech, theta, m)
    C = cf.cost(tech, Q)
    U = theta * Q - m * C
    return {"m": float(m), "Q": Q, "cost": C, "payment": m * C, "U": U,
            "profit": float(np.sum(mass * (m - 1.0) * C)), "consumer_surplus": float(np.sum(mass * U)),
            "served": Q > 0}


def linear_profit(tech, theta, mass, m) -> float:
    return linear_outcome(tech, theta, mass, m)["profit"]


def linear_multiplier_homogeneous(tech: cf.Technology) -> float | None:
    """m* = 1/η for a homogeneous C (see the module doc); None for the baseline form."""
    return None if tech.has_baseline else 1.0 / tech.eta


# Bracketing search: a scan of log m over [0, log M_MAX] then golden section
# on the bracketing cell to a width of GOLDEN_XTOL in log m.  Π is smooth and
# (for every technology here) unimodal in m; the scan guards against a
# second local maximum wider than one scan cell.
M_MAX = 1e4
SCAN = 2000
GOLDEN_XTOL = 1e-12


def golden_max(f, a: float, b: float, xtol: float = GOLDEN_XTOL, it: int = 300) -> float:
    """Golden-section search for the maximiser of f on [a, b]."""
    g = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(it):
        if b - a <= xtol * max(1.0, abs(a)):
            break
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


def linear_optimum(tech: cf.Technology, theta, mass) -> dict:
    """Optimal linear multiplier by a 1-D bracketing search (no formula for m*)."""
    def f(lm):
        return linear_profit(tech, theta, mass, float(np.exp(lm)))

    grid = np.linspace(0.0, np.log(M_MAX), SCAN)
    vals = np.array([f(x) for x in grid])
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    lm = golden_max(f, lo, hi)
    out = linear_outcome(tech, theta, mass, float(np.exp(lm)))
    out["bracket"] = (float(np.exp(lo)), float(np.exp(hi)))
    return out


# ------------------------------------------------------------- K-plan menus
@dataclass
class PlanMenu:
    """A menu of plans over discrete types: plan b = (Q[b], t[b]) serves types
    starts[b] … starts[b+1]−1 (the last block ends at N−1); types below
    starts[0] are excluded.  ``plan_of`` is each type's assigned plan (−1 out)."""

    theta: np.ndarray
    mass: np.ndarray
    starts: np.ndarray
    Q: np.ndarray
    t: np.ndarray
    plan_of: np.ndarray

    @property
    def K(self) -> int:
        return len(self.starts)

    def profit(self, tech) -> float:
        sv = self.plan_of >= 0
        b = self.plan_of[sv]
        return float(np.sum(self.mass[sv] * (self.t[b] - cf.cost(tech, self.Q[b]))))

    def utility(self) -> np.ndarray:
        b = np.maximum(self.plan_of, 0)
        return np.where(self.plan_of >= 0, self.theta * self.Q[b] - self.t[b], 0.0)

    def consumer_surplus(self) -> float:
        return float(np.sum(self.mass * self.utility()))

    def block_mass(self) -> np.ndarray:
        return np.array([self.mass[self.plan_of == b].sum() for b in range(self.K)])


def assignment(N: int, starts) -> np.ndarray:
    starts = np.asarray(starts, int)
    plan = np.full(N, -1)
    for b, s in enumerate(starts):
        e = starts[b + 1] if b + 1 < len(starts) else N
        plan[s:e] = b
    return plan


def block_menu(tech: cf.Technology, theta, mass, starts) -> PlanMenu:
    """Exact optimal menu when block b (types starts[b] … ) shares one plan
    (module doc): Mussa–Rosen on the block types (θ_{s_b}, P_b)."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    starts = np.asarray(starts, int)
    plan = assignment(len(theta), starts)
    P = np.array([mass[plan == b].sum() for b in range(len(starts))])
    m = cb.discrete_menu(tech, theta[starts], P)
    return PlanMenu(theta, mass, starts, m.Q, m.t, plan)


@dataclass
class DPResult:
    starts: np.ndarray
    value: float  # the DP's (relaxed) optimum
    menu: PlanMenu  # block_menu of the maximising partition
    certified: bool  # the chosen blocks' virtual values are non-decreasing (no ironing)


def _block_tables(tech, theta, mass):
    """(v, phi): v[s, e] = value P·S^FB(a/P) of block [s, e], phi[s, e] = its
    virtual value a/P clipped at 0 (−inf / nan for e < s)."""
    N = len(theta)
    S = np.r_[np.cumsum(mass[::-1])[::-1], 0.0]  # S[i] = mass of types >= i, S[N] = 0
    th_next = np.r_[theta[1:], 0.0]  # θ_{e+1} (times S[N] = 0 at the top)
    s = np.arange(N)[:, None]
    e = np.arange(N)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = theta[:, None] * S[:N][:, None] - th_next[None, :] * S[1:][None, :]
        P = S[:N][:, None] - S[1:][None, :]
        phi = np.maximum(np.where(P > 0, a / np.where(P > 0, P, 1.0), 0.0), 0.0)
    v = P * cf.first_best_surplus(tech, phi)
    ok = e >= s
    return np.where(ok, v, -np.inf), np.where(ok, phi, np.nan)


# (K + 1)·N² float64 entries of the DP table: 5e7 = 400 MB (N = 1000 with K <= 49).
DP_MAX_ENTRIES = 50_000_000


def _best_next(H, phi, r, thr):
    """max over e' >= r with phi[r, e'] >= thr of H[r, e'] (−inf if none), for a vector thr."""
    vals, ph = H[r, r:], phi[r, r:]
    order = np.argsort(ph, kind="stable")
    sufmax = np.maximum.accumulate(vals[order][::-1])[::-1]
    pos = np.searchsorted(ph[order], thr, side="left")
    return np.where(pos < len(order), sufmax[np.minimum(pos, len(order) - 1)], -np.inf)


def partition_dp(v, key, K: int):
    """Best partition of types s_1 … N−1 into at most K contiguous blocks (types
    below s_1 excluded) maximising Σ v[s_b, e_b] over partitions whose block
    keys key[s_b, e_b] are non-decreasing: H_k[s, e] = best value of covering
    s … N−1 with at most k blocks, the first being [s, e]; the next block
    [e+1, e'] must have key(e+1, e') ≥ key(s, e).  K >= N: one table filled by
    descending next start.  Returns (starts, value); (None, 0) if no
    partition is worth more than 0."""
    N = v.shape[0]
    K = int(max(1, min(K, N)))

    def trace(Hs, s, e):
        starts = [s]
        k = K
        while e < N - 1:
            r = e + 1
            cand = np.flatnonzero(key[r, r:] >= key[s, e]) + r
            k -= 1
            T = Hs(k)
            j = int(cand[int(np.argmax(T[r, cand]))])
            s, e = r, j
            starts.append(s)
        return np.array(starts, int)

    if K == N:
        H = np.full((N, N), -np.inf)
        H[:, N - 1] = v[:, N - 1]
        for r in range(N - 1, 0, -1):
            H[:r, r - 1] = v[:r, r - 1] + _best_next(H, key, r, key[:r, r - 1])
        flat = int(np.argmax(H))
        s, e = divmod(flat, N)
        value = float(H[s, e])
        return (trace(lambda k: H, s, e), value) if value > 0 else (None, 0.0)
    H = np.full((K + 1, N, N), -np.inf)
    H[1][:, N - 1] = v[:, N - 1]
    for k in range(2, K + 1):
        Hk = H[k - 1].copy()  # at most k blocks includes at most k - 1
        for r in range(1, N):  # blocks [s, r-1], s < r, followed by a block starting at r
            Hk[:r, r - 1] = np.maximum(Hk[:r, r - 1], v[:r, r - 1] + _best_next(H[k - 1], key, r, key[:r, r - 1]))
        H[k] = Hk
    flat = int(np.argmax(H[K]))
    s, e = divmod(flat, N)
    value = float(H[K][s, e])
    return (trace(lambda k: H[k], s, e), value) if value > 0 else (None, 0.0)


def _ordered(tech, phi, starts, N) -> bool:
    relaxed = cf.inverse_marginal_cost(tech, np.array(
        [phi[a, (starts[i + 1] - 1) if i + 1 < len(starts) else N - 1] for i, a in enumerate(starts)]))
    return bool(np.all(np.diff(relaxed) >= 0))


def best_k_plans_dp(tech: cf.Technology, theta, mass, K: int) -> DPResult:
    """Best menu of at most K plans (plus the outside option) by dynamic
    programming over blocks with non-decreasing virtual values.

    Blocks b < b' with φ_b > φ_b' would need ironing; ironing pools them at a
    common Q, and a pooled pair of adjacent blocks is worth exactly the
    merged block (a and P add), so every partition's exact value is that of a
    coarser partition whose φ are non-decreasing, whose separable (relaxed)
    value is attained.  The DP (``partition_dp``) maximises the separable
    value over exactly those partitions.  O(K N² log N) (per next start, a
    sorted suffix max)."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    N = len(theta)
    K = int(max(1, min(K, N)))
    if K < N and (K + 1) * N * N > DP_MAX_ENTRIES:
        raise ValueError(f"K-plan DP with K = {K}, N = {N} needs {(K + 1) * N * N:.3g} table entries "
                         f"(limit {DP_MAX_ENTRIES:.3g}); use fewer types")
    v, phi = _block_tables(tech, theta, mass)
    starts, value = partition_dp(v, phi, K)
    if starts is None:  # nobody served
        return DPResult(np.array([N - 1]), 0.0, block_menu(tech, theta, mass, [N - 1]), True)
    menu = block_menu(tech, theta, mass, starts)
    return DPResult(starts, value, menu, _ordered(tech, phi, starts, N))


def brute_force_k_plans(tech: cf.Technology, theta, mass, K: int):
    """Every partition of the types into an excluded prefix and at most K
    blocks, each evaluated exactly by ``block_menu``: (best profit, starts).
    C(N+1, K) partitions per K -- small N only."""
    theta = np.asarray(theta, float)
    N = len(theta)
    best, arg = 0.0, None
    for k in range(1, min(K, N) + 1):
        for starts in itertools.combinations(range(N), k):
            p = block_menu(tech, theta, mass, starts).profit(tech)
            if p > best:
                best, arg = p, np.array(starts)
    return best, arg


def local_search(tech: cf.Technology, theta, mass, starts, it: int = 10_000):
    """Coordinate ascent over the cut indices from an initial partition: move
    one cut by ±1 while block_menu's profit rises (a local optimum; the DP is
    the global one).  Returns (starts, profit, moves)."""
    theta = np.asarray(theta, float)
    N = len(theta)
    cur = np.array(sorted(set(int(s) for s in starts)), int)
    val = block_menu(tech, theta, mass, cur).profit(tech)
    moves = 0
    for _ in range(it):
        improved = False
        for b in range(len(cur)):
            for d in (-1, 1):
                c = cur.copy()
                c[b] += d
                lo = c[b - 1] + 1 if b > 0 else 0
                hi = c[b + 1] - 1 if b + 1 < len(c) else N - 1
                if not lo <= c[b] <= hi:
                    continue
                p = block_menu(tech, theta, mass, c).profit(tech)
                if p > val * (1 + 1e-14) + 1e-300:
                    cur, val, improved = c, p, True
                    moves += 1
        if not improved:
            break
    return cur, val, moves


def initial_partitions(theta, mass, K: int, first_served: int) -> dict[str, np.ndarray]:
    """Starting partitions of the served types first_served … N−1 into K
    blocks: equal mass, equal θ-width."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    N = len(theta)
    n = N - first_served
    K = min(K, n)
    out = {}
    cm = np.cumsum(mass[first_served:]) / mass[first_served:].sum()
    em = first_served + np.searchsorted(cm, np.arange(K) / K, side="right")
    em[0] = first_served
    out["equal-mass"] = em
    ew = first_served + np.searchsorted(theta[first_served:],
                                        np.linspace(theta[first_served], theta[-1], K + 1)[:-1], side="left")
    out["equal-width"] = ew
    for name, s in list(out.items()):  # distinct, increasing, within range
        s = np.unique(np.clip(s, first_served, N - 1))
        out[name] = s
    return out


def sheet_choice(theta_buyer, Q, t):
    """Each buyer picks the best plan or the outside option: (plan or −1, U)."""
    return cb.menu_choice(theta_buyer, np.asarray(Q, float), np.asarray(t, float))


def plan_utilities(theta_buyer, Q, t) -> np.ndarray:
    """U[i, b] = θ_i Q_b − t_b (dense: K is small)."""
    th = np.atleast_1d(np.asarray(theta_buyer, float))
    return th[:, None] * np.asarray(Q, float)[None, :] - np.asarray(t, float)[None, :]


def fit_order(K, loss) -> float:
    """Order r of loss ~ K^(−r) by least squares in logs."""
    K = np.asarray(K, float)
    loss = np.asarray(loss, float)
    return float(-np.polyfit(np.log(K), np.log(np.maximum(loss, 1e-300)), 1)[0])


# ------------------------------------------------------ single two-part tariff
# One fixed fee F plus every token class at m × marginal cost (derived).
# Under (F, m) type θ buys C'(Q) = θ/m and is worth u(θ, m) = θQ − mC(Q) =
# m·S^FB(θ/m), increasing in θ, so the served types are those from some s up.
# For a served set {k >= s} the best fee makes type s indifferent,
# F = u(θ_s, m), and the profit is
#     Π(s, m) = S(s)·u(θ_s, m) + (m − 1) Σ_{k>=s} p_k C(Q_k(m)).
# Homogeneous C (θQ = C/η at the buyer's optimum, surplus (1 − η)θQ):
# with r = 1/(1 − η), C(Q_k(m)) = ηA(θ_k/m)^r and u = (1 − η)A m (θ_s/m)^r,
# so Π ∝ m^(−r)[(α + β)m − β], α = (1 − η)S(s)θ_s^r, β = ηT(s),
# T(s) = Σ_{k>=s} p_k θ_k^r, maximised at
#     m*(s) = T(s) / ((1 − η)S(s)θ_s^r + ηT(s))  ∈ [1, 1/η)
# (m* = 1, marginal-cost pricing with the fee taking all, when every served
# type is θ_s).  ``two_part_optimum`` does not use this formula: it searches
# m for every s by the bracketing search and takes the best s.
def two_part_outcome(tech: cf.Technology, theta, mass, s: int, m: float) -> dict:
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    Q = linear_demand(tech, theta, m)
    C = cf.cost(tech, Q)
    F = float(theta[s] * Q[s] - m * C[s])
    served = np.arange(len(theta)) >= s
    U = np.where(served, theta * Q - m * C - F, 0.0)
    Qs = np.where(served, Q, 0.0)
    profit = float(np.sum(mass[served] * (F + (m - 1.0) * C[served])))
    return {"s": int(s), "m": float(m), "fee": F, "Q": Qs, "U": U, "profit": profit,
            "consumer_surplus": float(np.sum(mass * U)), "served": served}


def two_part_multiplier_formula(tech: cf.Technology, theta, mass, s: int) -> float | None:
    """m*(s) of the derived formula above (homogeneous C), None for the baseline form."""
    if tech.has_baseline:
        return None
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    e = tech.eta
    r = 1.0 / (1.0 - e)
    S = float(np.sum(mass[s:]))
    # T and S·θ_s^r both divided by θ_N^r (not by θ_s^r: (θ/θ_s)^r overflowed to inf at θ_s = 2.2e-308,
    # session 16's Hypothesis draw, and the row read NaN); a θ_s far below θ_N gives m → 1/η, exactly
    top = float(theta[-1])
    T = float(np.sum(mass[s:] * (theta[s:] / top) ** r))
    return T / ((1.0 - e) * S * (float(theta[s]) / top) ** r + e * T)


TWO_PART_SCAN = 200


def two_part_optimum(tech: cf.Technology, theta, mass) -> dict:
    """Best single two-part tariff: for every served set {k >= s} (θ_s > 0) a
    bracketing search over m (scan of log m on [0, log M_MAX], golden section),
    then the best s."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    grid = np.linspace(0.0, np.log(M_MAX), TWO_PART_SCAN)
    # the scan for all (m, s) at once: Π(s, m) = S(s)F_s(m) + (m − 1)Σ_{k>=s} p_k C_k(m)
    mm = np.exp(grid)[:, None]
    Q = cf.inverse_marginal_cost(tech, theta[None, :] / mm)
    C = cf.cost(tech, Q)
    Fs = theta[None, :] * Q - mm * C
    S = np.cumsum(mass[::-1])[::-1]
    tail = np.cumsum((mass[None, :] * C)[:, ::-1], axis=1)[:, ::-1]
    scan = S[None, :] * Fs + (mm - 1.0) * tail
    best = None
    for s in np.flatnonzero(theta > 0):
        def f(lm, s=s):
            return two_part_outcome(tech, theta, mass, s, float(np.exp(lm)))["profit"]

        i = int(np.argmax(scan[:, s]))
        lm = golden_max(f, grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)])
        out = two_part_outcome(tech, theta, mass, s, float(np.exp(lm)))
        if best is None or out["profit"] > best["profit"]:
            best = out
    return best


# ------------------------------------------------- menu of K two-part tariffs
# K tariffs (F_b, m_b); a buyer picks one and buys C'(Q) = θ/m_b under it
# (derived, homogeneous C = cQ^{1/η}).  With r = 1/(1 − η), u = θ^r,
# x = m^{−η/(1−η)} ∈ (0, 1] and β = (η/c)^{η/(1−η)}: her demand has
# θQ = βux, her cost C(Q) = ηθQ/m, so tariff b is worth V_b(u) = (1 − η)βu·x_b − F_b
# to her -- linear in u with slope ∝ x_b (single crossing in u) -- and earns
# F_b + ηβu·x_b(1 − 1/m_b).  So the types choosing each tariff are contiguous
# blocks in θ with x (hence 1/m) non-decreasing, and for given blocks the fee
# chain binds downward: F_1 = (1 − η)βu_{s_1}x_1, F_b = F_{b−1} + (1 − η)βu_{s_b}(x_b − x_{b−1}).
# Summing, the profit is Σ_b g_b(x_b) with
#     g_b(x) = (1 − η)βA_b·x + ηβU_b(x − x^{1/η}),
#     A_b = u_{s_b}S(s_b) − u_{s_{b+1}}S(s_{b+1}),   U_b = Σ_{i∈b} p_i u_i,
# each depending only on the block's ends and contents (S(i) = mass of types
# ≥ i).  g_b is concave in x; its maximiser is x_b = D_b^{η/(1−η)}, i.e.
#     m_b = 1 / D_b,   D_b = η + (1 − η)A_b/U_b   (≤ 1, since A_b ≤ u_{s_b}P_b ≤ U_b),
# worth (1 − η)βU_b·D_b^r (0 and no sale if D_b ≤ 0).  g is linear in
# (A, U), so two adjacent blocks pooled at one x are worth exactly the merged
# block: as for the K-plan menus, ``partition_dp`` over blocks with
# non-decreasing D is the exact optimum.  K = 1 is the single two-part tariff
# (m*(s) above); K = N reaches the full menu when θ/φ̄ is non-increasing.
def _two_part_block_tables(tech, theta, mass):
    """(v, D): v[s, e] = value (1 − η)βU·D^r of block [s, e] (0 if D <= 0),
    D[s, e] = η + (1 − η)A/U clipped at 0 (nan for e < s)."""
    N = len(theta)
    e_, r = tech.eta, 1.0 / (1.0 - tech.eta)
    beta = (e_ / cf.cost_coefficient(tech)) ** (e_ / (1.0 - e_))
    u = np.maximum(theta, 0.0) ** r
    S = np.r_[np.cumsum(mass[::-1])[::-1], 0.0]
    cu = np.r_[0.0, np.cumsum(mass * u)]  # cu[i] = Σ_{k<i} p_k u_k
    cs = np.r_[np.cumsum((mass * u)[::-1])[::-1], 0.0]  # cs[i] = Σ_{k>=i} p_k u_k
    u_next = np.r_[u[1:], 0.0]
    with np.errstate(invalid="ignore", divide="ignore"):
        A = u[:, None] * S[:N][:, None] - u_next[None, :] * S[1:][None, :]
        # U[s, e] as the difference of the smaller pair of partial sums: its round-off is
        # ~ε·(the sums it subtracts).  Prefix sums alone cancelled for a light top block:
        # plans_217_2 (Beta(1, 17), N = 85, K = 64; top block mass 4.8e-11) had U off so that
        # m_b = 1/D_b was 6.3e-8 from the block profit's own maximiser (1.5e-11 after), and the
        # fee chain there 1.36e-6 (exit 1 on the NLP's correct, polished menu).
        pre = cu[1:][None, :] - cu[:N][:, None]
        suf = cs[:N][:, None] - cs[1:][None, :]
        U = np.where(cu[1:][None, :] <= cs[:N][:, None], pre, suf)
        D = np.maximum(np.where(U > 0, e_ + (1.0 - e_) * A / np.where(U > 0, U, 1.0), 0.0), 0.0)
    v = (1.0 - e_) * beta * np.where(U > 0, U, 0.0) * D ** r
    ok = np.arange(N)[None, :] >= np.arange(N)[:, None]
    return np.where(ok, v, -np.inf), np.where(ok, D, np.nan)


@dataclass
class TwoPartMenu:
    """K two-part tariffs over discrete types: tariff b = (fee[b], m[b]) for
    types starts[b] … (the last block ends at N−1); types below starts[0] buy nothing."""

    theta: np.ndarray
    mass: np.ndarray
    starts: np.ndarray
    fee: np.ndarray
    m: np.ndarray
    plan_of: np.ndarray
    value: float  # the DP's optimum (separable value)
    # DP blocks excluded as dead tariffs (best_two_part_menu): (first type, last type, 1/D_b, value v_b);
    # the menu's own profit is value − Σ v_b
    dead: tuple = ()

    @property
    def value_sold(self) -> float:
        """The DP's value less the dead tariffs' (the value of the tariffs on sale)."""
        return float(self.value - sum(x[3] for x in self.dead))

    def outcome(self, tech):
        """Demand, payments and welfare of every type under its assigned tariff."""
        b = np.maximum(self.plan_of, 0)
        sv = self.plan_of >= 0
        mm = np.where(sv, self.m[b], 1.0)
        Q = np.where(sv, linear_demand(tech, self.theta, mm), 0.0)
        C = cf.cost(tech, Q)
        pay = np.where(sv, self.fee[b] + mm * C, 0.0)
        U = np.where(sv, self.theta * Q - pay, 0.0)
        return {"Q": Q, "payment": pay, "U": U, "profit": float(np.sum(self.mass * (pay - C))),
                "consumer_surplus": float(np.sum(self.mass * U)), "served": sv}


def two_part_menu_from_blocks(tech, theta, mass, starts, m) -> tuple[np.ndarray, np.ndarray]:
    """Fees of the binding downward chain for given blocks and multipliers
    (type s_b indifferent between tariffs b − 1 and b, type s_1 between
    tariff 1 and nothing), by the buyer's own value m·S^FB(θ/m) of a tariff."""
    theta = np.asarray(theta, float)
    m = np.asarray(m, float)
    fee = np.zeros(len(starts))
    for b, s in enumerate(starts):
        ts = theta[s]
        gross = m[b] * cf.first_best_surplus(tech, ts / m[b])  # max_Q θQ − mC(Q)
        prev = 0.0 if b == 0 else m[b - 1] * cf.first_best_surplus(tech, ts / m[b - 1]) - fee[b - 1]
        fee[b] = gross - prev
    return fee, assignment(len(theta), starts)


def best_two_part_menu(tech: cf.Technology, theta, mass, K: int) -> TwoPartMenu:
    """Best menu of at most K two-part tariffs (derivation above)."""
    if tech.has_baseline:
        raise ValueError("two-part menus are derived for the homogeneous C(Q) only")
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    N = len(theta)
    K = int(max(1, min(K, N)))
    if K < N and (K + 1) * N * N > DP_MAX_ENTRIES:
        raise ValueError(f"two-part menu DP with K = {K}, N = {N} needs {(K + 1) * N * N:.3g} entries")
    v, D = _two_part_block_tables(tech, theta, mass)
    starts, value = partition_dp(v, D, K)
    gone = ()
    if starts is None:
        starts = np.array([N - 1])
        m = np.array([M_MAX])
    else:
        ends = np.r_[starts[1:] - 1, N - 1]
        keep = D[starts, ends] > 0  # D <= 0 (only a leading block: keys increase): no sale, types excluded
        # A dead tariff: a leading block whose multiplier 1/D_b is beyond M_MAX -- beyond the NLP's bound on
        # m and the single-tariff searches' range, the project's domain of posted multipliers -- sells nothing
        # and is excluded like a block of D <= 0.  Only a leading run can be dead (D rises along the blocks),
        # so no gap is left.  Its value is lost: v_b = (1 − η)βU_b·D_b^r < (1 − η)βU_b·M_MAX^(−r), at most
        # M_MAX^(−r) of its types' first-best surplus (``dead`` lists it; the menu's own profit is the DP's
        # value less Σ v_b).  Within m <= M_MAX nothing better is lost: a block's g_b(x) = βU_b(D_b x − ηx^(1/η))
        # is concave with its maximum beyond the bound, and at most v_b.  stranger18 F3b (CSV θ = 1,
        # 1 + 1e-12, 1.5 (mass 1e-12), 2; η = 1/2): K >= 2 put θ = 1 … 1.5 on a tariff of D = 3.2e-12,
        # m = 3.1e11, worth 6.2e-25 $; the NLP, whose m is bounded by M_MAX, priced it at m = 9999 and fee
        # 1e-5 $ for 60 % of the buyers and lost 6.0e-10 $ on the top tariff's fee (the exact optimum of that
        # partition with m <= M_MAX is 0.15999999939984, the NLP's 0.15999999939951): rows inf/nan (the polish
        # of a tariff at its bound), 'share served 100 %' for a menu that serves 40 %.  θ = 1.00001 in place of
        # 1 + 1e-12 (D = 5e-6, m = 2e5) failed the same way.
        dead = np.cumprod(D[starts, ends] * M_MAX < 1.0).astype(bool)
        keep &= ~dead
        gone = tuple((int(a), int(b), float(1.0 / D[a, b]) if D[a, b] > 0 else np.inf, float(v[a, b]))
                     for a, b, d in zip(starts, ends, dead) if d and D[a, b] > 0)
        starts, ends = starts[keep], ends[keep]
        m = 1.0 / D[starts, ends]
    fee, plan = two_part_menu_from_blocks(tech, theta, mass, starts, m)
    return TwoPartMenu(theta, mass, np.asarray(starts, int), fee, m, plan, float(value), gone)


def two_part_menu_choice(tech: cf.Technology, theta_buyer, fee, m):
    """Each buyer's best tariff by direct evaluation (demand C'(Q) = θ/m_b,
    utility θQ − m_bC(Q) − F_b), or the outside option: (tariff or −1, utility matrix)."""
    th = np.atleast_1d(np.asarray(theta_buyer, float))[:, None]
    m = np.asarray(m, float)[None, :]
    Q = cf.inverse_marginal_cost(tech, th / m)
    U = th * Q - m * cf.cost(tech, Q) - np.asarray(fee, float)[None, :]
    U = np.c_[np.zeros(len(th)), U]
    return np.argmax(U, axis=1) - 1, U


# ------------------------------------------------- minimum-spend (committed) plans
# A menu item (Q_k, t_k) sold as a prepaid budget is a *maximum*-spend plan:
# pay t_k, spend up to B_k = C(Q_k) at marginal cost.  The *minimum*-spend
# form of the same item: commit to spend at least M_k = t_k, every token at
# the plan's rate r_k = t_k / C(Q_k) times marginal cost, more allowed at that
# rate.  Under plan l type θ buys Q* = max(Q_l, C'^{-1}(θ/r_l)) (the
# commitment is paid anyway, so she uses at least Q_l; beyond it her problem
# is concave) and gets θQ* − r_l C(Q*).  Derived: type k stays at Q_k under
# its own plan iff θ_k ≤ r_k C'(Q_k); for homogeneous C (C = ηQC') that is
#     t_k ≥ η θ_k Q_k,   i.e.  U_k ≤ (1 − η) θ_k Q_k
# (the rent is at most the buyer's first-best share of her gross value).  If
# it fails she spends past her commitment; deviations to other plans are
# more attractive than under budgets (a lower plan can now be topped up), so
# equivalence needs the free-choice test below as well.
def min_spend_sheet(tech: cf.Technology, Q, t):
    """(M, r): minimum spend ($) and rate (x marginal cost) of each plan; plans
    with Q = 0 get no rate (NaN)."""
    Q = np.asarray(Q, float)
    t = np.asarray(t, float)
    C = cf.cost(tech, Q)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(C > 0, t / np.where(C > 0, C, 1.0), np.nan)
    return t.copy(), r


def min_spend_choice(tech: cf.Technology, theta_buyer, Q, M, r):
    """Each buyer's best plan under minimum-spend plans (or the outside
    option, −1): (plan, utility, quality bought)."""
    th = np.atleast_1d(np.asarray(theta_buyer, float))[:, None]
    Q = np.asarray(Q, float)[None, :]
    r = np.asarray(r, float)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        Qs = np.maximum(Q, cf.inverse_marginal_cost(tech, th / r))
        U = th * Qs - r * cf.cost(tech, Qs)
    U = np.where(np.isfinite(U), U, -np.inf)
    best = np.argmax(U, axis=1)
    Ub = U[np.arange(len(th)), best]
    Qb = Qs[np.arange(len(th)), best]
    return np.where(Ub >= 0, best, -1), np.maximum(Ub, 0.0), np.where(Ub >= 0, Qb, 0.0)


def min_spend_own_condition(tech: cf.Technology, theta_own, Q, t) -> np.ndarray:
    """Derived: plan k's own type stays at Q_k iff t_k ≥ η θ_k Q_k (homogeneous C)."""
    return np.asarray(t, float) >= tech.eta * np.asarray(theta_own, float) * np.asarray(Q, float)
