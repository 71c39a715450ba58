r"""Menus of token distributions: full contracting (docs/model.md §2.6).  No Pyomo here.

An *item* fixes tokens task by task: per-cell tokens ``x[i, j]`` (n cells of
weight 1/n, J token classes), fine-tuning ``z[k]`` shared by all tasks, and a
transfer t.  A *type* is a weight profile ``w`` (length n) with a mass.
Type m's value of item l (no reallocation across tasks):

.. math:: V_{ml}=\Phi(z_l)\,\frac1n\sum_i w^m_i\,\Psi(x_{l,i}).

Everything here takes items in that form, so any menu (a closed form, an NLP
solution, a brute-force optimum) can be evaluated and audited the same way.

Contents

* Lemma 1 pieces on the discrete cell measure: :func:`theta_of`,
  :func:`token_shares`, :func:`lemma1_split`, item values and costs,
  :func:`audit_menu`.
* Two types (docs/model.md §2.6(a), **derived**): :func:`two_type_distribution_menu`
  (the spec's formula, its assumptions checked), :func:`two_type_distribution_menu_general`
  (all KKT regimes of the convex two-type program), :func:`two_type_budget_menu`.
* Discrete Mussa–Rosen over θ with ironing, for any set of profiles:
  :func:`budget_menu` (docs/model.md §2.4 applied to multi-dimensional types).
* Value-scale family (docs/model.md §2.6(b), **derived**): discrete
  :func:`value_scale_distribution_menu` / :func:`value_scale_budget_menu`,
  continuous :func:`value_scale_quality`, :func:`value_scale_rent`,
  :func:`value_scale_transfer`, :func:`value_scale_profits`.
* Proposition 3 (docs/model.md §2.5): :func:`assumption1_types`,
  :func:`assumption1_budget_menu`, :func:`distribution_menu_from_budget`.
* Per-type tables: :func:`per_task_tokens`, :func:`token_table`.

Discrete cell measure: ∫ f(i) di is ``(1/n) Σ_i f_i``.  With that measure every
identity of Lemma 1 holds exactly (not only as n → ∞).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, optimize

from models.closed_form import cost as cf

# Two θ values closer than this (relative) are one type of the budget menu:
# profiles built as w·s^(1−σ) from different (w, s) can coincide up to rounding.
THETA_MERGE_RTOL = 1e-12
# Slack allowed when checking the sign conditions (IR_H, IC_L, ...) that
# select a regime of the two-type program: float rounding of the sums,
# *relative* to the sum of the terms' magnitudes (:func:`_sign_sum`).  It was
# absolute (1e-12): with gains ~1e-14..1e-25 (costs of 30–50 $/unit, σ+γ near
# 1) every sum passed as "0" and the regime came out "full extraction", 6–12 %
# below the optimum (two_type_50_15, 50_37; the NLP found the better menu).
REGIME_TOL = 1e-12
# s must lie on the cell grid {1/n, ..., 1} up to this (see value_scale_profile).
GRID_TOL = 1e-9
# Relative accuracy requested from scipy.integrate.quad in the continuous
# value-scale integrals (the integrands are smooth apart from declared kinks).
QUAD_RTOL = 1e-10


def _breaks(dist, ends: bool = False) -> list[float]:
    """Points where the density of ``dist`` is not smooth: the interior
    breakpoints of a piecewise density (and its support ends with ``ends``)."""
    lo, hi = dist.support
    inner = [float(b) for b in (getattr(dist, "breakpoints", ()) or ())[1:-1]] if dist.kind == "piecewise" else []
    return ([float(lo)] + inner + [float(hi)]) if ends else inner


def _quad_pieces(fun, a: float, b: float, points=()) -> float:
    """∫_a^b fun by QUADPACK on each smooth piece between the declared kinks."""
    nodes = [a] + sorted(p for p in set(points) if a < p < b) + [b]
    return float(sum(integrate.quad(fun, u, v, epsrel=QUAD_RTOL, epsabs=0.0, limit=200)[0]
                     for u, v in zip(nodes[:-1], nodes[1:]) if v > u))


class AssumptionError(ValueError):
    """A derived closed form was asked for outside the region where it holds."""


# =============================================================== Lemma 1
def theta_of(w, sigma: float) -> np.ndarray:
    r"""Aggregate type on the discrete cell measure (docs/model.md §1).

    .. math:: \theta(w)=\Big(\frac1n\sum_{i=1}^n w_i^{1/(1-\sigma)}\Big)^{1-\sigma}

    Parameters
    ----------
    w : array (..., n)
        One profile or a stack of profiles (last axis = task cells);
        negative entries are not allowed.
    sigma : float
        Degree of homogeneity of Ψ.

    Returns
    -------
    ndarray (...)
    """
    w = np.asarray(w, float)
    if np.any(w < 0):
        raise ValueError("profiles must be non-negative (use np.maximum(v, 0) for virtual profiles)")
    return np.mean(w ** (1.0 / (1.0 - sigma)), axis=-1) ** (1.0 - sigma)


def token_shares(w, sigma: float) -> np.ndarray:
    r"""Normalised per-task token shares of Lemma 1.

    .. math:: m_i=\frac{w_i^{1/(1-\sigma)}}{\frac1n\sum_l w_l^{1/(1-\sigma)}},
       \qquad \frac1n\sum_i m_i=1 .

    A zero profile gets zero shares.  Shape as ``w``.
    """
    w = np.asarray(w, float)
    a = w ** (1.0 / (1.0 - sigma))
    norm = np.mean(a, axis=-1, keepdims=True)
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def lemma1_split(w, X, sigma: float) -> np.ndarray:
    r"""Buyer's optimal split of a token budget over task cells (Lemma 1, docs/model.md §2.2).

    .. math:: x_{ij}=X_j\,\frac{w_i^{1/(1-\sigma)}}{\frac1n\sum_l w_l^{1/(1-\sigma)}},

    normalised for the cell measure: :math:`\frac1n\sum_i x_{ij}=X_j`.  The
    value of the split is exactly :math:`\theta(w)\Psi(X)\Phi(Z)` on the
    discrete measure (Ψ homogeneous of degree σ: :math:`\Psi(x_i)=m_i^\sigma\Psi(X)`
    and :math:`\frac1n\sum_i w_i m_i^\sigma=\theta(w)`).

    Parameters
    ----------
    w : array (..., n)
    X : array (..., J)
        Budget per token class (broadcast against the leading axes of ``w``).

    Returns
    -------
    ndarray (..., n, J)
    """
    m = token_shares(w, sigma)
    X = np.asarray(X, float)
    return m[..., :, None] * X[..., None, :]


def gain_profile(x, z, tech: cf.Technology) -> np.ndarray:
    r"""Per-cell gain :math:`g_i=\Phi(z)\Psi(x_i)` of item(s) ``x`` (..., n, J), ``z`` (..., K)."""
    x = np.asarray(x, float)
    z = np.asarray(z, float)
    ph = cf.phi(tech, z) if tech.K > 0 else np.ones(z.shape[:-1])
    return np.asarray(ph)[..., None] * cf.psi(tech, x)


def aggregate_tokens(x) -> np.ndarray:
    r"""Token totals :math:`X_j=\frac1n\sum_i x_{ij}` of item(s) ``x`` (..., n, J)."""
    return np.mean(np.asarray(x, float), axis=-2)


def value_of_item(w, x, z, tech: cf.Technology) -> np.ndarray:
    r"""Value of an item to a type, no reallocation across tasks (docs/model.md §2.6).

    .. math:: V=\Phi(z)\,\frac1n\sum_i w_i\,\Psi(x_i)

    ``w`` (..., n), ``x`` (..., n, J), ``z`` (..., K); leading axes broadcast.
    """
    return np.mean(np.asarray(w, float) * gain_profile(x, z, tech), axis=-1)


def value_matrix(W, x, z, tech: cf.Technology) -> np.ndarray:
    r""":math:`V_{ml}` = value of item l to type m, for M profiles ``W`` (M, n) and
    L items ``x`` (L, n, J), ``z`` (L, K).  Returns (M, L)."""
    G = gain_profile(x, z, tech)  # (L, n)
    W = np.atleast_2d(np.asarray(W, float))
    return W @ G.T / W.shape[-1]


def item_cost(x, z, tech: cf.Technology) -> np.ndarray:
    r"""Seller's cost :math:`\frac1n\sum_i c\cdot x_i+\hat c\cdot z` of item(s)."""
    cost = aggregate_tokens(x) @ np.asarray(tech.cost, float)
    if tech.K > 0:
        cost = cost + np.asarray(z, float) @ np.asarray(tech.cost_hat, float)
    return cost


