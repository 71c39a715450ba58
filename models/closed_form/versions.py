r"""L ≥ 2 model versions (a small, a mid, a frontier model): closed forms (docs/model.md §2.7,
"L ≥ 3 versions").  No Pyomo here.

Model ℓ = 1..L has the aggregate cost of quality :math:`C_\ell(Q)=c_\ell Q^{1/\eta_\ell}`,
:math:`\eta_\ell=\sigma+\gamma_\ell` (:class:`~models.closed_form.competition.ModelCost`); all
models share σ.  Everything below is **derived** here (the paper covers L = 2 at most):

* **Task assignment** — :math:`U(\theta,Q)=\theta(\sum_\ell Q_\ell^{1/\sigma})^\sigma`, model ℓ
  doing the task share :math:`a_\ell=Q_\ell^{1/\sigma}/\sum_jQ_j^{1/\sigma}` (the L = 2 derivation
  verbatim: per cell the best shares pool the budgets as one Lemma-1 budget).
* **Surplus envelope** — a type θ on model ℓ alone earns the first-best surplus
  :math:`S_\ell(\theta)=(1-\eta_\ell)\theta^{1/(1-\eta_\ell)}(\eta_\ell/c_\ell)^{\eta_\ell/(1-\eta_\ell)}`,
  a *straight line* in :math:`x=\log\theta`: :math:`\log S_\ell=\alpha_\ell+\beta_\ell x` with slope
  :math:`\beta_\ell=1/(1-\eta_\ell)` (increasing in γ_ℓ) and intercept
  :math:`\alpha_\ell=\log(1-\eta_\ell)+\frac{\eta_\ell}{1-\eta_\ell}\log(\eta_\ell/c_\ell)`.
  The pointwise best model is the upper envelope of L lines, a convex piecewise-linear
  function: the models on it appear in increasing η (:func:`envelope`), consecutive
  envelope models i < j switch at :math:`\theta_{ij}=\exp((\alpha_i-\alpha_j)/(\beta_j-\beta_i))`
  (:func:`switch_points`; for L = 2 the θ^e of the two-model regime), and a model whose line
  never reaches the envelope is **never used** (dominated).
* **Efficient allocation** — each type on the envelope model at θ, :math:`Q=Q^{FB}_\ell(\theta)`
  (mixing never pays: costs are concave in :math:`Q_\ell^{1/\sigma}`).
* **Multi-model monopolist** — screening on :math:`V=U/\theta` with the non-convex cost
  :math:`K(V)=\min_\ell C_\ell(V)`.  :math:`\max_V hV-K(V)=\max_\ell S_\ell(h)=:\hat S(h)`, i.e.
  :math:`\hat S=K^*` and the convex hull :math:`K^{**}` has the same conjugate.  Replacing K by
  :math:`K^{**}` (a concave, separable, isotonic problem) gives an upper bound whose optimum
  is :math:`V_k=V^*(\bar\varphi_k)`, with :math:`\bar\varphi` the mass-weighted isotonic
  regression (ironing) of the discrete virtual values and :math:`V^*(h)` the first best of the
  envelope model at h (for a concave separable objective :math:`p_k[\varphi_kV-G(V)]` with a
  common convex G the isotonic optimum is G'^{-1} of the ironed φ, cost-independent
  blocks).  Away from the switch values :math:`\theta_{ij}` the point :math:`V^*(h)` is where
  :math:`K^{**}=K`, so the bound is attained and this *is* the optimum of the non-convex
  problem (:func:`monopolist_discrete`).  Continuous types: the same with h(θ) (ironed).
  The monopolist serves model ℓ on :math:`\{\theta:\bar h(\theta)\in(\theta_{i\ell},\theta_{\ell j})\}`
  and V **jumps** at each switch type (versioning): from :math:`Q^{FB}_i(\theta_{ij})` to
  :math:`Q^{FB}_j(\theta_{ij})` (:func:`versioning_jumps`).  A model on the cost envelope
  (cheapest for some V) but off the surplus envelope sits inside a bridge of
  :math:`K^{**}` and is never sold.

The algorithm here (envelope of lines + ironing) is independent of the L = 2 code in
:mod:`models.closed_form.competition` (closed-form θ^e; cut-off enumeration with PAVA on
assigned costs), which the tests use as the L = 2 check.
"""
from __future__ import annotations

