"""The Pyomo programs of the competition regime (module docstring of :mod:`models.competition`):
task assignment, efficient allocation, the multi-model monopolist (free and with a fixed assignment),
the leader vs a competitive fringe (γ_F = 0, dual form) and vs a fringe that fine-tunes (γ_F > 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo

from models import gain
from models.closed_form import competition as cc
from models.closed_form import cost as cf
from .audits import buyer_value_numeric, FLOOR, fringe_topup_numeric, leader_tokens_numeric
from .units import (
    _fb_tokens, _leader_scales, _leader_units, _model_tokens, tuned_units, _type_surplus, _value,
)


FLOOR_TWO_MODEL = 1e-16
"""Token floor of the efficient/monopolist programs, relative to scale.  Their
value V = (Σ_ℓ q_ℓ^(η_ℓ/σ))^σ has an infinite slope at 0 when η_ℓ = σ, so a
floor ε leaves excluded types V ~ ε^σ: at 1e-9 that was V ≈ 2.5e-4 and a
profit 6e-5 too low (measured); the costs are linear in q, so a tiny floor is
harmless to Ipopt."""


T_START_FACTOR = 0.9
"""Start transfers: this factor times the binding-downward-IC schedule of the
start quantities (strictly IC and IR when those are monotone)."""


S_LO = 1e-3
"""Lower bound of the leader program's scaled dual points s̃ = s/(F_k + q_l^r) (:func:`build_leader`):
the optimum has s̃ ≥ 1/2 (s* = max(q_l^r, A_k) and F_k = A_k), so the bound only keeps
Ipopt's iterates away from s = 0."""


F_LO = 1e-9
"""Lower bound of the leader program's own top-up f̃ = f/F_k (:func:`build_leader`), instead of 0.  Why: ``m.own``
raises q̃^r + φ_k f̃ to the power σ, and at σ = 0.05 (r = 7.07) an unserved type's q̃ ~ 8e-10 has q̃^r ~ 5e-65:
Ipopt's iterate put f̃ at −5.4e-65 (a bound kept only to round-off), the base was exactly 0, Ipopt stopped on NaN
and the AMPL Solver Library then ended the whole process on pow'(0, 0.05) (competition_196_1, cyipopt route;
nothing of the run was written).  With f̃ ≥ F_LO the base is ≥ φ_k·F_LO, 1e3 above Ipopt's bound round-off
(~1e-12).  Cost: the own row is the utility of a top-up f ≥ F_LO·A_k: exact wherever the buyer's best top-up is
at least that, and otherwise the utility of buying up to F_LO·A_k fringe tokens it does not need, at most
c_F·F_LO·A_k/M_k ≤ σ·F_LO of the type's money below its best (c_F A_k = σθ_k A_k^σ ≤ σM_k): a tightening of
the IC rows (never a relaxation) by < 1e-9 of the money unit, 1e2 below TOL_AUDIT.  θ_k = 0 (α_k = φ_k = 0):
the buyer values nothing, own = −T̃_k (no power of q̃^r taken)."""


S_UB = 2.0
"""Upper bound of the leader program's s̃ and s̃_out (:func:`build_leader`).  Valid: the dual value
D_k(s; a) = θ_k[(1−σ)s^σ + σ a s^(σ−1)] has D' ∝ s^(σ−2)(s − a), so its least value over the dual-feasible
s ≥ A_k is at s = max(a, A_k), s̃ = max(a, A_k)/(A_k + a) ≤ 1 (s̃_out* = 1): the IC and IR rows with s̃ ≤ S_UB
admit the same menus as without the bound, with a factor 2 of slack.  Why: where a pair's IC row is slack
and α_k b^σ is negligible (an unserved low type, A_k ~ 1e-156 of the leader's unit: competition_81_3)
nothing but the barrier places s̃, which pushed it to ~1e5; with the KKT row written s̃ + w − 1 ≥ 0 (whose
barrier keeps pushing) the exact-optimum start of 81_3 stalled at 'acceptable' (inf_du ~1e-6 at
mu = 1e-9, steps ||d|| ~ 2e4); bounded, it is 'optimal' in 37 iterations (262 before)."""


Q_UB = 2.0
"""Upper bound of the leader program's q̃ = q/Qu_k (:func:`build_leader`).  Valid: the joint surplus
u(θ_k, q) − c_L q is non-increasing above Qu_k (concave with peak q^FB_L(θ_k) above the limit quality
A_k^(1/r), and Qu_k is the larger of the two) while the information rent of a downward-binding menu is
non-decreasing in q (∂u/∂θ = max(q^r, A(θ))^σ), so each type's virtual gain at q ≥ Q_UB·Qu_k is at most
its gain at Q_UB·Qu_k; clipping q to Q_UB·Qu (non-decreasing) keeps a menu monotone and does not lower
its profit: some optimum satisfies the bound, with a factor 2 of slack (the top type sits at q̃ = 1).
Why: types whose whole possible gain is below Ipopt's resolution (profit weight p_k·G_k ~ 1e-15 of the
objective scale, or 0) are pinned by no gradient; unbounded, their q̃ drifted to 54…1454 and the
barrier subproblem took steps ||d|| ~ 1e5 until 'acceptable' (competition_91_24)."""


T_LB = -1.0
"""Lower bound of the leader program's T̃ = T/M_k (:func:`build_leader`).  Valid: the downward-binding
menu of an optimal q has T_k = u(θ_0, q_0) − u0(θ_0) + Σ_(j≤k) [u(θ_j, q_j) − u(θ_j, q_(j−1))] ≥ 0
(q non-decreasing), one money unit above the bound.  Why: the prices of unresolvable types (see Q_UB)
ran to T̃ ~ −1.6e5 (a subsidy the next type's IC row sees only at M_k/M_(k+1) ~ 1e-6)."""