def efficient_item(v, tech: cf.Technology):
    r"""Item that maximises :math:`\Phi(z)\frac1n\sum_i v_i\Psi(x_i)-\text{cost}`.

    Cells with :math:`v_i\le0` get nothing; on the rest Lemma 1 applies to
    :math:`v^+`, so :math:`C'(Q)=\theta(v^+)`, :math:`(X,Z)` cost-minimising
    for Q, :math:`x_i=m_i(v^+)X`.  Used with the true profile (first best,
    Proposition 1) and with virtual profiles (screening).

    Returns
    -------
    dict with ``x`` (n, J), ``z`` (K,), ``Q``, ``theta`` (= θ(v⁺)), ``gain`` (n,).
    """
    vp = np.maximum(np.asarray(v, float), 0.0)
    th = float(theta_of(vp, tech.sigma))
    Q = float(cf.inverse_marginal_cost(tech, th))
    X, Z = cf.inputs(tech, Q)
    x = lemma1_split(vp, X, tech.sigma)
    return {"x": x, "z": np.asarray(Z, float), "Q": Q, "theta": th, "gain": gain_profile(x, Z, tech)}


def audit_menu(W, x, z, t, tech: cf.Technology, items_for=None) -> dict:
    r"""Independent IC/IR audit of a menu of token distributions.

    Type m's utility from item l is :math:`V_{ml}-t_l`; type m is assigned
    item ``items_for[m]`` (default: item m).  Reports the worst violations

    * IC: :math:`\max_{m,l}\,[(V_{ml}-t_l)-(V_{m,a(m)}-t_{a(m)})]^+`
    * IR: :math:`\max_m\,[t_{a(m)}-V_{m,a(m)}]^+`

    and where they occur.  Extra types (e.g. a finer grid) may be audited
    against the menu by passing more rows in ``W`` with ``items_for``.
    """
    V = value_matrix(W, x, z, tech)
    t = np.asarray(t, float)
    a = np.arange(V.shape[0]) if items_for is None else np.asarray(items_for)
    U = V - t[None, :]
    own = U[np.arange(V.shape[0]), a]
    regret = U - own[:, None]
    m, l = np.unravel_index(np.argmax(regret), regret.shape)
    return {
        "max_ic_violation": float(max(regret[m, l], 0.0)),
        "ic_worst_pair": (int(m), int(l)),
        "max_ir_violation": float(max(np.max(-own), 0.0)),
        "utility": own,
    }


# ========================================================== menu objects
@dataclass
class DistributionMenu:
    """A menu of token distributions, one item per type.

    ``W`` (M, n) type profiles, ``mass`` (M,), item of type m: ``x[m]`` (n, J),
    ``z[m]`` (K,), ``t[m]``; ``Q[m]`` = :math:`\\Psi(X_m)\\Phi(Z_m)` of the item's
    token totals (for a Lemma-1-shaped item the type's value is θ_eff·Q).
    """

    W: np.ndarray
    mass: np.ndarray
    x: np.ndarray
    z: np.ndarray
    t: np.ndarray
    Q: np.ndarray
    profit: float
    regime: str = ""
    info: dict = field(default_factory=dict)

    @property
    def X(self) -> np.ndarray:
        return aggregate_tokens(self.x)

    @property
    def n(self) -> int:
        return self.W.shape[1]

    def utility(self, tech: cf.Technology) -> np.ndarray:
        return value_of_item(self.W, self.x, self.z, tech) - self.t


@dataclass
class BudgetMenu:
    """A menu of token budgets (docs/model.md §2.4) for multi-dimensional types.

    Per type m: ``theta[m]`` = θ(w^m), virtual value ``phi[m]`` (ironed),
    budget quality ``Q[m]``, cost-minimising totals ``X[m]`` (J,), ``Z[m]``
    (K,), transfer ``t[m]``.  Each type spreads its budget by Lemma 1
    (:meth:`per_task_tokens`).
    """

    W: np.ndarray
    mass: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    Q: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    t: np.ndarray
    profit: float
    sigma: float
    info: dict = field(default_factory=dict)

    def per_task_tokens(self) -> np.ndarray:
        """Each type's own Lemma-1 split of its budget: (M, n, J)."""
        return lemma1_split(self.W, self.X, self.sigma)


def _menu_profit(mass, t, x, z, tech) -> float:
    return float(np.sum(np.asarray(mass) * (np.asarray(t) - item_cost(x, z, tech))))


def _optimal_transfers(V) -> np.ndarray:
    r"""Largest transfers implementing a fixed allocation (maximal IC/IR potentials).

    With :math:`V_{ml}` the value of item l to type m and type m taking
    item m, the constraints are :math:`t_m\le V_{mm}` (IR) and
    :math:`t_m\le t_l+V_{mm}-V_{ml}` (IC).  Their componentwise-largest
    solution is the shortest-path potential from an outside-option node
    (Bellman–Ford / Floyd–Warshall); it maximises any positive-weighted
    revenue.  Returns NaN everywhere if a negative cycle makes the allocation
    non-implementable.
    """
    V = np.asarray(V, float)
    M = V.shape[0]
    d = np.diag(V)[:, None] - V  # edge l -> m of length V_mm - V_ml
    t = np.diag(V).copy()
    for _ in range(M + 1):
        new = np.minimum(t, np.min(t[None, :] + d, axis=1))
        if np.allclose(new, t, rtol=0, atol=0):
            return t
        t = new
    return np.full(M, np.nan)


# ========================================== discrete Mussa–Rosen (private)
def _iron(phi, mass) -> np.ndarray:
    """Pool-adjacent-violators: mass-weighted averages of φ over pools so the
    result is non-decreasing (scipy.optimize.isotonic_regression, PAVA in C:
    the pure-Python loop took 1.5 s per call on the 10⁶ atoms of the
    continuum brackets, 12 s of a 76 s run)."""
    phi = np.asarray(phi, float)
    if phi.size < 2:
        return phi.copy()
    return np.asarray(optimize.isotonic_regression(phi, weights=np.asarray(mass, float), increasing=True).x)