import numpy as np

from models.closed_form.competition import (
    ModelCost, SCAN_POINTS, _bracketed_upcrossing, first_best_quality, first_best_surplus, model_cost,
    virtual_value as _virtual_value,
)

__all__ = ["ModelCost", "envelope", "switch_points", "indirect_utility", "task_shares", "efficient_model",
           "efficient_quality", "efficient_surplus", "min_cost", "cheapest_model", "ironed",
           "discrete_virtual_values", "monopolist_allocation", "monopolist_discrete", "screening_transfers",
           "versioning_jumps", "ironed_threshold", "monopolist_exclusion_type", "monopolist_switch_types",
           "monopolist_continuous", "ic_audit"]

TIE_SWITCH = 1e-9
"""A value h within this relative distance of a switch value θ_ij is a *tie*: both models are
optimal up to round-off (and up to a solver's ~1e-12 relative objective accuracy, which decides a
tie only within ~1e-11 of θ_ij).  ``tie="up"`` gives such a type the higher model, ``"down"`` the
lower; a grid point that falls on a switch exactly (θ = 0.75 on a 50-type grid) is a genuine tie."""
TIE_SLOPE = 1e-12
"""Two models whose η differ by less than this are treated as having the same slope on the
log-log envelope (the better intercept dominates the other everywhere)."""


# =====================================================================
# envelope of the first-best surpluses (lines in log θ)
# =====================================================================
def _lines(models) -> tuple[np.ndarray, np.ndarray]:
    e = np.array([m.eta for m in models], float)
    c = np.array([m.c for m in models], float)
    beta = 1.0 / (1.0 - e)
    alpha = np.log(1.0 - e) + e / (1.0 - e) * np.log(e / c)
    return alpha, beta


def envelope(models) -> list[int]:
    r"""Indices of the models on the upper envelope of :math:`\log S_\ell` over all θ > 0, in
    increasing η (= the order in which they serve increasing types).  Upper hull of lines
    (monotone chain on the slopes): line j is dropped when the next line overtakes the
    previous one no later than j does."""
    alpha, beta = _lines(models)
    order = sorted(range(len(models)), key=lambda l: (beta[l], alpha[l]))
    hull: list[int] = []
    for l in order:
        if hull and abs(beta[hull[-1]] - beta[l]) <= TIE_SLOPE:
            hull.pop()  # same slope: the larger intercept (later in the sort) wins
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            x_ij = (alpha[i] - alpha[j]) / (beta[j] - beta[i])
            x_il = (alpha[i] - alpha[l]) / (beta[l] - beta[i])
            if x_il <= x_ij:  # l overtakes i before j does: j is never on top
                hull.pop()
            else:
                break
        hull.append(l)
    return hull


def switch_points(models) -> list[tuple[int, int, float]]:
    r"""(i, j, θ_ij) for consecutive envelope models: type θ_ij is indifferent between them,
    :math:`S_i(\theta_{ij})=S_j(\theta_{ij})`, with :math:`\theta_{ij}=\exp((\alpha_i-\alpha_j)/(\beta_j-\beta_i))`."""
    alpha, beta = _lines(models)
    h = envelope(models)
    return [(i, j, float(np.exp((alpha[i] - alpha[j]) / (beta[j] - beta[i])))) for i, j in zip(h[:-1], h[1:])]