def build_assignment(tech: cf.Technology, w, X, Phi, form: str = "logit", start=None):
    """Task-assignment program for profile w over n cells (module docstring, item 1).

    X: (2, J) token budgets per model and class; Phi: (2,) fine-tuning factors.
    ``form = "logit"``: shares and budget shares as a = 1/(1+e^(−u)), λ = e^z (unbounded, see below);
    ``form = "bounded"``: the concave program itself, a ∈ [0, 1] and λ ≥ 0 as variables.
    ``start``: (a, λ) per program cell, e.g. another form's solution (:func:`assignment_point`).
    The regime solves the bounded form first and polishes its point in the logit form
    (:data:`ASSIGNMENT_TWO_PHASE`)."""
    w_all = np.asarray(w, float)
    n = len(w_all)
    # Identical cells are one program cell with their count as multiplicity (``m._cells`` maps each
    # original cell to it): the optimum gives identical cells the same (a, y) (concave program, the
    # average of optima is optimal), but as separate variables they span a face of optima along which
    # Ipopt drifts (flat profile: at tol 1e-12 to a_i = 1 and NaN, competition_50_2's technology).
    w, m_cells, mult = np.unique(w_all, return_inverse=True, return_counts=True)
    X = np.asarray(X, float)
    s = tech.sigma
    m = pyo.ConcreteModel(name="task_assignment")
    m._cells = m_cells
    m.CELLS = pyo.RangeSet(0, len(w) - 1)
    m.MODELS = pyo.RangeSet(0, 1)
    m.TOKENS = pyo.RangeSet(0, tech.J - 1)
    m.w = pyo.Param(m.CELLS, initialize=dict(enumerate(w * mult)))  # weight × multiplicity
    mult_a = mult.astype(float)
    mult = dict(enumerate(mult_a))
    # Two forms, solved in turn by the regime (checks._assignment_checks):
    # * "bounded": a ∈ [0, 1], λ ≥ 0 as variables -- the concave program itself (a^(1−σ) λ^σ is jointly
    #   concave), so Ipopt's KKT point is on the optimal face; but the barrier distorts cells whose
    #   gradient is small (tokens ∝ w^(1/(1−σ)), ~1e-9 of the largest at σ = 0.85: μ/y ~ 1e-3 of the
    #   cell's own gradient, shares off by up to 7.8e-5 with token variables, competition_50_12/30/33;
    #   with budget shares λ, 46 of 3568 generated scenarios at σ ≤ 0.1, session 10).
    # * "logit": a_i = 1/(1+e^(−u_i)), λ_ℓi = e^(z_ℓi), no bounds and no barrier.  Every finite KKT point
    #   is an interior KKT point of the concave program, hence global -- but the program has stationary
    #   points *at infinity*: only v_1i + v_2i is determined per cell, and where a cell's share and its
    #   budget share go to 0 together the (u, z) gradients vanish without the sign condition of a bound
    #   multiplier, so a corner where more model-1 mass would pay passes as 'optimal'.  From the neutral
    #   start it stopped there on 3 of 3568 generated scenarios (competition_100_7: U 10 % low, 42
    #   iterations, 'optimal'; 3_12, 4_20), and drifted along the face to a_i = 1, y ~ 5e-20 on
    #   competition_50_2.
    # The bounded solve puts the logit polish on the optimal face, which the polish (Newton without a
    # barrier) then resolves: 0 of 3568 failed with both, 17 with the logit form alone (bench/task_assignment.py).
    #
    # Each model's budget is split across cells in proportion to the budget vector, y_ℓi = λ_ℓi·X_ℓ·n/mult_i
    # (Σ_i λ_ℓi = 1).  No loss: Ψ = f^σ with f the degree-1 CES index, concave and homogeneous, hence
    # superadditive (Σ_i f(y_i) ≤ f(Σ_i y_i) = f(X)); the objective depends on y_i only through f(y_i) and
    # rises with it, and λ_i = f(y_i)/Σ_k f(y_k) gives every cell at least its f(y_i).  Then
    # Ψ(y_ℓi) = (λ_ℓi n/mult_i)^σ Ψ(X_ℓ), with Ψ(X_ℓ) evaluated by the Pyomo CES (gain.psi), not by the
    # closed form.  Why: with a token variable per cell and class, the classes a near-Leontief CES
    # (ρ = −47) leaves almost worthless are flat directions tied to J budget rows; Newton steps of
    # ||d|| ~ 0.14 along them violated the (linear-in-y, exponential-in-z) budgets by 1e-5 and the line
    # search stalled: 'acceptable' after 82 iterations (competition_91_8).
    # A neutral start: half the tasks on each model, budgets spread in proportion to multiplicity.
    psi_X = [float(pyo.value(gain.psi(tech, [float(v) for v in X[l]]))) for l in range(2)]
    if start is None:
        a0, lam0 = np.full(len(w), 0.5), np.tile(mult_a / n, (2, 1))
    else:
        a0, lam0 = (np.asarray(v, float) for v in start)
    if form == "logit":
        # a = 0 or 1 and λ = 0 are limits, not points, of the logit form: start a hair inside
        a0 = np.clip(a0, ASSIGN_START_FLOOR, 1 - ASSIGN_START_FLOOR)
        lam0 = np.maximum(lam0, ASSIGN_START_FLOOR * mult_a / n)
        m.u = pyo.Var(m.CELLS, initialize=lambda m, i: float(np.log(a0[i] / (1 - a0[i]))))
        m.a = pyo.Expression(m.CELLS, rule=lambda m, i: 1 / (1 + pyo.exp(-m.u[i])))
        m.z = pyo.Var(m.MODELS, m.CELLS, initialize=lambda m, l, i: float(np.log(lam0[l, i])))
        m.lam = pyo.Expression(m.MODELS, m.CELLS, rule=lambda m, l, i: pyo.exp(m.z[l, i]))

        def share(m, l, i):
            return m.a[i] if l == 0 else 1 / (1 + pyo.exp(m.u[i]))  # 1 − a_i without cancellation

        def lam_s(m, l, i):
            return pyo.exp(s * m.z[l, i])
    elif form == "bounded":
        m.a = pyo.Var(m.CELLS, bounds=(0.0, 1.0), initialize=lambda m, i: float(a0[i]))
        m.lam = pyo.Var(m.MODELS, m.CELLS, bounds=(0.0, 1.0), initialize=lambda m, l, i: float(lam0[l, i]))

        def share(m, l, i):
            return m.a[i] if l == 0 else 1 - m.a[i]

        def lam_s(m, l, i):
            return m.lam[l, i] ** s
    else:
        raise ValueError(f"form must be 'logit' or 'bounded', not {form!r}")
    m.y = pyo.Expression(m.MODELS, m.CELLS, m.TOKENS,
                         rule=lambda m, l, i, j: m.lam[l, i] * float(X[l, j] * n / mult[i]))
    m.budget = pyo.Constraint(m.MODELS, rule=lambda m, l: sum(m.lam[l, i] for i in m.CELLS) == 1)
    m.value = pyo.Objective(expr=sum(
        m.w[i] / n * Phi[l] * share(m, l, i) ** (1 - s) * psi_X[l] * (n / mult[i]) ** s * lam_s(m, l, i)
        for l in m.MODELS for i in m.CELLS), sense=pyo.maximize)
    return m


ASSIGN_START_FLOOR = 1e-12
"""Where the logit polish starts a share or budget share that the bounded solve left at 0 or 1
(Ipopt's interior point leaves them ~μ ≥ 1e-11 from a bound at tol 1e-10): inside, by this much."""


def assignment_point(m):
    """(a, λ) per program cell of a solved :func:`build_assignment` model (either form)."""
    a = np.array([pyo.value(m.a[i]) for i in m.CELLS])
    lam = np.array([[pyo.value(m.lam[l, i]) for i in m.CELLS] for l in m.MODELS])
    return a, lam


def _two_model_vars(m, models, theta, q0, tau, S, free=None):
    """Token variables ``m.q[k, ℓ] = q_{kℓ}/τ_kℓ ≥ floor`` in per-type units τ_kℓ (N, 2)
    (:func:`_efficient_units`), the type's pooled value in its own quality unit S_k,
    ``pooled_k = (V_k/S_k)^(1/σ) = Σ_ℓ a_kℓ x_kℓ^(η_ℓ/σ)`` with ``a_kℓ = (τ_kℓ^η_ℓ/S_k)^(1/σ) ≤ 1`` when S_k is
    at least each model's first-best quality of the type, and spend ``Σ_ℓ c_ℓ τ_kℓ x_kℓ`` (money of the
    scenario).  ``q0`` in the scenario's linear-cost units.

    Nothing is raised to 1/η or 1/σ of a unit shared by both models: with one common quality unit
    (the top type's larger first-best quality, 1e35 at σ + γ_L = 0.947) the fringe's token unit
    Q^(1/η_F) = Q^20 overflowed (competition_92_9, σ = 0.05), and one token unit per model for every
    type left the weaker model's tokens ~1e-19 of it, below the floor (σ+γ_L = 0.89, measured).  The
    ratio τ_kℓ^η_ℓ/S_k is formed before the power 1/σ, so a negligible model's coefficient underflows
    to 0 (it adds nothing representable to that type's V) instead of overflowing."""
    s = models.sigma
    N = len(theta)
    tau = m._tau = np.asarray(tau, float)
    S = np.asarray(S, float)
    x0 = np.asarray(q0, float) / tau
    eta = np.array([mm.eta for mm in models])
    a = np.zeros_like(tau)
    for l in (range(len(models)) if free is None else free):  # a model fixed at 0 gets no coefficient
        a[:, l] = (tau[:, l] ** eta[l] / S) ** (1.0 / s)
    m.TYPES = pyo.RangeSet(0, N - 1)
    m.MODELS = pyo.RangeSet(0, len(models) - 1)
    m.theta = pyo.Param(m.TYPES, initialize=dict(enumerate(np.asarray(theta, float))))
    m.q = pyo.Var(m.TYPES, m.MODELS, bounds=(FLOOR_TWO_MODEL, None),
                  initialize=lambda m, k, l: max(x0[k, l], FLOOR_TWO_MODEL))
    m.pooled = pyo.Expression(m.TYPES, rule=lambda m, k: sum(float(a[k, l]) * m.q[k, l] ** (models[l].eta / s)
                                                             for l in m.MODELS))
    m.spend = pyo.Expression(m.TYPES, rule=lambda m, k: sum(models[l].c * float(tau[k, l]) * m.q[k, l]
                                                            for l in m.MODELS))


@dataclass(frozen=True)
class ProgramUnits:
    """Units of a two-model program written in per-type units: only the objective's unit P (money of
    the scenario per unit of the program's objective) is common; :func:`_read_q`, :func:`_read_V`,
    :func:`_read_t` use the per-type units stored on the model."""

    P: float


UNIT_POOLED_MIN = 1e-250
"""Smallest per-type token unit, relative to the top type's: τ_kℓ ≥ τ_ℓ·UNIT_POOLED_MIN (θ = 0 has no
first best, and q ∝ θ^(1/(1−η)) underflows for θ → 0).  Not raised to σ/η_ℓ any more (it kept the
coefficient τ_kℓ^(η_ℓ/σ) a normal double when that was formed on its own): the coefficients are now
ratios formed before the power 1/σ (:func:`_two_model_vars`), and a unit 1e-13 of the top's (σ/η = 0.053)
lay 1e37 above a low type's leader optimum at σ = 0.05, η_L = 0.947 (competition_92_9), pinning it at the
floor, where pooled^(σ−2) overflowed."""


def _efficient_units(models, theta) -> np.ndarray:
    """Per-type token units (N, 2) of the efficient programs: each type's own first-best tokens on
    each model alone (a scale only; the program's optimum is not derived from it).  With the top
    type's τ_ℓ as the unit for every type, the floor FLOOR_TWO_MODEL·τ_ℓ lay above a low type's optimal
    tokens when q ∝ θ^16 (σ + γ_L = 0.94: 1e-17 of the top's), the leader-only program pinned them
    there and the per-type best put them on the fringe (competition_81_7, 81_12: q off by 5.6, 67)."""
    tau = _model_tokens(models, theta)
    lo = tau * UNIT_POOLED_MIN
    return np.maximum(_fb_tokens(models, np.asarray(theta, float)), lo[None, :])


def _type_quality_units(models, tau, free=None) -> np.ndarray:
    """S_k = max_ℓ τ_kℓ^η_ℓ over the models in ``free`` (default both): the larger of the type's own
    first-best qualities (per-type token units τ, :func:`_efficient_units`).  A scale only."""
    eta = np.array([mm.eta for mm in models])
    Q = np.asarray(tau, float) ** eta[None, :]
    free = list(range(len(models))) if free is None else list(free)
    return np.maximum(np.max(Q[:, free], axis=1), 1e-300)