def _mussa_rosen(theta, mass, tech: cf.Technology) -> dict:
    r"""Discrete Mussa–Rosen with ironing (docs/model.md §2.4, implemented here independently).

    ``theta`` strictly increasing, ``mass`` > 0.

    .. math:: \varphi_k=\theta_k-(\theta_{k+1}-\theta_k)\frac{1-P_k}{p_k},\quad
       \varphi_N=\theta_N,\quad C'(Q_k)=\bar\varphi_k^{+},

    :math:`\bar\varphi` the ironed φ (mass-weighted pool averages where φ
    decreases); :math:`t_1=\theta_1Q_1`, :math:`t_k=t_{k-1}+\theta_k(Q_k-Q_{k-1})`.
    """
    theta = np.asarray(theta, float)
    mass = np.asarray(mass, float)
    p = mass / mass.sum()
    # 1 − P_k as the mass above k summed from the top (suffix sums): 1 − cumsum(p) is pure
    # round-off (~1e-16) once the tail is below ~1e-13, which put φ (and Q) of light top types
    # off by up to 1.2e-2 (value_scale_50_14, masses down to 1e-22)
    above = np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)
    phi = theta.copy()
    phi[:-1] = theta[:-1] - (theta[1:] - theta[:-1]) * above[:-1] / p[:-1]
    phi_ironed = _iron(phi, p)
    Q = cf.inverse_marginal_cost(tech, phi_ironed)
    dQ = np.diff(np.concatenate([[0.0], Q]))
    t = np.cumsum(theta * dQ)
    return {"theta": theta, "mass": p, "phi_raw": phi, "phi": phi_ironed, "Q": Q, "t": t}


def _group_theta(theta, mass):
    """Distinct θ values (merged within THETA_MERGE_RTOL), aggregated masses, and each type's group."""
    theta = np.asarray(theta, float)
    order = np.argsort(theta, kind="stable")
    ths = theta[order]
    new = np.ones(len(ths), bool)
    new[1:] = np.diff(ths) > THETA_MERGE_RTOL * np.maximum(np.abs(ths[1:]), 1.0)
    gid_sorted = np.cumsum(new) - 1
    gid = np.empty_like(gid_sorted)
    gid[order] = gid_sorted
    G = gid_sorted[-1] + 1
    gmass = np.bincount(gid, weights=np.asarray(mass, float), minlength=G)
    gtheta = np.bincount(gid, weights=np.asarray(mass, float) * theta, minlength=G) / gmass
    return gtheta, gmass, gid


def budget_menu(W, mass, tech: cf.Technology) -> BudgetMenu:
    r"""Optimal menu of token budgets for profiles ``W`` (M, n) with masses (docs/model.md §2.4).

    By Lemma 1 a budget of quality Q is worth θ(w)Q to profile w, so the
    budget menu is the 1-D discrete Mussa–Rosen over the *distinct* θ values
    with aggregated masses (types with equal θ get the same budget), ironed.
    Profit :math:`\sum_m p_m(t_m-C(Q_m))`.
    """
    W = np.atleast_2d(np.asarray(W, float))
    mass = np.asarray(mass, float) / np.sum(mass)
    th = theta_of(W, tech.sigma)
    gth, gmass, gid = _group_theta(th, mass)
    mr = _mussa_rosen(gth, gmass, tech)
    Q = mr["Q"][gid]
    X, Z = cf.inputs(tech, Q)
    t = mr["t"][gid]
    profit = float(np.sum(mass * (t - cf.cost(tech, Q))))
    return BudgetMenu(W=W, mass=mass, theta=th, phi=mr["phi"][gid], Q=Q, X=np.asarray(X),
                      Z=np.asarray(Z), t=t, profit=profit, sigma=tech.sigma,
                      info={"groups": mr, "group_of_type": gid})


def distribution_menu_from_budget(bm: BudgetMenu, tech: cf.Technology) -> DistributionMenu:
    r"""The distribution menu that replicates a budget menu.

    Type m's item is its own Lemma-1 split of its budget at the same price:
    the own value θ_m Q_m and the cost are unchanged, and any other item is
    worth at most what the corresponding budget was worth (no reallocation),
    so IC/IR carry over.  Hence distribution profit ≥ budget profit
    (docs/model.md §2.6) and, under Assumption 1, the two coincide (Proposition 3).
    """
    x = bm.per_task_tokens()
    return DistributionMenu(W=bm.W, mass=bm.mass, x=x, z=bm.Z, t=bm.t, Q=bm.Q,
                            profit=_menu_profit(bm.mass, bm.t, x, bm.Z, tech),
                            regime="budget replica")


# ============================================================ two types
def virtual_profile(wH, wL, pH: float, pL: float) -> np.ndarray:
    r"""L's virtual profile (docs/model.md §2.6(a), **derived**).

    .. math:: \hat w_i=\Big[w^L_i-\frac{\pi_H}{\pi_L}(w^H_i-w^L_i)\Big]^+
    """
    wH, wL = np.asarray(wH, float), np.asarray(wL, float)
    return np.maximum(wL - pH / pL * (wH - wL), 0.0)


def _two_type_menu(wH, wL, pH, pL, itH, itL, tech, regime, info) -> DistributionMenu:
    W = np.vstack([wH, wL])
    x = np.stack([itH["x"], itL["x"]])
    z = np.stack([itH["z"], itL["z"]])
    V = value_matrix(W, x, z, tech)
    t = _optimal_transfers(V)
    mass = np.array([pH, pL]) / (pH + pL)
    return DistributionMenu(W=W, mass=mass, x=x, z=z, t=t, Q=np.array([itH["Q"], itL["Q"]]),
                            profit=_menu_profit(mass, t, x, z, tech), regime=regime, info=info)


def _sign_sum(d, g) -> tuple[float, float]:
    """(mean(d·g), its rounding slack REGIME_TOL·mean(|d·g|)): a sign condition
    of the two-type regimes holds when the mean is >= −slack.  Scale-free:
    multiplying every gain by a constant (e.g. all costs by k) scales both."""
    v = np.asarray(d, float) * np.asarray(g, float)
    return float(np.mean(v)), REGIME_TOL * float(np.mean(np.abs(v)))


def _item_at_crossing(wL, d, b, tech):
    r"""L's item of the ``IR_L+IR_H+IC_H`` regime when the root β of
    :math:`\int d\,g^L(\beta)=0` sits where a cell's virtual value
    :math:`v_i=w^L_i-\beta d_i` crosses 0 (d_i > 0); None otherwise.

    There :math:`g_i\propto v_i^{\sigma/(1-\sigma)}` rises from 0 with an
    infinite slope, so the root is β_i − δ with δ far below float resolution
    (two_type_70_43, σ = 0.05: the needed g_i = 1 % of L's gains takes
    :math:`v_i\sim10^{-38}`); brentq stops at β_i and the item then has
    g_i ≈ 1e-16 and misses IR_H: its transfers were 1.3e-3 off and its profit
    3.4e-3 below the NLP's (σ = 0.05; exact rational check in the tests).
    The exact item is the limit β → β_i⁻: every other cell efficient for
    :math:`w^L-\beta_i d` (their gains move by O(δ)), and g_i the gain that
    makes :math:`\int d\,g^L=0`, bought at least cost
    (:math:`x_i=(g_i/\Phi(z))^{1/\sigma}` × the unit bundle; its cost is
    :math:`O(g_i^{1/\sigma})`, in the profit as computed)."""
    wL, d = np.asarray(wL, float), np.asarray(d, float)
    pos = np.flatnonzero(d > 0)
    if not pos.size:
        return None
    bi = wL[pos] / d[pos]
    k = int(np.argmin(np.abs(bi - b)))
    i, beta = int(pos[k]), float(bi[k])
    if abs(beta - b) > 1e-9 * max(abs(b), 1e-300):
        return None
    v = wL - beta * d
    v[i] = 0.0
    it = efficient_item(v, tech)
    g = np.array(it["gain"], float)
    g[i] = 0.0
    rest = float(np.sum(d * g))
    if rest >= 0:  # already IR_H-tight at the crossing: the ordinary item is right
        return None
    gi = -rest / d[i]
    x = np.array(it["x"], float)
    z = np.asarray(it["z"], float)
    phi = float(cf.phi(tech, z)) if tech.K else 1.0
    H = (gi / phi) ** (1.0 / tech.sigma)
    x[i] = H * cf.unit_demands(tech.alpha, tech.cost, tech.rho)
    X = x.sum(axis=0) / len(wL)
    Q = float(cf.psi(tech, X) * phi)
    return {**it, "x": x, "Q": Q, "gain": gain_profile(x, z, tech)}