def _envelope_index(models, h, tie: str = "up") -> np.ndarray:
    """Envelope model serving value h (−1 for h ≤ 0), from the switch points (no argmax); ``tie``:
    which model a value within TIE_SWITCH of a switch gets."""
    h = np.asarray(h, float)
    env = envelope(models)
    sw = np.array([s for _, _, s in switch_points(models)])
    if not len(sw):
        pos = np.zeros(h.shape, int)
    elif tie == "up":
        pos = np.searchsorted(sw * (1 - TIE_SWITCH), h, side="right")
    else:
        pos = np.searchsorted(sw * (1 + TIE_SWITCH), h, side="left")
    return np.where(h > 0, np.asarray(env)[pos], -1)


# =====================================================================
# task assignment
# =====================================================================
def indirect_utility(theta, Q, sigma: float) -> np.ndarray:
    r""":math:`U(\theta,Q)=\theta(\sum_\ell Q_\ell^{1/\sigma})^\sigma`; Q has the models on axis 0."""
    Q = np.maximum(np.asarray(Q, float), 0.0)
    return np.asarray(theta, float) * np.sum(Q ** (1 / sigma), axis=0) ** sigma


def task_shares(Q, sigma: float) -> np.ndarray:
    r"""Task-mass shares :math:`a_\ell=Q_\ell^{1/\sigma}/\sum_jQ_j^{1/\sigma}` (models on axis 0)."""
    v = np.maximum(np.asarray(Q, float), 0.0) ** (1 / sigma)
    return v / np.sum(v, axis=0)


# =====================================================================
# efficient allocation
# =====================================================================
def efficient_model(models, theta, tie: str = "up") -> np.ndarray:
    """Efficient model per type (index into ``models``; −1 for θ ≤ 0)."""
    return _envelope_index(models, theta, tie)


def efficient_quality(models, theta, tie: str = "up") -> np.ndarray:
    r"""First-best qualities, shape (L, ...): :math:`Q^{FB}_\ell(\theta)` on the efficient model, 0 elsewhere."""
    t = np.asarray(theta, float)
    idx = efficient_model(models, t, tie)
    return np.stack([np.where(idx == l, first_best_quality(m, t), 0.0) for l, m in enumerate(models)])


def efficient_surplus(models, theta) -> np.ndarray:
    r"""Per-type surplus :math:`\hat S(\theta)` of the efficient model (0 for θ ≤ 0)."""
    t = np.asarray(theta, float)
    idx = efficient_model(models, t)
    out = np.zeros(t.shape)
    for l, m in enumerate(models):
        out = np.where(idx == l, first_best_surplus(m, t), out)
    return out


# =====================================================================
# multi-model monopolist
# =====================================================================
def min_cost(models, V) -> np.ndarray:
    r""":math:`K(V)=\min_\ell c_\ell V^{1/\eta_\ell}` (V clipped at 0)."""
    return np.min(np.stack([model_cost(m, V) for m in models]), axis=0)


def cheapest_model(models, V) -> np.ndarray:
    """Model attaining K(V) (−1 where V ≤ 0)."""
    V = np.asarray(V, float)
    idx = np.argmin(np.stack([model_cost(m, V) for m in models]), axis=0)
    return np.where(V > 0, idx, -1)


def monopolist_allocation(models, h, tie: str = "up") -> tuple[np.ndarray, np.ndarray]:
    r""":math:`V^*(h)=Q^{FB}_\ell(h)` of the envelope model ℓ at h (V = 0, model −1 for h ≤ 0)."""
    h = np.asarray(h, float)
    idx = _envelope_index(models, h, tie)
    V = np.zeros(h.shape)
    for l, m in enumerate(models):
        V = np.where(idx == l, first_best_quality(m, h), V)
    return V, idx


def tail_mass(mass) -> np.ndarray:
    r""":math:`1-P_k=\sum_{j>k}p_j` as suffix sums: exact for tiny tails, where 1 − cumsum(p) is
    round-off (~1e-16) — on a Beta(1, 21) grid the top types have tails of 1e-15..1e-40, and
    1 − cumsum put their φ off by up to 5 % (measured, versions_33_12)."""
    p = np.asarray(mass, float)
    return np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)