def build_efficient(models, theta, mass, q0, only=None, weights=None):
    """Surplus-maximising allocation per type on both models (module docstring, item 2).

    Variables are each model's linear-cost units ``q[k, ℓ] = Q_{kℓ}^{1/η_ℓ}`` in per-type units τ_kℓ
    (:func:`_two_model_vars`, :func:`_efficient_units`: spend ``c_ℓ τ_kℓ x``); the buyer's value is
    ``θ_k S_k (Σ_ℓ a_kℓ x_{kℓ}^{η_ℓ/σ})^σ`` (η_ℓ/σ ≥ 1:
    no infinite slope at 0, so an unused model sits at its floor with a strictly
    negative marginal surplus and the floor costs only c·floor.  In quality
    units the objective is flat — quadratic in Q — at an unused model, and
    Ipopt stops ~sqrt(tol) away; with x = Q^(1/σ) the concave cost has an
    infinite slope at 0 — both measured).

    ``only`` = ℓ: model ℓ alone (the other's tokens fixed at 0); then
    the objective θ(q^(η/σ))^σ − c q is concave in q (η < 1): convex.

    ``weights`` (default: the masses) weigh each type's surplus in the objective;
    ``"per-type"``: 1 / (the type's surplus at the start q0), so that every
    type's term and KKT conditions are O(1).  The program is separable by type,
    so any positive weights give the same allocation.  With mass weights
    Ipopt's stopping test ignores types of mass ~1e-12..1e-19 (Beta tails: q off
    by up to 1e5 relative), and with equal weights types whose surplus is 1e-12
    of the top type's (σ+γ = 0.89: S ∝ θ^9) — both measured.

    Written in the scenario's θ and money with per-type units (no common quality unit: its power
    1/η_F overflowed at σ = 0.05, competition_92_9); with per-type weights every term is O(1), so
    Ipopt's unscaled absolute tolerances see an O(1) program (the reason for the former
    nondimensionalisation, competition_11_0).  ``weights=None`` (mass weights, bench only): the
    objective is scaled by 1/Σ_k p_k θ_k S_k."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    s = models.sigma
    m = pyo.ConcreteModel(name="efficient_two_models")
    m._models = models
    # Per-type units τ_kℓ, and the pooled value in the unit S_k = the larger first-best quality among
    # the free models, with θ_k S_k moved into the value's coefficient: pooled̃ = O(1) at a type's optimum.
    # Unnormalised, pooled ~ 1e-158 for the fringe when the leader sets the quality unit
    # (competition_81_3, σ = 0.27, η_L = 0.95) and the Hessian term pooled^(σ−2) times the per-type
    # weight overflowed (Ipopt 'error' at iteration 0).
    tau = _efficient_units(models, th)
    free = [only] if only is not None else list(range(len(models)))
    S = _type_quality_units(models, tau, free)
    q0 = np.asarray(q0, float)
    _two_model_vars(m, models, th, q0, tau, S, free)
    if isinstance(weights, str):  # "per-type": O(1) terms, from the start's own surplus
        q0s = np.maximum(q0, FLOOR_TWO_MODEL * m._tau)
        if only is not None:  # the other model is fixed at 0, not at its floor: the floor's spend is
            q0s[:, 1 - only] = 0.0  # ~ a low type's own fringe spend at η_L = 0.95 (competition_81_3)
        S0 = np.abs(_type_surplus(models, th, q0s))
        # no 1e-12·max(S0) cap: with per-type units the terms stay O(1) down to S ~ 1e-37 of the top's
        # (the cap left competition_81_12's second type, S ~ 1e-21 of the top's, 0.5 % off; θ = 0 types,
        # S0 = 0, are fixed below and 1e-280 only keeps 1/S0 finite)
        weights = 1.0 / np.maximum(S0, 1e-280 * max(float(np.max(S0)), 1e-300))
        per_type = True
    else:
        per_type = False
    w = p if weights is None else np.asarray(weights, float)
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(w)))
    m.vc = pyo.Param(m.TYPES, initialize=dict(enumerate(w * th * S)))  # w_k θ_k S_k
    if only is None:
        value = {k: m.pooled[k] ** s for k in m.TYPES}
    else:  # one model: (a x^(η/σ))^σ = x^η (a = 1, S_k is its own first best), written so — not through
        # x^(η/σ), whose power 19 (σ = 0.05, η_L = 0.947) made pooled^(σ−2) overflow at small x (92_9)
        value = {k: m.q[k, only] ** models[only].eta for k in m.TYPES}
    m.surplus = pyo.Objective(expr=sum(m.vc[k] * value[k] - m.p[k] * m.spend[k] for k in m.TYPES),
                              sense=pyo.maximize)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    # per type: each type's term O(1), N of them; mass weights: the first-best money Σ p θ S
    obj_unit = float(len(th)) if per_type else max(float(np.sum(w * th * S)), 1e-300)
    sf[m.surplus] = 1.0 / obj_unit
    m._units = ProgramUnits(P=1.0)  # the objective is not read in money (solving._efficient recomputes it)
    for k in np.flatnonzero(th <= 0):  # θ = 0: no value, positive cost — nothing; fixed (constants in the NL
        # file) rather than left at the floor of a unit it does not have (no first best: the barrier kept
        # its tokens ~1e-248, far above 1e-16 of the stand-in unit, and its V ~ floor^σ was read as served)
        for l in m.MODELS:
            m.q[k, l].setlb(0.0)
            m.q[k, l].fix(0.0)
    if only is not None:  # single-model program: the other model's tokens fixed at 0
        # (fixed variables are constants in the NL file, so ASL never differentiates 0^r).  Not at the
        # floor: a type whose own tokens on the other model are far below its unit then buys a floor
        # worth 1e-5 of its own pooled tokens — the fringe-only optimum of competition_90_30's lowest
        # type was 9.4e-6 low.
        for k in m.TYPES:
            m.q[k, 1 - only].setlb(0.0)
            m.q[k, 1 - only].fix(0.0)
    return m


MON_V_UB = 2.0
"""Upper bound of the monopolist programs' v_k = V_k/S_k, as a multiple of the running maximum Ŝ_k = max_(j≤k) S_j
of the per-type quality units (:func:`build_monopolist`, :func:`build_monopolist_assigned`).  Valid: at the
downward-binding prices the profit is Σ_k p_k(φ_k V_k − K_k(V_k)) (φ_k the discrete virtual value, K_k the type's
cost: min_ℓ C_ℓ or its assigned model's), and each term max_ℓ(φ_k V − C_ℓ(V)) is non-increasing above
max_ℓ Q_ℓ^FB(max(φ_k, 0)) ≤ S_k; so min(V, 2Ŝ) — still non-decreasing, Ŝ is — earns at least as much as V: some
optimum satisfies the bound, with a factor 2 of slack.  Why: types whose whole contribution p_k·M_k is below
Ipopt's resolution of the objective (Beta tails, masses 1e-29..1e-52 of competition_81_0) are pinned by no
gradient; unbounded, their V drifted to 1e5 times their own first best (V ~ 1e19 against 3e14) and the
all-pairs IC audit failed by 1.5 of the money scale.  (The leader program's Q_UB, same argument.)"""


MON_T_LB = -1.0
"""Lower bound of the monopolist programs' t̃_k = t_k/M_k.  Valid: the downward-binding prices of a monotone V
are t_k = θ_0 V_0 + Σ_(1≤j≤k) θ_j(V_j − V_(j−1)) ≥ 0.  Why: the prices of unresolvable types (MON_V_UB) ran to
subsidies (t ~ −8e19 at competition_81_0's top types, −3e7 at 92_9's bottom ones)."""


def _v_upper(S) -> np.ndarray:
    """Upper bounds of v_k = V_k/S_k (MON_V_UB)."""
    S = np.asarray(S, float)
    return MON_V_UB * np.maximum.accumulate(S) / S


def _monopolist_units(models, theta, mass):
    """Per-type units of the unrestricted monopolist program (docs/model.md §2.7): tokens τ_kℓ
    (:func:`_efficient_units`), quality S_k = max_ℓ τ_kℓ^η_ℓ (the type's larger first-best quality),
    money M_k = max(θ_k, 1e-12·θ_max)·S_k, objective B = max_k p_k M_k.  First bests only: no closed-form
    menu enters."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    tau = _efficient_units(models, th)
    S = _type_quality_units(models, tau)
    M = np.maximum(th, 1e-12 * float(np.max(th))) * S
    return tau, S, M, max(float(np.max(p * M)), 1e-300)


def _pair_rows(m, th, S, M, N, up=True):
    """Lowest type's IR, adjacent IC rows both ways, monotone V — each row in the units of the larger
    of its two types (IC: money max(M_k, M_l); monotonicity: quality max(S_k, S_{k−1})), so every
    coefficient is ≤ O(1) and a binding row is O(1) in the unit of the type it binds.  A type's own
    unit alone breaks upward rows (leader report, session 8)."""
    def ic(m, k, l):
        return (th[k] * (S[k] * m.V[k] - S[l] * m.V[l]) - M[k] * m.t[k] + M[l] * m.t[l]) / float(max(M[k], M[l])) >= 0
    m.IR_TYPES = pyo.Set(initialize=[0])
    m.ir = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: (th[k] * S[k] * m.V[k] - M[k] * m.t[k]) / float(M[k]) >= 0)
    m.ic_down = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else ic(m, k, k - 1))
    if up:
        m.ic_up = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == N - 1 else ic(m, k, k + 1))
    m.mono = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else
                            (S[k] * m.V[k] - S[k - 1] * m.V[k - 1]) / float(max(S[k], S[k - 1])) >= 0)


def build_monopolist(models, theta, mass, q0, t0=None):
    """Multi-model monopolist menu over discrete types (module docstring, item 3).

    Per-type units (:func:`_monopolist_units`): tokens ``q = τ_kℓ x``, value ``V_k = S_k v_k``,
    transfer ``t_k = M_k t̃_k``; ``quality[k]: v_k^{1/σ} = Σ_ℓ a_kℓ x_kℓ^{η_ℓ/σ}`` (:func:`_two_model_vars`;
    written in this direction it stays smooth at V = 0 for excluded types); pair rows as in
    :func:`_pair_rows`; objective Σ p_k(M_k t̃_k − spend_k)/B.  In the top type's units the low types' rows
    and variables were ~1e-18 and their IC rows ended violated by ~1 of their own money
    (competition_81_0, 81_13, 91_22), and the fringe's token unit overflowed (92_9)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th)
    s = models.sigma
    tau, S, M, B = _monopolist_units(models, th, p)
    q0 = np.asarray(q0, float)
    V0 = np.maximum.accumulate(_value(models, np.maximum(q0, 0.0)))
    if t0 is None:
        t0 = T_START_FACTOR * cc.screening_transfers(th, V0)  # strictly IC and IR for monotone V0
    m = pyo.ConcreteModel(name="multi_model_monopolist")
    m._models = models
    _two_model_vars(m, models, th, q0, tau, S)
    m._V_unit, m._t_unit = S, M
    m._units = ProgramUnits(P=B)
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(p)))
    ub = _v_upper(S)
    m.V = pyo.Var(m.TYPES, bounds=lambda m, k: (0.0, float(ub[k])),
                  initialize=dict(enumerate(np.minimum(V0 / S, 0.99 * ub))))
    m.t = pyo.Var(m.TYPES, bounds=(MON_T_LB, None),
                  initialize=dict(enumerate(np.maximum(np.asarray(t0, float) / M, 0.99 * MON_T_LB))))
    m.quality = pyo.Constraint(m.TYPES, rule=lambda m, k: m.V[k] ** (1 / s) == m.pooled[k])
    # IR of the lowest type only: U_k ≥ U_{k−1} + (θ_k − θ_{k−1})V_{k−1} ≥ U_{k−1} by
    # ic_down, so the other IR rows are implied (audited in numpy).  With all N
    # IR rows the excluded types make IR, IC, mono and the floors active at
    # once and Ipopt took 2.5x the iterations (measured, N = 64).
    _pair_rows(m, th, S, M, N, up=True)
    m.profit = pyo.Objective(expr=sum(float(p[k] / B) * (M[k] * m.t[k] - m.spend[k]) for k in m.TYPES),
                             sense=pyo.maximize)
    return m