def two_type_distribution_menu(wH, wL, pH: float, pL: float, tech: cf.Technology) -> DistributionMenu:
    r"""Two types, full contracting: the spec's closed form (docs/model.md §2.6(a), **derived**).

    Binding IR_L and IC_H (relaxed program).  H efficient: :math:`C'(Q_H)=\theta_H`,
    tokens ∝ :math:`(w^H_i)^{1/(1-\sigma)}`.  L efficient for the virtual
    profile :math:`\hat w` (:func:`virtual_profile`): :math:`C'(Q_L)=\theta(\hat w)`,
    tokens ∝ :math:`\hat w_i^{1/(1-\sigma)}`.  With :math:`\hat m` L's
    normalised token shares (:math:`\int\hat m=1`):

    .. math:: t_L=Q_L\int w^L_i\hat m_i^\sigma di,\qquad
       t_H=\theta_HQ_H-Q_L\int(w^H_i-w^L_i)\hat m_i^\sigma di .

    Rows of the result: 0 = H, 1 = L.  The relaxed solution is optimal iff
    the dropped constraints hold: IR_H, :math:`\int d\,g^L\ge0`, and IC_L,
    :math:`\int d\,(g^H-g^L)\ge0` (d = w^H − w^L, g the per-cell gains).
    Pointwise :math:`w^H\ge w^L` is sufficient for both (g^H ≥ g^L pointwise);
    if either fails :class:`AssumptionError` is raised — use
    :func:`two_type_distribution_menu_general`.
    """
    wH, wL = np.asarray(wH, float), np.asarray(wL, float)
    s = tech.sigma
    d = wH - wL
    itH = efficient_item(wH, tech)
    what = virtual_profile(wH, wL, pH, pL)
    itL = efficient_item(what, tech)
    mhat = token_shares(what, s)
    thH = float(theta_of(wH, s))
    QH, QL = itH["Q"], itL["Q"]
    tL = QL * np.mean(wL * mhat**s)
    tH = thH * QH - QL * np.mean(d * mhat**s)
    ir_H, tol_ir = _sign_sum(d, itL["gain"])
    ic_L, tol_ic = _sign_sum(d, itH["gain"] - itL["gain"])
    info = {"what": what, "mhat": mhat, "theta_what": itL["theta"], "ir_H_slack": ir_H,
            "ic_L_slack": ic_L, "pointwise_dominance": bool(np.all(d >= 0))}
    if ir_H < -tol_ir or ic_L < -tol_ic:
        raise AssumptionError(
            f"two-type closed form (IR_L, IC_H binding) does not apply: IR_H slack {ir_H:.3g}, "
            f"IC_L slack {ic_L:.3g} (w^H >= w^L pointwise: {info['pointwise_dominance']})")
    W = np.vstack([wH, wL])
    x = np.stack([itH["x"], itL["x"]])
    z = np.stack([itH["z"], itL["z"]])
    t = np.array([tH, tL])
    mass = np.array([pH, pL]) / (pH + pL)
    return DistributionMenu(W=W, mass=mass, x=x, z=z, t=t, Q=np.array([QH, QL]),
                            profit=_menu_profit(mass, t, x, z, tech), regime="IR_L+IC_H", info=info)


