r"""Two models, task assignment and competition (docs/model.md §2.7).  No Pyomo here.

Every model ℓ is summarised by its aggregate cost of quality
:math:`C_\ell(Q)=c_\ell Q^{1/\eta_\ell}`, :math:`\eta_\ell=\sigma+\gamma_\ell`
(:class:`ModelCost`; :func:`model_cost_from_technology` builds it from a
:class:`~models.closed_form.cost.Technology`).  All models share σ.

Contents
--------
* **Task assignment** — indirect utility
  :math:`U(\theta,Q_1,Q_2)=\theta(Q_1^{1/\sigma}+Q_2^{1/\sigma})^\sigma`, the
  task-share rule and the per-cell assignment for a weight profile.
* **Efficient allocation** (Proposition 1 with two models, derived) — one model
  per type, switch point :math:`\theta^e`.
* **Multi-model monopolist** (derived) — screening on
  :math:`V=U/\theta` with the non-convex cost :math:`K(V)=\min_\ell C_\ell(V)`;
  continuous types (pointwise in h) and the *exact* discrete-type optimum
  (cut-off enumeration + pool-adjacent-violators, :func:`monopolist_discrete`),
  with a grid dynamic programme as brute force (:func:`monopolist_discrete_grid`).
* **Leader vs competitive fringe** (Proposition 4) — :class:`LeaderFringe`;
  the buyer's top-up, the leader's virtual objective (re-derived below), the
  three regions, thresholds, transfers, continuous and discrete types.
* **Welfare comparison** — efficient vs multi-model monopolist vs leader–fringe.

Re-derivation of the leader's problem (continuous types)
--------------------------------------------------------
Linear-cost units :math:`q_L=Q_L^{1/\eta}`, :math:`q_F=Q_F^{1/\sigma}`,
:math:`\eta=\sigma+\gamma_L`, :math:`r=\eta/\sigma>1`.  The buyer's value of a
leader quantity q after the best fringe top-up (fringe price :math:`c_F`):

.. math::
   u(\theta,q)=\max_{q_F\ge0}\theta(q^r+q_F)^\sigma-c_Fq_F,\qquad
   A(\theta)=(\theta\sigma/c_F)^{1/(1-\sigma)},

so :math:`q_F^*=(A-q^r)^+`, :math:`u=c_F\frac{1-\sigma}{\sigma}A+c_Fq^r` for
:math:`q\le\hat q=A^{1/r}` and :math:`u=\theta q^\eta` above;
:math:`u_\theta=\max(A^\sigma,q^\eta)` (envelope theorem), non-decreasing in q
(single crossing).  With :math:`U(\theta)=u(\theta,q(\theta))-T(\theta)` the
net rent :math:`R=U-u(\theta,0)` has :math:`R'=u_\theta(\theta,q)-u_\theta(\theta,0)\ge0`,
so IR binds only at :math:`\theta_{\min}`, and the leader's profit is
:math:`\int\Delta(\theta,q(\theta))f\,d\theta` with the *gain over selling nothing*

.. math::
   \Delta(\theta,q)=[u(\theta,q)-u(\theta,0)]
   -[u_\theta(\theta,q)-u_\theta(\theta,0)]\frac{1-F}{f}-c_Lq .

On :math:`[0,\hat q]`: :math:`\Delta=c_Fq^r-c_Lq` (convex: optimum at 0 or
:math:`\hat q`, and :math:`\Delta(\hat q)>0\iff\theta>\theta_{lo}`).  On
:math:`[\hat q,\infty)`: :math:`\Delta=hq^\eta-c_Lq-(hA^\sigma-c_FA)` (concave,
maximiser :math:`\max(\hat q,q^{int})`).  Hence q ∈ {0, q̂, q^int}, and every
formula of docs/model.md §2.7 for this case (q̂, q^int, θ_lo, θ_hi, the middle-region
criterion, θ*) is reproduced; the tests check them against a fully numeric
version (numeric top-up, finite-difference :math:`u_\theta`, grid search in q).
The uniform examples are :data:`LEADER_FRINGE_EXAMPLES`.

Remarks for the NLP comparison:

* Region 1 leaves the buyer no rent (:math:`\hat q^\eta=A^\sigma`), so the hazard
  term drops out and limit pricing can start where h < 0 (three-region example:
  θ_lo ≈ 0.473 < 1/2).
* With discrete types the limit-pricing quantity of type k lies in
  :math:`[\hat q(\theta_k),\hat q(\theta_{k+1}))`, generally strictly inside (it maximises
  a concave piece of the discrete virtual gain), so an N-type NLP must be compared
  with :func:`leader_discrete`, not with :math:`\hat q(\theta_k)`; both converge at O(1/N).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize

from models.closed_form.cost import Technology, cost_coefficient
from models.type_space import TypeDistribution

# ------------------------------------------------------------ tolerances
ROOT_XTOL = 1e-14
"""Absolute x-tolerance of every brentq root (thresholds, pooled blocks)."""
ROOT_RTOL = 4 * np.finfo(float).eps
"""Relative x-tolerance of every brentq root (brentq's minimum)."""
MONOTONE_TOL = 1e-10
"""Relative slack when checking that a quantity schedule is non-decreasing."""
GAIN_TOL = 1e-13
"""A candidate must beat the incumbent by this much (absolute) to be chosen:
ties (e.g. at a threshold type) go to the smaller quantity."""
SCAN_POINTS = 4001
"""Grid used to bracket the first sign change before brentq refines it."""
QUAD_LIMIT = 200
"""Sub-interval limit of scipy.integrate.quad."""
GL_NODES = 16
"""Gauss–Legendre nodes per piece in cumulative integrals (transfers, rents)."""
MAX_PIECE_FRAC = 1e-3
"""Longest piece of a cumulative integral, as a fraction of its range [lo, max θ]: unit-free, so the
piece count (and memory) does not grow with the money unit.  An absolute 0.01 made 1e8 pieces and
23.6 GB for data/competition.toml with θ on [0, 1e6] (stranger15 F0, OOM-killed)."""
GRADE_RATIO, GRADE_LEVELS = 0.15, 12
"""Geometric grading toward singular ends: smallest piece ≈ 0.15^12 ≈ 1e-10 of the first."""


# =====================================================================
# Models
# =====================================================================
@dataclass(frozen=True)
class ModelCost:
    r"""Aggregate cost of quality of one model: :math:`C(Q)=cQ^{1/\eta}`, η = σ+γ."""

    c: float
    eta: float
    name: str = ""

    def __post_init__(self):
        if not (self.c > 0 and 0 < self.eta < 1):
            raise ValueError(f"need c > 0 and 0 < eta < 1, got c={self.c}, eta={self.eta}")


def model_cost_from_technology(tech: Technology, name: str = "") -> ModelCost:
    r"""ModelCost of a homogeneous technology: :math:`c` from
    :func:`~models.closed_form.cost.cost_coefficient`, :math:`\eta=\sigma+\gamma`
    (docs/model.md §2.1).  The baseline form is not homogeneous and is refused."""
    if tech.has_baseline:
        raise ValueError("baseline (b + z)^gamma technology has no C = c Q^(1/eta) form")
    eta = tech.sigma + (tech.gamma if tech.K > 0 else 0.0)
    return ModelCost(c=float(cost_coefficient(tech)), eta=float(eta), name=name)


def model_cost(m: ModelCost, Q) -> np.ndarray:
    r""":math:`C(Q)=cQ^{1/\eta}` (Q clipped at 0)."""
    return m.c * np.maximum(np.asarray(Q, float), 0.0) ** (1.0 / m.eta)


def first_best_quality(m: ModelCost, theta) -> np.ndarray:
    r""":math:`Q^{FB}(\theta)=(\eta\theta/c)^{\eta/(1-\eta)}` (0 for θ ≤ 0); Proposition 1."""
    t = np.maximum(np.asarray(theta, float), 0.0)
    return (m.eta * t / m.c) ** (m.eta / (1.0 - m.eta))


def first_best_surplus(m: ModelCost, theta) -> np.ndarray:
    r""":math:`S(\theta)=(1-\eta)\theta^{1/(1-\eta)}(\eta/c)^{\eta/(1-\eta)}` (0 for θ ≤ 0)."""
    t = np.maximum(np.asarray(theta, float), 0.0)
    e = m.eta
    return (1.0 - e) * t ** (1.0 / (1.0 - e)) * (e / m.c) ** (e / (1.0 - e))


# =====================================================================
# 1. Task assignment
# =====================================================================
def indirect_utility(theta, Q1, Q2, sigma: float) -> np.ndarray:
    r"""Value of two quality budgets used one model per task (docs/model.md §2.7).

    .. math:: U(\theta,Q_1,Q_2)=\theta\,(Q_1^{1/\sigma}+Q_2^{1/\sigma})^\sigma .

    Derivation: on cell i with task share a of model 1 and budget shares
    :math:`y_{\ell}` the value is :math:`w_i[Q_1a^{1-\sigma}y_1^\sigma+Q_2(1-a)^{1-\sigma}y_2^\sigma]`;
    the best a gives :math:`w_i(Q_1^{1/\sigma}y_1+Q_2^{1/\sigma}y_2)^\sigma`, which is
    Lemma 1 with one pooled budget :math:`Q_1^{1/\sigma}+Q_2^{1/\sigma}`.
    """
    Q1 = np.maximum(np.asarray(Q1, float), 0.0)
    Q2 = np.maximum(np.asarray(Q2, float), 0.0)
    return np.asarray(theta, float) * (Q1 ** (1 / sigma) + Q2 ** (1 / sigma)) ** sigma


def task_shares(Q1, Q2, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Task-mass shares of the two models: :math:`a_\ell=Q_\ell^{1/\sigma}/(Q_1^{1/\sigma}+Q_2^{1/\sigma})`.

    Exact (unique) when the weight profile is constant on its support; for a
    general profile the optimum is not unique and this is the share of the
    symmetric optimum (:func:`optimal_assignment`), while the *value-weighted*
    share :math:`\sum_i a_iY_i/\sum_iY_i` equals :math:`a_1` at every optimum.
    """
    a = np.maximum(np.asarray(Q1, float), 0.0) ** (1 / sigma)
    b = np.maximum(np.asarray(Q2, float), 0.0) ** (1 / sigma)
    s = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = np.where(s > 0, a / s, 0.5)
    return s1, 1.0 - s1


def aggregate_type(w, sigma: float) -> float:
    r""":math:`\theta(w)=(\frac1n\sum_i w_i^{1/(1-\sigma)})^{1-\sigma}` (midpoint rule, docs/model.md §1)."""
    w = np.asarray(w, float)
    return float(np.mean(w ** (1 / (1 - sigma))) ** (1 - sigma))


def assignment_value(w, a, y1, y2, Q1: float, Q2: float, sigma: float) -> float:
    r"""Value of an assignment on n equal task cells.

    .. math:: \frac1n\sum_i w_i\big[Q_1a_i^{1-\sigma}y_{1i}^\sigma+Q_2(1-a_i)^{1-\sigma}y_{2i}^\sigma\big]

    where :math:`a_i` is cell i's task share on model 1 and :math:`y_{\ell i}`
    is the share of model ℓ's token budget spent on cell i, normalised
    :math:`\frac1n\sum_iy_{\ell i}=1`.  In docs/model.md's per-task notation the
    tokens per unit of task are :math:`x_{\ell,i}=X_\ell\,y_{\ell i}/a_{\ell i}`
    (:math:`a_{1i}=a_i`, :math:`a_{2i}=1-a_i`), so that
    :math:`a_{\ell i}\,g_\ell(x_{\ell,i},z_\ell)=Q_\ell a_{\ell i}^{1-\sigma}y_{\ell i}^\sigma`.
    Budgets are not checked here.
    """
    w, a, y1, y2 = (np.asarray(v, float) for v in (w, a, y1, y2))
    a = np.clip(a, 0.0, 1.0)
    v = Q1 * a ** (1 - sigma) * np.maximum(y1, 0) ** sigma
    v = v + Q2 * (1 - a) ** (1 - sigma) * np.maximum(y2, 0) ** sigma
    return float(np.mean(w * v))


def optimal_assignment(w, Q1: float, Q2: float, sigma: float) -> dict:
    r"""An optimal per-cell assignment for weight profile w over n cells.

    Symmetric optimum: each model spreads its budget like Lemma 1,
    :math:`y_{\ell i}=w_i^{1/(1-\sigma)}/(\frac1n\sum_jw_j^{1/(1-\sigma)})`, and every
    cell gives model 1 the same task share :math:`a_i=a_1` of :func:`task_shares`
    (cells with :math:`w_i=0` get no tokens; their a is set to :math:`a_1` too).
    Value :math:`\theta(w)(Q_1^{1/\sigma}+Q_2^{1/\sigma})^\sigma` (:func:`indirect_utility`).

    Returns a dict with ``a`` (model-1 task share per cell), ``y1``, ``y2``
    (budget shares per cell), ``x_rel1``/``x_rel2`` (tokens per unit of task,
    relative to the budget: :math:`y_{\ell i}/a_{\ell i}`), ``theta``, ``value``.
    """
    w = np.asarray(w, float)
    m = w ** (1 / (1 - sigma))
    m = m / np.mean(m)
    s1, s2 = task_shares(Q1, Q2, sigma)
    a = np.full_like(w, float(s1))
    with np.errstate(invalid="ignore", divide="ignore"):
        xr1 = np.where(a > 0, m / a, 0.0)
        xr2 = np.where(a < 1, m / (1 - a), 0.0)
    th = aggregate_type(w, sigma)
    return {"a": a, "y1": m.copy(), "y2": m.copy(), "x_rel1": xr1, "x_rel2": xr2,
            "theta": th, "value": float(indirect_utility(th, Q1, Q2, sigma))}


# =====================================================================
# 2. Efficient allocation
# =====================================================================
def _order_by_eta(models) -> tuple[ModelCost, ModelCost]:
    m1, m2 = models
    if m1.eta == m2.eta:
        raise ValueError("the two models need different eta (sigma + gamma)")
    return (m1, m2) if m1.eta < m2.eta else (m2, m1)


def efficient_switch_point(models) -> float:
    r"""θ^e above which the higher-γ model is efficient (docs/model.md §2.7, derived).

    Crossing of the single-model first-best surpluses :math:`S_F=S_L`
    (F: lower η, L: higher η):

    .. math::
       \theta^e=\Big[\frac{1-\eta_F}{1-\eta_L}\Big(\frac{\eta_F}{c_F}\Big)^{\frac{\eta_F}{1-\eta_F}}
       \Big(\frac{c_L}{\eta_L}\Big)^{\frac{\eta_L}{1-\eta_L}}\Big]^{\frac{(1-\eta_L)(1-\eta_F)}{\gamma_L-\gamma_F}}

    (:math:`\gamma_L-\gamma_F=\eta_L-\eta_F`).  :math:`S_L/S_F\propto\theta^{(\eta_L-\eta_F)/((1-\eta_L)(1-\eta_F))}`
    is increasing, so the crossing is unique.
    """
    F, L = _order_by_eta(models)
    eF, eL = F.eta, L.eta
    base = (1 - eF) / (1 - eL) * (eF / F.c) ** (eF / (1 - eF)) * (L.c / eL) ** (eL / (1 - eL))
    return float(base ** ((1 - eL) * (1 - eF) / (eL - eF)))


def efficient_model(models, theta) -> np.ndarray:
    r"""Index (into ``models``) of the efficient model for each θ: argmax_ℓ S_ℓ(θ); −1 if θ ≤ 0."""
    t = np.asarray(theta, float)
    S = np.stack([first_best_surplus(m, t) for m in models])
    idx = np.argmax(S, axis=0)
    return np.where(t > 0, idx, -1)


def efficient_quality(models, theta) -> np.ndarray:
    r"""First-best qualities, shape (n_models, ...): :math:`Q_\ell=Q^{FB}_\ell(\theta)` for the
    efficient model, 0 for the other (Proposition 1; costs :math:`c_\ell Q^{1/\eta_\ell}` are
    concave in :math:`q_\ell=Q_\ell^{1/\sigma}`, so mixing models never pays)."""
    t = np.asarray(theta, float)
    idx = efficient_model(models, t)
    return np.stack([np.where(idx == l, first_best_quality(m, t), 0.0) for l, m in enumerate(models)])


def efficient_surplus(models, theta) -> np.ndarray:
    r"""Per-type first-best surplus :math:`\max_\ell S_\ell(\theta)`."""
    t = np.asarray(theta, float)
    return np.max(np.stack([first_best_surplus(m, t) for m in models]), axis=0)


# =====================================================================
# 3. Multi-model monopolist
# =====================================================================
def min_cost(models, V) -> np.ndarray:
    r""":math:`K(V)=\min_\ell c_\ell V^{1/\eta_\ell}`: cheapest way to deliver
    :math:`V=(Q_1^{1/\sigma}+Q_2^{1/\sigma})^\sigma` (concave costs in
    :math:`Q_\ell^{1/\sigma}` ⇒ one model).  Not convex: concave kink at :func:`cost_switch_value`."""
    V = np.asarray(V, float)
    return np.min(np.stack([model_cost(m, V) for m in models]), axis=0)


def cheapest_model(models, V) -> np.ndarray:
    """Index of the model attaining K(V) (−1 where V ≤ 0)."""
    V = np.asarray(V, float)
    idx = np.argmin(np.stack([model_cost(m, V) for m in models]), axis=0)
    return np.where(V > 0, idx, -1)


def cost_switch_value(models) -> float:
    r""":math:`\bar V` where :math:`c_FV^{1/\eta_F}=c_LV^{1/\eta_L}`:
    :math:`\bar V=(c_L/c_F)^{1/(1/\eta_F-1/\eta_L)}`; the higher-η model is cheaper above."""
    F, L = _order_by_eta(models)
    return float((L.c / F.c) ** (1.0 / (1.0 / F.eta - 1.0 / L.eta)))


def monopolist_allocation(models, h) -> tuple[np.ndarray, np.ndarray]:
    r"""Pointwise maximiser of :math:`hV-K(V)`: model :math:`\arg\max_\ell S_\ell(h)`,
    :math:`V=Q^{FB}_\ell(h)`; V = 0 and model −1 where h ≤ 0.

    So the lower-η model serves :math:`0<h<\theta^e` and the other :math:`h>\theta^e`;
    V jumps at :math:`h=\theta^e` (docs/model.md §2.7, derived).  The argmax is
    non-decreasing in h, so with non-decreasing h no ironing is needed.
    """
    h = np.asarray(h, float)
    idx = efficient_model(models, h)
    V = np.zeros_like(h)
    for l, m in enumerate(models):
        V = np.where(idx == l, first_best_quality(m, h), V)
    return V, idx


def monopolist_switch_type(models, dist: TypeDistribution) -> float:
    r"""Type at which the monopolist switches model: :math:`h(\theta)=\theta^e` (brentq).
    Uniform on [0,1]: :math:`(1+\theta^e)/2`.  NaN if outside the support."""
    te = efficient_switch_point(models)
    return _first_root(lambda t: virtual_value(dist, t) - te, *dist.support)


def exclusion_type(dist: TypeDistribution) -> float:
    """Lowest served type: where the *ironed* virtual value turns positive, i.e. the (largest) argmax of the
    revenue θ(1 − F(θ)) over θ_min and the up-crossings of h (θ_min if that is θ_min); NaN if h ≤ 0 throughout.

    Why the revenue: in the quantile z = F(θ), H(z) = ∫_0^z h = θ_min − θ(1 − F(θ)) (d/dθ[θ(1 − F)] = −f·h),
    and the ironed h̄ is the slope of H's convex minorant, which turns positive after H's global minimum --
    the revenue's global maximum.  Its local maxima are θ_min (where h > 0 just above it) and the up-crossings
    of h.  (Profit E[hV − K(V)] over monotone V is at most E[h̄V − K(V)], attained by V*(h̄) -- any K; V*(h̄) = 0
    iff h̄ ≤ 0.)  For a regular h this is its single up-crossing.

    Not the first sign change: a Beta density with p < 1 is infinite at θ_min, so h(θ_min) = θ_min > 0 and
    h < 0 right above it (competition_90_3: the down-crossing 0.0616 instead of 4.95).  Nor 'h > 0 just above
    θ_min, so θ_min': where 1 − p is small h stays positive on a sliver above θ_min -- competition_131_29,
    Beta(0.7886, 4.906) on [0.575, 22.34]: h > 0 on (θ_min, θ_min + 1.2e-4], mass 2.5e-4, then < 0 up to 3.366;
    θ_min's revenue is 0.575 against 1.377 at 3.366, where the exact discrete closed form's ironed φ turns
    positive as N grows (midpoints 3.295, 3.361, 3.365 at N = 200, 2000, 20000)."""
    lo, hi = dist.support
    a = lo + 1e-15 * max(1.0, abs(lo))
    h = lambda x: virtual_value(dist, x)  # noqa: E731
    cands = [float(lo)] if float(h(a)) > 0 else []
    t = np.linspace(a, hi, SCAN_POINTS)
    pos = np.asarray(h(t), float) > 0
    for i in np.nonzero(pos[1:] & ~pos[:-1])[0]:
        cands.append(_bracketed_upcrossing(h, float(t[i]), float(t[i + 1])))
    if not cands:
        return np.nan
    rev = np.array([c * float(dist.sf(c)) for c in cands])
    return float(cands[int(np.flatnonzero(rev >= rev.max())[-1])])


def monopolist_continuous(models, dist: TypeDistribution, theta) -> dict:
    r"""Multi-model monopolist, continuous types with non-decreasing h (docs/model.md §2.7).

    :math:`V(\theta)` from :func:`monopolist_allocation` at :math:`h(\theta)`; transfers
    :math:`t(\theta)=\theta V(\theta)-\int_{\theta_{\min}}^\theta V(s)\,ds`;
    buyer utility :math:`U=\theta V-t`.  Returns V, model, Q (n_models × len θ), t, U.
    """
    t = np.atleast_1d(np.asarray(theta, float))
    V, idx = monopolist_allocation(models, virtual_value(dist, t))
    lo, hi = dist.support
    brk = [exclusion_type(dist), monopolist_switch_type(models, dist), *density_breaks(dist)]
    fV = lambda s: monopolist_allocation(models, virtual_value(dist, s))[0]  # noqa: E731
    U = _cumulative_integral(fV, lo, t, brk)
    Q = np.stack([np.where(idx == l, V, 0.0) for l in range(len(models))])
    return {"theta": t, "V": V, "model": idx, "Q": Q, "t": t * V - U, "U": U}


def monopolist_continuous_summary(models, dist: TypeDistribution) -> dict:
    r"""Profit :math:`E[hV-K(V)]`, consumer surplus :math:`\int(1-F)V\,d\theta`, total
    :math:`E[\theta V-K(V)]` (quadrature, breakpoints at exclusion and switch)."""
    brk = [exclusion_type(dist), monopolist_switch_type(models, dist), *density_breaks(dist)]

    def alloc(s):
        return monopolist_allocation(models, virtual_value(dist, s))[0]

    prof = _expect(dist, lambda s: virtual_value(dist, s) * alloc(s) - min_cost(models, alloc(s)), brk)
    cs = _integrate(lambda s: (1 - dist.cdf(s)) * alloc(s), *dist.support, brk)
    ts = _expect(dist, lambda s: s * alloc(s) - min_cost(models, alloc(s)), brk)
    return {"profit": prof, "consumer_surplus": cs, "total_surplus": ts}


# ---------------------------------------------------- discrete types
def discrete_virtual_values(theta, mass) -> np.ndarray:
    r""":math:`\varphi_k=\theta_k-(\theta_{k+1}-\theta_k)(1-P_k)/p_k`, :math:`\varphi_N=\theta_N` (docs/model.md §2.4)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    # mass above type k as a suffix sum: 1 − cumsum(p) is pure round-off (~1e-16) once the tail
    # is below ~1e-13 (Beta(1, 21) top types: φ off by ~5 %, found by the versions regime)
    tail = np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)
    gap = np.append(np.diff(th), 0.0)
    return th - gap * np.maximum(tail, 0.0) / p


def screening_transfers(theta, V) -> np.ndarray:
    r""":math:`t_1=\theta_1V_1`, :math:`t_k=t_{k-1}+\theta_k(V_k-V_{k-1})` (binding local downward IC, IR of type 1)."""
    th, V = np.asarray(theta, float), np.asarray(V, float)
    return np.cumsum(th * np.diff(np.concatenate([[0.0], V])))


def _block_argmax(S: float, a: dict, models) -> float:
    r"""argmax_{v≥0} :math:`Sv-\sum_\ell a_\ell c_\ell v^{1/\eta_\ell}` (concave): 0 if S ≤ 0, else the
    root of :math:`S=\sum_\ell a_\ell(c_\ell/\eta_\ell)v^{1/\eta_\ell-1}`."""
    if S <= 0:
        return 0.0
    used = [(models[l], w) for l, w in a.items() if w > 0]
    if len(used) == 1:
        m, w = used[0]
        return float(first_best_quality(m, S / w))
    # Bracket: every term rises in v, so at the root each term is ≤ S (v* ≤ min_ℓ of the roots of the
    # terms alone) and the largest is ≥ S/k (v* ≥ min_ℓ of the roots at S/k), k = models used.  The root
    # is taken in x = log v of log(Σ_ℓ a_ℓ c_ℓ/η_ℓ e^((1/η_ℓ−1)x)) = log S, a smooth convex function of x:
    # in v itself the power v^(1/η−1) (exponent ~50 at η = 0.02) is so curved that brentq's steps
    # stalled ("Failed to converge after 100 iterations", versions_100_12 and 100_21, fresh seed 100).
    # (the roots of single terms, first_best_quality(m, S/w) = (η S/(w c))^(η/(1−η)), in logs: a weight
    # w ~ 1e-24 puts a lone term's root beyond double precision)
    k = len(used)
    xh = min(m.eta / (1 - m.eta) * float(np.log(m.eta * S / (w * m.c))) for m, w in used)
    xl = min(m.eta / (1 - m.eta) * float(np.log(m.eta * S / (k * w * m.c))) for m, w in used)
    lo, hi = float(np.exp(xl)), float(np.exp(xh))
    logs = [(np.log(w * m.c / m.eta), 1 / m.eta - 1) for m, w in used]

    def h(x):
        e = np.array([c + d * x for c, d in logs])
        top = float(np.max(e))
        return top + float(np.log(np.sum(np.exp(e - top)))) - float(np.log(S))

    if h(xl) >= 0.0:
        return lo
    if h(xh) <= 0.0:
        return hi
    return float(np.exp(optimize.brentq(h, xl, xh, xtol=ROOT_XTOL, rtol=ROOT_RTOL, maxiter=200)))


def _pava_max(phi, p, assign, models) -> np.ndarray:
    r"""Exact :math:`\max\sum_kp_k[\varphi_kv_k-C_{\ell_k}(v_k)]` s.t. :math:`0\le v_1\le\dots\le v_N`
    for a *fixed* model assignment (concave separable ⇒ pool-adjacent-violators is exact)."""
    blocks = []  # [n_types, S = Σ p φ, {model: Σ p}, v]
    for k in range(len(phi)):
        blk = [1, p[k] * phi[k], {assign[k]: p[k]}, 0.0]
        blk[3] = _block_argmax(blk[1], blk[2], models)
        blocks.append(blk)
        while len(blocks) > 1 and blocks[-2][3] > blocks[-1][3]:
            b2, b1 = blocks.pop(), blocks.pop()
            a = dict(b1[2])
            for l, w in b2[2].items():
                a[l] = a.get(l, 0.0) + w
            S = b1[1] + b2[1]
            blocks.append([b1[0] + b2[0], S, a, _block_argmax(S, a, models)])
    return np.concatenate([np.full(b[0], b[3]) for b in blocks])


def monopolist_discrete(models, theta, mass) -> dict:
    r"""Exact multi-model monopolist for discrete types (docs/model.md §2.7 + 2.4).

    Problem: :math:`\max_V\sum_kp_k[\varphi_kV_k-K(V_k)]`, :math:`0\le V_1\le\dots\le V_N`,
    :math:`K=\min(C_F,C_L)` non-convex (F: lower η).

    Method (exact up to root-finding): at any monotone V the cheaper model is F
    below :math:`\bar V` and L above, so the optimal assignment is a cut-off m
    (types ≤ m on F).  For each m ∈ {0..N} the problem with the assigned convex
    costs :math:`C_{\ell_k}\ge K` is concave and separable with an isotonic
    constraint and is solved exactly by pool-adjacent-violators (a pool solves
    :math:`\sum_{k\in B}p_k\varphi_k=\sum_{k\in B}p_kC'_{\ell_k}(v)`, i.e. ironing with
    mass-weighted φ).  Each sub-value is ≤ the true optimum (K ≤ C_ℓ) and the
    sub-problem of the optimal cut-off attains it, so the best m (scored with the
    true K) is the global optimum.  Brute-force check: :func:`monopolist_discrete_grid`.

    Transfers :func:`screening_transfers`; U = θV − t; profit Σ p(t − K(V)).
    Returns theta, mass, phi, V, model (cheapest at V; −1 if V = 0),
    Q (n_models × N), t, U, profit, consumer_surplus, total_surplus.
    """
    if len(models) != 2:
        raise ValueError("monopolist_discrete handles exactly two models")
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    order = np.argsort(th)
    th, p = th[order], p[order]
    phi = discrete_virtual_values(th, p)
    lo_eta = 0 if models[0].eta <= models[1].eta else 1
    n = len(th)
    best, bestV = -np.inf, None
    for m in range(n + 1):
        assign = [lo_eta if k < m else 1 - lo_eta for k in range(n)]
        V = _pava_max(phi, p, assign, models)
        val = float(np.sum(p * (phi * V - min_cost(models, V))))
        # relative tie (the problem is homogeneous: θ and costs × λ scale every value by λ); the
        # former max(1, |best|) was absolute below 1 (profit 4.8e-4: cut-offs within 2e-10
        # relative tied and the top types were pooled at a wrong V)
        if val > best + GAIN_TOL * (abs(best) if np.isfinite(best) else 1.0):
            best, bestV = val, V
    V = bestV
    t = screening_transfers(th, V)
    idx = cheapest_model(models, V)
    U = th * V - t
    K = min_cost(models, V)
    return {"theta": th, "mass": p, "phi": phi, "V": V, "model": idx,
            "Q": np.stack([np.where(idx == l, V, 0.0) for l in range(len(models))]),
            "t": t, "U": U, "profit": float(np.sum(p * (t - K))),
            "virtual_objective": best,
            "consumer_surplus": float(np.sum(p * U)),
            "total_surplus": float(np.sum(p * (th * V - K)))}


def monopolist_discrete_grid(models, theta, mass, n_grid: int = 20001, v_max: float | None = None) -> dict:
    r"""Brute force for :func:`monopolist_discrete`: dynamic programme on a V grid.

    :math:`B_k(v_j)=p_k[\varphi_kv_j-K(v_j)]+\max_{i\le j}B_{k-1}(v_i)` — the global
    optimum over monotone schedules on the grid (no convexity used).  Default
    grid [0, max_ℓ Q^FB_ℓ(θ_N)] (no pooled φ exceeds θ_N).
    """
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    order = np.argsort(th)
    th, p = th[order], p[order]
    phi = discrete_virtual_values(th, p)
    if v_max is None:
        v_max = max(float(first_best_quality(m, th[-1])) for m in models)
    v = np.linspace(0.0, v_max, n_grid)
    K = min_cost(models, v)
    n = len(th)
    idx = np.arange(n_grid)
    ptr = np.zeros((n, n_grid), dtype=np.int64)  # ptr[k, j]: best v-index of type k-1 given v_k = v_j
    run = np.zeros(n_grid)  # max_{i<=j} B_{k-1}(v_i)
    for k in range(n):
        cand = p[k] * (phi[k] * v - K) + run
        if k < n - 1:
            pm = np.maximum.accumulate(cand)
            ptr[k + 1] = np.maximum.accumulate(np.where(cand == pm, idx, 0))
            run = pm
    j = int(np.argmax(cand))
    V = np.zeros(n)
    for k in range(n - 1, -1, -1):
        V[k] = v[j]
        j = int(ptr[k, j])
    return {"V": V, "value": float(np.max(cand)), "grid_step": v[1] - v[0]}


# =====================================================================
# 4. Leader vs competitive fringe
# =====================================================================
class _LeaderCosts:
    """The leader's exponents and the cost check, shared by :class:`LeaderFringe` and
    :class:`TunedFringe` (both hold sigma, gamma_L, c_L, c_F)."""

    def _check_costs(self):
        if not (self.c_L > 0 and self.c_F > 0):
            raise ValueError("need positive costs")

    @property
    def eta(self) -> float:
        return self.sigma + self.gamma_L

    @property
    def r(self) -> float:
        r"""Exponent r = η/σ > 1: :math:`Q_L^{1/\sigma}=q_L^r`."""
        return self.eta / self.sigma


@dataclass(frozen=True)
class LeaderFringe(_LeaderCosts):
    r"""Leader (γ_L > 0, :math:`C_L=c_LQ_L^{1/(\sigma+\gamma_L)}`) vs a competitive fringe
    (γ_F = 0, :math:`C_F=c_FQ_F^{1/\sigma}`, sold at marginal cost).  docs/model.md §2.7
    assumes :math:`0<c_F<c_L` and :math:`\sigma+\gamma_L<1`."""

    sigma: float
    gamma_L: float
    c_L: float
    c_F: float

    def __post_init__(self):
        if not (0 < self.sigma < 1 and self.gamma_L > 0 and self.sigma + self.gamma_L < 1):
            raise ValueError("need 0 < sigma, gamma_L > 0, sigma + gamma_L < 1")
        self._check_costs()

    @property
    def models(self) -> tuple[ModelCost, ModelCost]:
        """(fringe, leader) as ModelCost, for the efficient / monopolist benchmarks."""
        return (ModelCost(self.c_F, self.sigma, "fringe"), ModelCost(self.c_L, self.eta, "leader"))

    @classmethod
    def from_technologies(cls, leader: Technology, fringe: Technology) -> "LeaderFringe":
        """Aggregate costs from two technologies (same σ; the fringe has no fine-tuning)."""
        if fringe.K != 0 or abs(leader.sigma - fringe.sigma) > 1e-15:
            raise ValueError("fringe must have gamma = 0 and the same sigma as the leader")
        L = model_cost_from_technology(leader)
        return cls(sigma=leader.sigma, gamma_L=L.eta - leader.sigma, c_L=L.c,
                   c_F=model_cost_from_technology(fringe).c)


def fringe_stand_alone(lf: LeaderFringe, theta) -> np.ndarray:
    r""":math:`A(\theta)=(\theta\sigma/c_F)^{1/(1-\sigma)}`: fringe-only first-best :math:`q_F`."""
    t = np.maximum(np.asarray(theta, float), 0.0)
    return (t * lf.sigma / lf.c_F) ** (1 / (1 - lf.sigma))


def limit_quality(lf: LeaderFringe, theta) -> np.ndarray:
    r"""Limit quality :math:`\hat q(\theta)=(\theta\sigma/c_F)^{\sigma/((1-\sigma)(\sigma+\gamma_L))}=A^{1/r}`:
    the buyer tops up with fringe tokens iff :math:`q_L<\hat q` (docs/model.md §2.7)."""
    t = np.maximum(np.asarray(theta, float), 0.0)
    return (t * lf.sigma / lf.c_F) ** (lf.sigma / ((1 - lf.sigma) * lf.eta))


def interior_quality(lf: LeaderFringe, h) -> np.ndarray:
    r""":math:`q^{int}=((\sigma+\gamma_L)h/c_L)^{1/(1-\sigma-\gamma_L)}` (0 for h ≤ 0):
    maximiser of :math:`hq^\eta-c_Lq` (docs/model.md §2.7)."""
    hp = np.maximum(np.asarray(h, float), 0.0)
    return (lf.eta * hp / lf.c_L) ** (1 / (1 - lf.eta))


def leader_tokens(lf: LeaderFringe, q_L) -> np.ndarray:
    r""":math:`a = q_L^r`, the leader item's quality in fringe tokens, +inf where it leaves double range.

    Where q^r overflows it exceeds every stand-alone fringe purchase A(θ) (a double), so the buyer tops up
    nothing there and its quality is q^η (:func:`effective_quality`): the comparisons a < A, the top-up
    (A − a)^+ and min(a, A) stay exact with a = +inf.  competition_92_9 (σ = 0.05, σ + γ_L = 0.947, θ to 36):
    the top item is 1e710 fringe tokens, the stand-alone purchases 0.03 … 13."""
    q = np.maximum(np.asarray(q_L, float), 0.0)
    with np.errstate(over="ignore"):
        return q**lf.r


def effective_quality(lf: LeaderFringe, q_L, q_F) -> np.ndarray:
    r"""The buyer's quality :math:`(q_L^r + q_F)^\sigma` from q_L leader and q_F fringe tokens; :math:`q_L^\eta`
    where q_L^r leaves double range (there q_F = 0, :func:`leader_tokens`)."""
    q = np.maximum(np.asarray(q_L, float), 0.0)
    a = leader_tokens(lf, q)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isfinite(a), (a + q_F) ** lf.sigma, q**lf.eta)