def discrete_virtual_values(theta, mass) -> np.ndarray:
    r""":math:`\varphi_k=\theta_k-(\theta_{k+1}-\theta_k)(1-P_k)/p_k`, :math:`\varphi_N=\theta_N`
    (tails by :func:`tail_mass`)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    return th - np.append(np.diff(th), 0.0) * tail_mass(p) / p


def ironed(values, weights) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for v, w in zip(np.asarray(values, float), np.asarray(weights, float)):
        blocks.append([v * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w2, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w2
            blocks[-1][2] += n
    return np.concatenate([np.full(n, s / w) for s, w, n in blocks]) if blocks else np.zeros(0)


def screening_transfers(theta, V) -> np.ndarray:
    r""":math:`t_k=t_{k-1}+\theta_k(V_k-V_{k-1})`, :math:`t_1=\theta_1V_1` (local downward IC and IR of type 1 bind)."""
    th, V = np.asarray(theta, float), np.asarray(V, float)
    return np.cumsum(th * np.diff(np.concatenate([[0.0], V])))


def monopolist_discrete(models, theta, mass, tie: str = "up") -> dict:
    r"""Exact multi-model monopolist for discrete types and any number of models (module doc):
    :math:`V_k=V^*(\bar\varphi_k)`, transfers :func:`screening_transfers`.  Returns theta, mass,
    phi, phi_ironed, V, model (−1 = not served), Q (L × N), t, U, profit, consumer and total surplus."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    order = np.argsort(th)
    th, p = th[order], p[order]
    phi = discrete_virtual_values(th, p)
    phib = ironed(phi, p)
    V, idx = monopolist_allocation(models, phib, tie)
    t = screening_transfers(th, V)
    U = th * V - t
    K = np.zeros(len(th))
    for l, m in enumerate(models):
        K = np.where(idx == l, model_cost(m, V), K)
    return {"theta": th, "mass": p, "phi": phi, "phi_ironed": phib, "V": V, "model": idx,
            "Q": np.stack([np.where(idx == l, V, 0.0) for l in range(len(models))]),
            "t": t, "U": U, "profit": float(np.sum(p * (t - K))),
            "virtual_objective": float(np.sum(p * (phi * V - K))),
            "consumer_surplus": float(np.sum(p * U)), "total_surplus": float(np.sum(p * (th * V - K)))}


def versioning_jumps(models) -> list[dict]:
    r"""At each switch value :math:`\theta_{ij}` of the virtual value the monopolist's V jumps
    from :math:`Q^{FB}_i(\theta_{ij})` to :math:`Q^{FB}_j(\theta_{ij})` (both maximise
    :math:`\theta_{ij}V-K(V)`; the bridge of :math:`K^{**}` between them is never sold)."""
    out = []
    for i, j, s in switch_points(models):
        lo, hi = float(first_best_quality(models[i], s)), float(first_best_quality(models[j], s))
        out.append({"from": i, "to": j, "h": s, "V_below": lo, "V_above": hi, "jump": hi - lo})
    return out


