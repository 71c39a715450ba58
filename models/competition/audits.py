"""Independent numpy checks of the competition regime: the buyer's fringe top-up by bisection, all-pairs
IC/IR audits (γ_F = 0 and the tuned fringe), the exhaustive top-up search, region read-off and the
mixing audit, with the tolerances every check of the regime uses.  No Pyomo, no solve.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.closed_form import competition as cc
from models.results import bound_check


NAME = "competition"


# ----------------------------------------------------------- tolerances
TOL_ASSIGN = 1e-7
"""Task assignment: the identity U = θ(Q1^{1/σ}+Q2^{1/σ})^σ holds exactly on the
discrete measure, so agreement is to solver tolerance (Ipopt tol 1e-10 on an
O(1) concave program); 1e-7 is the issue's target."""


TOL_DISCRETE = 1e-6
"""NLP vs exact discrete-type closed forms (monopolist_discrete, leader_discrete):
Ipopt tol 1e-10..1e-12 on O(1)-scaled programs gives ~1e-8 relative (measured);
1e-6 leaves two digits of margin."""


TOL_AUDIT = 1e-7
"""Independent numpy IC/IR audit, worst violation / max|T|: constraint
violations at the solver's constr_viol_tol level (scaled) and the bisection
top-up (exact to ~1e-15)."""


FLOOR = 1e-12
"""Lower bound of the leader's quantity q, relative to its scale (ASL evaluates
x^r at 0 with a 0/0 derivative).  The buyer's value uses q^r, r > 1, and the
cost c_L q is linear, so the floor moves profits by ~1e-9 relative (measured;
at 1e-9 the unserved types' Q_L = q^η ≈ 1e-5 put the Q_L check at 5e-7)."""


TOL_SERVED = 1e-6
"""A type is 'served' by a model when its quantity exceeds this fraction of
the quantity scale (floors are 1e-9 of it)."""


TOL_REGION = 1e-6
"""Region labels: type k is limit-priced (region 1) when the next type would
top up at q_k, i.e. q_k^r < A_{k+1}(1 − TOL_REGION); ties within solver
tolerance count as interior (as leader_discrete labels a clamped q_k = q̂_{k+1})."""


def kkt_mass_weight(mass) -> np.ndarray:
    """min(1, N·p_k): the scale of type k's own stationarity conditions relative to an average
    type.  A type's variables enter the objective with its mass p_k; where no information rent
    depends on them (a limit-priced or fringe-topped type: u(θ', q) − u(θ, q) does not depend on
    q when both top up) that is their only term, so Ipopt's tolerance on the objective fixes them
    only to ~tol/(N·p_k) of their scale (Beta(25) types of mass 1e-14, competition_50_33: profit
    4e-11, q_L 7e-4 off).  Per-type rows compare w_k·x_k; never tighter than the plain row."""
    p = np.asarray(mass, float)
    return np.minimum(1.0, len(p) * p)