def fringe_topup(lf: LeaderFringe, theta, q_L) -> np.ndarray:
    r"""Buyer's fringe purchase :math:`q_F^*(\theta,q_L)=(A(\theta)-q_L^r)^+`."""
    q = np.maximum(np.asarray(q_L, float), 0.0)
    return np.maximum(fringe_stand_alone(lf, theta) - leader_tokens(lf, q), 0.0)


def buyer_value(lf: LeaderFringe, theta, q_L) -> np.ndarray:
    r""":math:`u(\theta,q_L)=\max_{q_F\ge0}\theta(q_L^r+q_F)^\sigma-c_Fq_F`:

    .. math:: u=\begin{cases}c_F\frac{1-\sigma}{\sigma}A(\theta)+c_Fq_L^r,&q_L<\hat q(\theta)\\
              \theta q_L^{\sigma+\gamma_L},&q_L\ge\hat q(\theta).\end{cases}

    C¹ in q_L; outside option :math:`u(\theta,0)=c_F\frac{1-\sigma}{\sigma}A(\theta)`.
    """
    t = np.asarray(theta, float)
    q = np.maximum(np.asarray(q_L, float), 0.0)
    A = fringe_stand_alone(lf, t)
    a = leader_tokens(lf, q)
    s = lf.sigma
    return np.where(a < A, lf.c_F * (1 - s) / s * A + lf.c_F * np.where(a < A, a, 0.0), t * q**lf.eta)