def build_monopolist_assigned(models, theta, mass, assign, V0, t0=None):
    r"""Monopolist menu for a *fixed* model assignment (``assign[k]`` ∈ {0, 1}): convex.

    Variables ``V_k ≥ 0`` (screening variable) and ``t_k``; cost
    ``C_{ℓ_k}(V_k) = c_ℓ V_k^{1/η_ℓ}`` (convex, 1/η > 1), IR of the lowest type,
    adjacent downward IC and monotone V (linear rows).  A concave maximisation
    over a polyhedron: Ipopt's KKT point is the global optimum of the assigned
    problem.  The cost of an assigned model is ≥ K(V) = min_ℓ C_ℓ(V), so the
    assigned optimum is a lower bound on the monopolist's profit, attained by
    the optimal assignment, which is a cut-off in θ (at a monotone V the cheaper
    model is the low-η one below the cost crossing and the other above) — the
    outer search (:func:`_monopolist`) looks for that cut-off.  Upward IC and
    the other IR rows are implied at the optimum and audited in numpy.

    Per-type units of the *assigned* model: V_k = S_k v_k with S_k = τ_k^η (τ_k the type's
    first-best tokens on its model, :func:`_efficient_units`), cost c τ_k v_k^(1/η), money
    M_k = θ_k S_k, rows as in :func:`_pair_rows`, objective Σ p_k(M_k t̃_k − cost_k)/max_k p_k M_k.  Not the
    larger of both models' first bests: a type on the fringe at a leader-sized unit needs
    S^(1/η_F) = 1e700 (competition_92_9)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th)
    assign = np.asarray(assign, int)
    tau_all = _efficient_units(models, th)
    tau = tau_all[np.arange(N), assign]
    eta = np.array([models[int(a)].eta for a in assign])
    c = np.array([models[int(a)].c for a in assign])
    S = np.maximum(tau ** eta, 1e-300)
    M = np.maximum(th, 1e-12 * float(np.max(th))) * S
    B = max(float(np.max(p * M)), 1e-300)
    m = pyo.ConcreteModel(name="multi_model_monopolist_assigned")
    m._models = models
    m._V_unit, m._t_unit = S, M
    # objective per type O(1) (not O(mass)): Ipopt's barrier leaves a type at a flat optimum
    # (φ_k ≈ 0: V_k = 0 with a zero bound multiplier) at V ~ sqrt(μ / (p_k c)); with the
    # objective scaled by 1/max p that is sqrt(μ) ~ 3e-7 of the scale instead of 3e-6 at
    # N = 100 (θ = k/N, measured) and independent of N
    m._units = ProgramUnits(P=B)
    m.TYPES = pyo.RangeSet(0, N - 1)
    # start strictly inside the bounds (interior point): V0 ≥ 1e-6 of the type's own unit
    # and at most the type's own first best on its model (a start from another cut-off's menu can hold a
    # leader-sized V for a type now on the fringe: v^(1/η_F) = 1e700 at σ = 0.05, competition_92_9)
    V0 = np.maximum.accumulate(np.maximum(np.maximum(np.asarray(V0, float), 0.0), 1e-6 * S))
    Vc = np.minimum(V0, S)
    if t0 is None or np.any(Vc < V0):  # transfers of a clipped start: from the start itself
        t0 = None
    V0 = Vc
    if t0 is None:
        t0 = T_START_FACTOR * cc.screening_transfers(th, V0)
    ub = _v_upper(S)
    m.V = pyo.Var(m.TYPES, bounds=lambda m, k: (0.0, float(ub[k])),
                  initialize=dict(enumerate(np.minimum(V0 / S, 0.99 * ub))))
    m.t = pyo.Var(m.TYPES, bounds=(MON_T_LB, None),
                  initialize=dict(enumerate(np.maximum(np.asarray(t0, float) / M, 0.99 * MON_T_LB))))
    # upward IC rows too: implied at an optimum only through the objective, which does not see types
    # whose p_k·M_k is below its resolution (their prices could fall below the upward-binding chain)
    _pair_rows(m, th, S, M, N, up=True)
    m.profit = pyo.Objective(expr=sum(float(p[k] / B) * (M[k] * m.t[k] - float(c[k] * tau[k]) * m.V[k] ** (1.0 / eta[k]))
                                      for k in range(N)), sense=pyo.maximize)
    return m


def _read_q(m) -> np.ndarray:
    """Linear-cost units q[k, ℓ] per type and model, in the scenario's units (per-type units m._tau)."""
    x = np.array([[pyo.value(m.q[k, l]) for l in m.MODELS] for k in m.TYPES])
    return x * m._tau


def _read_V(m) -> np.ndarray:
    """The value V_k per type, in the scenario's units (per-type unit m._V_unit)."""
    return np.array([pyo.value(m.V[k]) for k in m.TYPES]) * m._V_unit


def _read_t(m) -> np.ndarray:
    """The transfer t_k per type, in the scenario's units (per-type unit m._t_unit)."""
    return np.array([pyo.value(m.t[k]) for k in m.TYPES]) * m._t_unit


@dataclass
class LeaderMenu:
    theta: np.ndarray
    mass: np.ndarray
    q: np.ndarray
    T: np.ndarray
    f: np.ndarray
    objective: float
    pairs: list = field(default_factory=list)
    ir_types: list = field(default_factory=list)
    result: object = field(default=None, repr=False)


LEADER_UNIT_MIN = 1e-200
"""Smallest per-type token unit of the leader program, relative to the top type's scale qs
(:func:`_leader_type_units`): keeps q^r and the money unit θ_k·q^η normal doubles for θ → 0."""


