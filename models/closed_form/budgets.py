r"""Token budgets: Lemma 1, Proposition 1, Proposition 2 and tariffs (MODEL.md 2.2–2.5).

No Pyomo here.  Discrete types are arrays ``theta`` (ascending) and ``mass``
(summing to 1); continuous types are a ``TypeDistribution``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.closed_form import cost as cf

# Continuous solution: Q(θ) is tabulated on this many quantile points; the
# ironing of h and the integral ∫Q are done on that grid (error ~1e-9).
CONTINUOUS_GRID = 200_001


# ------------------------------------------------------------- Lemma 1
def aggregate_type(w, sigma: float, cell_weight=None) -> np.ndarray:
    r""":math:`\theta(w)=(\int w_i^{1/(1-\sigma)}di)^{1-\sigma}` over the last axis
    (midpoint rule: each of n cells has weight 1/n unless given)."""
    w = np.asarray(w, float)
    n = w.shape[-1]
    cw = np.full(n, 1.0 / n) if cell_weight is None else np.asarray(cell_weight, float)
    return np.sum(cw * w ** (1 / (1 - sigma)), axis=-1) ** (1 - sigma)


def lemma1_split(w, X, sigma: float) -> np.ndarray:
    r"""Buyer's optimal split of a budget X (J classes) over n task cells (Lemma 1).

    :math:`x_{ij}=X_j\,w_i^{1/(1-\sigma)}/\int w^{1/(1-\sigma)}` (per task, so
    that :math:`\frac1n\sum_i x_{ij}=X_j`).  Returns shape (n, J).
    """
    w = np.asarray(w, float)
    a = w ** (1 / (1 - sigma))
    return np.outer(a / a.mean(), np.asarray(X, float))


def lemma1_value(tech: cf.Technology, w, X, Z) -> float:
    r"""Value of budgets (X, Z) to profile w: :math:`\theta(w)\Psi(X)\Phi(Z)`."""
    return float(aggregate_type(w, tech.sigma) * cf.psi(tech, X) * cf.phi(tech, Z))


# ------------------------------------------------------- Proposition 1
def efficient(tech: cf.Technology, theta):
    """First-best Q, inputs and surplus per type (Proposition 1)."""
    theta = np.asarray(theta, float)
    Q = cf.first_best_quality(tech, theta)
    X, Z = cf.inputs(tech, Q)
    return {"Q": Q, "X": X, "Z": Z, "surplus": theta * Q - cf.cost(tech, Q)}


# ------------------------------------------- Proposition 2, discrete types
def discrete_virtual_values(theta, mass) -> np.ndarray:
    r""":math:`\varphi_k=\theta_k-(\theta_{k+1}-\theta_k)(1-P_k)/p_k`, :math:`\varphi_N=\theta_N`."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    P = np.cumsum(mass)
    phi = theta.copy()
    phi[:-1] = theta[:-1] - (theta[1:] - theta[:-1]) * (1 - P[:-1]) / mass[:-1]
    return phi