def fringe_topup_numeric(theta, a, sigma: float, c_F: float, iters: int = 200) -> np.ndarray:
    r"""Buyer's fringe purchase :math:`\arg\max_{x\ge0}\theta(a+x)^\sigma-c_Fx` by bisection
    on the first-order condition (no closed form): x = 0 if the marginal value at
    x = 0 is ≤ c_F, else the root of :math:`\theta\sigma(a+x)^{\sigma-1}=c_F`."""
    th, a = np.broadcast_arrays(np.asarray(theta, float), np.maximum(np.asarray(a, float), 0.0))
    th, a = th.astype(float), a.astype(float)
    fin = np.isfinite(a)
    if not fin.all():  # a = q^r beyond double range: above every stand-alone purchase, no top-up
        out = np.zeros(a.shape)
        out[fin] = fringe_topup_numeric(th[fin], a[fin], sigma, c_F, iters)
        return out

    def mv(x):  # marginal value of fringe tokens minus price (+inf at s = 0)
        s = a + x
        out = np.full(s.shape, np.inf)
        pos = s > 0
        out[pos] = th[pos] * sigma * s[pos] ** (sigma - 1.0)
        return out - c_F

    buy = (th > 0) & (mv(np.zeros_like(a)) > 0)
    hi = np.maximum(a, 1.0)
    for _ in range(2000):  # bracket: double until the marginal value is below the price
        grow = buy & (mv(hi) > 0)
        if not grow.any():
            break
        hi = np.where(grow, 2 * hi, hi)
    # Lower bracket by halving, then bisection on the geometric mean while the bracket spans
    # more than a factor 4: the root can be ~1e-92 of the bracket's top (σ = 0.05 in the leader's
    # units, competition_50_40), which 200 arithmetic halvings (2^-200 ≈ 6e-61) never reach.
    lo = hi.copy()
    for _ in range(2200):
        shrink = buy & (lo > 0) & (mv(lo) <= 0)
        if not shrink.any():
            break
        lo = np.where(shrink, 0.5 * lo, lo)
    lo = np.where(buy & (mv(lo) <= 0), 0.0, lo)  # halved to 0 (underflow): 0 brackets from below
    for _ in range(iters):
        geo = (lo > 0) & (hi > 4 * lo)
        # √lo·√hi, not √(lo·hi): at σ = 0.995 the bracket [6.9e-223, 8.3e-112] has lo·hi = 5.7e-334, which
        # underflows to 0 and stalled the bisection at 1e-171 against the root 1.33e-222 (judge18, s54_0.995)
        mid = np.where(geo, np.sqrt(lo) * np.sqrt(np.where(geo, hi, 1.0)), 0.5 * (lo + hi))
        pos = mv(mid) > 0
        lo, hi = np.where(pos, mid, lo), np.where(pos, hi, mid)
        if np.all((hi - lo) <= 4e-16 * np.maximum(hi, 1e-300)):
            break
    return np.where(buy, 0.5 * (lo + hi), 0.0)


def buyer_value_numeric(theta, a, sigma: float, c_F: float, a_sigma=None) -> np.ndarray:
    """Value of fringe-equivalent leader quantity a = q^r after the numeric top-up.

    The inner FOC θσ(a+x)^(σ−1) = c_F fixes a + x = S(θ) whatever a is, so the top-up is
    (S(θ) − a)^+ with S(θ) = :func:`fringe_topup_numeric` at a = 0 (bisection once per θ,
    not per pair; the same root up to the bisection's 4e-16 relative width).
    ``a_sigma``: a^σ = q^η (broadcast like a), used where a = q^r left double range (+inf, no top-up:
    :func:`models.closed_form.competition.leader_tokens`); see :func:`leader_tokens_numeric`."""
    th = np.asarray(theta, float)
    S = fringe_topup_numeric(th, 0.0, sigma, c_F)
    a = np.maximum(np.asarray(a, float), 0.0)
    se = np.maximum(a, S)
    with np.errstate(invalid="ignore"):
        val = th * se**sigma - c_F * (se - a)
    if a_sigma is None:
        return val
    return np.where(np.isfinite(a), val, th * np.asarray(a_sigma, float))


def leader_tokens_numeric(lf: cc.LeaderFringe, q) -> tuple[np.ndarray, np.ndarray]:
    """(a, a^σ) = (q^r, q^η) of leader items q; a = +inf where q^r leaves double range (competition_92_9: the top
    item is 1e710 fringe tokens), a^σ formed as q^η, finite (pass it as ``a_sigma`` to :func:`buyer_value_numeric`)."""
    q = np.maximum(np.asarray(q, float), 0.0)
    with np.errstate(over="ignore"):
        return q**lf.r, q**lf.eta