def _leader_type_units(lf, theta, A, qs):
    """Per-type units of the leader program (docs/model.md §2.7, "Leader program in per-type units"):
    token unit Qu_k = max(q^FB_L(θ_k), A_k^(1/r)) — the type's own leader first best or the leader
    quantity matching its stand-alone fringe purchase A_k, whichever is larger — and money unit
    M_k = θ_k·Qu_k^η, the type's utility scale (θ_k(Qu_k^r)^σ).  A scale only: no closed-form
    menu enters.  Both rise with θ, so the floors FLOOR·Qu_k are monotone like q."""
    th = np.asarray(theta, float)
    q_fb = (lf.eta * np.maximum(th, 0.0) / lf.c_L) ** (1 / (1 - lf.eta))
    Qu = np.maximum(np.maximum(q_fb, np.maximum(A, 0.0) ** (1 / lf.r)), LEADER_UNIT_MIN * qs)
    Qu = np.maximum.accumulate(Qu)
    M = np.maximum(th * Qu**lf.eta, LEADER_UNIT_MIN * max(float(np.max(th)) * qs**lf.eta, 1e-300))
    return Qu, M


def build_leader(lf: cc.LeaderFringe, theta, mass, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    r"""Leader's menu with the buyer's fringe top-up explicit (module docstring, item 4).

    ``pairs``: IC rows (k, l) "type k vs item l" (default: downward adjacent);
    ``ir_types``: types with an explicit outside-option row (default: the lowest).
    Start (q0, T0, f0); T0 defaults to a strictly IC/IR-feasible schedule and every
    dual variable s starts at the deviator's numeric top-up optimum.

    Per-type units (:func:`_leader_type_units`): the variables are ``m.q[k] = q_k/Qu_k``,
    ``m.T[k] = T_k/M_k``, ``m.f[k] = f_k/F_k`` and ``m.s[k, l] = s/(F_k + q_l^r)``; an IC row (k, l)
    is divided by max(M_k, M_l), the IR row of k by M_k, the monotonicity row q_k ≥ q_{k−1} by Qu_k.
    At σ + γ_L near 1 tokens and prices span tens of decades across the types (q ∝ θ^(1/(1−η))); in the
    top type's units a floor 1e-12·qs lay above the low types' own purchases and their rows were
    ~1e-18 (competition_91_22, 91_34: no start converged)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th)
    s, r, cF, cL = lf.sigma, lf.r, lf.c_F, lf.c_L
    A, qs, ts = _leader_scales(lf, th)
    Qu, M = _leader_type_units(lf, th, A, qs)
    held = _outside_types(lf, th, p, A, Qu, M)  # types Ipopt cannot resolve get the outside option
    n_out = _light_bottom(lf, th, p, A, Qu, M)
    q0 = np.maximum(np.maximum.accumulate(np.where(np.arange(N) < n_out, 0.0, np.maximum(np.asarray(q0, float), 0.0))),
                    FLOOR * Qu)
    q0 = np.where(held, FLOOR * Qu, q0)
    if T0 is not None:
        T0 = np.where(held, 0.0, np.asarray(T0, float))
    # q0^r = +inf where the item leaves double range in fringe tokens (units._leader_units: the program's
    # fringe-token unit is then A(θ_max)); such an item needs no top-up, its value is θ·q0^η
    a0, a0_s = leader_tokens_numeric(lf, q0)
    if T0 is None:  # binding-downward-IC schedule scaled by 0.9: strictly IC (monotone q0) and IR
        u = buyer_value_numeric(th, a0, s, cF, a0_s)
        u_prev = buyer_value_numeric(th, np.concatenate([[0.0], a0[:-1]]), s, cF, np.concatenate([[0.0], a0_s[:-1]]))
        T0 = T_START_FACTOR * np.cumsum(u - u_prev)
    if f0 is None:
        f0 = fringe_topup_numeric(th, a0, s, cF)
    pairs = sorted(pairs if pairs is not None else [(k, k - 1) for k in range(1, N)])
    ir_types = sorted(set(ir_types))

    # every dual variable s starts at the deviator's numeric top-up optimum (one vectorised bisection)
    kk = np.array([k for k, _ in pairs] + list(ir_types), dtype=int)
    aa = np.array([a0[l] for _, l in pairs] + [0.0] * len(ir_types), dtype=float)
    s0 = np.maximum(aa + fringe_topup_numeric(th[kk], aa, s, cF), 1e-300) * (1 + 1e-9) if len(kk) else np.zeros(0)
    # Fringe-side units per type: the top-ups are f = F_k·f̃ with F_k = A_k the type's stand-alone purchase
    # (f* ≤ F_k), and every dual point s = s̃·(F_k + q_l^r): at the optimum s = max(q_l^r, A_k), so
    # s̃* ∈ [1/2, 1] whatever the item l (leader-served or not) — all O(1), no per-start guess.
    # (competition_50_13: with unscaled top-ups θσ(a+f)^(σ−1) ~ 1e15, every start 'acceptable'.)
    # No floor on F_k: a floor relative to max A (91_24: 1e-16 vs A_0 ~ 1e-28) or to Qu_k^r, or an absolute
    # one (81_3: A ~ 1e-156), lay above A_k, so s̃* = A_k/F_k < S_LO and the IR row was violated at the optimum.
    F = np.maximum(A, 0.0)
    # Every power is taken of an O(1) number: buyer k's tokens in its own unit W_k = Qu_k^r (≥ A_k), so
    # x = s/W_k = s̃·(φ_k + ρ_kl q̃_l^r) with φ_k = F_k/W_k ≤ 1 and ρ_kl = W_l/W_k; the constants (α, φ, ρ, κ)
    # are formed in logs.  Before, pow(s, σ − 1) was evaluated at s ~ A_k ~ 1e-156 (81_3: its Hessian
    # s^(σ−3) overflows), and at a floor above A_k.
    with np.errstate(divide="ignore"):
        lQu, lM, lth = np.log(Qu), np.log(M), np.log(np.maximum(th, 0.0))
        lW = r * lQu
        phi = np.exp(np.log(F) - lW)                      # F_k/W_k ≤ 1 (0 where A_k = 0)
        alpha = np.exp(lth + s * lW - lM)                 # θ_k W_k^σ / M_k (1 unless M_k is floored)
        kappa = np.exp(lth + np.log(s / cF) + (s - 1) * lW)  # θ_k σ/c_F · W_k^(σ−1) = φ_k^(1−σ) ≤ 1
        # kkt_out: θσ/c_F·(s̃F_k)^(σ−1) = kappa_out·s̃^(σ−1), kappa_out = θσ/c_F·F_k^(σ−1) = 1 when F_k = A_k
        kappa_out = np.where(F > 0, np.exp(lth + np.log(s / cF) + (s - 1) * np.log(np.where(F > 0, F, 1.0))), 0.0)
    beta = cF * F / M                                     # c_F F_k/M_k = σ·θ_k A_k^σ/M_k ≤ σ
    s_unit0 = np.array([F[k] + a0[l] for k, l in pairs] + [F[k] for k in ir_types], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = np.where(s_unit0 > 0, s0 / np.where(s_unit0 > 0, s_unit0, 1.0), 1.0)
    sr = np.where(np.isfinite(s_unit0), sr, 1 + 1e-9)  # a_l = +inf: s = a_l, s̃ = a_l/(F_k + a_l) = 1
    s_init = {pr: max(float(v), S_LO) for pr, v in zip(pairs, sr[:len(pairs)])}
    s_out_init = {k: max(float(v), S_LO) for k, v in zip(ir_types, sr[len(pairs):])}
    with np.errstate(divide="ignore", invalid="ignore"):
        f_init = np.where(F > 0, np.asarray(f0, float) / np.where(F > 0, F, 1.0), 0.0)

    m = pyo.ConcreteModel(name="leader_fringe")
    m.TYPES = pyo.RangeSet(0, N - 1)
    m.PAIRS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    m.IR_TYPES = pyo.Set(initialize=ir_types, ordered=True)
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(p)))
    m.Qu = pyo.Param(m.TYPES, initialize=dict(enumerate(Qu)))
    m.M = pyo.Param(m.TYPES, initialize=dict(enumerate(M)))
    # q̃ ≤ Q_UB, T̃ ≥ T_LB: some optimum lies inside (see their docstrings); they keep the types whose
    # profit weight is below Ipopt's resolution in an O(1) box
    m.q = pyo.Var(m.TYPES, bounds=(FLOOR, Q_UB), initialize=dict(enumerate(np.clip(q0 / Qu, FLOOR, Q_UB))))  # q = Qu_k·q̃
    m.T = pyo.Var(m.TYPES, bounds=(T_LB, None), initialize=dict(enumerate(np.maximum(np.asarray(T0, float) / M, T_LB))))  # T = M_k·T̃
    m.f = pyo.Var(m.TYPES, bounds=(F_LO, None), initialize=dict(enumerate(np.maximum(f_init, F_LO))))  # f = F_k·f̃
    # S_LO ≤ s̃ ≤ S_UB: the optimum s̃* ∈ [1/2, 1] (above), so neither bound is active; S_LO keeps s̃^(σ−1)
    # finite, S_UB keeps the s̃ that no row pins in an O(1) box (see S_UB).
    m.s = pyo.Var(m.PAIRS, bounds=(S_LO, S_UB), initialize={pr: min(v, S_UB) for pr, v in s_init.items()})
    m.s_out = pyo.Var(m.IR_TYPES, bounds=(S_LO, S_UB), initialize={k: min(v, S_UB) for k, v in s_out_init.items()})
    m._f_unit, m._q_unit, m._T_unit = F, Qu, M

    # buyer k's utility from its own item, own top-up f_k explicit, in its money unit M_k:
    # [θ_k(q_k^r + f_k)^σ − c_F f_k − T_k]/M_k
    m.own = pyo.Expression(m.TYPES, rule=lambda m, k: (float(alpha[k]) * (m.q[k] ** r + float(phi[k]) * m.f[k]) ** s
                                                      if alpha[k] > 0 else 0.0) - float(beta[k]) * m.f[k] - m.T[k])

    def dual_value(k, l, sv):  # D_k(s; a_l)/M_k, D_k(s; a) = θ_k[(1−σ)s^σ + σ a s^(σ−1)] ≥ max_x θ_k(a+x)^σ − c_F x
        """(D_k/M_k, body of the KKT row ≥ 0) of the pair (k, l); s = s̃·b·W_k, b = φ_k + a_l/W_k."""
        al = float(np.exp(lW[l] - lW[k])) * m.q[l] ** r  # a_l/W_k
        if not F[k] > 0:  # θ_k = 0: α_k = κ_k = 0, the row has no fringe side
            x = sv * (float(phi[k]) + al)  # s/W_k
            return float(alpha[k]) * ((1 - s) * x**s + s * al * x ** (s - 1)), 1 - float(kappa[k]) * x ** (s - 1)
        # L = log(a_l/F_k) = r·log q̃_l + log(W_l/F_k); b = φ_k(1 + e^L), w = a_l/(F_k + a_l) = logistic(L).
        # D_k/M_k = α_k b^σ [(1−σ)s̃^σ + σ w s̃^(σ−1)] and the KKT sign θ_kσ s^(σ−1) ≤ c_F ⇔ s ≥ A_k ⇔ s̃ ≥ 1 − w.
        # Before: x = s̃·b and pow(x, σ−1), whose Hessian x^(σ−3) overflows when b ~ φ_k ≤ 1e-105 (the item l
        # is limit-priced or unserved and the fringe is negligible against the type's leader unit:
        # competition_122_14, σ = 0.05, φ ~ 1e-108, inf in the Hessian at every start).
        L = r * pyo.log(m.q[l]) + float(lW[l] - np.log(F[k]))
        softplus = pyo.Expr_if(IF=L >= 0, THEN=L + pyo.log(1 + pyo.exp(-L)), ELSE=pyo.log(1 + pyo.exp(L)))
        w = pyo.Expr_if(IF=L >= 0, THEN=1 / (1 + pyo.exp(-L)), ELSE=pyo.exp(L) / (1 + pyo.exp(L)))
        b_s = pyo.exp(s * (float(np.log(F[k]) - lW[k]) + softplus))  # b^σ, log b = log φ_k + log(1 + e^L)
        return float(alpha[k]) * b_s * ((1 - s) * sv**s + s * w * sv ** (s - 1)), sv + w - 1

    # each row in the money unit of the larger of its two types (consistent across the pair: both
    # utilities and both prices in the row are at most O(1) in it; a downward row (k, k−1) is in type k's
    # own unit, the binding rows of the chain are then O(1) for every k)
    def ic_rule(m, k, l):
        big = float(max(M[k], M[l]))
        return float(M[k] / big) * (m.own[k] - dual_value(k, l, m.s[k, l])[0]) + float(M[l] / big) * m.T[l] >= 0

    m.ic = pyo.Constraint(m.PAIRS, rule=ic_rule)
    m.ir = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: m.own[k] - float(alpha[k] * (1 - s) * phi[k] ** s)
                          * m.s_out[k] ** s >= 0)
    # KKT sign of the inner problem (dual feasibility, multiplier of x ≥ 0 is ≥ 0): θ_kσ s^(σ−1) ≤ c_F, written
    # s̃ + w − 1 ≥ 0 (s ≥ A_k; see dual_value; 1 − κ_k x^(σ−1) ≥ 0 where F_k = 0)
    m.kkt = pyo.Constraint(m.PAIRS, rule=lambda m, k, l: dual_value(k, l, m.s[k, l])[1] >= 0)
    m.kkt_out = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: 1 - float(kappa_out[k]) * m.s_out[k] ** (s - 1) >= 0)
    m.mono = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else
                            m.q[k] - float(Qu[k - 1] / Qu[k]) * m.q[k - 1] >= 0)
    m.profit = pyo.Objective(expr=sum(m.p[k] * (m.M[k] * m.T[k] - cL * m.Qu[k] * m.q[k]) for k in m.TYPES),
                             sense=pyo.maximize)

    # _outside_types: the types held at the outside option (q̃ at its floor, T = 0, f their stand-alone
    # top-up).  Their rows among themselves and their IR rows then read u0_k ≥ u0_k: no interior, so they are dropped
    # (true for the outside option); their IC rows toward items of served types stay (they must not want those
    # items), and so do the served types' rows toward their floor items.  q̃ is pinned by equal bounds, not fixed:
    # Pyomo folds a fixed q̃_l into the rows (k, l) and evaluates both branches of the softplus Expr_if there,
    # exp(L) with L = r·log q̃_l + log(W_l/F_k) ~ 820 (competition_92_9's units) is a math range error and the row
    # becomes nan.
    out = set(np.nonzero(held)[0].tolist())
    for k in out:
        m.q[k].setlb(FLOOR)
        m.q[k].setub(FLOOR)
        m.q[k].set_value(FLOOR)
        m.T[k].fix(0.0)
        m.f[k].fix(float(max(f_init[k], F_LO)))
        if k > 0:
            m.mono[k].deactivate()
    for k, l in pairs:
        if k in out and l in out:
            m.ic[k, l].deactivate()
            m.kkt[k, l].deactivate()
            m.s[k, l].fix()
    for k in ir_types:
        if k in out:
            m.ir[k].deactivate()
            m.kkt_out[k].deactivate()
            m.s_out[k].fix()
    m._outside = sorted(out)

    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[m.profit] = 1.0 / _leader_profit_scale(lf, th, p, A, Qu, M)
    return m


KINK_RES = float(np.sqrt(1e-9))
"""Relative distance to the kink of its own utility below which Ipopt does not resolve a bottom type's optimum:
√μ0 = 3.2e-5, μ0 = 1e-9 the starts' mu_init (solving.START_SOLVER_DEFAULTS; test_competition_comp18 pins the
two together).  Derivation: near the stand-alone purchase A_k the next type still tops up, so the discrete
virtual gain of type k, Δ_k(q) = u(θ_k, q) − ρ_k[u(θ_(k+1), q) − u(θ_k, q)] − c_L q (ρ_k = Σ_(j>k) p_j/p_k), has
slope c_F − c_L dq/da ∈ [0, c_F] just above a = q^r = A_k and curvature −c_F(1 − σ)(1 + ρ_k)/A_k, so a served
type's optimum lies at a relative distance δ_k ≤ 1/((1 − σ)(1 + ρ_k)) above the kink (competition_122_3, N = 58:
q^r/A_k − 1 = 0.8/ρ_k measured).  There the own top-up's bound f_k ≥ 0 is active with a multiplier O(δ_k), so
the barrier term μ·log(f̃_k − F_LO) holds f̃_k off its bound by O(μ/δ_k): it smooths the kink over a relative width
μ/δ_k, and the optimum stands apart from the kink only when δ_k² ≫ μ.  The scaling argument gives the order;
the measurement confirms it (122_3: types up to δ_k ~ 1e-6 stalled the exact-optimum start at N = 79 … 116;
with them at the outside option every size N = 20 … 116 ends 'optimal' on the first solve).  Equal-mass and
uniform grids have δ_k ≥ 1/((1 − σ)N), above KINK_RES for every N < 3e4, so the rule leaves them alone."""


LIGHT_BOTTOM = 1e-7
"""Cap, as a share of the leader's a priori profit bound B = Σ_k p_k G_k (:func:`_leader_profit_scale`), on what
the types given the outside option (:func:`_light_bottom`) can cost.  For a monotone menu with binding adjacent
downward IC the profit is Σ_k p_k Δ_k(q_k) (:func:`cc.leader_discrete_gain`), Δ_k(0) = 0 and
Δ_k(q) ≤ u(θ_k, q) − u0(θ_k) − c_L q ≤ G_k (the rent term is ≥ 0), so setting a bottom block to 0 keeps q
monotone and lowers the optimum by at most Σ_block p_k G_k ≤ LIGHT_BOTTOM·B.  B bounds the profit from above
(B/profit = 1.25 on competition_122_3, 1.79 on data/competition.toml), so that is 1.3e-7 … 1.8e-7 of the profit,
>= 5x below the profit row's TOL_DISCRETE, and each such type's profit weight I_k (audits.leader_type_weight) is
below TOL_DISCRETE as well: no per-type row judges it (measured on 122_3, N = 20 … 116: losses 2.2e-8 … 4.5e-8 of
the profit, I_k ≤ 3.3e-8).  The profit row still judges the result.  1e-8 and 3e-8 (comp17) left the exact start
'infeasible' / 'max_iterations' at N = 100, 116 and N = 116 (measured by comp17)."""


def _light_bottom(lf, theta, mass, A, Qu, M) -> int:
    """Number of bottom types given the outside option in the leader program (q̃ at its floor, T = 0).

    The longest bottom block whose every type has its optimum within KINK_RES of the kink (the bound δ_k ≤
    KINK_RES) and whose cost bound Σ p_k G_k is at most LIGHT_BOTTOM·B.  Why: competition_122_3 (Beta(17.1, 5.7),
    N = 58: bottom masses 1e-26 … 1e-8, ρ_k up to 1e26): from the exact discrete optimum itself every solve ended
    'acceptable' (N = 20 … 116) and its retries 'infeasible' or 'optimal' in other basins up to 3.8 % below; the
    N = 58 convergence walk stopped 2.6e-6 below the optimum and leader_finer_grids_vs_discrete_cf failed
    (7.9e-3 vs 1e-6).  A rule on the cost bound alone (comp17's patch, Σ p_k G_k ≤ 1e-7 B) also took heavy types
    (competition_92_9: 16 equal-mass types of mass 0.018, the top item 1e30 times theirs) that Ipopt resolves,
    and lost that scenario's starts."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    tail = np.append(np.cumsum(p[::-1])[::-1][1:], 0.0)  # Σ_(j>k) p_j (1 − cumsum(p) is round-off below ~1e-13)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(p > 0, p / ((1 - lf.sigma) * (p + tail)), 0.0)  # kink distance bound 1/((1−σ)(1+ρ_k))
    G = np.maximum(th * Qu**lf.eta - lf.c_L * Qu - (th * np.maximum(A, 0.0) ** lf.sigma - lf.c_F * A), 0.0)
    B = float(np.sum(p * G))
    if not B > 0:
        return 0
    ok = (delta <= KINK_RES) & (np.cumsum(p * G) <= LIGHT_BOTTOM * B)
    return int(np.argmin(ok)) if not ok.all() else len(p)


BARRIER_RES = 1e-6
"""Objective weight below which a type that can gain nothing (G_k = 0) is held at the outside option
(:func:`_outside_types`): 1e3·μ0, μ0 = 1e-9 the starts' mu_init (solving.START_SOLVER_DEFAULTS; pinned together by
test_competition_comp18).  A variable of the scaled program with objective gradient w is held off its optimal
bound by the barrier μ·log(slack) at slack ~ μ/w: O(1) when w ≤ μ0, ≥ 1e-3 of its O(1) box when w ≤ 1e3·μ0.
Holding such a type is exact (its optimum is the outside option), so the threshold changes how Ipopt behaves,
never the optimum.  Measured on competition_196_1 (14 starts): 1e-9 left the all_fringe start 'acceptable'; 1e-7
left 2 starts 'acceptable' and one at max_iter; 1e-6 and 1e-5: all 14 'optimal'."""


def _outside_types(lf, theta, mass, A, Qu, M) -> np.ndarray:
    """Types the leader program holds at the outside option (q̃ at its floor, T = 0; mask over the types):

    * the light bottom block of :func:`_light_bottom` (optimum within KINK_RES of a kink; cost ≤ LIGHT_BOTTOM·B);
    * every type that can gain nothing (G_k = 0, :func:`_leader_profit_scale`) and whose objective weight
      w_k = p_k·max(M_k, c_L Qu_k)/S (S the objective scale; T̃ ≥ T_LB = −1 and q̃ ≤ Q_UB = 2 are O(1)) is below
      BARRIER_RES.  Exact: Δ_k(q) ≤ G_k = 0 = Δ_k(0) for every monotone binding-downward menu, so q_k = 0 is
      optimal for such a type and holding it there costs nothing.  Why: competition_196_1 (c_F/c_L = 0.98, no
      type can gain, B = 0; Beta(1, 24) masses down to 5e-44): the barrier moved the light types' q̃ off their
      floors (to 1.8) and the dual infeasibility stalled at 8e-9 > tol, so 11 of 14 starts ended 'acceptable'
      (now all 14 'optimal').
    Heavy types with G_k = 0 stay in the program (their bound multipliers are not degenerate), so equal-mass
    grids keep their rows (test_build_leader_sizes).  At least one type always stays free."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    held = np.arange(len(th)) < _light_bottom(lf, th, p, A, Qu, M)
    G = np.maximum(th * Qu**lf.eta - lf.c_L * Qu - (th * np.maximum(A, 0.0) ** lf.sigma - lf.c_F * A), 0.0)
    S = _leader_profit_scale(lf, th, p, A, Qu, M)
    w = p * np.maximum(M, lf.c_L * Qu) / S
    held |= (G == 0) & (w < BARRIER_RES)
    if held.all():  # keep the heaviest type free (the program needs a variable; cannot happen when S ≤ Σ p_k M_k)
        held[int(np.argmax(w))] = False
    return held


def _leader_profit_scale(lf, theta, mass, A, Qu, M) -> float:
    """Objective scale of the leader program: Σ_k p_k G_k, G_k = the most type k's item can add to the
    joint surplus of leader and buyer beyond its fringe-only utility,
    max_q [u(θ_k, q) − c_L q] − u0(θ_k) = (θ_k Qu_k^η − c_L Qu_k − (θ_k A_k^σ − c_F A_k))^+ (the maximiser
    is Qu_k of :func:`_leader_type_units`: below A_k^(1/r) the gain c_F q^r − c_L q is convex in q, above
    it θq^η − c_L q is concave with peak q^FB).  An upper bound of every IR menu's profit (T_k − c_L q_k ≤
    u(θ_k, q_k) − u0(θ_k) − c_L q_k), from first bests only — no closed-form menu.  The former scale, the
    top type's money, was 1e13..1e17 times the profit when the served types are light (Beta tails:
    competition_81_0 profit 1.3e-13, 91_22 1.1e-17 of it): the scaled objective's gradient lay below
    tol and Ipopt stopped 'optimal' at menus with a loss.  Falls back to Σ p_k M_k when no type gains."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    G = np.maximum(th * Qu**lf.eta - lf.c_L * Qu - (th * np.maximum(A, 0.0) ** lf.sigma - lf.c_F * A), 0.0)
    B, PM = float(np.sum(p * G)), float(np.sum(p * M))
    return B if B > 1e-12 * PM else max(PM, 1e-300)