def iron(values, weights) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators.

    Returns the ironed values and the pools ``(first, last)`` of length > 1.
    For a separable convex program max Σ p_k(φ_k Q_k − C(Q_k)) with Q
    non-decreasing, Q_k = C'^{-1}(ironed φ_k) is the exact optimum.
    """
    v = list(np.asarray(values, float))
    w = list(np.asarray(weights, float))
    blocks = []  # [mean, weight, first, last]
    for i, (vi, wi) in enumerate(zip(v, w)):
        blocks.append([vi, wi, i, i])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            b2 = blocks.pop()
            b1 = blocks.pop()
            tw = b1[1] + b2[1]
            blocks.append([(b1[0] * b1[1] + b2[0] * b2[1]) / tw, tw, b1[2], b2[3]])
    out = np.empty(len(v))
    pools = []
    for mean, _, a, b in blocks:
        out[a : b + 1] = mean
        if b > a:
            pools.append((a, b))
    return out, pools


@dataclass
class Menu:
    """A menu of token budgets over discrete types (one row per type)."""

    theta: np.ndarray
    mass: np.ndarray
    Q: np.ndarray
    X: np.ndarray  # (N, J)
    Z: np.ndarray  # (N, K)
    t: np.ndarray
    virtual: np.ndarray  # ironed virtual value used (φ̄)
    pools: list

    @property
    def utility(self) -> np.ndarray:
        return self.theta * self.Q - self.t

    def profit(self, tech) -> float:
        return float(np.sum(self.mass * (self.t - cf.cost(tech, self.Q))))

    def consumer_surplus(self) -> float:
        return float(np.sum(self.mass * self.utility))


def transfers_from_quality(theta, Q) -> np.ndarray:
    r"""Binding IR for type 1 and adjacent downward IC: :math:`t_1=\theta_1Q_1`,
    :math:`t_k=t_{k-1}+\theta_k(Q_k-Q_{k-1})`."""
    theta = np.asarray(theta, float)
    Q = np.asarray(Q, float)
    dQ = np.diff(Q, prepend=0.0)
    return np.cumsum(theta * dQ)


def discrete_menu(tech: cf.Technology, theta, mass) -> Menu:
    """Exact optimum of the discrete-type budget menu (Proposition 2, Mussa–Rosen)."""
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    phi = discrete_virtual_values(theta, mass)
    phibar, pools = iron(phi, mass)
    Q = cf.inverse_marginal_cost(tech, phibar)
    X, Z = cf.inputs(tech, Q)
    return Menu(theta, mass, Q, X, Z, transfers_from_quality(theta, Q), phibar, pools)


# ---------------------------------------- Proposition 2, continuous types
@dataclass
class ContinuousSolution:
    theta: np.ndarray  # fine grid on the support
    Q: np.ndarray
    t: np.ndarray
    U: np.ndarray
    h: np.ndarray  # virtual value
    h_ironed: np.ndarray
    pools: list  # (theta_from, theta_to) of ironed intervals

    def at(self, th, what: str = "Q"):
        return np.interp(th, self.theta, getattr(self, what))


def continuous_solution(tech: cf.Technology, dist, n: int = CONTINUOUS_GRID) -> ContinuousSolution:
    r"""Continuous Mussa–Rosen: :math:`C'(Q(\theta))=\bar h(\theta)` (ironed h),
    Q = 0 where h ≤ 0; :math:`t(\theta)=\theta Q(\theta)-\int_{\theta_{min}}^\theta Q`.

    Ironing (Myerson): h is replaced by the derivative of the convex hull of
    :math:`H(u)=\int_0^u h(F^{-1}(v))dv`, computed as the isotonic regression of
    h on an equal-probability grid (equal weights).
    """
    u = (np.arange(n) + 0.5) / n
    th = dist.ppf(u)
    h = dist.virtual_value(th)
    hbar, pools_idx = iron(h, np.ones(n))
    Q = cf.inverse_marginal_cost(tech, hbar)
    lo, hi = dist.support
    # extend to the support ends for integration
    th_full = np.concatenate([[lo], th, [hi]])
    Q_full = np.concatenate([[Q[0]], Q, [Q[-1]]])
    h_full = np.concatenate([[h[0]], h, [h[-1]]])
    hb_full = np.concatenate([[hbar[0]], hbar, [hbar[-1]]])
    intQ = np.concatenate([[0.0], np.cumsum(0.5 * (Q_full[1:] + Q_full[:-1]) * np.diff(th_full))])
    U = intQ
    t = th_full * Q_full - U
    pools = [(float(th[a]), float(th[b])) for a, b in pools_idx if th[b] - th[a] > 1e-6 * (hi - lo)]
    return ContinuousSolution(th_full, Q_full, t, U, h_full, hb_full, pools)


def continuous_welfare(tech: cf.Technology, dist, sol: ContinuousSolution | None = None) -> dict:
    """Expected profit, consumer surplus and first-best surplus (continuous types)."""
    sol = sol or continuous_solution(tech, dist)
    n = len(sol.theta) - 2
    th = sol.theta[1:-1]  # equal-probability points: expectation = mean
    Q, t, U = sol.Q[1:-1], sol.t[1:-1], sol.U[1:-1]
    qfb = cf.first_best_quality(tech, th)
    return {
        "profit": float(np.mean(t - cf.cost(tech, Q))),
        "consumer_surplus": float(np.mean(U)),
        "first_best_surplus": float(np.mean(th * qfb - cf.cost(tech, qfb))),
        "grid": n,
    }


# ------------------------------------------------------------- tariffs
def cost_based_tariff(tech: cf.Technology, menu: Menu) -> dict:
    """Committed spend: pay T_k for a dollar budget B_k = C(Q_k) spent at marginal cost."""
    B = cf.cost(tech, menu.Q)
    return {"budget": B, "price": menu.t, "fee": menu.t - B}


def two_part_tariff(tech: cf.Technology, menu: Menu) -> dict:
    r"""Menu of two-part tariffs (derived): plan k charges a fixed fee
    :math:`F_k=t_k-p_kC(Q_k)` and every token class at :math:`p_k=\theta_k/\bar\varphi_k`
    times marginal cost (discrete analogue of θ/h(θ)).  Valid iff p is
    non-increasing over the served plans (concave T(B)).  Unserved types get
    no plan (NaN)."""
    # served: Q above 1e-9 of the largest (an NLP leaves ~1e-14 on excluded
    # types; the first served type of a fine grid has Q ~1e-6 of the largest)
    served = (menu.Q > 1e-9 * menu.Q.max()) & (menu.virtual > 0)
    p = np.full_like(menu.theta, np.nan)
    p[served] = menu.theta[served] / menu.virtual[served]
    F = np.where(served, menu.t - p * cf.cost(tech, menu.Q), np.nan)
    ps = p[served]
    valid = bool(np.all(np.diff(ps) <= 1e-12 * np.abs(ps[:-1]))) if ps.size > 1 else True
    return {"multiplier": p, "fee": F, "valid": valid, "served": served}


# Above this many (buyer, plan) pairs the two-part best response switches
# from the dense matrix to the monotone divide-and-conquer below (a 10^5-type
# menu would need a 37 GiB matrix).
DENSE_PAIRS_MAX = 4_000_000


def best_response_two_part(tech: cf.Technology, theta_buyer, multiplier, fee, method: str = "auto"):
    """Each buyer θ chooses a plan (or nothing) and its spend: returns (plan index
    or -1, utility, quality bought).  Inner choice: C'(Q) = θ/p, so plan l is
    worth V_l(θ) = θQ_l(θ) − p_l C(Q_l(θ)) − F_l.

    ``method``: "dense" evaluates every (buyer, plan) pair; "monotone" uses
    single crossing -- dV_l/dθ = Q*(θ/p_l) is larger for a smaller p_l, so
    V_l − V_m is monotone in θ and the largest maximiser is non-decreasing
    in θ over plans sorted by decreasing p -- to find every buyer's plan by
    divide and conquer in O((N + L) log N) evaluations, exactly (the same
    argmax as the dense scan, up to ties).  "auto": dense up to
    DENSE_PAIRS_MAX pairs.  tests/test_budgets.py compares the two."""
    theta_buyer = np.atleast_1d(np.asarray(theta_buyer, float))
    if not np.all(np.isfinite(theta_buyer)):
        raise ValueError("buyer types must be finite")
    ok = np.isfinite(multiplier) & np.isfinite(fee)  # a plan needs both
    idx = np.where(ok)[0]
    if method == "auto":
        method = "dense" if len(theta_buyer) * len(idx) <= DENSE_PAIRS_MAX else "monotone"
    n = len(theta_buyer)
    if len(idx) == 0:
        return np.full(n, -1), np.zeros(n), np.zeros(n)
    if method == "dense":
        p = multiplier[idx][None, :]
        F = fee[idx][None, :]
        th = theta_buyer[:, None]
        Q = cf.inverse_marginal_cost(tech, th / p)
        U = th * Q - p * cf.cost(tech, Q) - F
        best = np.argmax(U, axis=1)
        Ub = U[np.arange(n), best]
        Qb = Q[np.arange(n), best]
        plan = idx[best]
    elif method == "monotone":
        plan, Ub, Qb = _two_part_monotone(tech, theta_buyer, multiplier[idx], fee[idx])
        plan = idx[plan]
    else:
        raise ValueError(f"method must be 'auto', 'dense' or 'monotone', got {method!r}")
    choice = np.where(Ub >= 0, plan, -1)
    return choice, np.maximum(Ub, 0.0), np.where(Ub >= 0, Qb, 0.0)


def _two_part_monotone(tech, theta, p, F):
    """Divide and conquer over buyers sorted by θ and plans sorted by
    decreasing p (see best_response_two_part); returns plan positions in the
    given arrays, utilities and qualities.  Vectorised by level: every
    segment's middle buyer scans its plan range [plo, phi] at once, so a level
    costs O(N_level + L) evaluations and there are ~log2(N) levels."""
    ob = np.argsort(theta, kind="stable")
    th = theta[ob]
    op = np.lexsort((F, -p))  # decreasing p; equal p: the cheaper fee first
    ps, Fs = p[op], F[op]
    n, L = len(th), len(ps)
    best = np.zeros(n, dtype=np.int64)
    Ubest = np.empty(n)
    Qbest = np.empty(n)
    lo, hi = np.array([0]), np.array([n - 1])
    plo, phi = np.array([0]), np.array([L - 1])
    while lo.size:
        mid = (lo + hi) // 2
        length = phi - plo + 1
        start = np.cumsum(length) - length
        total = int(length.sum())
        seg = np.repeat(np.arange(lo.size), length)
        plan = np.arange(total) - start[seg] + plo[seg]
        tb = th[mid[seg]]
        Q = cf.inverse_marginal_cost(tech, tb / ps[plan])
        U = tb * Q - ps[plan] * cf.cost(tech, Q) - Fs[plan]
        umax = np.maximum.reduceat(U, start)
        # the largest maximiser of each segment (the dense scan's tie rule aside)
        last = np.maximum.reduceat(np.where(U == umax[seg], np.arange(total), -1), start)
        j = plan[last]
        best[mid], Ubest[mid], Qbest[mid] = j, U[last], Q[last]
        left, right = lo <= mid - 1, mid + 1 <= hi
        lo, hi, plo, phi = (np.concatenate([lo[left], mid[right] + 1]), np.concatenate([mid[left] - 1, hi[right]]),
                            np.concatenate([plo[left], j[right]]), np.concatenate([j[left], phi[right]]))
    plan_out = np.empty(n, dtype=np.int64)
    U_out = np.empty(n)
    Q_out = np.empty(n)
    plan_out[ob], U_out[ob], Q_out[ob] = op[best], Ubest, Qbest
    return plan_out, U_out, Q_out


def max_affine(x, slopes, intercepts) -> tuple[np.ndarray, np.ndarray]:
    """max_l (slopes_l·x + intercepts_l) and its argmax for every x, exactly, in
    O((N + M) log M) via the upper envelope of the lines (convex-hull trick), so
    an all-pairs audit of 10^5 types needs no N×N matrix."""
    x = np.asarray(x, float)
    a = np.asarray(slopes, float)
    b = np.asarray(intercepts, float)
    order = np.lexsort((b, a))  # by slope, then intercept
    hull: list[int] = []

    def bad(l1, l2, l3):  # l2 never strictly on top between l1 and l3
        return (b[l3] - b[l1]) * (a[l2] - a[l1]) >= (b[l2] - b[l1]) * (a[l3] - a[l1])

    for l in order:
        if hull and a[hull[-1]] == a[l]:
            hull.pop()  # same slope: keep the larger intercept (sorted last)
        while len(hull) >= 2 and bad(hull[-2], hull[-1], l):
            hull.pop()
        hull.append(l)
    H = np.array(hull)
    # breakpoints between consecutive hull lines
    xs = (b[H[:-1]] - b[H[1:]]) / (a[H[1:]] - a[H[:-1]])
    pos = np.searchsorted(xs, x, side="right")
    arg = H[pos]
    val = a[arg] * x + b[arg]
    # exact re-evaluation against the neighbours guards against round-off at breakpoints
    for d in (-1, 1):
        nb = H[np.clip(pos + d, 0, len(H) - 1)]
        v2 = a[nb] * x + b[nb]
        better = v2 > val
        val = np.where(better, v2, val)
        arg = np.where(better, nb, arg)
    return val, arg


def menu_choice(theta_buyer, Q, t):
    """Each buyer θ picks the best item (θQ_l − t_l) or the outside option (-1)."""
    th = np.atleast_1d(np.asarray(theta_buyer, float))
    val, arg = max_affine(th, Q, -np.asarray(t, float))
    return np.where(val >= 0, arg, -1), np.maximum(val, 0.0)


def ic_audit(theta, Q, t) -> dict:
    """Worst IC and IR violation of a menu over all pairs of types (numpy, independent
    of the NLP): ic = max_{k,l} (θ_k Q_l − t_l) − (θ_k Q_k − t_k), ir = max_k −U_k."""
    theta = np.asarray(theta, float)
    Q = np.asarray(Q, float)
    t = np.asarray(t, float)
    own = theta * Q - t
    best, _ = max_affine(theta, Q, -t)
    return {"ic": float(max(np.max(best - own), 0.0)), "ir": float(max(0.0, -own.min()))}