def ironed_threshold(dist, s: float) -> float:
    r"""Lowest type whose *ironed* virtual value exceeds s: the (largest) argmax of the revenue
    :math:`(\theta-s)(1-F(\theta))` over θ_min and the up-crossings of h − s (θ_min: h̄ > s on the
    whole support; NaN: nowhere, i.e. h ≤ s throughout or the best revenue is ≤ 0).

    Why: in the quantile z = F(θ), :math:`H(z)=\int_0^z h=\theta_{\min}-\theta(1-F(\theta))`
    (d/dθ[θ(1 − F)] = −f·h) and h̄ is the slope of H's convex minorant, so h̄ > s exactly after the
    largest minimiser of H(z) − s·z = θ_min − s − (θ − s)(1 − F(θ)).  That revenue's derivative is
    −f·(h − s): its interior local maxima are the up-crossings of h − s, and θ_min is one where
    h > s just above it.  For a non-decreasing h this is the single root of h = s; at s = 0 it is
    the exclusion type (closed_form.competition.exclusion_type's rule).

    The root of h = s alone is not it when h is not monotone: a Beta density with p < 1 is
    infinite at θ_min, h(θ_min) = θ_min, and where 1 − p is small h stays above s on a sliver
    before dipping below it (competition_131_29's Beta(0.7886, 4.906) on [0.575, 22.34]: h > 0 on
    (θ_min, θ_min + 1.2e-4], minimum −1.93 at θ ≈ 1, up-crossing of 0 at 3.366).  h is evaluated
    with its end limits (closed_form.competition.virtual_value): θ at a top where f = 0."""
    lo, hi = (float(x) for x in dist.support)
    a = lo + 1e-15 * max(1.0, abs(lo))
    g = lambda x: _virtual_value(dist, x) - s  # noqa: E731
    cands = [lo] if float(g(a)) > 0 else []
    t = np.linspace(a, hi, SCAN_POINTS)
    pos = np.asarray(g(t), float) > 0
    cands += [_bracketed_upcrossing(g, float(t[i]), float(t[i + 1])) for i in np.nonzero(pos[1:] & ~pos[:-1])[0]]
    if not cands:
        return np.nan
    rev = np.array([(c - s) * float(dist.sf(c)) for c in cands])
    if not rev.max() > 0:
        return np.nan
    return float(cands[int(np.flatnonzero(rev >= rev.max())[-1])])


def monopolist_exclusion_type(dist) -> float:
    """Lowest type the continuous-type monopolist serves (any models): :func:`ironed_threshold` at
    s = 0 (θ_min if every type is served, NaN if none is)."""
    return ironed_threshold(dist, 0.0)


def monopolist_switch_types(models, dist) -> list[tuple[int, int, float]]:
    """(i, j, θ) for each switch θ_ij of the envelope that the continuous-type monopolist makes
    inside the support: θ = :func:`ironed_threshold` (θ_ij), the type from which h̄ > θ_ij.

    Formerly the root of h(θ) = θ_ij on [θ_min + 1e-12, θ_max] when h changed sign there, with h
    from the distribution's own formula: 0/0 = NaN at a top where f = 0 (every Beta with q > 1),
    so no switch was ever returned for those and the versions regime's continuous switch rows
    were silently absent (Beta(2, 3) with the three shipped versions: [] instead of two
    switches); and a switch value below h(θ_min+) on a Beta p < 1 sliver (above) was skipped."""
    lo = float(dist.support[0])
    out = []
    for i, j, s in switch_points(models):
        th = ironed_threshold(dist, s)
        if np.isfinite(th) and th > lo:
            out.append((i, j, th))
    return out


def monopolist_continuous(models, dist, theta) -> dict:
    r"""Continuous types with non-decreasing h: V(θ) = V*(h(θ)), model per type (not used by the
    regime, which compares with the discrete closed form and the switch types).  For another h the
    optimum is V*(h̄) with the ironed h̄ (:func:`ironed_threshold`); this pointwise map is then wrong
    on the ironed intervals (e.g. V > 0 on a Beta p < 1 sliver above θ_min that is not served)."""
    t = np.asarray(theta, float)
    V, idx = monopolist_allocation(models, dist.virtual_value(t))
    return {"theta": t, "V": V, "model": idx}


def ic_audit(theta, V, t) -> dict:
    r"""All-pairs IC/IR audit of a menu (V_l, t_l): worst :math:`\theta_kV_l-t_l-U_k` over k ≠ l
    and worst :math:`-U_k`, each divided by max(|t|, |U|) (homogeneous scale)."""
    th, V, t = (np.asarray(x, float) for x in (theta, V, t))
    U = th * V - t
    dev = th[:, None] * V[None, :] - t[None, :] - U[:, None]
    np.fill_diagonal(dev, -np.inf)
    scale = max(float(np.max(np.abs(t))), float(np.max(np.abs(U))), 1e-300)
    return {"ic": float(np.max(dev)) / scale if len(th) > 1 else -np.inf, "ir": float(np.max(-U)) / scale,
            "pairs": len(th) * (len(th) - 1), "scale": scale}