def leader_profit_scale(lf, theta, mass) -> float:
    """:func:`_leader_profit_scale` in the scenario's money (the scale of the cut-off comparisons)."""
    u, lf_s = _leader_units(lf, theta)
    th = np.asarray(theta, float) / u.theta
    A, qs, _ = _leader_scales(lf_s, th)
    Qu, M = _leader_type_units(lf_s, th, A, qs)
    return u.P * _leader_profit_scale(lf_s, th, mass, A, Qu, M)


def leader_gain_bound(lf, theta, mass) -> float:
    """The a priori bound B = Σ_k p_k G_k of :func:`_leader_profit_scale` in the scenario's money, without its
    fallback: 0 exactly when no type's best item beats its fringe-only utility (every G_k = 0), and then every
    IR menu's profit is ≤ 0, so serving nobody is optimal (competition_196_1: c_F/c_L = 0.98, G_k/M_k ≤ −0.012)."""
    u, lf_s = _leader_units(lf, theta)
    th, p = np.asarray(theta, float) / u.theta, np.asarray(mass, float)
    A, qs, _ = _leader_scales(lf_s, th)
    Qu, M = _leader_type_units(lf_s, th, A, qs)
    G = np.maximum(th * Qu**lf_s.eta - lf_s.c_L * Qu - (th * np.maximum(A, 0.0) ** lf_s.sigma - lf_s.c_F * A), 0.0)
    return u.P * float(np.sum(p * G))