def two_type_distribution_menu_general(wH, wL, pH: float, pL: float, tech: cf.Technology) -> DistributionMenu:
    r"""Two types, full contracting, any pair of profiles (derived here; KKT).

    In gain space (:math:`g_i=\Phi(z)\Psi(x_i)`) the program is convex: the
    cost of a gain profile is convex (:math:`g^{1/\sigma}\Phi^{-1/\sigma}` is
    jointly convex because σ+γ ≤ 1) and IC/IR are linear in (g, t).  KKT
    with multipliers :math:`b_H, b_L` on IC_H, IC_L gives, with
    :math:`d=w^H-w^L`, :math:`\beta_H=b_H/\pi_L`, :math:`\beta_L=b_L/\pi_H`:

    * H efficient for :math:`w^H+\beta_L d`, L efficient for :math:`w^L-\beta_H d`;
    * IR multipliers :math:`a_H=\pi_H-b_H+b_L\ge0`, :math:`a_L=\pi_L-b_L+b_H\ge0`
      (stationarity in t), so with :math:`b_L=0`, :math:`\beta_H\le\pi_H/\pi_L`.

    Regimes (checked in this order after orienting so that
    :math:`\int d\,g^H_{FB}\ge0`; otherwise the labels are swapped):

    ``full extraction``  β = 0: both efficient, both IR bind; needs
        :math:`\int d\,g^L_{FB}\le0`.
    ``IR_L+IC_H``  :math:`\beta_H=\pi_H/\pi_L` (the spec's formula); needs
        :math:`\int d\,g^L\ge0` (IR_H) and :math:`\int d(g^H-g^L)\ge0` (IC_L).
    ``IR_L+IR_H+IC_H``  :math:`\beta_H\in(0,\pi_H/\pi_L)` solving
        :math:`\int d\,g^L(\beta_H)=0` (monotone in β_H).
    ``both IC (numeric)``  otherwise: the best (β_H, β_L) found numerically.

    Transfers are the largest implementing the allocation
    (:func:`_optimal_transfers`).  ``regime`` names the binding set; rows 0, 1
    are always the H and L given by the caller.
    """
    wH, wL = np.asarray(wH, float), np.asarray(wL, float)
    d = wH - wL
    fbH, fbL = efficient_item(wH, tech), efficient_item(wL, tech)
    dgH, tol_H = _sign_sum(d, fbH["gain"])
    dgL, tol_L = _sign_sum(d, fbL["gain"])
    swapped = dgH < -tol_H and -dgL >= -tol_L
    if swapped:  # L is the "strong" type: mirror the problem
        menu = two_type_distribution_menu_general(wL, wH, pL, pH, tech)
        idx = [1, 0]
        rename = {"IR_L+IC_H": "IR_H+IC_L", "IR_L+IR_H+IC_H": "IR_L+IR_H+IC_L"}
        return DistributionMenu(W=menu.W[idx], mass=menu.mass[idx], x=menu.x[idx], z=menu.z[idx],
                                t=menu.t[idx], Q=menu.Q[idx], profit=menu.profit,
                                regime=rename.get(menu.regime, menu.regime),
                                info={**menu.info, "swapped": True})
    r = pH / pL
    if dgH >= -tol_H and dgL <= tol_L:
        return _two_type_menu(wH, wL, pH, pL, fbH, fbL, tech, "full extraction", {"beta_H": 0.0})
    if dgH >= -tol_H:
        itL = efficient_item(wL - r * d, tech)
        irH, tol_ir = _sign_sum(d, itL["gain"])
        if irH >= -tol_ir:
            icL, tol_ic = _sign_sum(d, fbH["gain"] - itL["gain"])
            if icL >= -tol_ic:
                return _two_type_menu(wH, wL, pH, pL, fbH, itL, tech, "IR_L+IC_H", {"beta_H": r})
        else:
            f = lambda b: float(np.mean(d * efficient_item(wL - b * d, tech)["gain"]))
            b = optimize.brentq(f, 0.0, r, xtol=1e-14, rtol=1e-14)
            itL = _item_at_crossing(wL, d, b, tech) or efficient_item(wL - b * d, tech)
            return _two_type_menu(wH, wL, pH, pL, fbH, itL, tech, "IR_L+IR_H+IC_H", {"beta_H": b})

    # fallback: both ICs bind (or degenerate orientation) -> best member of the KKT family
    def neg_profit(bb):
        bH, bL = np.abs(bb)
        itH = efficient_item(wH + bL * d, tech)
        itL = efficient_item(wL - bH * d, tech)
        m = _two_type_menu(wH, wL, pH, pL, itH, itL, tech, "", {})
        return -m.profit if np.isfinite(m.profit) else 1e30

    best = min((optimize.minimize(neg_profit, x0, method="Nelder-Mead",
                                  options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
                for x0 in ([r, 0.0], [0.0, 1 / r], [r / 2, 1 / (2 * r)])), key=lambda o: o.fun)
    bH, bL = np.abs(best.x)
    return _two_type_menu(wH, wL, pH, pL, efficient_item(wH + bL * d, tech),
                          efficient_item(wL - bH * d, tech), tech, "both IC (numeric)",
                          {"beta_H": bH, "beta_L": bL})


def two_type_budget_menu(wH, wL, pH: float, pL: float, tech: cf.Technology) -> BudgetMenu:
    r"""Two types, token budgets (docs/model.md §2.6(a) "under budgets"; Proposition 2 with N=2).

    With :math:`\theta_H\ge\theta_L`: :math:`C'(Q_H)=\theta_H`,
    :math:`C'(Q_L)=[\theta_L-(\pi_H/\pi_L)(\theta_H-\theta_L)]^+`;
    binding IR_L, IC_H: :math:`t_L=\theta_LQ_L`,
    :math:`t_H=\theta_HQ_H-(\theta_H-\theta_L)Q_L`.  If θ_H < θ_L the
    labels are swapped; rows 0, 1 are the caller's H, L.
    """
    s = tech.sigma
    W = np.vstack([wH, wL]).astype(float)
    mass = np.array([pH, pL], float) / (pH + pL)
    th = theta_of(W, s)
    hi, lo = (0, 1) if th[0] >= th[1] else (1, 0)
    phi = np.empty(2)
    phi[hi] = th[hi]
    phi[lo] = max(th[lo] - mass[hi] / mass[lo] * (th[hi] - th[lo]), 0.0)
    Q = cf.inverse_marginal_cost(tech, phi)
    t = np.empty(2)
    t[lo] = th[lo] * Q[lo]
    t[hi] = th[hi] * Q[hi] - (th[hi] - th[lo]) * Q[lo]
    X, Z = cf.inputs(tech, Q)
    profit = float(np.sum(mass * (t - cf.cost(tech, Q))))
    return BudgetMenu(W=W, mass=mass, theta=th, phi=phi, Q=Q, X=np.asarray(X), Z=np.asarray(Z),
                      t=t, profit=profit, sigma=s)


# ===================================================== value-scale family
def _cells_active(s, n: int) -> np.ndarray:
    s = np.asarray(s, float)
    k = np.rint(s * n)
    if np.any(np.abs(s * n - k) > GRID_TOL * n) or np.any(k < 1) or np.any(k > n):
        raise ValueError(f"s must lie on the cell grid {{1/n,...,1}} (n={n}); got {s}")
    return k.astype(int)


def value_scale_profile(w, s, n: int) -> np.ndarray:
    r"""Profile of value-scale type (w, s) on n cells (docs/model.md §1).

    Discrete definition: s must be a multiple of 1/n (s ∈ {1/n, …, 1});
    cell i = 1..n (covering [(i−1)/n, i/n]) is active iff i ≤ s·n — the
    same as "midpoint (i−½)/n ≤ s" on this grid.  Then exactly
    :math:`\theta=(\frac1n\,sn\,w^{1/(1-\sigma)})^{1-\sigma}=w\,s^{1-\sigma}`.
    (Off the grid, the midpoint rule would give θ = w·(round(sn)/n)^(1−σ) ≠ w s^(1−σ).)

    ``w``, ``s`` broadcast; returns (..., n).
    """
    k = _cells_active(s, n)
    w = np.asarray(w, float)
    i = np.arange(1, n + 1)
    return np.where(i <= np.asarray(k)[..., None], w[..., None], 0.0)


def value_scale_types(w_grid, w_mass, s_grid, s_mass, n: int) -> dict:
    r"""Product grid of value-scale types, w ⟂ s: masses :math:`q_k r_j`.

    Returns ``W`` (M, n) with M = len(w)·len(s) in order (s major, w minor),
    ``mass``, ``w``, ``s``, and index arrays ``iw``, ``js``.
    """
    w_grid, s_grid = np.asarray(w_grid, float), np.asarray(s_grid, float)
    js, iw = np.meshgrid(np.arange(len(s_grid)), np.arange(len(w_grid)), indexing="ij")
    js, iw = js.ravel(), iw.ravel()
    wm = np.asarray(w_mass, float) / np.sum(w_mass)
    sm = np.asarray(s_mass, float) / np.sum(s_mass)
    return {"W": value_scale_profile(w_grid[iw], s_grid[js], n), "mass": wm[iw] * sm[js],
            "w": w_grid[iw], "s": s_grid[js], "iw": iw, "js": js}


def value_scale_distribution_menu(w_grid, w_mass, s_grid, s_mass, n: int,
                                  tech: cf.Technology, audit: bool = True) -> DistributionMenu:
    r"""Value-scale family on a discrete grid, w ⟂ s: distribution menu (**derived**).

    Discrete analogue of docs/model.md §2.6(b): solve as if s were observed.  For
    each s, a 1-D discrete Mussa–Rosen in w with value
    :math:`\theta_k=w_k s^{1-\sigma}`: :math:`C'(Q(w_k,s))=s^{1-\sigma}\bar\varphi_k`,
    :math:`\bar\varphi_k` the (ironed) discrete virtual value of w
    (:math:`\varphi_k=w_k-(w_{k+1}-w_k)(1-P_k)/q_k`), the same for every s;
    tokens spread evenly over the active cells (X/s each), none beyond;
    :math:`t(w_1,s)=\theta_1Q_1`, :math:`t(w_k,s)=t(w_{k-1},s)+\theta_k(Q_k-Q_{k-1})`.

    Its profit is an upper bound for the problem with s private (the seller
    could ignore s), so it is *the* optimum iff the s-dimension IC holds — see
    ``info["audit"]`` (:func:`audit_menu` over all type pairs; skipped if
    ``audit`` is False — it costs O(M²) memory, M = #w·#s).
    """
    s_, sig = np.asarray(s_grid, float), tech.sigma
    T = value_scale_types(w_grid, w_mass, s_grid, s_mass, n)
    wg = np.asarray(w_grid, float)
    order = np.argsort(wg)
    if np.any(np.diff(wg[order]) <= 0):
        raise ValueError("w_grid must have distinct values")
    wm = np.asarray(w_mass, float)[order]
    M = len(T["mass"])
    Q, t, phi = np.empty(M), np.empty(M), np.empty(M)
    for j, s in enumerate(s_):
        mr = _mussa_rosen(wg[order] * s ** (1 - sig), wm, tech)
        rows = np.flatnonzero(T["js"] == j)
        pos = np.empty(len(wg), int)
        pos[order] = np.arange(len(wg))
        k = pos[T["iw"][rows]]
        Q[rows], t[rows], phi[rows] = mr["Q"][k], mr["t"][k], mr["phi"][k]
    X, Z = cf.inputs(tech, Q)
    x = lemma1_split(T["W"], X, sig)  # = X/s on the active cells, 0 elsewhere
    menu = DistributionMenu(W=T["W"], mass=T["mass"], x=x, z=np.asarray(Z), t=t, Q=Q,
                            profit=_menu_profit(T["mass"], t, x, Z, tech), regime="s observed",
                            info={"w": T["w"], "s": T["s"], "virtual_value": phi})
    if audit:
        menu.info["audit"] = audit_menu(menu.W, x, menu.z, t, tech)
    return menu


def value_scale_budget_menu(w_grid, w_mass, s_grid, s_mass, n: int, tech: cf.Technology) -> BudgetMenu:
    r"""Budget menu for the same value-scale grid: types summarised by
    :math:`\theta=w s^{1-\sigma}` alone, 1-D discrete Mussa–Rosen over the
    distinct θ with aggregated masses (:func:`budget_menu`)."""
    T = value_scale_types(w_grid, w_mass, s_grid, s_mass, n)
    bm = budget_menu(T["W"], T["mass"], tech)
    bm.info.update({"w": T["w"], "s": T["s"]})
    return bm


# ------------------------------------------- value-scale, continuous types
def _uniform01():
    from models.type_space import TypeDistribution

    return TypeDistribution("uniform", 0.0, 1.0)


def value_scale_quality(w, s, tech: cf.Technology, w_dist=None) -> np.ndarray:
    r"""Continuous value-scale, w ⟂ s (docs/model.md §2.6(b), **derived**).

    .. math:: C'(Q(w,s))=s^{1-\sigma}h_w(w)\quad(Q=0\text{ where }h_w\le0),

    :math:`h_w` the virtual value of w's marginal (assumed non-decreasing;
    default w ~ U[0,1], :math:`h_w=2w-1`).  Tokens: X/s per active task.
    """
    w_dist = w_dist or _uniform01()
    return cf.inverse_marginal_cost(tech, np.asarray(s, float) ** (1 - tech.sigma) * w_dist.virtual_value(w))


def value_scale_rent(w, s, tech: cf.Technology, w_dist=None) -> np.ndarray:
    r""":math:`U(w,s)=s^{1-\sigma}\int_{w_{min}}^{w}Q(v,s)\,dv` (**derived**), by quadrature."""
    w_dist = w_dist or _uniform01()
    lo, hi = w_dist.support
    w, s = np.broadcast_arrays(np.asarray(w, float), np.asarray(s, float))
    out = np.empty(w.shape)
    # per distinct s: ∫ Q dv cumulated over the sorted distinct w, segment by
    # segment between consecutive nodes (the w's, the exclusion point where
    # h_w = 0, and the breakpoints of a piecewise density), so each quad call
    # sees a short interval on which the integrand is smooth
    kinks = [float(b) for b in getattr(w_dist, "breakpoints", ()) or ()]
    w0 = lo  # below the exclusion point Q = 0: those segments are not integrated
    try:
        w0 = float(optimize.brentq(lambda v: float(w_dist.virtual_value(v)), lo + 1e-12 * (hi - lo), hi))
        kinks.append(w0)
    except ValueError:
        pass
    for sv in np.unique(s):
        sel = s == sv
        ws = np.unique(w[sel])
        nodes = np.unique(np.concatenate([[lo], ws, [k for k in kinks if lo < k < ws.max()]]))
        seg = [integrate.quad(lambda v: float(value_scale_quality(v, sv, tech, w_dist)), a, b,
                              epsrel=QUAD_RTOL, epsabs=0.0, limit=200)[0] if b > w0 else 0.0
               for a, b in zip(nodes[:-1], nodes[1:])]
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        out[sel] = sv ** (1 - tech.sigma) * cum[np.searchsorted(nodes, w[sel])]
    return out


def value_scale_transfer(w, s, tech: cf.Technology, w_dist=None) -> np.ndarray:
    r""":math:`t(w,s)=w\,s^{1-\sigma}Q(w,s)-U(w,s)` (**derived**)."""
    Q = value_scale_quality(w, s, tech, w_dist)
    return np.asarray(w) * np.asarray(s) ** (1 - tech.sigma) * Q - value_scale_rent(w, s, tech, w_dist)


def _virtual_surplus(tech, v):
    """Max over Q of vQ − C(Q) (0 for v ≤ 0)."""
    Q = cf.inverse_marginal_cost(tech, v)
    return np.where(np.asarray(v) > 0, v * Q - cf.cost(tech, Q), 0.0)


def value_scale_theta_cdf_pdf(theta, sigma: float, w_dist=None, s_dist=None):
    r"""Distribution of :math:`\theta=w\,s^{1-\sigma}` for independent w, s.

    :math:`F(\tau)=\int F_w(\tau s^{-\beta})dF_s(s)`,
    :math:`f(\tau)=\int f_w(\tau s^{-\beta})s^{-\beta}dF_s(s)`, β = 1−σ,
    by quadrature (kinks where τ s^{−β} meets the support of w are declared).
    w, s ~ U[0,1] has the closed form :math:`F=(b\tau-\tau^b)/(b-1)`,
    :math:`f=b(1-\tau^{b-1})/(b-1)`, b = 1/(1−σ) (σ = ½: triangular, f = 2(1−τ)).
    """
    w_dist = w_dist or _uniform01()
    s_dist = s_dist or _uniform01()
    beta = 1 - sigma
    slo, shi = s_dist.support
    wb = [b for b in _breaks(w_dist, ends=True) if b > 0]
    sb = _breaks(s_dist)
    F, f = [], []
    for tau in np.atleast_1d(np.asarray(theta, float)):
        # kinks in s: where τ s^(−β) crosses a breakpoint of w's density (its
        # support ends and, piecewise, its interior breakpoints), and s's own
        # breakpoints; undeclared jumps make QUADPACK bisect to its limit
        # (measured: a piecewise w ran > 5 minutes, value_scale_11_0)
        # Exact outside w's support: for s < s_top = (τ/w_hi)^(1/β), τ s^(−β) > w_hi,
        # so F_w = 1 and f_w = 0 there (that part of F is F_s(s_top) − F_s(s_lo));
        # for s > s_bot = (τ/w_lo)^(1/β) (w_lo > 0), F_w = f_w = 0.  Only the
        # rest goes to QUADPACK: integrated over all of [s_lo, s_hi] the
        # integrand was constant over most of a range reaching 1e-300 and
        # QUADPACK warned "probably divergent" / "roundoff" (stranger S7-6,
        # w ~ Beta(2, 2) on [0, 2], σ = 0.4); with this split and the log
        # variable below the values agree with the old quadrature to 1e-12
        # (uniform: the closed form to 2e-16) and raise no warning there
        wlo_, whi_ = w_dist.support
        a = max(slo, (tau / whi_) ** (1 / beta)) if tau > 0 else slo
        b = min(shi, (tau / wlo_) ** (1 / beta)) if (wlo_ > 0 and tau > 0) else shi
        F0 = float(s_dist.cdf(a) - s_dist.cdf(slo)) if a > slo else 0.0
        Fi = fi = 0.0
        if b > a:
            # in u = ln s (ds = s du): the integrands are powers of s near a
            # (f_w(τ s^(−β)) s^(−β) ~ s^(−2β) for w's density linear at 0), spanning
            # many decades when τ is small; in u they are smooth exponentials
            pts = sorted({np.log(p) for p in [(tau / q) ** (1 / beta) for q in wb] + sb if a < p < b})
            ua, ub = np.log(max(a, 1e-300)), np.log(b)
            # absolute floors 1e-6 × QUAD_RTOL of each quantity's natural scale (F: 1;
            # f: 1/θ̄, θ̄ = w_hi·s_hi^β the top of θ's support): with epsabs = 0,
            # where F or f is ~0 (τ near θ̄, a density vanishing at w's ends)
            # QUADPACK warned "roundoff" chasing a relative error of a value ~1e-17;
            # every use (h_θ = θ − (1 − F)/f inside ∫ S(h_θ) f dθ) weights by f, so
            # an error 1e-16 of the scale there is far below the profits' 1e-8
            tb_ = whi_ * shi ** beta
            epsF, epsf = 1e-6 * QUAD_RTOL, 1e-6 * QUAD_RTOL / max(tb_, 1e-300)
            Fi = integrate.quad(lambda u: float(w_dist.cdf(tau * np.exp(-beta * u)) * s_dist.pdf(np.exp(u))
                                                * np.exp(u)), ua, ub,
                                points=pts or None, epsrel=QUAD_RTOL, epsabs=epsF, limit=200)[0]
            fi = integrate.quad(lambda u: float(w_dist.pdf(tau * np.exp(-beta * u)) * np.exp((1 - beta) * u)
                                                * s_dist.pdf(np.exp(u))), ua, ub,
                                points=pts or None, epsrel=QUAD_RTOL, epsabs=epsf, limit=200)[0]
        F.append(F0 + Fi)
        f.append(fi)
    return np.array(F), np.array(f)


def value_scale_profits(tech: cf.Technology, w_dist=None, s_dist=None) -> dict:
    r"""Continuous value-scale profits of both menus and their ratio (docs/model.md §2.6(b)).

    * distributions (**derived**, s treated as observed):
      :math:`\Pi_D=E_{w,s}[S(s^{1-\sigma}h_w(w))]`,
    * budgets: :math:`\Pi_B=E_\theta[S(h_\theta(\theta))]` with
      :math:`h_\theta=\theta-(1-F_\theta)/f_\theta` of θ = w s^(1−σ),

    :math:`S(v)=\max_Q vQ-C(Q)` (0 for v ≤ 0).  Both by adaptive quadrature;
    ``h_theta_monotone`` reports whether h_θ needed ironing on the served
    range (it is not ironed here).

    w, s ~ U[0,1], homogeneous C (derived here): :math:`S(v)=kv^a`,
    a = 1/(1−η), so :math:`\Pi_D=k/\{((1-\sigma)a+1)\,2(a+1)\}`.  At σ = ½,
    θ has the triangular density 2(1−θ), :math:`h_\theta=(3\theta-1)/2` and
    :math:`\Pi_B=\tfrac89k/((a+1)(a+2))`, hence Π_D/Π_B = 9/8 for *every*
    σ+γ (docs/model.md's 9/8).  For σ ≠ ½ the ratio depends on σ and σ+γ
    (e.g. σ=0.3, η=0.7: 1.1443; σ=0.7, η=0.9: 1.1107).
    """
    w_dist = w_dist or _uniform01()
    s_dist = s_dist or _uniform01()
    sig, beta = tech.sigma, 1 - tech.sigma
    wlo, whi = w_dist.support
    slo, shi = s_dist.support
    try:
        w0 = optimize.brentq(lambda v: float(w_dist.virtual_value(v)), wlo + 1e-12, whi)
    except ValueError:
        w0 = wlo

    # every integrand is smooth between the densities' breakpoints (piecewise
    # marginals): each integral is split there (a jump of f_w is a jump of
    # h_w, hence of the integrand)
    wk, sk = _breaks(w_dist), _breaks(s_dist)

    def inner(s):
        return _quad_pieces(lambda v: float(_virtual_surplus(tech, s**beta * w_dist.virtual_value(v))
                                            * w_dist.pdf(v)), w0, whi, wk)

    PiD = _quad_pieces(lambda s: inner(s) * float(s_dist.pdf(s)), slo, shi, sk)

    def h_theta(tau):
        F, f = value_scale_theta_cdf_pdf(tau, sig, w_dist, s_dist)
        # f >= 0 exactly; quadrature round-off can return a tiny negative f
        # where the density vanishes (e.g. Beta w near 0): no types there,
        # the virtual value is taken as −∞ (below any exclusion threshold)
        if not f[0] > 0:
            return -np.inf, 0.0
        return float(tau - (1 - F[0]) / f[0]), float(f[0])

    tmax = whi * shi**beta
    # bracket the exclusion threshold: the first sign change of h_θ on a
    # geometric scan of (0, tmax) (a fixed lower end can sit where the
    # density vanishes and the quadrature's f has the wrong sign)
    scan = tmax * np.concatenate([np.geomspace(1e-9, 0.5, 40), np.linspace(0.5, 1 - 1e-9, 41)[1:]])
    hs_scan = np.array([h_theta(u)[0] for u in scan])
    k = int(np.argmax(hs_scan > 0))
    if not hs_scan[k] > 0:
        raise AssumptionError("h_θ has no positive value below the top of the support")
    lo_b = scan[k - 1] if k > 0 else 1e-12 * tmax
    tau0 = scan[k] if k == 0 else optimize.brentq(lambda u: max(h_theta(u)[0], -1e300), lo_b, scan[k])
    grid = np.linspace(tau0, tmax * (1 - 1e-9), 201)
    hs = np.array([h_theta(u)[0] for u in grid])

    def integrand(u):
        h, f = h_theta(u)
        return float(_virtual_surplus(tech, h)) * f

    # f_θ has kinks where a breakpoint of w meets one of s (τ = b_w·b_s^β)
    tk = [bw * bs**beta for bw in _breaks(w_dist, ends=True) for bs in _breaks(s_dist, ends=True)]
    PiB = _quad_pieces(integrand, tau0, tmax, tk)
    return {"distribution": PiD, "budget": PiB, "ratio": PiD / PiB, "theta_exclusion": tau0,
            "h_theta_monotone": bool(np.all(np.diff(hs) >= -1e-12))}


def value_scale_first_order(tech: cf.Technology, w_dist=None, profit: float | None = None) -> dict:
    r"""First-order discretisation error of the discrete distribution profit (**derived**).

    Grids of the value-scale regime: w ~ U[l, h] at the midpoints of n_w
    equal cells, s ~ U[0, 1] at the right ends j/n_s.  On them the discrete
    virtual value is exactly :math:`\varphi_k=h_w(w_k+\Delta/4)` (Δ = (h−l)/n_w:
    :math:`w_k-\Delta(n_w-k)=2(w_k+\Delta/4)-h`), so the discrete profit
    :math:`\frac1{n_s}\sum_j\frac1{n_w}\sum_kS(s_j^\beta\varphi_k)` is a Riemann
    sum sampled at 3/4 of each w-cell and at the right end of each s-cell.
    Euler–Maclaurin (sample at fraction τ of each cell: error
    :math:`(\tau-\tfrac12)\Delta\,[f]_{ends}+O(\Delta^2)`):

    .. math:: \Pi_D(n_w,n_s)=\Pi_D+\frac{A}{n_w}+\frac{B}{n_s}+O(n^{-2}),\quad
       A=\tfrac14\int_0^1[S(s^\beta h)-S(s^\beta(2l-h))]ds,\quad
       B=\tfrac12\int S(h_w(w))\,dF_w(w),

    S(v) = max_Q vQ − C(Q) (0 for v ≤ 0; S ~ v^a near 0 with a > 1, so the
    integrands are C¹ and the remainder is O(n⁻²)).  Homogeneous C,
    w ~ U[0,1]: :math:`(A+B)/\Pi_D=\tfrac{a+1}2+\tfrac{(1-\sigma)a+1}2`
    (3.5 at σ = ½, σ+γ = 0.7).  Returns A, B, Π_D (absolute; ``profit``, if
    given, is taken as Π_D instead of recomputing it)."""
    w_dist = w_dist or _uniform01()
    if w_dist.kind != "uniform":
        raise AssumptionError("the first-order constant is derived for a uniform w marginal")
    l, h = w_dist.low, w_dist.high
    beta = 1 - tech.sigma
    A = 0.25 * integrate.quad(lambda s: float(_virtual_surplus(tech, s**beta * h)
                                                - _virtual_surplus(tech, s**beta * (2 * l - h))), 0, 1,
                              epsrel=QUAD_RTOL, epsabs=0.0, limit=200)[0]
    w0 = max(l, h / 2)  # h_w(w) = 2w − h > 0 above h/2
    B = 0.5 * integrate.quad(lambda w: float(_virtual_surplus(tech, 2 * w - h)) / (h - l), w0, h,
                             epsrel=QUAD_RTOL, epsabs=0.0, limit=200)[0]
    P = profit if profit is not None else value_scale_profits(tech, w_dist, _uniform01())["distribution"]
    return {"A": A, "B": B, "profit": P}


def corner_atoms(dist, n: int, side: str):
    r"""Atoms bracketing a continuous marginal in first-order stochastic dominance.

    The support is cut into n equal cells; each cell's probability sits at
    its left end (``side="lower"``: the atoms are FOSD-dominated by the
    distribution) or its right end (``"upper"``: they dominate it).
    Zero-mass cells are dropped.  Returns (points, masses)."""
    lo, hi = dist.support
    edges = np.linspace(lo, hi, n + 1)
    mass = np.diff(dist.cdf(edges))
    pts = edges[:-1] if side == "lower" else edges[1:]
    keep = mass > 0
    return pts[keep], mass[keep] / mass[keep].sum()


def _screening_profit(theta, mass, tech: cf.Technology) -> float:
    """Optimal 1-D screening profit (discrete Mussa–Rosen with ironing) of atoms
    ``theta`` with masses (merged where equal); masses need not sum to 1."""
    th, m, _ = _group_theta(theta, mass)
    mr = _mussa_rosen(th, m, tech)
    return float(np.sum(m) * np.sum(mr["mass"] * (mr["t"] - cf.cost(tech, mr["Q"]))))


def value_scale_profit_bounds(tech: cf.Technology, w_dist, s_dist, n: int) -> dict:
    r"""Rigorous brackets of the continuous value-scale profits (**derived**).

    Monotonicity in first-order stochastic dominance: in the optimal 1-D
    screening menu a type's profit :math:`t-C(Q)` is non-decreasing in θ
    (:math:`\frac{d}{d\theta}(t-C(Q))=(\theta-C'(Q))Q'\ge0` since
    :math:`C'(Q)=\bar\varphi\le\theta`; in the discrete menu, across a jump at
    the first type of a pool, :math:`\Delta t=\theta\Delta Q\ge C'(Q)\Delta Q\ge\Delta C`
    because the pool average :math:`\bar\varphi` never exceeds the first
    member's φ ≤ θ).  So if G is FOSD-below F, the G-optimal menu offered to
    F earns at least Π(G): Π(G) ≤ Π(F); symmetrically for G above F.  Atoms
    at the lower-left (upper-right) corner of each (w, s) cell
    (:func:`corner_atoms`) are FOSD-below (above) the continuous (w, s), and
    so is θ = w s^(1−σ) of them, hence

    * budgets: Π_B(lower corners) ≤ Π_B ≤ Π_B(upper corners);
    * distributions (s observed, docs/model.md §2.6(b)): the same per s (1-D in
      w), and the per-s profit is non-decreasing in s, so the same bracket.

    Exact discrete optima, computed from θ atoms only (no token arrays):
    O(n²) memory.  Widths are O(1/n) (measured ~7/n for distributions and
    ~4/n for budgets at σ = ½, σ+γ = 0.7, w, s ~ U[0,1]).
    """
    beta = 1 - tech.sigma
    out = {}
    for side in ("lower", "upper"):
        wp, wm = corner_atoms(w_dist, n, side)
        sp, sm = corner_atoms(s_dist, n, side)
        # distributions: s observed, one 1-D problem per s atom; θ = w s^β only
        # rescales w, so the ironed virtual values are s^β φ̄(w) for every s and
        # the profit is Σ_s r Σ_w q S(s^β φ̄) (S(v) = max_Q vQ − C(Q); on a pool
        # Q is constant, so Σ q φ Q = Σ q φ̄ Q)
        phi = _mussa_rosen(wp, wm, tech)["phi"]
        d = float(np.sum(sm[:, None] * wm[None, :] * _virtual_surplus(tech, sp[:, None] ** beta * phi[None, :])))
        th = (wp[None, :] * sp[:, None] ** beta).ravel()
        b = _screening_profit(th, (wm[None, :] * sm[:, None]).ravel(), tech)
        out[side] = {"distribution": d, "budget": b}
    return out


# ============================================================ Proposition 3
def assumption1_types(theta_grid, theta_mass, rel_profiles, rel_mass, sigma: float) -> dict:
    r"""Discrete types satisfying Assumption 1 (docs/model.md §2.5).

    Each relative profile :math:`r^\omega` (rows of ``rel_profiles``, n
    cells) is normalised to :math:`\theta(r^\omega)=1`; types are
    :math:`w=\theta_k r^\omega` with product masses :math:`f_1(\theta_k)f_2(\omega)`,
    so θ(w) = θ_k is independent of the relative profile (f2 is
    homogeneous of degree 0).  Order: θ major, ω minor.
    """
    R = np.atleast_2d(np.asarray(rel_profiles, float))
    R = R / theta_of(R, sigma)[:, None]
    th = np.asarray(theta_grid, float)
    k, o = np.meshgrid(np.arange(len(th)), np.arange(len(R)), indexing="ij")
    k, o = k.ravel(), o.ravel()
    m1 = np.asarray(theta_mass, float) / np.sum(theta_mass)
    m2 = np.asarray(rel_mass, float) / np.sum(rel_mass)
    return {"W": th[k][:, None] * R[o], "mass": m1[k] * m2[o], "theta": th[k], "omega": o,
            "rel_profiles": R}


def assumption1_budget_menu(theta_grid, theta_mass, rel_profiles, rel_mass, tech: cf.Technology) -> BudgetMenu:
    r"""Budget menu for an Assumption-1 family: 1-D Mussa–Rosen in θ with
    masses aggregated over ω.  By Proposition 3 no menu of token
    distributions earns more; :func:`distribution_menu_from_budget` gives one
    that earns exactly as much (all types with equal θ take the same budget)."""
    T = assumption1_types(theta_grid, theta_mass, rel_profiles, rel_mass, tech.sigma)
    bm = budget_menu(T["W"], T["mass"], tech)
    bm.info.update({"omega": T["omega"]})
    return bm


# ============================================================ tables
def per_task_tokens(menu) -> np.ndarray:
    """Per-type per-task tokens (M, n, J): the item of a distribution menu, or
    the type's own Lemma-1 split of its budget for a budget menu."""
    if isinstance(menu, BudgetMenu):
        return menu.per_task_tokens()
    return np.asarray(menu.x)


def token_table(menu, token_names=None) -> list[dict]:
    """Tidy rows ``{type, cell, task_mid, token, x}`` (one per type × cell × class),
    ready for ``pandas.DataFrame(rows)``; ``task_mid`` = (i − ½)/n."""
    x = per_task_tokens(menu)
    M, n, J = x.shape
    names = list(token_names) if token_names else [f"x{j}" for j in range(J)]
    return [{"type": m, "cell": i, "task_mid": (i + 0.5) / n, "token": names[j], "x": float(x[m, i, j])}
            for m in range(M) for i in range(n) for j in range(J)]