def outside_option(lf: LeaderFringe, theta) -> np.ndarray:
    r""":math:`u(\theta,0)=(1-\sigma)\theta^{1/(1-\sigma)}(\sigma/c_F)^{\sigma/(1-\sigma)}` (fringe only)."""
    return buyer_value(lf, theta, 0.0)


def buyer_value_theta(lf: LeaderFringe, theta, q_L) -> np.ndarray:
    r""":math:`u_\theta(\theta,q_L)=(q_L^r+q_F^*)^\sigma=\max(A(\theta)^\sigma,q_L^{\sigma+\gamma_L})` (envelope)."""
    q = np.maximum(np.asarray(q_L, float), 0.0)
    return np.maximum(fringe_stand_alone(lf, theta) ** lf.sigma, q**lf.eta)


def buyer_value_q(lf: LeaderFringe, theta, q_L) -> np.ndarray:
    r""":math:`u_q=c_Frq^{r-1}` below q̂, :math:`\theta\eta q^{\eta-1}` above (equal at q̂)."""
    t = np.asarray(theta, float)
    q = np.maximum(np.asarray(q_L, float), 1e-300)
    A = fringe_stand_alone(lf, t)
    return np.where(q**lf.r < A, lf.c_F * lf.r * q ** (lf.r - 1), t * lf.eta * q ** (lf.eta - 1))