def leader_audit(lf: cc.LeaderFringe, theta, q, T) -> dict:
    r"""All-pairs IC and IR of a leader menu with the numeric top-up.

    ``viol[k, l] = [u(θ_k,q_l) − T_l] − U_k`` (column N: the outside option),
    positive = violated.  Returns U, u0, viol, worst ic, worst ir."""
    th, q, T = (np.asarray(x, float) for x in (theta, q, T))
    a, a_s = leader_tokens_numeric(lf, q)
    own = buyer_value_numeric(th, a, lf.sigma, lf.c_F, a_s) - T
    u0 = buyer_value_numeric(th, np.zeros_like(th), lf.sigma, lf.c_F)
    dev = buyer_value_numeric(th[:, None], a[None, :], lf.sigma, lf.c_F, a_s[None, :]) - T[None, :]
    viol = np.concatenate([dev - own[:, None], (u0 - own)[:, None]], axis=1)
    np.fill_diagonal(viol[:, :-1], -np.inf)
    return {"U": own, "u0": u0, "viol": viol, "q_F": fringe_topup_numeric(th, a, lf.sigma, lf.c_F),
            "ic": float(np.max(viol[:, :-1])) if len(th) > 1 else -np.inf,
            "ir": float(np.max(viol[:, -1]))}


def break_even_quality(lf: cc.LeaderFringe) -> float:
    r"""q_be = (c_L/c_F)^(σ/γ_L): below it a leader item loses money on whoever buys it.

    Any type's value of item q is at most its fringe-only utility plus the fringe cost of q^r
    tokens, u(θ, q) ≤ u0(θ) + c_F q^r (buy the q^r tokens from the fringe instead), so IR gives
    T_k − c_L q_k ≤ c_F q_k^r − c_L q_k, negative for 0 < q_k < q_be.  Unserving the lowest served
    type keeps q monotone and only removes IC rows of higher types, so at any optimum (pointwise or
    ironed) every served type has q_k ≥ q_be (θ_lo is where the limit quality q̂ reaches q_be)."""
    return float((lf.c_L / lf.c_F) ** (lf.sigma / lf.gamma_L))


def leader_regions(lf: cc.LeaderFringe, theta, q, q_scale: float) -> np.ndarray:
    """Region of every type read off a solved menu (0 fringe only, 1 limit pricing, 2 interior).

    Served iff q_k ≥ (1 − TOL_REGION)·q_be (:func:`break_even_quality`, exact for every optimum)
    and above twice the program's floor.  The former rule, q_k > TOL_SERVED·q_scale with q_scale
    the top type's quantity, labelled every limit-priced type unserved when the limit qualities are
    ≪ the top type's (η = 0.86: q ∝ h^7.2; competition_50_36 cut-off 4.8e5 vs q ∈ [1.5, 10.5]).
    Limit pricing: type k buys no fringe tokens at q_k but type k+1 would (q_k^r < A_{k+1}); for
    the top type: q_N^r ≤ A_N (it is exactly at the margin of topping up).  A is the numeric
    stand-alone fringe purchase (top-up at q = 0)."""
    th, q = np.asarray(theta, float), np.asarray(q, float)
    A = fringe_topup_numeric(th, 0.0, lf.sigma, lf.c_F)
    a = leader_tokens_numeric(lf, q)[0]
    served = (q >= (1 - TOL_REGION) * break_even_quality(lf)) & (q > 2 * FLOOR * q_scale)
    A_next = np.append(A[1:], np.nan)
    limit = np.where(np.arange(len(th)) < len(th) - 1, a < A_next * (1 - TOL_REGION), a <= A * (1 + TOL_REGION))
    return np.where(served, np.where(limit, 1, 2), 0)