def leader_light_bottom(lf, theta, mass) -> tuple[int, float]:
    """(:func:`_light_bottom`'s count, its cost bound Σ_block p_k G_k / B) in the scenario's units: the bottom
    types the leader program holds at the outside option, and what they could add at most, as a share of B."""
    u, lf_s = _leader_units(lf, theta)
    th, p = np.asarray(theta, float) / u.theta, np.asarray(mass, float)
    A, qs, _ = _leader_scales(lf_s, th)
    Qu, M = _leader_type_units(lf_s, th, A, qs)
    n = _light_bottom(lf_s, th, p, A, Qu, M)
    G = np.maximum(th * Qu**lf_s.eta - lf_s.c_L * Qu - (th * np.maximum(A, 0.0) ** lf_s.sigma - lf_s.c_F * A), 0.0)
    B = float(np.sum(p * G))
    return n, (float(np.sum(p[:n] * G[:n])) / B if B > 0 else 0.0)


def leader_held_types(lf, theta, mass) -> np.ndarray:
    """:func:`_outside_types` in the scenario's units: mask of the types the leader program holds at the outside
    option."""
    u, lf_s = _leader_units(lf, theta)
    th, p = np.asarray(theta, float) / u.theta, np.asarray(mass, float)
    A, qs, _ = _leader_scales(lf_s, th)
    Qu, M = _leader_type_units(lf_s, th, A, qs)
    return _outside_types(lf_s, th, p, A, Qu, M)