def _hazard(dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`(1-F)/f` with its limits where f = 0 at an end of the support: 0 at the top (1 − F
    vanishes faster: Beta(p, q > 1), :math:`(1-F)/f\approx(\theta_{\max}-\theta)/q`), +∞ at the bottom
    (Beta(p > 1, q), 1 − F = 1).  The plain ratio is 0/0 = NaN at the top: the leader's quantity
    came out 0 at θ_max, the schedule 'not monotone' and every continuous comparison was skipped on
    Beta q > 1 scenarios (stranger S8-D2, Beta(2, 5) on [20, 200])."""
    t = np.asarray(theta, float)
    S, f = dist.sf(t), dist.pdf(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, S / np.where(f > 0, f, 1.0), np.where(S > 0, np.inf, 0.0))


def virtual_value(dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`h(\theta)=\theta-(1-F)/f` with the end limits of :func:`_hazard` (θ at a top where f = 0,
    −∞ at a bottom where f = 0)."""
    t = np.asarray(theta, float)
    return t - _hazard(dist, t)


def leader_virtual_objective(lf: LeaderFringe, dist: TypeDistribution, theta, q) -> np.ndarray:
    r"""Leader's pointwise virtual surplus :math:`J=u(\theta,q)-u_\theta(\theta,q)\frac{1-F}{f}-c_Lq`.

    Profit :math:`=E[J(\theta,q(\theta))]-u(\theta_{\min},0)` (IR binds at the bottom only);
    :math:`E[J(\theta,0)]=u(\theta_{\min},0)` by parts, hence profit = E[Δ] (:func:`leader_gain`)."""
    return (buyer_value(lf, theta, q) - buyer_value_theta(lf, theta, q) * _hazard(dist, theta)
            - lf.c_L * np.asarray(q, float))


def leader_gain(lf: LeaderFringe, dist: TypeDistribution, theta, q) -> np.ndarray:
    r"""Gain over selling nothing, :math:`\Delta(\theta,q)=J(\theta,q)-J(\theta,0)`; leader profit
    :math:`=E[\Delta(\theta,q(\theta))]` (module docstring)."""
    t = np.asarray(theta, float)
    qq = np.asarray(q, float)
    # ≥ 0, and exactly 0 up to q̂ (the limit quality itself included): max(A^σ, q̂^η) − A^σ is round-off
    # ~1e-16·A^σ there, which the hazard (1 − F)/f ~ 1e52 at the bottom of a Beta(17, 5.7) turned into a
    # rent of ~1e36, so the limit-priced bottom types came out unserved at every other scan point and the
    # schedule 'not monotone' (competition_122_3: every continuous comparison skipped)
    dut = np.where(qq > limit_quality(lf, t), buyer_value_theta(lf, t, qq) - buyer_value_theta(lf, t, 0.0), 0.0)
    haz = _hazard(dist, t)
    with np.errstate(invalid="ignore"):  # no rent (dut = 0) at an infinite hazard: no rent term
        rent = np.where(dut > 0, dut * haz, 0.0)
    return buyer_value(lf, t, qq) - buyer_value(lf, t, 0.0) - rent - lf.c_L * qq


def leader_quantity(lf: LeaderFringe, dist: TypeDistribution, theta) -> tuple[np.ndarray, np.ndarray]:
    r"""Leader's quantity and region per type (Proposition 4, continuous types).

    Upper candidate :math:`q^u=\max(\hat q,q^{int})` (the maximiser of Δ on
    :math:`[\hat q,\infty)`); sell :math:`q^u` iff :math:`\Delta(\theta,q^u)>0`, else 0.
    Region 0 = fringe only, 1 = limit pricing :math:`\hat q`, 2 = interior :math:`q^{int}`.
    Valid when the resulting schedule is non-decreasing (checked by the tests for
    the examples; :func:`leader_schedule_is_monotone`).
    """
    t = np.asarray(theta, float)
    qh = limit_quality(lf, t)
    qi = interior_quality(lf, virtual_value(dist, t))
    qu = np.maximum(qh, qi)
    sell = leader_gain(lf, dist, t, qu) > GAIN_TOL
    region = np.where(sell, np.where(qi > qh, 2, 1), 0)
    return np.where(sell, qu, 0.0), region


def leader_schedule_is_monotone(lf: LeaderFringe, dist: TypeDistribution, n: int = SCAN_POINTS) -> bool:
    """True if q_L(θ) is non-decreasing on an n-point grid of the support (IC sufficiency), the grid
    holding both sides of every inner breakpoint of a piecewise density (where h jumps: a narrow piece
    between two grid points would otherwise go unseen, stranger17 F8)."""
    t = np.linspace(*dist.support, n)
    if dist.kind == "piecewise":
        b = np.asarray(dist.breakpoints[1:-1], float)
        t = np.unique(np.clip(np.concatenate([t, np.nextafter(b, -np.inf), np.nextafter(b, np.inf)]),
                              *dist.support))
    q, _ = leader_quantity(lf, dist, t)
    return bool(np.all(np.diff(q) >= -MONOTONE_TOL * max(1.0, q.max())))


DENSITY_STEP_RTOL = 1e-12
"""Relative drop of a piecewise density at a breakpoint that :func:`virtual_value_is_increasing` still counts as
no drop: two pieces of equal density m_i/(b_(i+1) − b_i) differ by round-off (~1e-16); a drop of 1e-12 moves h
by 1e-12·(1 − F)/f, below every continuous comparison's tolerance (≥ 1e-6)."""


def virtual_value_is_increasing(dist: TypeDistribution) -> bool:
    r"""Whether :math:`h(\theta)=\theta-(1-F)/f` is non-decreasing on the whole support, decided on the
    distribution's form, not on sample points (stranger17 F8: a grid that put no type in a narrow piece
    [1.118, 1.1419] missed h's drop there and the un-ironed continuous monopolist was used).

    * uniform: h = 2θ − θ_max;
    * piecewise uniform: slope 2 inside each piece; at an inner breakpoint b (1 − F(b) > 0), h jumps by
      (1 − F(b))(1/f_left − 1/f_right): non-decreasing iff no density drops (a density step up is fine);
    * Beta(p, q): p ≥ 1 gives an increasing hazard f/(1 − F) (log-concave density for q ≥ 1, an increasing
      density for q < 1), so h' ≥ 1; p < 1 has f ~ (θ − θ_min)^(p−1), (1 − F)/f ~ (θ − θ_min)^(1−p) with an
      infinite slope at θ_min, so h falls just above θ_min;
    * discrete types: no density (False)."""
    if dist.kind == "uniform":
        return True
    if dist.kind == "beta":
        return bool(dist.p >= 1)
    if dist.kind == "piecewise":
        b = np.asarray(dist.breakpoints, float)
        m = np.asarray(dist.masses, float)
        dens = m / np.diff(b)
        # every mass is positive (scenario check), so 1 − F > 0 at each inner breakpoint
        return bool(np.all(dens[1:] >= dens[:-1] * (1 - DENSITY_STEP_RTOL)))
    return False


def theta_lo(lf: LeaderFringe) -> float:
    r""":math:`\theta_{lo}=\frac{c_F}{\sigma}\big(\frac{c_L}{c_F}\big)^{(1-\sigma)(\sigma+\gamma_L)/\gamma_L}`
    (docs/model.md §2.7, derived; reproduced): root of :math:`\Delta(\theta,\hat q)=c_F\hat q^r-c_L\hat q`,
    i.e. :math:`\hat q^{\gamma_L/\sigma}=c_L/c_F`.  Independent of the distribution."""
    s, g = lf.sigma, lf.gamma_L
    return lf.c_F / s * (lf.c_L / lf.c_F) ** ((1 - s) * (s + g) / g)


def _interior_excess(lf: LeaderFringe, dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`g(\theta)=\eta h(\theta)-c_L\hat q(\theta)^{1-\eta}`: > 0 iff :math:`q^{int}(\theta)>\hat q(\theta)`."""
    return lf.eta * virtual_value(dist, theta) - lf.c_L * limit_quality(lf, theta) ** (1 - lf.eta)


def theta_hi(lf: LeaderFringe, dist: TypeDistribution) -> float:
    r"""θ_hi: where :math:`q^{int}` rises above :math:`\hat q`, i.e. an up-crossing of
    :math:`g=\eta h-c_L\hat q^{1-\eta}` (docs/model.md §2.7) -- the one that belongs to the
    leader's entry at θ_lo.  With :math:`a=\theta_{lo}` clipped to the support:

    * g(a) ≤ 0 (the middle region is non-empty, :func:`middle_region_nonempty_spec`): the
      first up-crossing on [a, θ_max], the first interior type after limit pricing began;
    * g(a) > 0 (empty middle): the lower end of the stretch of g > 0 that holds a (the last
      up-crossing on [θ_min, a]); NaN if g > 0 on all of it.

    NaN if there is no such crossing.  When :math:`q^{int}/\hat q` is increasing (uniform,
    regular h) g has one root and this is it.  A non-monotone h has more: competition_91_9's
    density spike (mass 0.40 on [0.7917, 0.7991]) keeps h ≈ θ there, g > 0 on the spike and
    g < 0 after it, and the first sign change, 0.7991, was taken for θ_hi, below θ_lo = 0.989
    (the spike's types buy nothing: Δ(θ, q^int) < 0 there); the region boundary is 1.49."""
    lo, hi = dist.support
    a = min(max(theta_lo(lf), lo), hi)
    g = lambda t: _interior_excess(lf, dist, t)  # noqa: E731
    if float(g(a)) <= 0:
        return _first_upcrossing(g, a, hi) if a < hi else np.nan
    return _last_upcrossing(g, lo, a)


def middle_region_nonempty_spec(lf: LeaderFringe, dist: TypeDistribution) -> bool:
    r"""docs/model.md's criterion :math:`h(\theta_{lo})/\theta_{lo}<\sigma/(\sigma+\gamma_L)`
    (⇔ :math:`q^{int}(\theta_{lo})<\hat q(\theta_{lo})`, since :math:`\hat q(\theta_{lo})^{1-\eta}=\sigma\theta_{lo}/c_L`).
    Sufficient and necessary when :math:`q^{int}/\hat q` is increasing (true for the
    examples) and θ_lo lies inside the support.  If θ_lo ≤ θ_min, every type gains from
    limit pricing (:math:`\Delta(\theta,\hat q)>0` for θ > θ_lo), so the middle region is
    [θ_min, θ_hi], non-empty iff :math:`q^{int}(\theta_{\min})<\hat q(\theta_{\min})` (the same
    criterion at θ_min); if θ_lo ≥ θ_max no type limit-prices."""
    tl = theta_lo(lf)
    lo, hi = dist.support
    if tl >= hi:
        return False
    if tl <= lo:  # h undefined below the support: the criterion at the bottom type
        return bool(interior_quality(lf, virtual_value(dist, lo)) < limit_quality(lf, lo))
    return bool(virtual_value(dist, tl) / tl < lf.sigma / lf.eta)


def interior_gain(lf: LeaderFringe, dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`\Delta(\theta,q^{int})=(1-\eta)hq^{int\,\eta}-(hA^\sigma-c_FA)` (valid where :math:`q^{int}\ge\hat q`)."""
    t = np.asarray(theta, float)
    return leader_gain(lf, dist, t, interior_quality(lf, virtual_value(dist, t)))


def entry_gain(lf: LeaderFringe, dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`G(\theta)=\Delta(\theta,\max(\hat q,q^{int}))`: the best gain from selling a positive
    quantity (continuous in θ); the leader serves θ iff G(θ) > 0."""
    t = np.asarray(theta, float)
    qu = np.maximum(limit_quality(lf, t), interior_quality(lf, virtual_value(dist, t)))
    return leader_gain(lf, dist, t, qu)


def entry_type(lf: LeaderFringe, dist: TypeDistribution) -> float:
    """First type served by the leader: where :func:`entry_gain` first turns positive (NaN if never)."""
    return _first_upcrossing(lambda t: entry_gain(lf, dist, t), *dist.support)


def theta_star(lf: LeaderFringe, dist: TypeDistribution) -> float:
    r"""θ*: where q_L jumps from 0 to :math:`q^{int}` (middle region empty) — the entry type
    (:func:`entry_type`, root of :math:`\Delta(\theta,q^{int}(\theta))=0`) when
    :math:`q^{int}>\hat q` there; NaN when the leader enters by limit pricing (at θ_lo)."""
    te = entry_type(lf, dist)
    if not np.isfinite(te):
        return np.nan
    # compare just right of te: when the entry is at an upward jump of h (a piecewise density's
    # breakpoint, where G jumps from < 0 to > 0) h(te) is the left limit, q^int(te) < q̂(te), and θ*
    # came out NaN although the leader enters there on q^int (competition_hyp, session 6: θ* = 0.44891)
    tr = min(float(te) + ROOT_XTOL + 1e-9 * abs(float(te)), dist.support[1])
    qi = interior_quality(lf, virtual_value(dist, tr))
    return float(te) if qi > limit_quality(lf, tr) else np.nan


def leader_thresholds(lf: LeaderFringe, dist: TypeDistribution) -> dict:
    r"""Thresholds of Proposition 4 on the support of ``dist``.

    Keys: ``theta_lo``, ``theta_hi`` (crossing q^int = q̂; a region boundary only when the
    middle region is non-empty), ``theta_star`` (NaN unless the middle region is empty),
    ``middle_nonempty`` (docs/model.md criterion), ``entry`` (first type served by the
    leader: θ_lo if the middle region is non-empty, else θ*), ``interior_from``
    (first type on q^int: θ_hi, else θ*).
    """
    tl, th = theta_lo(lf), theta_hi(lf, dist)
    mid = middle_region_nonempty_spec(lf, dist)
    ts = np.nan if mid else theta_star(lf, dist)
    return {"theta_lo": tl, "theta_hi": th, "theta_star": ts, "middle_nonempty": mid,
            "entry": tl if mid else ts, "interior_from": th if mid else ts}


def region_boundaries(lf: LeaderFringe, dist: TypeDistribution, n: int = SCAN_POINTS) -> list[tuple[float, int, int]]:
    """Region changes of :func:`leader_quantity` on an n-point grid: (midpoint, from, to)."""
    t = np.linspace(*dist.support, n)
    _, reg = leader_quantity(lf, dist, t)
    i = np.nonzero(np.diff(reg))[0]
    return [(0.5 * (t[j] + t[j + 1]), int(reg[j]), int(reg[j + 1])) for j in i]


def _rent_density(lf: LeaderFringe, dist: TypeDistribution, theta) -> np.ndarray:
    r""":math:`R'(\theta)=u_\theta(\theta,q(\theta))-u_\theta(\theta,0)=(q^\eta-A^\sigma)^+`."""
    q, _ = leader_quantity(lf, dist, theta)
    return buyer_value_theta(lf, theta, q) - buyer_value_theta(lf, theta, 0.0)


def density_breaks(dist: TypeDistribution) -> list[float]:
    """Inner breakpoints of a piecewise density: h jumps there, and with it q^int, V and the rent
    density, so quadrature pieces must end there (competition_91_9: a Gauss–Legendre piece across
    the jump at 1.6729 left the continuous U 6e-4 (1e-5 relative) off)."""
    return list(dist.breakpoints[1:-1]) if dist.kind == "piecewise" else []


def _breaks(lf, dist) -> list[float]:
    d = leader_thresholds(lf, dist)
    return [d["theta_lo"], d["theta_hi"], d["theta_star"], *density_breaks(dist)]


def leader_continuous(lf: LeaderFringe, dist: TypeDistribution, theta) -> dict:
    r"""Leader–fringe outcome per type (continuous types).

    Net rent :math:`R(\theta)=\int_{\theta_{\min}}^\theta(q(s)^\eta-A(s)^\sigma)^+ds` (zero in
    regions 0 and 1: limit pricing extracts everything above the outside option);
    buyer utility :math:`U=u(\theta,0)+R`; payment to the leader
    :math:`T=u(\theta,q)-U` (region 1: :math:`T=c_F\hat q^r`, the fringe cost of the
    same quality); fringe quantity :math:`q_F^*(\theta,q)`.
    """
    t = np.atleast_1d(np.asarray(theta, float))
    q, reg = leader_quantity(lf, dist, t)
    R = _cumulative_integral(lambda s: _rent_density(lf, dist, s), dist.support[0], t, _breaks(lf, dist))
    U = outside_option(lf, t) + R
    return {"theta": t, "q_L": q, "region": reg, "Q_L": q**lf.eta, "q_F": fringe_topup(lf, t, q),
            "T": buyer_value(lf, t, q) - U, "U": U, "rent": R, "u0": outside_option(lf, t)}


def leader_summary(lf: LeaderFringe, dist: TypeDistribution) -> dict:
    r"""Expected leader profit :math:`E[\Delta(\theta,q(\theta))]`, consumer surplus net of
    the outside option :math:`E[R]=\int(1-F)R'\,d\theta`, total consumer surplus
    :math:`E[u(\theta,0)]+E[R]`, fringe sales :math:`E[c_Fq_F]` (fringe profit 0) and
    total surplus :math:`E[\theta(q^r+q_F)^\sigma-c_Lq-c_Fq_F]`."""
    brk = _breaks(lf, dist)

    def q_of(s):
        return leader_quantity(lf, dist, s)[0]

    prof = _expect(dist, lambda s: leader_gain(lf, dist, s, q_of(s)), brk)
    net = _integrate(lambda s: (1 - dist.cdf(s)) * _rent_density(lf, dist, s), *dist.support, brk)
    u0 = _expect(dist, lambda s: outside_option(lf, s), brk)

    def total(s):
        q = q_of(s)
        qf = fringe_topup(lf, s, q)
        return s * effective_quality(lf, q, qf) - lf.c_L * q - lf.c_F * qf

    return {"profit": prof, "consumer_surplus_net": net, "consumer_surplus": u0 + net,
            "fringe_sales": _expect(dist, lambda s: lf.c_F * fringe_topup(lf, s, q_of(s)), brk),
            "total_surplus": _expect(dist, total, brk)}


# ---------------------------------------------------- discrete types
def _shortfall_ratio(sigma: float, eps) -> np.ndarray:
    r""":math:`\varphi_\sigma(\varepsilon)=\varepsilon-((1+\varepsilon)^\sigma-1)/\sigma\ge0` for ε ≥ 0,
    without cancellation: ~(1−σ)ε²/2 as ε → 0, where the direct form loses ~log10(1/ε) digits to
    round-off.  Series below :data:`SHORTFALL_SERIES` (terms fall by a factor ≤ ε, 10 of them: ~1e-30
    relative), ε − expm1(σ·log1p ε)/σ above (relative round-off ≲ 4·eps/((1−σ)ε) ≤ 1e-12)."""
    e = np.maximum(np.asarray(eps, float), 0.0)
    small = e < SHORTFALL_SERIES
    es = np.where(small, e, 0.0)
    term = 0.5 * (1 - sigma) * es**2
    out = term.copy()
    for n in range(2, 12):  # c_(n+1) = c_n (σ − n)/(n + 1), c_2 = (1 − σ)/2
        term = term * (sigma - n) / (n + 1) * es
        out = out + term
    with np.errstate(over="ignore", invalid="ignore"):
        big = e - np.expm1(sigma * np.log1p(e)) / sigma
    return np.where(small, out, big)


SHORTFALL_SERIES = 1e-3
"""ε below which :func:`_shortfall_ratio` sums its Taylor series."""


def _shortfall(lf: LeaderFringe, theta, A, a) -> np.ndarray:
    r""":math:`\psi(\theta,a)=c_Fa-D(\theta,q)\ge0`, :math:`a=q^r`: what a buyer who takes leader tokens
    a above its stand-alone purchase A = A(θ) gives up against a fringe-token price c_F
    (0 for a ≤ A, where it tops up to A).  With θσA^(σ−1) = c_F:
    :math:`\psi=c_FA\,\varphi_\sigma(a/A-1)` (:func:`_shortfall_ratio`); where A = 0 (θ = 0, or A
    below the smallest double) u0 = 0 and ψ = c_F a − θa^σ."""
    t, A, a = (np.asarray(v, float) for v in (theta, A, a))
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(A > 0, a / np.where(A > 0, A, 1.0) - 1.0, 0.0)
        out = np.where(A > 0, lf.c_F * A * _shortfall_ratio(lf.sigma, eps),
                       lf.c_F * a - np.maximum(t, 0.0) * a**lf.sigma)
    return np.where(a > A, out, 0.0)


def _rent_step(lf: LeaderFringe, theta_k: float, theta_next: float, q) -> np.ndarray:
    r""":math:`E_k(q)=D(\theta_{k+1},q)-D(\theta_k,q)=\psi(\theta_k,a)-\psi(\theta_{k+1},a)\ge0`, the
    information rent one item q leaves type k+1 over type k, without the cancellation of the
    difference of two utilities: 0 for a ≤ A_k; ψ(θ_k, a) on (A_k, A_(k+1)]; above,
    :math:`\psi(\theta_k,A_{k+1})+(\theta_{k+1}-\theta_k)(a^\sigma-A_{k+1}^\sigma)` (both terms ≥ 0).
    It is multiplied by ρ_k = (1 − P_k)/p_k, ~1e28 for the light low types of a Beta(17, 5.7)
    (competition_122_3): there the direct difference of u's, round-off ~1e-16 of u, made Δ_k
    round-off of ~1e12 (1.7e7 at θ_1, 0 at θ_2…θ_4), the pointwise schedule came out
    'non-monotone' (q = 0, 2.32, 0, 0, 0, 2.46, …) and the ironing DP fitted that noise."""
    q = np.maximum(np.asarray(q, float), 0.0)
    a = leader_tokens(lf, q)
    Ak, An = fringe_stand_alone(lf, theta_k), fringe_stand_alone(lf, theta_next)
    mid = _shortfall(lf, theta_k, Ak, np.minimum(a, An))
    above = np.where(a > An, (theta_next - theta_k) * (effective_quality(lf, q, 0.0) - An**lf.sigma), 0.0)
    return mid + np.maximum(above, 0.0)


def leader_discrete_gain(lf: LeaderFringe, theta_k: float, theta_next: float, rho: float, q) -> np.ndarray:
    r"""Discrete virtual gain of type k: with :math:`D(\theta,q)=u(\theta,q)-u(\theta,0)`,

    .. math:: \Delta_k(q)=(1+\rho_k)D(\theta_k,q)-\rho_kD(\theta_{k+1},q)-c_Lq,\qquad
              \rho_k=(1-P_k)/p_k\ (\rho_N=0),

    from :math:`\sum_kp_kT_k` with :math:`T_k=T_{k-1}+u(\theta_k,q_k)-u(\theta_k,q_{k-1})`,
    :math:`q_0=0`, :math:`T_0=0`.  Above :math:`\hat q(\theta_{k+1})` it is
    :math:`\varphi_kq^\eta-c_Lq+\text{const}` with the φ of docs/model.md §2.4.
    Evaluated as :math:`D(\theta_k,q)-c_Lq-\rho_kE_k(q)` with the rent step E_k of
    :func:`_rent_step` (no difference of utilities multiplied by ρ_k).
    """
    q = np.asarray(q, float)
    g = buyer_value(lf, theta_k, q) - outside_option(lf, theta_k) - lf.c_L * q
    if rho > 0:
        g = g - rho * _rent_step(lf, theta_k, theta_next, q)
    return g


def _leader_discrete_argmax(lf: LeaderFringe, tk: float, tn: float, rho: float) -> tuple[float, int]:
    """Exact argmax of Δ_k over q ≥ 0: Δ_k is convex on [0, q̂_k] (so 0 or q̂_k) and
    concave and C¹ on [q̂_k, ∞) (pieces (1+ρ)θη q^(η−1) − ρ c_F r q^(r−1) − c_L on
    [q̂_k, q̂_{k+1}] and φ η q^(η−1) − c_L above, equal at q̂_{k+1})."""
    qh = float(limit_quality(lf, tk))
    qn = float(limit_quality(lf, tn)) if rho > 0 else np.inf
    phi = tk - rho * (tn - tk) if rho > 0 else tk

    Ak = float(fringe_stand_alone(lf, tk))

    def dgain(q):
        if q < qn:  # c_F r q^(r−1)·[1 − (1+ρ)(1 − (a/A_k)^(σ−1))] − c_L: ρ multiplies a term that
            # vanishes at q̂_k, formed with expm1/log1p, not as (1+ρ)θηq^(η−1) − ρc_F r q^(r−1) (ρ ~ 1e28
            # at competition_122_3's light low types: that difference was round-off of ~1e12)
            dphi = -np.expm1((lf.sigma - 1) * np.log1p(q**lf.r / Ak - 1)) if Ak > 0 else 1.0
            return lf.c_F * lf.r * q ** (lf.r - 1) * (1 - (1 + rho) * dphi) - lf.c_L
        return (1 + rho) * tk * lf.eta * q ** (lf.eta - 1) - rho * tn * lf.eta * q ** (lf.eta - 1) - lf.c_L

    if qh <= 0:
        qc = 0.0
    elif dgain(qh) <= 0:
        qc = qh
    elif not np.isfinite(qn) or dgain(qn) >= 0:
        qc = max(float(interior_quality(lf, phi)), qh if not np.isfinite(qn) else qn)
    else:
        qc = optimize.brentq(dgain, qh, qn, xtol=ROOT_XTOL * qn, rtol=ROOT_RTOL)
    cands = [(0.0, 0), (qh, 1), (qc, 2 if (qc >= qn or (not np.isfinite(qn) and qc > qh)) else 1)]
    vals = [float(leader_discrete_gain(lf, tk, tn, rho, c)) for c, _ in cands]
    best = 0
    for i in (1, 2):
        if vals[i] > vals[best] + GAIN_TOL:
            best = i
    return cands[best]


def _mass_above(p) -> np.ndarray:
    r""":math:`1-P_k=\sum_{j>k}p_j` as suffix sums (as in :func:`discrete_virtual_values`).  1 − cumsum(p)
    is round-off (~1e-16) once the tail is below ~1e-13: competition_81_0 (Beta(0.73, 29.3)) had
    ρ_k = (1 − P_k)/p_k wrong by more than 1e-3 on the top 22 of 56 types (θ > 1.41, p_k ≤ 1.3e-12) and
    on 570 of 1408; there the pointwise schedule came out non-monotone and the ironing DP pooled every
    type above θ ≈ 1.89 at q = 4.68e12 (continuous q 1.5e14 … 4.2e15)."""
    p = np.asarray(p, float)
    return np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)


def leader_discrete(lf: LeaderFringe, theta, mass, allow_nonmonotone: bool = False) -> dict:
    r"""Exact leader menu for discrete types θ_1<…<θ_N, masses p_k (what an N-type NLP
    with an explicit fringe top-up should reproduce).

    q_k maximises :func:`leader_discrete_gain` (candidates 0, :math:`\hat q(\theta_k)`, or the
    concave maximiser above :math:`\hat q(\theta_k)`); if the schedule is non-decreasing it
    solves the full problem (u has increasing differences: :math:`u_\theta` is non-decreasing
    in q), otherwise ironing would be needed and a ValueError is raised unless
    ``allow_nonmonotone``.  Transfers from the binding adjacent downward IC:
    :math:`T_k=T_{k-1}+u(\theta_k,q_k)-u(\theta_k,q_{k-1})` with :math:`q_0=T_0=0`
    (IR of type 1 binds: :math:`T_1=u(\theta_1,q_1)-u(\theta_1,0)`).

    Regions: 0 = no leader sale; 1 = limit-pricing band :math:`\hat q(\theta_k)\le q_k<\hat q(\theta_{k+1})`
    (type k buys no fringe tokens but type k+1 would; in the discrete problem q_k may lie
    strictly inside this band, converging to :math:`\hat q` as the grid refines; for the top
    type: :math:`q_N=\hat q(\theta_N)`); 2 = interior :math:`q_k=q^{int}(\varphi_k)\ge\hat q(\theta_{k+1})`.

    Returns theta, mass, q_L, Q_L, region,
    T, U, u0, rent (U − u0), q_F, profit, consumer_surplus, consumer_surplus_net,
    total_surplus, virtual_objective (Σ p_k Δ_k(q_k), equal to profit).
    """
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    order = np.argsort(th)
    th, p = th[order], p[order]
    n = len(th)
    tail = _mass_above(p)
    q, reg, gains = np.zeros(n), np.zeros(n, dtype=int), np.zeros(n)
    for k in range(n):
        rho = tail[k] / p[k] if k < n - 1 else 0.0
        tn = th[k + 1] if k < n - 1 else th[k]
        q[k], reg[k] = _leader_discrete_argmax(lf, th[k], tn, rho)
        gains[k] = float(leader_discrete_gain(lf, th[k], tn, rho, q[k]))
    if not allow_nonmonotone and np.any(np.diff(q) < -MONOTONE_TOL * max(1.0, q.max())):
        raise ValueError("pointwise leader schedule is not monotone: ironing needed")
    return _leader_menu(lf, th, p, q, reg, float(np.sum(p * gains)))


def _leader_menu(lf: LeaderFringe, th, p, q, reg, virtual_objective: float, **extra) -> dict:
    """The discrete leader menu of tokens q (increasing in θ): prices from the
    binding local downward IC chain, T_k = Σ_{j≤k} [v(θ_j, q_j) − v(θ_j, q_{j−1})]
    with v the buyer's value of leader tokens plus the best fringe top-up, and
    the surplus summaries."""
    qprev = np.concatenate([[0.0], q[:-1]])
    T = np.cumsum(buyer_value(lf, th, q) - buyer_value(lf, th, qprev))
    U = buyer_value(lf, th, q) - T
    u0 = outside_option(lf, th)
    qf = fringe_topup(lf, th, q)
    total = th * effective_quality(lf, q, qf) - lf.c_L * q - lf.c_F * qf
    return {"theta": th, "mass": p, "q_L": q, "Q_L": q**lf.eta, "region": reg, "T": T, "U": U,
            "u0": u0, "rent": U - u0, "q_F": qf,
            "profit": float(np.sum(p * (T - lf.c_L * q))),
            "virtual_objective": virtual_objective,
            "consumer_surplus": float(np.sum(p * U)),
            "consumer_surplus_net": float(np.sum(p * (U - u0))),
            "total_surplus": float(np.sum(p * total)), **extra}


IRON_GRID = 4001
"""Grid points of the dynamic programme that finds the pooled blocks of an ironed
leader schedule (:func:`leader_discrete_monotone`); the block values are then
maximised exactly, so the grid only has to resolve *which* types pool."""


def _iron_block_argmax(gain_sum, lo: float, hi: float, n: int = 2001) -> float:
    """argmax of a 1-D function on [lo, hi]: dense sampling, then a bounded Brent polish
    around the best sample (the block gain is piecewise smooth: convex below the
    types' limit qualities, concave above)."""
    if hi <= lo:
        return float(lo)
    # linear and geometric samples: a block's q can be ~1e-4 of its upper neighbour's (competition_72_4)
    v = np.unique(np.concatenate([np.linspace(lo, hi, n), np.geomspace(max(lo, 1e-12 * hi, 1e-300), hi, n)]))
    n = len(v)
    g = gain_sum(v)
    i = int(np.argmax(g))
    a, b = v[max(i - 1, 0)], v[min(i + 1, n - 1)]
    r = optimize.minimize_scalar(lambda x: -float(gain_sum(np.array([x]))[0]), bounds=(a, b), method="bounded",
                                 options={"xatol": ROOT_XTOL * max(abs(b), 1e-300)})
    best = float(r.x) if -r.fun >= g[i] else float(v[i])
    for e in (lo, hi):  # the ends of the interval (a block bound by a neighbour)
        if float(gain_sum(np.array([e]))[0]) > float(gain_sum(np.array([best]))[0]):
            best = float(e)
    return best


def leader_discrete_monotone(lf: LeaderFringe, theta, mass, grid: int = IRON_GRID) -> dict:
    r"""Exact leader menu for discrete types *with* the monotonicity constraint (ironing).

    For any non-decreasing q with the adjacent downward IC binding (which is
    optimal and, u having increasing differences, implies every IC/IR),
    profit = Σ_k p_kΔ_k(q_k) (:func:`leader_discrete_gain`): separable.  So the
    leader solves max Σ_k G_k(q_k), G_k = p_kΔ_k, over non-decreasing q.  When
    the pointwise maximisers (:func:`leader_discrete`) are non-decreasing they
    solve it; otherwise (e.g. a density spike: non-monotone discrete virtual
    values) the pointwise schedule is not IC and its profit is an infeasible
    upper bound.  Then: a dynamic programme over ``grid`` values of q
    (F_k(v) = G_k(v) + max_{v'≤v} F_{k−1}(v'), exact on the grid) finds which
    types pool; each pooled block's common q is then maximised exactly on the
    interval left by its neighbours (:func:`_iron_block_argmax`, 3 sweeps).  G_k is
    not concave (0 is always a local optimum), so this is a global search on
    the grid, not PAVA.  Returns the keys of :func:`leader_discrete` plus
    ``ironed`` (bool) and ``blocks`` (list of (first, last) type indices)."""
    ref = leader_discrete(lf, theta, mass, allow_nonmonotone=True)
    q0 = ref["q_L"]
    if not np.any(np.diff(q0) < -MONOTONE_TOL * max(1.0, float(q0.max()))):
        return {**ref, "ironed": False, "blocks": [(k, k) for k in range(len(q0))]}
    th, p = ref["theta"], ref["mass"]
    n = len(th)
    tail = _mass_above(p)
    rho = np.array([tail[k] / p[k] if k < n - 1 else 0.0 for k in range(n)])
    tn = np.append(th[1:], th[-1])

    def G(k, v):
        return p[k] * leader_discrete_gain(lf, th[k], tn[k], rho[k], v)

    vmax = 1.05 * float(np.max(q0))
    # a linear and a geometric grid: the served types' q can span many decades (q ∝ h^(1/(1−η))), and a
    # linear grid of step vmax/grid cannot tell which of them pool (competition_72_4: step 4e3, the
    # pooled q ~ 900)
    pos = q0[q0 > 0]
    geo = np.geomspace(1e-3 * float(pos.min()), vmax, grid) if len(pos) else np.zeros(0)
    vals = np.unique(np.concatenate([np.linspace(0.0, vmax, grid), geo, q0]))
    F = np.empty((n, len(vals)))
    arg = np.empty((n, len(vals)), dtype=int)
    prev = np.zeros(len(vals))
    prev_arg = np.arange(len(vals))
    for k in range(n):
        F[k] = G(k, vals) + prev
        arg[k] = prev_arg
        # running max over v' ≤ v for the next type, with its argmax
        cm = np.maximum.accumulate(F[k])
        idx = np.arange(len(vals))
        last = np.where(F[k] == cm, idx, 0)
        prev, prev_arg = cm, np.maximum.accumulate(last)
    j = int(np.argmax(F[-1]))
    choice = np.empty(n, dtype=int)
    for k in range(n - 1, -1, -1):
        choice[k] = j
        j = arg[k][j]
    q = vals[choice]
    blocks, i = [], 0
    while i < n:
        e = i
        while e + 1 < n and choice[e + 1] == choice[i]:
            e += 1
        blocks.append((i, e))
        i = e + 1
    memo = {}

    def block_value(i, e, lo, hi):
        if i == e and lo <= q0[i] <= hi:  # a type on its own: its exact pointwise maximiser
            return float(q0[i])
        key = (i, e, float(lo), float(hi))
        if key not in memo:  # pooled: argmax to ~sqrt(eps) relative (a smooth maximum is flat)
            memo[key] = _iron_block_argmax(lambda x: sum(G(k, x) for k in range(i, e + 1)), lo, hi)
        return memo[key]

    def sweeps(blocks, q):
        for _ in range(3):  # exact block values, each within its neighbours' values
            for b, (i, e) in enumerate(blocks):
                lo = q[blocks[b - 1][1]] if b > 0 else 0.0
                hi = q[blocks[b + 1][0]] if b + 1 < len(blocks) else vmax
                q[i:e + 1] = block_value(i, e, lo, hi)
        return q

    def total(q):
        return float(sum(G(k, np.array([q[k]]))[0] for k in range(n)))

    q = sweeps(blocks, q)
    # local search over the partition: split a pooled block, or merge a pooled block with a neighbour,
    # when the exact block values then earn more.  The DP's grid decides the partition only to its
    # resolution; two partitions can differ by ~1e-7 of the profit (competition_72_4: {5–7} pooled at
    # q = 875 vs {5}, {6, 7} at 830 / 920, which the NLP found: +1.7e-7)
    best = total(q)
    for _ in range(4 * n):
        cands = []
        for b, (i, e) in enumerate(blocks):
            if e > i and q[i] > 0:  # a pooled block the leader serves (unserved types: 0 is exact)
                cands += [blocks[:b] + [(i, m), (m + 1, e)] + blocks[b + 1:] for m in range(i, e)]
                if b > 0:
                    cands.append(blocks[:b - 1] + [(blocks[b - 1][0], e)] + blocks[b + 1:])
                if b + 1 < len(blocks):
                    cands.append(blocks[:b] + [(i, blocks[b + 1][1])] + blocks[b + 2:])
        improved = False
        for cb in cands:
            qc = q.copy()
            for i, e in cb:
                qc[i:e + 1] = np.max(q[i:e + 1]) if e > i else q[i]
            qc = sweeps(cb, np.maximum.accumulate(qc))
            if np.all(np.diff(qc) >= 0) and total(qc) > best + 1e-14 * max(abs(best), 1e-300):
                blocks, q, best, improved = cb, qc, total(qc), True
                break
        if not improved:
            break
    A = fringe_stand_alone(lf, th)
    a = leader_tokens(lf, q)
    limit = np.where(np.arange(n) < n - 1, a < np.append(A[1:], np.nan), a <= A * (1 + 1e-12))
    reg = np.where(q > 0, np.where(limit, 1, 2), 0)
    gains = np.array([float(G(k, np.array([q[k]]))[0]) for k in range(n)])
    return _leader_menu(lf, th, p, q, reg, float(np.sum(gains)), ironed=True, blocks=blocks)


def menu_ic_violation(lf: LeaderFringe, theta, q, T) -> float:
    r"""Worst IC/IR violation of a leader menu (q_l, T_l) for types θ (numpy audit):
    :math:`\max_{k,l}[u(\theta_k,q_l)-T_l]-U_k` and :math:`u(\theta_k,0)-U_k` (≤ 0 if fine)."""
    th, q, T = (np.asarray(v, float) for v in (theta, q, T))
    own = buyer_value(lf, th, q) - T
    dev = buyer_value(lf, th[:, None], q[None, :]) - T[None, :]
    return float(max(np.max(dev - own[:, None]), np.max(outside_option(lf, th) - own)))


# ---------------------------------------------------- examples
LEADER_FRINGE_EXAMPLES: dict[str, dict] = {
    # h(θ_lo)/θ_lo ≈ −0.115 < σ/η ≈ 0.714: fringe only on [0, θ_lo ≈ 0.4729),
    # limit pricing q̂ on (θ_lo, θ_hi ≈ 0.6998), interior q^int above.
    "three_regions": {"lf": LeaderFringe(sigma=0.5, gamma_L=0.2, c_L=0.2, c_F=0.16), "low": 0.0, "high": 1.0},
    # h(θ_lo)/θ_lo ≈ 0.772 ≥ σ/η = 0.625 (θ_lo ≈ 0.8143): middle region empty,
    # q_L jumps from 0 to q^int at θ* ≈ 0.7790 (q^int = q̂ already at ≈ 0.7492).
    "empty_middle": {"lf": LeaderFringe(sigma=0.5, gamma_L=0.3, c_L=0.3, c_F=0.12), "low": 0.0, "high": 1.0},
}
"""Two uniform examples for Proposition 4 (region structure asserted by the tests)."""


def example(name: str) -> tuple[LeaderFringe, TypeDistribution]:
    """(LeaderFringe, uniform TypeDistribution) of :data:`LEADER_FRINGE_EXAMPLES`."""
    e = LEADER_FRINGE_EXAMPLES[name]
    return e["lf"], TypeDistribution("uniform", low=e["low"], high=e["high"])


# =====================================================================
# 5. Welfare comparison
# =====================================================================
def welfare_comparison(lf: LeaderFringe, dist: TypeDistribution,
                       parts=("efficient", "monopolist", "leader_fringe")) -> dict:
    r"""Profit, consumer surplus, total surplus (continuous types, quadrature) of

    * ``efficient``: both models priced at marginal cost, each type on its efficient
      model (profit 0, consumer surplus = total = :math:`E[\max_\ell S_\ell(\theta)]`);
    * ``monopolist``: one firm owns both models (no fringe): :func:`monopolist_continuous_summary`;
    * ``leader_fringe``: Proposition 4, :func:`leader_summary` (consumer surplus includes
      the outside option; ``consumer_surplus_net`` excludes it).

    ``parts``: which of the three (the monopolist's and the leader's are valid only without ironing).
    """
    models = lf.models
    out = {}
    if "efficient" in parts:
        te = efficient_switch_point(models)
        ts = _expect(dist, lambda s: efficient_surplus(models, s), [te])
        out["efficient"] = {"profit": 0.0, "consumer_surplus": ts, "total_surplus": ts}
    if "monopolist" in parts:
        out["monopolist"] = monopolist_continuous_summary(models, dist)
    if "leader_fringe" in parts:
        out["leader_fringe"] = leader_summary(lf, dist)
    return out


# =====================================================================
# helpers
# =====================================================================
def _first_root(fun, lo: float, hi: float) -> float:
    """First sign change of fun on [lo, hi] (scan + brentq); NaN if none."""
    t = np.linspace(lo, hi, SCAN_POINTS)
    v = np.asarray(fun(t), float)
    s = np.sign(v)
    if s[0] == 0:
        return float(lo)
    idx = np.nonzero(s[:-1] * s[1:] <= 0)[0]
    if len(idx) == 0:
        return np.nan
    i = idx[0]
    if s[i + 1] == 0:
        return float(t[i + 1])
    return optimize.brentq(lambda x: float(fun(x)), t[i], t[i + 1], xtol=ROOT_XTOL, rtol=ROOT_RTOL)


def _first_upcrossing(fun, lo: float, hi: float) -> float:
    """First θ where fun turns from ≤ 0 to > 0 on [lo, hi] (scan + brentq); NaN if never."""
    t = np.linspace(lo, hi, SCAN_POINTS)
    v = np.asarray(fun(t), float)
    pos = np.nonzero(v > 0)[0]
    if len(pos) == 0:
        return np.nan
    i = pos[0]
    if i == 0:
        return float(lo)
    if v[i - 1] == 0:
        return float(t[i - 1])
    return _bracketed_upcrossing(fun, float(t[i - 1]), float(t[i]))


def _last_upcrossing(fun, lo: float, hi: float) -> float:
    """Last θ on [lo, hi] where fun turns from ≤ 0 (or NaN) to > 0 (scan + root); NaN if fun
    is > 0 from lo on or never > 0 after a point where it is ≤ 0."""
    t = np.linspace(lo, hi, SCAN_POINTS)
    v = np.asarray(fun(t), float)
    pos = v > 0
    up = np.nonzero(pos[1:] & ~pos[:-1])[0]
    if len(up) == 0:
        return np.nan
    i = int(up[-1]) + 1
    if v[i - 1] == 0:
        return float(t[i - 1])
    return _bracketed_upcrossing(fun, float(t[i - 1]), float(t[i]))


def _bracketed_upcrossing(fun, a: float, b: float) -> float:
    """Root of fun on [a, b] where fun(a) ≤ 0 (or NaN) < fun(b): brentq when the scalar
    values bracket a sign change, else bisection on 'fun > 0' (a NaN counts as ≤ 0: e.g.
    a hazard rate 0/0 where the density vanishes at the end of the support)."""
    fa, fb = float(fun(a)), float(fun(b))
    if np.isfinite(fa) and np.isfinite(fb) and fa < 0 < fb:
        return optimize.brentq(lambda x: float(fun(x)), a, b, xtol=ROOT_XTOL, rtol=ROOT_RTOL)
    for _ in range(200):
        m = 0.5 * (a + b)
        if b - a <= ROOT_XTOL + ROOT_RTOL * abs(m):
            break
        fm = float(fun(m))
        if fm > 0:
            b = m
        else:
            a = m
    return float(b)


def _segments(lo: float, hi: float, breaks) -> list[tuple[float, float]]:
    pts = sorted({float(b) for b in breaks if np.isfinite(b) and lo < b < hi} | {lo, hi})
    return list(zip(pts[:-1], pts[1:]))


def _integrate(fun, lo: float, hi: float, breaks=()) -> float:
    """∫_lo^hi fun, split at the breakpoints (where the integrand jumps or kinks)."""
    return float(sum(integrate.quad(lambda s: float(fun(s)), a, b, limit=QUAD_LIMIT, epsabs=1e-13, epsrel=1e-11)[0]
                     for a, b in _segments(lo, hi, breaks)))


def _expect(dist: TypeDistribution, fun, breaks=()) -> float:
    """E[fun(θ)] by quadrature against the density."""
    return _integrate(lambda s: fun(s) * dist.pdf(s), *dist.support, breaks)


def _graded_pieces(a: float, b: float, left: bool, right: bool, max_piece: float) -> list[tuple[float, float]]:
    """Split [a, b] into uniform pieces no longer than max_piece, geometrically graded toward an
    end flagged singular (power-law behaviour at exclusion points and thresholds)."""
    if left and right:
        m = 0.5 * (a + b)
        return _graded_pieces(a, m, True, False, max_piece) + _graded_pieces(m, b, False, True, max_piece)
    n = max(1, int(np.ceil((b - a) / max_piece)))
    edges = list(np.linspace(a, b, n + 1))
    if left:
        first = edges[1] - edges[0]
        edges = [a] + [a + first * GRADE_RATIO**k for k in range(GRADE_LEVELS, 0, -1)] + edges[1:]
    if right:
        last = edges[-1] - edges[-2]
        edges = edges[:-1] + [b - last * GRADE_RATIO**k for k in range(1, GRADE_LEVELS + 1)] + [b]
    return list(zip(edges[:-1], edges[1:]))


def _integration_pieces(lo: float, x, breaks=()):
    """Pieces of :func:`_cumulative_integral` on [lo, max x]: (pieces, owning knot interval of each, knots)."""
    top = float(np.max(x)) if np.size(x) else lo
    bks = sorted({float(b) for b in breaks if np.isfinite(b) and lo < b < top})
    knots = sorted(set([lo, *bks, *np.asarray(x, float).ravel().tolist()]))
    singular = set([lo, *bks])
    max_piece = MAX_PIECE_FRAC * (top - lo)
    pieces, owner = [], []
    for j, (a, b) in enumerate(zip(knots[:-1], knots[1:])):
        ps = _graded_pieces(a, b, a in singular, b in singular, max_piece)
        pieces += ps
        owner += [j] * len(ps)
    return pieces, owner, knots


def _cumulative_integral(fun, lo: float, theta, breaks=()) -> np.ndarray:
    r""":math:`\int_{lo}^{\theta}` fun for every θ in an array (any order), by composite
    Gauss–Legendre (GL_NODES per piece, one vectorised call of ``fun``) on pieces graded
    toward ``lo`` and the breakpoints, where integrands have power-law endpoints or jumps."""
    t = np.asarray(theta, float)
    x = np.maximum(t, lo)
    pieces, owner, knots = _integration_pieces(lo, x, breaks)
    if not pieces:
        return np.zeros_like(t)
    nodes, weights = np.polynomial.legendre.leggauss(GL_NODES)
    P = np.asarray(pieces)
    half, mid = 0.5 * (P[:, 1] - P[:, 0]), 0.5 * (P[:, 1] + P[:, 0])
    vals = np.asarray(fun((mid[:, None] + half[:, None] * nodes[None, :]).ravel()), float)
    piece_int = half * (vals.reshape(len(P), GL_NODES) @ weights)
    per_knot = np.bincount(np.asarray(owner), weights=piece_int, minlength=len(knots) - 1)
    cum = np.concatenate([[0.0], np.cumsum(per_knot)])
    return cum[np.searchsorted(np.asarray(knots), x)]


# ---------------------------------------------------- a fringe that fine-tunes (γ_F > 0)
@dataclass(frozen=True)
class TunedFringe(_LeaderCosts):
    r"""Leader (γ_L) vs a competitive fringe that fine-tunes too (0 < γ_F < γ_L), sold at
    marginal cost c_F per linear-cost unit.  Buyer's top-up problem (docs/model.md §2.7, γ_F > 0):

    .. math:: u(\theta,q_L)=\max_{x\ge0}\ g(x),\qquad g(x)=\theta(a+x^\kappa)^\sigma-c_Fx,
              \quad a=q_L^r,\ r=\frac{\sigma+\gamma_L}{\sigma},\ \kappa=\frac{\sigma+\gamma_F}{\sigma}>1.

    g is **not concave**: g'(x) = h(x) − c_F with h(x) = θσκx^{κ−1}(a+x^κ)^{σ−1}, which is 0 at
    0, rises to its peak at :math:`x_p=((\kappa-1)a/(1-\sigma\kappa))^{1/\kappa}` and then falls
    to 0 (σκ < 1).  So g is convex on [0, x_p] and concave on [x_p, ∞): x = 0 is always a local
    maximum (g'(0) = −c_F), and there is a second one, x₂ > x_p with h(x₂) = c_F, iff
    h(x_p) > c_F.  u = max(g(0), g(x₂)).  At γ_F = 0 (κ = 1) this is the concave problem of
    :class:`LeaderFringe`."""

    sigma: float
    gamma_L: float
    gamma_F: float
    c_L: float
    c_F: float

    def __post_init__(self):
        if not (0 < self.sigma < 1 and 0 <= self.gamma_F < self.gamma_L and self.sigma + self.gamma_L < 1):
            raise ValueError("need 0 < sigma < 1, 0 <= gamma_F < gamma_L, sigma + gamma_L < 1")
        self._check_costs()

    @property
    def kappa(self) -> float:
        return (self.sigma + self.gamma_F) / self.sigma

    def at_gamma_F_zero(self) -> LeaderFringe:
        return LeaderFringe(sigma=self.sigma, gamma_L=self.gamma_L, c_L=self.c_L, c_F=self.c_F)


TOPUP_BISECTIONS = 200
"""Log-space bisections of the interior top-up root: the bracket [x_p, x_A] shrinks by 2 per
step, so 200 steps reach the float spacing from any bracket ratio below 1e60."""


def tuned_peak(tf: TunedFringe, a) -> np.ndarray:
    r"""Peak of h (the convex/concave switch of g): :math:`x_p=((\kappa-1)a/(1-\sigma\kappa))^{1/\kappa}`."""
    k, s = tf.kappa, tf.sigma
    return ((k - 1) * np.maximum(np.asarray(a, float), 0.0) / (1 - s * k)) ** (1 / k)


def _tuned_h(tf: TunedFringe, theta, a, x):
    k, s = tf.kappa, tf.sigma
    return theta * s * k * x ** (k - 1) * (a + x**k) ** (s - 1)


def tuned_stand_alone(tf: TunedFringe, theta) -> np.ndarray:
    r"""Fringe-only purchase (a = 0): :math:`x_A=(\theta\sigma\kappa/c_F)^{1/(1-\sigma\kappa)}`,
    also an upper bound of the interior root for every a ≥ 0 (h(x) ≤ θσκx^{σκ−1})."""
    t = np.maximum(np.asarray(theta, float), 0.0)
    return (t * tf.sigma * tf.kappa / tf.c_F) ** (1 / (1 - tf.sigma * tf.kappa))


def tuned_topup(tf: TunedFringe, theta, q_L) -> dict:
    r"""Exact solution of the non-concave top-up problem for arrays θ, q_L (broadcast).

    Returns ``x`` (the buyer's top-up, 0 at the corner), ``u`` (value), ``x2`` (the interior
    local maximiser, NaN if none) and ``interior`` (bool: the top-up is the interior point).
    x₂ by log-space bisection of h(x) = c_F on (x_p, x_A] where h is decreasing; ties go to
    the corner (the buyer buys nothing extra)."""
    th = np.asarray(theta, float)
    a = np.maximum(np.asarray(q_L, float), 0.0) ** tf.r
    th, a = np.broadcast_arrays(th, a)
    th, a = th.astype(float), a.astype(float)
    s, k = tf.sigma, tf.kappa
    xp = tuned_peak(tf, a)
    xA = tuned_stand_alone(tf, th)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        hp = np.where(a > 0, _tuned_h(tf, th, a, np.maximum(xp, 1e-300)), np.inf)
    exists = (hp > tf.c_F) & (th > 0)
    lo = np.where(a > 0, xp, np.minimum(xA, 1e-300))
    hi = np.maximum(xA, lo)
    lo, hi = np.maximum(lo, 1e-300), np.maximum(hi, 1e-300)
    for _ in range(TOPUP_BISECTIONS):
        mid = np.sqrt(lo * hi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            up = _tuned_h(tf, th, a, mid) > tf.c_F  # still left of the root
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    x2 = np.where(a > 0, 0.5 * (lo + hi), xA)
    x2 = np.where(exists, x2, np.nan)
    g0 = th * a**s
    with np.errstate(invalid="ignore"):
        g2 = np.where(exists, th * (a + np.nan_to_num(x2) ** k) ** s - tf.c_F * np.nan_to_num(x2), -np.inf)
    interior = g2 > g0
    return {"x": np.where(interior, x2, 0.0), "u": np.maximum(g0, g2), "x2": x2, "interior": interior}


def tuned_buyer_value(tf: TunedFringe, theta, q_L) -> np.ndarray:
    """u(θ, q_L) of :func:`tuned_topup`."""
    return tuned_topup(tf, theta, q_L)["u"]