def leader_type_weight(lf: cc.LeaderFringe, theta, mass, q_ref, q_nlp, profit_ref: float) -> np.ndarray:
    r"""Each type's share of the leader's profit, I_k = p_k·max(|Δ_k(q_ref,k)|, |Δ_k(q_nlp,k)|)/|profit|.

    Δ_k is the discrete virtual gain (:func:`cc.leader_discrete_gain`): profit = Σ_k p_k Δ_k(q_k)
    for every monotone schedule with binding adjacent downward IC, so a type's q moves the profit
    only through p_k Δ_k.  A type with I_k < TOL_DISCRETE can be served or not, limit-priced or
    interior, without the profit row (NLP vs closed form to TOL_DISCRETE) seeing it, and Ipopt's
    stopping test (tol 1e-12 on an objective scaled by the top type's money) sees it less still:
    the NLP's q at such types is not determined (measured: competition_50_36, 18 limit-priced types
    with Σ I_k = 2.4e-9, NLP q up to 50 % off; competition_50_40, two types with I_k ~ 3e-8 left
    unserved for a profit 5e-8 below the optimum).  Labels of these types are a resolution limit."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    n = len(th)
    tail = np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)  # Σ_(j>k) p_j: 1 − cumsum(p) is round-off below ~1e-13
    out = np.zeros(n)
    for k in range(n):
        rho = tail[k] / p[k] if k < n - 1 and p[k] > 0 else 0.0
        tn = th[k + 1] if k < n - 1 else th[k]
        g = cc.leader_discrete_gain(lf, th[k], tn, rho, np.array([max(q_ref[k], 0.0), max(q_nlp[k], 0.0)]))
        out[k] = p[k] * float(np.max(np.abs(g)))
    return out / max(abs(float(profit_ref)), 1e-300)


def _region_mismatches(lf, theta, reg, reg_ref, q_ref, q_scale, resolved=None) -> int:
    """Types whose NLP region differs from the discrete closed form's, not counting types
    whose closed-form q lies within solver accuracy of a region boundary of :func:`leader_regions`:
    within TOL_DISCRETE·max q (the q_L row's accuracy) of the limit quality of the next type,
    q̂_{k+1} = A_{k+1}^{1/r} (measured: N = 1000, θ_k = 0.6995 next to θ_hi, q_cf 2e-7·max q below
    q̂_{k+1}), or within TOL_DISCRETE·q_be of the served cut-off q_be.  The served cut-off is judged
    on its own scale, not on max q: with limit qualities ~1e-11 of the top type's, a band of
    TOL_DISCRETE·max q there marked every unserved and limit-priced type ambiguous
    (competition_50_36: band 4.8e5, q ≤ 9.7e5) and served-vs-unserved could not fail.  ``resolved``
    (default all): types whose profit weight is at least TOL_DISCRETE (:func:`leader_type_weight`);
    the others' labels are below what the NLP resolves and are not counted."""
    th, q = np.asarray(theta, float), np.asarray(q_ref, float)
    A = fringe_topup_numeric(th, 0.0, lf.sigma, lf.c_F)
    qhat_next = np.append(A[1:], A[-1]) ** (1 / lf.r)
    q_be = break_even_quality(lf)
    # limit vs interior (q against q̂_{k+1}) is decided by q itself, which the q_L row verifies to
    # TOL_DISCRETE·max q: a tie within that is not a mismatch (data/competition.toml at N = 1000: θ_k = 0.6995
    # next to θ_hi, q_cf 2e-7·max q below q̂_{k+1}); served vs not (q against q_be) on q_be's own scale
    band = TOL_DISCRETE * max(float(np.max(np.abs(q))), 1e-300)
    reg, reg_ref = np.asarray(reg), np.asarray(reg_ref)
    both_served = (reg > 0) & (reg_ref > 0)  # a 1-vs-2 disagreement: the q̂_{k+1} tie applies
    ambiguous = np.where(both_served, np.abs(q - qhat_next) <= band,
                         (q > 0) & (np.abs(q - q_be) <= TOL_DISCRETE * q_be))
    ok = np.ones(len(th), bool) if resolved is None else np.asarray(resolved, bool)
    return int(np.sum((reg != reg_ref) & ~ambiguous & ok))


def region_thresholds(theta, region) -> dict:
    """Thresholds read off region labels: ``entry`` (first type the leader serves)
    and ``interior_from`` (first interior type), each as (midpoint between the
    grid types on either side, local grid step); None if there is no such change."""
    th, reg = np.asarray(theta, float), np.asarray(region)
    out = {}
    for key, hit in (("entry", reg > 0), ("interior_from", reg == 2)):
        idx = np.nonzero(hit)[0]
        k = int(idx[0]) if len(idx) else None
        out[key] = None if k is None or k == 0 else (0.5 * (th[k - 1] + th[k]), th[k] - th[k - 1])
    return out


MIX_GRID = 201
"""Shares of V^(1/σ) on the first model tried per type by the mixing audit."""


def _mixing_audit(res, models, V, q, check="monopolist_mixing_audit", mass=None):
    """Numpy audit of the one-model structure: no split of each type's V^(1/σ) between
    the two models (MIX_GRID shares, both ends included) delivers V more cheaply than
    the menu's own tokens.  Worst saving / max spend ≤ TOL_AUDIT (homogeneous; was max(1, spend)).

    With `mass` (the coupled monopolist program) each type's saving is weighed by kkt_mass_weight,
    the scale on which the program fixes that type (as its V and t rows): a type of N·p = 1e-13 just
    above the models' cost crossing left on the dearer model saves 1.4e-4 of max spend
    (competition_91_22), a profit change of ~1e-17, below any solve's resolution.  The efficient
    programs fix each type on its own scale, so they are audited unweighed."""
    s = models.sigma
    # (P·share)^(σ/η) with P = V^(1/σ), written as (share^σ·V)^(1/η): P overflows a double when σ is small
    # and V large (competition_92_9: σ = 0.05, V ~ 1e35), the cost does not
    Vc = np.maximum(V, 0.0)[:, None]
    sh = np.linspace(0.0, 1.0, MIX_GRID)[None, :]
    cost = sum(mm.c * ((sh if l == 0 else 1 - sh) ** s * Vc) ** (1 / mm.eta) for l, mm in enumerate(models))
    spend = q @ np.array([mm.c for mm in models])
    w = np.ones(len(spend)) if mass is None else kkt_mass_weight(mass)
    saving = float(np.max(w * (spend - cost.min(axis=1))))
    scale = float(np.max(spend)) if len(spend) and np.max(spend) > 0 else 1.0
    res.checks.append(bound_check(NAME, check, "worst saving from splitting a type's V between "
                                  "the models / max spend" + ("" if mass is None else " (× min(1, N·p_k))"),
                                  saving / scale, TOL_AUDIT))
    _audit_rows(res, [f"{check.split('_')[0]}: cheaper delivery by moving or mixing models"], [saving],
                [len(V) * MIX_GRID])


def _utility_scale(T, U) -> float:
    """Money scale of a leader menu for its IC/IR audits: max(|T|, |U|) over the types.

    Homogeneous (the old max(1, |T|) made the audit vacuous at money scales ≪ 1
    and, when the leader sells nothing (T ≈ 0 at solver accuracy), judged noise
    of 1e-12 of the buyer's utility as O(1): at θ ≈ 25, c_F = 0.004 the buyer's
    fringe utility is ~1e35 and |T| ~ 1e22 (measured, repro competition_11_0)."""
    sc = max(float(np.max(np.abs(T))) if len(T) else 0.0, float(np.max(np.abs(U))) if len(U) else 0.0)
    return sc if sc > 0 else 1.0


def _ref_scale(ref, unit: float) -> float:
    """Denominator of a closed-form comparison: max|reference|, or the program's
    ``unit`` when the reference is identically 0 (e.g. the leader serves no type:
    the NLP's floor quantities are then judged on the scale of the problem, not in
    absolute numbers)."""
    ref = np.abs(np.atleast_1d(np.asarray(ref, float)))
    m = float(np.max(ref)) if ref.size else 0.0
    return m if m > 0 else unit


def _audit_rows(res, names, worst, rows):
    df = pd.DataFrame({"audit": names, "worst_violation": worst, "rows_checked": rows})
    res.tables["audit"] = pd.concat([res.tables["audit"], df], ignore_index=True) if "audit" in res.tables else df


def _rel_inf(x, y, scale_of=None) -> float:
    """max|x − y| / max|y| (the verification rule; absolute when every reference is 0); ``scale_of``:
    take max|·| of this array instead of y (weighted rows keep the unweighted scale, as compare's scale=)."""
    sc = float(np.max(np.abs(y if scale_of is None else scale_of)))
    d = float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
    return d / sc if sc > 0 else d


def tuned_audit(tf: cc.TunedFringe, theta, q, T) -> dict:
    """All-pairs IC/IR of a menu with the exact top-up (:func:`cc.tuned_topup`), as leader_audit."""
    th, q, T = (np.asarray(x, float) for x in (theta, q, T))
    own = cc.tuned_buyer_value(tf, th, q) - T
    u0 = cc.tuned_buyer_value(tf, th, np.zeros_like(th))
    dev = cc.tuned_buyer_value(tf, th[:, None], q[None, :]) - T[None, :]
    viol = np.concatenate([dev - own[:, None], (u0 - own)[:, None]], axis=1)
    np.fill_diagonal(viol[:, :-1], -np.inf)
    return {"U": own, "u0": u0, "viol": viol, "q_F": cc.tuned_topup(tf, th, q)["x"],
            "ic": float(np.max(viol[:, :-1])) if len(th) > 1 else -np.inf, "ir": float(np.max(viol[:, -1]))}


EXHAUSTIVE_GRID = 4001
"""Grid points of the exhaustive 1-D top-up search of the independent audit (log-spaced over
[1e-12, 2]·x_A plus 0), refined by 80 golden-section steps around the best point."""


def exhaustive_topup_value(tf: cc.TunedFringe, theta, q_L) -> np.ndarray:
    """u(θ, q_L) by exhaustive 1-D search, no first-order condition (independent of
    cc.tuned_topup): the best of a dense grid, then golden-section refinement on the two
    neighbouring cells (g is piecewise unimodal there)."""
    th, q = np.broadcast_arrays(np.asarray(theta, float), np.asarray(q_L, float))
    th, q = th.ravel(), q.ravel()
    a = np.maximum(q, 0.0) ** tf.r
    xA = np.maximum(cc.tuned_stand_alone(tf, th), 1e-300)
    base = np.concatenate([[0.0], np.geomspace(1e-12, 2.0, EXHAUSTIVE_GRID)])
    out = np.empty(len(th))
    gfun = lambda t_, a_, x: t_ * (a_ + x**tf.kappa) ** tf.sigma - tf.c_F * x  # noqa: E731
    for i0 in range(0, len(th), 500):
        sl = slice(i0, i0 + 500)
        X = xA[sl, None] * base[None, :]
        G = gfun(th[sl, None], a[sl, None], X)
        j = np.argmax(G, axis=1)
        lo = X[np.arange(len(j)), np.maximum(j - 1, 0)]
        hi = X[np.arange(len(j)), np.minimum(j + 1, len(base) - 1)]
        gr = (np.sqrt(5) - 1) / 2
        c, d = hi - gr * (hi - lo), lo + gr * (hi - lo)
        for _ in range(80):
            left = gfun(th[sl], a[sl], c) >= gfun(th[sl], a[sl], d)
            hi, lo = np.where(left, d, hi), np.where(left, lo, c)
            c, d = hi - gr * (hi - lo), lo + gr * (hi - lo)
        out[sl] = np.maximum(G[np.arange(len(j)), j], gfun(th[sl], a[sl], 0.5 * (lo + hi)))
    return out.reshape(np.shape(np.broadcast_arrays(np.asarray(theta, float), np.asarray(q_L, float))[0]))