def leader_type_scale(lf, theta) -> np.ndarray:
    """Per-type token units Qu_k of :func:`build_leader` in the scenario's units: the program's floor of
    type k is FLOOR·Qu_k (the 'above twice the floor' part of :func:`audits.leader_regions`)."""
    A, qs, _ = _leader_scales(lf, theta)
    return _leader_type_units(lf, theta, A, qs)[0]


def read_leader(m, theta, mass, r) -> LeaderMenu:
    """The menu of a solved leader program, in the scenario's units (:func:`build_leader_nondim`)."""
    K = list(m.TYPES)
    u = getattr(m, "_units", None)
    tq, tf, P = (*m._leader_tokens, u.P) if u is not None else (1.0, 1.0, 1.0)
    return LeaderMenu(theta=np.asarray(theta, float), mass=np.asarray(mass, float),
                      q=tq * getattr(m, "_q_unit", 1.0) * np.array([pyo.value(m.q[k]) for k in K]),
                      T=P * getattr(m, "_T_unit", 1.0) * np.array([pyo.value(m.T[k]) for k in K]),
                      f=tf * getattr(m, "_f_unit", 1.0) * np.array([pyo.value(m.f[k]) for k in K]),
                      objective=r.objective,
                      pairs=list(m.PAIRS), ir_types=list(m.IR_TYPES), result=r)


def build_leader_nondim(lf, theta, mass, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    """:func:`build_leader` in nondimensional units (:class:`Units`); the starts are in the
    scenario's units, :func:`read_leader` scales the menu back."""
    u, lf_s = _leader_units(lf, theta)
    tq, tf = u.token(lf.eta), u.token(lf.sigma)
    m = build_leader(lf_s, np.asarray(theta, float) / u.theta, mass, np.asarray(q0, float) / tq,
                     None if T0 is None else np.asarray(T0, float) / u.P,
                     None if f0 is None else np.asarray(f0, float) / tf, pairs, ir_types)
    m._units, m._leader_tokens = u, (tq, tf)
    return m


def build_leader_tuned(tf: cc.TunedFringe, theta, mass, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    r"""Leader's menu when the fringe fine-tunes (γ_F > 0), in nondimensional units (:func:`tuned_units`;
    starts in the scenario's units).  Exact treatment of the non-concave top-up
    (:class:`~models.closed_form.competition.TunedFringe`): u = max(g(0), sup_{x≥x_p} g(x)), g
    concave on [x_p, ∞), so a deviation row "own_k ≥ u(θ_k, q_l) − T_l" is the pair

    * ``ic_cor[k,l]``: own_k ≥ θ_k q_l^η − T_l (no top-up, exact);
    * ``ic_int[k,l]``: own_k ≥ D − T_l with a variable z ≥ x_p(q_l) (``zlow``) and
      g'(z) ≤ 0 (``kkt``), D = g(z) − g'(z)(z − x_p).  By concavity, for every x ≥ x_p,
      g(x) ≤ g(z) + g'(z)(x − z) ≤ D (g'(z) ≤ 0, x − z ≥ x_p − z): the row implies the
      interior part of IC; at z = argmax_{x≥x_p} g it is equality, so no IC menu is cut off.

    At γ_F = 0 (κ = 1, x_p = 0) D is the Lagrangian dual θ[(1−σ)s^σ + σ a s^{σ−1}] of
    :func:`build_leader` with s = a + z.  The own top-up f_k is a free variable as there."""
    th0, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th0)
    u, t = tuned_units(tf, th0)
    th = th0 / u.theta
    tq, tx = u.token(tf.eta), u.token(tf.sigma + tf.gamma_F)
    s, r, k, cF, cL, eta = t.sigma, t.r, t.kappa, t.c_F, t.c_L, t.eta
    xA = cc.tuned_stand_alone(t, th)
    qs = max(float((eta * 1.0 / cL) ** (1 / (1 - eta))), float(np.max(xA)) ** (k / r), 1e-12)
    q0 = np.maximum(np.maximum.accumulate(np.maximum(np.asarray(q0, float) / tq, 0.0)), FLOOR * qs)
    if T0 is None:
        uk = cc.tuned_buyer_value(t, th, q0)
        uprev = cc.tuned_buyer_value(t, th, np.concatenate([[0.0], q0[:-1]]))
        T0 = T_START_FACTOR * np.cumsum(uk - uprev)
    else:
        T0 = np.asarray(T0, float) / u.P
    xfloor = FLOOR * max(float(np.max(xA)), 1e-300)
    f0 = cc.tuned_topup(t, th, q0)["x"] if f0 is None else np.asarray(f0, float) / tx
    f0 = np.maximum(f0, xfloor)
    pairs = sorted(pairs if pairs is not None else [(i, i - 1) for i in range(1, N)])
    ir_types = sorted(set(ir_types))
    c1 = ((k - 1) / (1 - s * k)) ** (1 / k)

    def z_start(kk, ql):
        res = cc.tuned_topup(t, th[kk], ql)
        xp = float(cc.tuned_peak(t, ql**r))
        x2 = float(res["x2"])
        return max(x2 if np.isfinite(x2) else xp, xp, xfloor) * (1 + 1e-9)

    m = pyo.ConcreteModel(name="leader_tuned_fringe")
    m._units, m._leader_tokens = u, (tq, tx)
    m.TYPES = pyo.RangeSet(0, N - 1)
    m.PAIRS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    m.IR_TYPES = pyo.Set(initialize=ir_types, ordered=True)
    m.q = pyo.Var(m.TYPES, bounds=(FLOOR * qs, None), initialize=dict(enumerate(q0)))
    m.T = pyo.Var(m.TYPES, initialize=dict(enumerate(T0)))
    m.f = pyo.Var(m.TYPES, bounds=(xfloor, None), initialize=dict(enumerate(f0)))
    m.z = pyo.Var(m.PAIRS, bounds=(xfloor, None), initialize={(a, b): z_start(a, q0[b]) for a, b in pairs})
    m.z_out = pyo.Var(m.IR_TYPES, bounds=(xfloor, None), initialize={a: z_start(a, 0.0) for a in ir_types})
    m.own = pyo.Expression(m.TYPES, rule=lambda m, i: th[i] * (m.q[i] ** r + m.f[i] ** k) ** s - cF * m.f[i] - m.T[i])

    def g(i, z, a):
        return th[i] * (a + z**k) ** s - cF * z

    def dg(i, z, a):
        return th[i] * s * k * z ** (k - 1) * (a + z**k) ** (s - 1) - cF

    def xp(l):
        return c1 * m.q[l] ** (r / k)  # ((κ−1)a/(1−σκ))^{1/κ}, a = q^r (r/κ > 1: smooth at 0)

    m.ic_int = pyo.Constraint(m.PAIRS, rule=lambda m, i, l: m.own[i] - (
        g(i, m.z[i, l], m.q[l] ** r) - dg(i, m.z[i, l], m.q[l] ** r) * (m.z[i, l] - xp(l)) - m.T[l]) >= 0)
    m.ic_cor = pyo.Constraint(m.PAIRS, rule=lambda m, i, l: m.own[i] - (th[i] * m.q[l] ** eta - m.T[l]) >= 0)
    m.kkt = pyo.Constraint(m.PAIRS, rule=lambda m, i, l: 1 - (dg(i, m.z[i, l], m.q[l] ** r) + cF) / cF >= 0)
    m.zlow = pyo.Constraint(m.PAIRS, rule=lambda m, i, l: m.z[i, l] - xp(l) >= 0)
    m.ir = pyo.Constraint(m.IR_TYPES, rule=lambda m, i: m.own[i] - (g(i, m.z_out[i], 0.0) - dg(i, m.z_out[i], 0.0)
                                                                      * m.z_out[i]) >= 0)
    m.ir_cor = pyo.Constraint(m.IR_TYPES, rule=lambda m, i: m.own[i] >= 0)
    m.kkt_out = pyo.Constraint(m.IR_TYPES, rule=lambda m, i: 1 - (dg(i, m.z_out[i], 0.0) + cF) / cF >= 0)
    m.mono = pyo.Constraint(m.TYPES, rule=lambda m, i: pyo.Constraint.Skip if i == 0 else m.q[i] - m.q[i - 1] >= 0)
    m.profit = pyo.Objective(expr=sum(float(p[i]) * (m.T[i] - cL * m.q[i]) for i in m.TYPES), sense=pyo.maximize)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    ts = max(float(np.max(th)) * qs**eta, 1e-300)
    sf[m.profit] = 1.0 / ts
    xk = np.maximum(xA, float(np.max(xA)) * 1e-6)
    for i in m.TYPES:
        sf[m.q[i]], sf[m.T[i]], sf[m.f[i]] = 1.0 / qs, 1.0 / ts, 1.0 / xk[i]
        if i > 0:
            sf[m.mono[i]] = 1.0 / qs
    for i, l in pairs:
        sf[m.z[i, l]] = 1.0 / xk[i]
        sf[m.zlow[i, l]] = 1.0 / xk[i]
        sf[m.ic_int[i, l]] = sf[m.ic_cor[i, l]] = 1.0 / ts
    for i in ir_types:
        sf[m.z_out[i]] = 1.0 / xk[i]
        sf[m.ir[i]] = sf[m.ir_cor[i]] = 1.0 / ts
    return m
