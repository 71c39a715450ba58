r"""Token budgets: Lemma 1, Proposition 1, Proposition 2 and tariffs (docs/model.md §2.2–2.5).

No Pyomo here.  Discrete types are arrays ``theta`` (ascending) and ``mass``
(summing to 1); continuous types are a ``TypeDistribution``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.closed_form import cost as cf

# Continuous solution: ironing on this many quantile points, Q(θ) tabulated
# on those plus n/2 equally spaced points and the kinks (continuous_solution).
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
    # 1 − P_k as the sum of the masses above k (summed from the top): 1 − cumsum
    # cancels for the top types of a Beta tail (1 − P_k ~ 1e-13 kept ~3 digits:
    # Q off by 1e-5 at N = 1000, found by the NLP polish, bench/low_mass.py)
    above = np.cumsum(mass[::-1])[::-1][1:]
    phi = theta.copy()
    phi[:-1] = theta[:-1] - (theta[1:] - theta[:-1]) * above / mass[:-1]
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
    note: str = ""  # how a numeric menu was obtained (e.g. the polish step)

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
    """Continuous Mussa–Rosen solution tabulated on ``theta``: a grid that
    starts at the bottom of the support and ends at its top and contains every
    kink (breakpoints of a piecewise density, pool ends, the exclusion
    threshold, the baseline form's switch point), so ``at`` interpolates
    between exact values and never extrapolates.  ``mass`` holds the
    probability of each grid interval (F differences) for expectations."""

    theta: np.ndarray  # evaluation grid on [low, high]
    Q: np.ndarray
    t: np.ndarray
    U: np.ndarray
    h: np.ndarray  # virtual value
    h_ironed: np.ndarray
    pools: list  # (theta_from, theta_to) of ironed intervals
    mass: np.ndarray | None = None  # F(θ_{i+1}) − F(θ_i), len(theta) − 1
    tech: object = None  # the technology: Q, U, t between grid points through h̄ (see at)

    def at(self, th, what: str = "Q"):
        """Q, U, t (or any tabulated field) at ``th``.  With ``tech`` set, Q, U and t between grid points follow
        the shape the ironed virtual value gives them -- h̄ is smooth where Q is not: h̄ interpolated linearly in
        the cell, S_Q = C'⁻¹(h̄), S_U = ∫_{θ_i}^θ C'⁻¹(h̄) (exact for linear h̄, _cell_integral), S_t = θS_Q − S_U
        -- scaled to the tabulated end values: F(θ) = F_i + (F_{i+1} − F_i)·(S(θ) − S(θ_i))/(S(θ_{i+1}) −
        S(θ_i)), so the table stays what is evaluated (a perturbed table is seen) and the nodes are exact.
        Linear interpolation of Q itself is off by O(Δ^e) in the first cells above an interior exclusion, where
        Q ~ (θ − θ*)^e (budgets18, uniform: e = 0.25, Δ = 5e-6: 2.7e-2 of max Q; e = 0.82: 5.6e-6); through h̄
        the error is that of h̄'s linear interpolation, O(Δ²|h̄''|) relative to h̄ -- 0 where h̄ is linear
        (uniform types) -- i.e. O(Δ^(1+e)) of max Q in the first cells above θ* (continuous_solution)."""
        if self.tech is None or what not in ("Q", "U", "t"):
            return np.interp(th, self.theta, getattr(self, what))
        x = np.clip(np.asarray(th, float), self.theta[0], self.theta[-1])
        i = np.clip(np.searchsorted(self.theta, x, side="right") - 1, 0, len(self.theta) - 2)
        a, b = self.theta[i], self.theta[i + 1]
        ha, hb = self.h_ironed[i], self.h_ironed[i + 1]
        w = np.where(b > a, (x - a) / np.where(b > a, b - a, 1.0), 0.0)
        ok = np.isfinite(ha) & np.isfinite(hb)
        h0, h1 = np.where(ok, ha, 0.0), np.where(ok, hb, 0.0)
        hx = h0 + w * (h1 - h0)
        qa, qb, qx = (cf.inverse_marginal_cost(self.tech, v) for v in (h0, h1, hx))
        if what == "Q":
            s_x, s_b = qx - qa, qb - qa
        else:
            u_x, u_b = _cell_integral(self.tech, x - a, h0, hx, qa, qx), _cell_integral(self.tech, b - a, h0, h1, qa, qb)
            s_x, s_b = (u_x, u_b) if what == "U" else (x * qx - a * qa - u_x, b * qb - a * qa - u_b)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(ok & (s_b != 0), np.clip(s_x / np.where(s_b != 0, s_b, 1.0), 0.0, 1.0), w)
        F = getattr(self, what)
        return F[i] + (F[i + 1] - F[i]) * r


def _conjugate(tech: cf.Technology, v) -> np.ndarray:
    """C*(v) = max_Q vQ − C(Q) = v·C'⁻¹(v) − C(C'⁻¹(v)): an antiderivative of C'⁻¹ (dC*/dv = C'⁻¹(v))."""
    v = np.asarray(v, float)
    q = cf.inverse_marginal_cost(tech, v)
    vs = np.where(q > 0, v, 0.0)  # h̄ = −∞ (f(low) = 0) buys nothing: no −∞·0
    return np.where(q > 0, vs * q - cf.cost(tech, q), 0.0)


# A cell's h̄ change below this fraction of |h̄| leaves the difference quotient of C* to round-off
# (relative error ~1e-16·|h̄|/|Δh̄| <= 1e-10); there Q is constant to O(Δh̄) and the trapezoid is exact to O(Δh̄²).
CONJUGATE_MIN_DH = 1e-6


def _cell_integral(tech: cf.Technology, d, ha, hb, qa, qb) -> np.ndarray:
    """∫ C'⁻¹(h̄) over a cell of width d on which h̄ runs linearly from ha to hb (Q from qa to qb):
    d·(C*(hb) − C*(ha))/(hb − ha) -- exact for linear h̄ whatever C, so also across Q ~ (θ − θ*)^e above an
    exclusion, where the trapezoid rule is off by O(d^(1+e)) per cell and, summed, by O(Δ^(1+e)) in U and t
    everywhere above θ* (budgets18: e = 0.25, Δ = 5e-6: 2.3e-7 of max U).  The trapezoid rule where h̄ is
    (nearly) constant (CONJUGATE_MIN_DH) or not finite."""
    d, ha, hb = np.asarray(d, float), np.asarray(ha, float), np.asarray(hb, float)
    trap = 0.5 * (np.asarray(qa, float) + np.asarray(qb, float)) * d
    dh = hb - ha
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        use = (np.isfinite(ha) & np.isfinite(hb) & (np.abs(dh) > CONJUGATE_MIN_DH * np.maximum(np.abs(ha), np.abs(hb))))
        exact = d * (_conjugate(tech, np.where(use, hb, 0.0)) - _conjugate(tech, np.where(use, ha, 0.0))) \
            / np.where(use, dh, 1.0)
    return np.where(use, exact, trap)


def virtual_value_closed(dist, th) -> np.ndarray:
    """h(θ) including the ends of the support, by its limits where f vanishes
    or blows up: at the top (1 − F)/f → 0 (F = 1, f finite, or f → 0 with
    1 − F = o(f)·... for a Beta: (high − θ)/q), so h(high) = high; at the
    bottom h → −∞ where f(low) = 0 and h(low) = low − 1/f(low) otherwise."""
    th = np.asarray(th, float)
    lo, hi = dist.support
    with np.errstate(divide="ignore", invalid="ignore"):
        h = dist.virtual_value(th)
        f_lo = dist.pdf(np.array([lo]))[0] if dist.kind != "discrete" else np.nan
    h = np.where(th >= hi, hi, h)
    if np.isfinite(f_lo):
        h = np.where(th <= lo, lo - 1.0 / f_lo if f_lo > 0 else -np.inf, h)
    else:  # density infinite at the bottom: (1 − F)/f → 0
        h = np.where(th <= lo, lo, h)
    return h


def _root(fun, a, b, it=200):
    """Bisection for a sign change of fun on [a, b] (fun(a) < 0 <= fun(b))."""
    for _ in range(it):
        m = 0.5 * (a + b)
        if m <= a or m >= b:
            break
        if fun(m) < 0:
            a = m
        else:
            b = m
    return b


def _refine_pool(dist, th_u, a, b, v0, n):
    """Exact pool of the ironed h: level v and ends θ_a < θ_b with h = v at an
    interior end and ∫_{θ_a}^{θ_b} (h − v) dF = 0.  The isotonic regression on
    n quantile points places the ends within one quantile step, which moves
    Q by O(1/n) next to them (measured 3.8e-5 of max Q at n = 20,001); solved
    here by bisection on v (the integral falls with v), the ends by bisection
    on h − v.  Falls back to the grid pool if a bracket fails."""
    lo, hi = dist.support

    def ends(v):
        def end(i, at_edge):
            if at_edge is not None:
                return at_edge
            f = lambda x: float(virtual_value_closed(dist, np.array([x]))[0]) - v  # noqa: E731
            k = 3
            while k < 1000:  # widen the window until it brackets the up-crossing
                x0, x1 = th_u[max(i - k, 0)], th_u[min(i + k, len(th_u) - 1)]
                if f(x0) < 0 <= f(x1):
                    return _root(f, x0, x1)
                k *= 2
            raise ValueError
        left = end(a, lo if a == 0 else None)
        right = end(b, hi if b == len(th_u) - 1 else None)
        return left, right

    def G(v):
        x0, x1 = ends(v)
        u0, u1 = float(dist.cdf(np.array([x0]))[0]), float(dist.cdf(np.array([x1]))[0])
        # Gauss-Legendre in u on each stretch between density breakpoints (h
        # jumps there; one rule across a jump would be O(1) per unit step)
        cuts = [u0] + ([float(c) for c in dist.cdf(np.asarray(dist.breakpoints[1:-1])) if u0 < c < u1]
                       if dist.kind == "piecewise" else []) + [u1]
        xg, wg = np.polynomial.legendre.leggauss(64)
        total = 0.0
        for c0, c1 in zip(cuts[:-1], cuts[1:]):
            for s0, s1 in zip(np.linspace(c0, c1, 33)[:-1], np.linspace(c0, c1, 33)[1:]):
                uu = 0.5 * (s0 + s1) + 0.5 * (s1 - s0) * xg
                total += 0.5 * (s1 - s0) * float(np.sum(wg * (virtual_value_closed(dist, dist.ppf(uu)) - v)))
        return total

    try:
        dv = 10.0 / n * max(abs(th_u[a]), abs(th_u[b]), 1e-12)  # >> the O(1/n) error of v0
        va, vb = v0 - dv, v0 + dv
        if not (G(va) > 0 > G(vb)):
            raise ValueError
        for _ in range(60):
            vm = 0.5 * (va + vb)
            if G(vm) > 0:
                va = vm
            else:
                vb = vm
        v = 0.5 * (va + vb)
        x0, x1 = ends(v)
        return float(x0), float(x1), float(v)
    except ValueError:
        return float(th_u[a]), float(th_u[b]), v0


def continuous_solution(tech: cf.Technology, dist, n: int = CONTINUOUS_GRID) -> ContinuousSolution:
    r"""Continuous Mussa–Rosen: :math:`C'(Q(\theta))=\bar h(\theta)` (ironed h),
    Q = 0 where h̄ ≤ 0; :math:`t(\theta)=\theta Q(\theta)-\int_{\theta_{min}}^\theta Q`.

    Ironing (Myerson): h is replaced by the derivative of the convex hull of
    :math:`H(u)=\int_0^u h(F^{-1}(v))dv`, computed as the isotonic regression of
    h on ``n`` equal-probability points; that fixes the pools (their ends to
    within one quantile step) and their levels.  Outside pools h̄ = h is then
    evaluated exactly on a grid that reaches both ends of the support -- the
    top type has no distortion, h(high) = high, even where the density
    vanishes (Beta q > 1) -- and includes every kink.  The grid is the union
    of n/2 equally spaced points, the equal-probability points and the kinks;
    U = ∫Q cell by cell, exact for h̄ linear in the cell (_cell_integral: the
    trapezoid rule was off by O(Δ^(1+e)) above an interior exclusion, 2.3e-7 of
    max U at e = 0.25), expectations with the exact interval masses; between
    grid points ``at`` follows h̄ (its docstring).  Error (budgets18, measured
    against a 10x finer solution and, for uniform types, the exact solution;
    tests/test_budgets.py): Q, t and U at n = 200,001 to ≤ 1e-8 of their max on
    smooth stretches (uniform: round-off, 1e-15, since h̄ is linear); in the
    first cells above an interior exclusion θ*, where Q ~ (θ − θ*)^e, the
    error of h̄'s interpolation gives O(Δ^(1+e)·|h̄''|) of max Q: Beta(2, 3),
    ρ = 1, e = 0.11 / 0.25 / 0.82: 3.6e-8 / 1.1e-8 / 3e-11 (it was O(Δ^e):
    2.7e-2 and 5.6e-6 for uniform types at e = 0.25 and 0.82).  A pool end is
    placed to one quantile step (1/n), which moves Q by O(1/n²) there because
    h̄ is continuous at the end of an interior pool.
    """
    u = (np.arange(n) + 0.5) / n
    th_u = dist.ppf(u)
    h_u = virtual_value_closed(dist, th_u)
    hbar_u, pools_idx = iron(h_u, np.ones(n))
    lo, hi = dist.support
    pools = [_refine_pool(dist, th_u, a, b, float(hbar_u[a]), n) for a, b in pools_idx]

    def hbar(th):
        th = np.asarray(th, float)
        out = virtual_value_closed(dist, th)
        for a, b, v in pools:
            out = np.where((th >= a) & (th <= b), v, out)
        return out

    kinks = [lo, hi] + [x for a, b, _ in pools for x in (a, b)]
    if dist.kind == "piecewise":  # density jumps: both sides of each breakpoint
        for x in dist.breakpoints[1:-1]:
            kinks += [np.nextafter(x, -np.inf), x, np.nextafter(x, np.inf)]
    grid = np.unique(np.clip(np.concatenate([np.linspace(lo, hi, max(n // 2, 3)), th_u, kinks]), lo, hi))
    # exclusion threshold (h̄ = 0) and the baseline switch (h̄ = h̄_Q̄, C' kinks) as grid points
    levels = [0.0] + ([cf.baseline_constants(tech)["hbar"]] if tech.has_baseline else [])
    hb = hbar(grid)
    extra = []
    for lev in levels:
        cross = np.flatnonzero((hb[:-1] < lev) & (hb[1:] >= lev))
        for i in cross:
            extra.append(_root(lambda x: float(hbar(np.array([x]))[0]) - lev, grid[i], grid[i + 1]))
    if extra:
        grid = np.unique(np.concatenate([grid, extra]))
        hb = hbar(grid)
    h = virtual_value_closed(dist, grid)
    Q = cf.inverse_marginal_cost(tech, hb)
    U = np.concatenate([[0.0], np.cumsum(_cell_integral(tech, np.diff(grid), hb[:-1], hb[1:], Q[:-1], Q[1:]))])
    t = grid * Q - U
    mass = np.diff(dist.cdf(grid))
    pools_out = [(a, b) for a, b, _ in pools if b - a > 1e-6 * (hi - lo)]
    return ContinuousSolution(grid, Q, t, U, h, hb, pools_out, mass, tech)


def continuous_welfare(tech: cf.Technology, dist, sol: ContinuousSolution | None = None) -> dict:
    """Expected profit, consumer surplus and first-best surplus (continuous types):
    E[g] = Σ_i ½(g_i + g_{i+1})(F(θ_{i+1}) − F(θ_i)) on the solution's grid
    (exact interval masses: no density is evaluated, so a density that
    vanishes or blows up at an end costs nothing; error O(Δ²) per interval).
    The profit is the expected virtual surplus E[h̄Q − C(Q)] = E[C*(h̄)]
    (Myerson: equal to E[t − C(Q)] with U(low) = 0; ∫(h − h̄)Q dF = 0 on each
    pool), whose integrand vanishes like (θ − θ*)^(1+e) at an interior
    exclusion; E[t − C(Q)] vanishes like (θ − θ*)^e, and its trapezoid sum was
    off by O(Δ^(1+e)) -- hidden before budgets18 only by the same error in the
    trapezoid U (uniform [0, 1], ρ = 1, e = 0.11: 1.3e-6 once U was exact; now
    1.4e-11 for profit and CS against an independent quadrature)."""
    sol = sol or continuous_solution(tech, dist)
    th = sol.theta
    w = sol.mass if sol.mass is not None else np.diff(dist.cdf(th))

    def E(g):
        return float(np.sum(0.5 * (g[1:] + g[:-1]) * w))

    qfb = cf.first_best_quality(tech, th)
    return {
        "profit": E(_conjugate(tech, sol.h_ironed)),
        "consumer_surplus": E(sol.U),
        "first_best_surplus": E(th * qfb - cf.cost(tech, qfb)),
        "grid": len(th),
    }


# ------------------------------------------------------------- tariffs
# Which types get a plan in a price sheet -- one rule for every menu (NLP or
# closed form), decided from the menu's own quality:
# * Q_k > SERVED_Q_RTOL · max Q.  An NLP leaves Q ~ 1e-14 .. 5e-9 of max Q on
#   excluded types (interior-point noise; measured up to 5e-9 where the
#   virtual value is ~0 on a grid point), the checked accuracy of Q is 1e-6 of
#   max Q: 1e-7 sits 20x above the noise and 10x below the bar.  A type below
#   it is worth θQ ≤ 1e-7 of the top type's value either way.
# * C'(Q_k) > SERVED_PHI_RTOL · max θ.  The marginal cost of the quality sold
#   is the (ironed) virtual value; where it is round-off of 0 (h = 0 on a grid
#   point: 1e-14) the plan's multiplier θ/C'(Q) would be ~1e13 -- noise, not
#   a price.  1e-9 of max θ is 1e4 x above double round-off of θ-differences,
#   and caps every multiplier at 1e9 · θ_k/max θ.
SERVED_Q_RTOL = 1e-7
SERVED_PHI_RTOL = 1e-9


def served(tech: cf.Technology, theta, Q, virtual=None, exact: bool = False) -> np.ndarray:
    """Types that get a plan in a price sheet (see SERVED_Q_RTOL / SERVED_PHI_RTOL).

    With the closed form's ironed virtual values (``virtual``, finite) or for an exact menu (``exact``) the
    decision is φ̄_k > SERVED_PHI_RTOL·max θ (and Q_k > 0) alone: the Q cut is for an NLP's interior-point noise
    on excluded types, and on a correct menu it dropped served types whose Q is small only because θ spans
    decades -- stranger15's CRM file: 97.5 % of buyers at θ = 0.5 with φ = 0.462 and Q = 6.3e-9 of max Q
    (Q ∝ φ³), so the K = N price sheet had 4 plans and 0.17 % less profit than the full menu."""
    theta = np.asarray(theta, float)
    Q = np.asarray(Q, float)
    cut = SERVED_PHI_RTOL * float(np.max(np.abs(theta)))
    with np.errstate(invalid="ignore"):
        mc = cf.marginal_cost(tech, Q) > cut
        if virtual is not None and np.all(np.isfinite(np.asarray(virtual, float))):
            return (Q > 0) & (np.asarray(virtual, float) > cut) & mc
        if exact:
            return (Q > 0) & mc
        qmax = max(float(np.max(Q)), 1e-300)
        return (Q > SERVED_Q_RTOL * qmax) & mc


def inverse_cost(tech: cf.Technology, B) -> np.ndarray:
    """Quality a dollar budget B buys at marginal cost: C^{-1}(B) (0 for B <= 0)."""
    B = np.maximum(np.asarray(B, float), 0.0)
    if tech.K == 0:
        return (B / cf.p_X(tech)) ** tech.sigma
    if tech.has_baseline:
        k = cf.baseline_constants(tech)
        s, g, e, b = tech.sigma, tech.gamma, tech.eta, tech.baseline
        low = (B / (k["kappa"] * b ** (-g / s))) ** s
        high = ((B + tech.cost_hat[0] * b) / k["c0"]) ** e
        return np.where(B <= cf.cost(tech, k["Qbar"]), low, high)
    return (B / cf.cost_coefficient(tech)) ** tech.eta


def cost_based_tariff(tech: cf.Technology, menu: Menu) -> dict:
    """Committed spend: pay T_k for a dollar budget B_k = C(Q_k) spent at marginal cost."""
    B = cf.cost(tech, menu.Q)
    return {"budget": B, "price": menu.t, "fee": menu.t - B}


def two_part_tariff(tech: cf.Technology, menu: Menu) -> dict:
    r"""Menu of two-part tariffs (derived): plan k charges a fixed fee
    :math:`F_k=t_k-p_kC(Q_k)` and every token class at :math:`p_k` times
    marginal cost, with :math:`p_k=\theta_k/C'(Q_k)`, the multiplier at which
    type k buys exactly Q_k (C'(Q) = θ/p) and so gets exactly its menu
    utility.  For the exact menu C'(Q_k) = φ̄_k, so p_k = θ_k/φ̄_k (discrete
    analogue of θ/h(θ)); for an NLP's menu it is that menu's own plan, never
    one built from a quality it does not sell.  Valid iff p is non-increasing
    over the served plans (concave T(B)) -- judged on θ/φ̄ when the menu
    carries its virtual values (an NLP's C'(Q) of a nearly excluded type is
    noisy).  Types that are not ``served`` get no plan (NaN)."""
    theta = np.asarray(menu.theta, float)
    sv = served(tech, theta, menu.Q, getattr(menu, "virtual", None))
    p = np.full_like(theta, np.nan)
    p[sv] = theta[sv] / cf.marginal_cost(tech, menu.Q[sv])
    F = np.where(sv, menu.t - p * cf.cost(tech, menu.Q), np.nan)
    virt = np.asarray(menu.virtual, float)
    pv = theta[sv] / virt[sv] if np.all(np.isfinite(virt[sv])) and np.all(virt[sv] > 0) else p[sv]
    valid = bool(np.all(np.diff(pv) <= 1e-12 * np.abs(pv[:-1]))) if pv.size > 1 else True
    return {"multiplier": p, "fee": F, "valid": valid, "served": sv}


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
