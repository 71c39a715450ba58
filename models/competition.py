r"""Regime ``competition``: two models, task assignment and competition (docs/model.md §2.7).

Four Pyomo programs, each compared with the closed forms of
:mod:`models.closed_form.competition` (written independently, no Pyomo):

1. **Task assignment** (:func:`build_assignment`).  A buyer with weights
   ``w_i`` on n task cells holds budgets on two models (token budgets
   ``X_ℓ`` in J classes and a fixed fine-tuning factor ``Φ_ℓ``) and chooses,
   per cell, the task share ``a_i`` done on model 1 and the tokens of every
   class spent on that cell's tasks on each model, ``y_{ℓ,i,j}`` (budget
   ``(1/n) Σ_i y_{ℓ,i,j} = X_{ℓ,j}``).  Tokens *per task* are
   ``x_{ℓ,i} = y_{ℓ,i}/a_{ℓ,i}`` (``a_{1i} = a_i``, ``a_{2i} = 1 − a_i``), and
   by homogeneity of Ψ the cell's value
   ``w_i Σ_ℓ a_{ℓ,i} Φ_ℓ Ψ(x_{ℓ,i}) = w_i Σ_ℓ Φ_ℓ a_{ℓ,i}^{1−σ} Ψ(y_{ℓ,i})``:
   the program is written in ``(a, y)``, where it is the perspective of a
   concave function, hence jointly concave — Ipopt's optimum is global.
   Checked: value = ``U(θ,Q1,Q2) = θ(Q1^{1/σ}+Q2^{1/σ})^σ`` and the share rule.

2. **Efficient allocation** (:func:`build_efficient`): per type, each model's
   tokens in linear-cost units ``q[k,ℓ] = Q_{kℓ}^{1/η_ℓ}`` (spend ``c_ℓ q``),
   surplus ``Σ_k w_k[θ_k V_k − Σ_ℓ c_ℓ q_{kℓ}]``, ``V = (Σ_ℓ q_ℓ^{η_ℓ/σ})^σ =
   (Q_1^{1/σ}+Q_2^{1/σ})^σ``.  Not concave: every type has a local optimum on
   each model.  One *convex* program per model (the other model's tokens
   fixed at their floor), the per-type best of the two (the objective is
   separable, so that is the global optimum among one-model allocations, and
   the weights w_k = 1 keep every type's KKT conditions O(1)), then a solve of
   the unrestricted program from it (up to UNRESTRICTED_MAX_N types) and a
   numpy mixing audit confirm that no type gains by moving or mixing.

3. **Multi-model monopolist**: menu ``(V_k, t_k)``, IC linear in (V, t).  The
   only non-convexity is which types sit on which model; at the optimum that
   is a cut-off in θ, and for a fixed cut-off the program
   (:func:`build_monopolist_assigned`, cost ``c_ℓ V^{1/η_ℓ}`` of the assigned
   model) is convex.  An outer search over the cut-off (:func:`_monopolist`:
   bisection on the profit difference, ties right, a coarse scan and a
   neighbour walk; each solve warm-started from the nearest cut-off solved)
   finds the best one; the unrestricted program (:func:`build_monopolist`,
   tokens of both models free per type) is solved from it up to
   UNRESTRICTED_MAX_N types, and a numpy audit checks that no type could be
   served more cheaply by moving or mixing.  Every solve is reported
   (``monopolist_starts``).  Grids above COARSE_MAX_N types are reached
   coarse-to-fine (:func:`_grid_ladder`).

4. **Leader vs competitive fringe** (:func:`build_leader`), γ_F = 0, fringe
   sold at c_F.  Menu ``(q_k, T_k)`` in linear-cost units ``q = Q_L^{1/η}``;
   with ``r = η/σ`` the buyer's value of item l is the *inner problem*

   .. math:: u(\theta_k,q_l)=\max_{x\ge0}\ \theta_k(q_l^r+x)^\sigma-c_Fx .

   *Own item* (left of every IC/IR row): a fringe variable ``f_k ≥ 0`` enters
   the buyer's utility ``θ_k(q_k^r+f_k)^σ − c_F f_k − T_k``.  A max on the
   left of a ≥ is exact with a free variable (the leader gains nothing from a
   smaller f, so f_k is the buyer's optimal top-up whenever row k binds).

   *Deviation to item l* (right of IC row (k,l), and the outside option l = ∅
   with q = T = 0): a max on the right of ≥ needs the inner optimum.  We use
   the inner problem's **Lagrangian dual**, an exact smooth reformulation
   (no complementarity).  With multiplier λ ≥ 0 of x ≥ 0 and the
   parameterisation λ = c_F − θσ s^{σ−1} (s = the inner stationary point of
   the Lagrangian, a decision variable ``s[k,l]``), the dual function is

   .. math:: D_k(s;a)=\theta_k\big[(1-\sigma)s^\sigma+\sigma a\,s^{\sigma-1}\big],\qquad a=q_l^r,

   dual feasibility λ ≥ 0 is the KKT sign condition
   ``kkt[k,l]: c_F − θ_kσ s^{σ−1} ≥ 0`` (scaled by 1/c_F), and
   ``ic[k,l]: own_k ≥ D_k(s_{kl}; q_l^r) − T_l``.  Weak duality: D ≥ every
   feasible top-up's value, so the row implies IC; strong duality (the inner
   problem is concave, Slater holds) gives ``min_s D = u``, attained at
   ``s = max(q_l^r, A_k)``, so no IC-feasible menu is cut off.  At a binding
   row, ``s − q_l^r`` is the deviator's optimal fringe top-up.  No solution
   formula for the top-up is used (only the derivative of θs^σ).  We tried
   the complementarity route first (``pyomo.mpec`` + ``mpec.simple_nonlinear``
   with a relaxation homotopy, and Fischer–Burmeister smoothing): on these
   problems Ipopt stalled (max_iter, 'restoration failed') or ended at menus
   1–10 % less profitable than the discrete optimum, even when started at it
   (N = 40..240, measured); the dual form solves in 10–30 iterations from a
   near-optimal start.

   *Which rows*: downward adjacent IC, IR of the lowest type and monotone q.
   Upward adjacent rows are slack at the optimum and leave their ``s``
   undetermined, which made Ipopt crawl; all other IC/IR are *implied*
   (u has increasing differences, so IR of type 1 + downward IC give every
   IR) and are **audited in numpy** for all N² pairs with an independent
   top-up (bisection on the inner FOC); any violated pair would be added as
   a row and the program re-solved (lazy IC generation).

   *Non-convexity*: each type's gain from the leader is bimodal in q (0 is
   always a local optimum; a second one sits at or above the limit
   quality), so Ipopt returns the basin it starts in.  Starts: all-fringe,
   limit pricing, interior (one per candidate regime, spread reported), then
   *cut-off starts* (types below a cut-off start at q = 0, above it at the
   larger of the limit and interior guesses) over a bisection schedule of
   cut-offs (:func:`_cutoff_search`; profit is flat, then unimodal, in the
   cut-off).  Every start solves the
   same unrestricted NLP; Proposition 4's regions are never imposed: they are
   read off the solution (region 1 = the buyer buys no fringe tokens but the
   next type would at this quantity).  Finer grids (convergence, and grids
   above COARSE_MAX_N types, which run all starts on a coarse grid of the same
   distribution) start from the coarser solution and walk the cut-off.

Ipopt options (``*_SOLVER_DEFAULTS``): ``bound_relax_factor = 0`` keeps every
quantity ≥ its floor; the non-convex programs start with ``mu_init = 1e-9``
and ``bound_push = bound_frac = 1e-8`` so that Ipopt stays in the basin of its
start (with the default barrier 0.1, the first iterations throw the start
away and every start ends in the same, worse, basin — measured).

Floors: quantity variables have a small positive lower bound (``FLOOR``,
``FLOOR_TWO_MODEL``; ASL evaluates x^r at 0 with a 0/0 derivative); the
profit shift is < 1e-7 relative (measured) and every comparison is in the
units in which the floor is harmless (tokens q, not qualities q^η).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from models import gain
from models.closed_form import competition as cc
from models.closed_form import cost as cf
from models.results import RegimeResult, bound_check, compare
from models.solver import Timer

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
TOL_SERVED = 1e-6
"""A type is 'served' by a model when its quantity exceeds this fraction of
the quantity scale (floors are 1e-9 of it)."""
TOL_REGION = 1e-6
"""Region labels: type k is limit-priced (region 1) when the next type would
top up at q_k, i.e. q_k^r < A_{k+1}(1 − TOL_REGION); ties within solver
tolerance count as interior (as leader_discrete labels a clamped q_k = q̂_{k+1})."""
FLOOR = 1e-12
"""Lower bound of the leader's quantity q, relative to its scale (ASL evaluates
x^r at 0 with a 0/0 derivative).  The buyer's value uses q^r, r > 1, and the
cost c_L q is linear, so the floor moves profits by ~1e-9 relative (measured;
at 1e-9 the unserved types' Q_L = q^η ≈ 1e-5 put the Q_L check at 5e-7)."""
FLOOR_TWO_MODEL = 1e-16
"""Token floor of the efficient/monopolist programs, relative to scale.  Their
value V = (Σ_ℓ q_ℓ^(η_ℓ/σ))^σ has an infinite slope at 0 when η_ℓ = σ, so a
floor ε leaves excluded types V ~ ε^σ: at 1e-9 that was V ≈ 2.5e-4 and a
profit 6e-5 too low (measured); the costs are linear in q, so a tiny floor is
harmless to Ipopt."""
ORDER_CHECKED = ("max_rel_err_q_L_away_from_thresholds", "max_rel_err_t_away_from_thresholds", "rel_err_profit")
"""Errors whose observed order (least-squares slope over the convergence N) is
checked.  Away from a window of 2 grid steps around each continuous threshold
the discrete optimum differs from the continuous one through the discrete
virtual value φ_k − h(θ_k) = O(1/N) only, so the error is C/N(1 + O(1/N));
the profit integrand is continuous at the thresholds (the gain crosses 0 at
θ*), so profit also converges at O(1/N).  L1 errors over *all* types are
dominated by the jump of q at θ*/θ_lo, whose position within a grid cell
varies with N: their fitted order ranged over −0.24…2.9 on a 50-scenario c_F
sweep (both γ_L, N0 = 16, 60, 100) and is reported only; the jump's position
is checked by the 'within one grid step' threshold rows."""
ORDER_BAND = (0.75, 1.25)
"""Allowed observed order of the ORDER_CHECKED errors (expected 1).  Measured on
the same 50 scenarios (discrete closed form vs continuous): 0.96…1.03 at
N0 = 100, 1.00…1.09 at N0 = 60, 0.86…1.07 at N0 = 16 (the O(1/N) correction);
the band leaves ≥ 0.1 of margin and fails O(1/√N), stalled or spuriously fast convergence."""
MIN_AWAY_TYPES = 3
"""Fewer types than this away from the thresholds on a grid: no order (too few points)."""
ORDER_NOISE_FLOOR = 10 * TOL_DISCRETE
"""An error this small is at the NLP's accuracy level against the discrete
closed form (TOL_DISCRETE), where a fitted order would measure solver noise."""
UNRESTRICTED_MAX_N = 400
"""The monopolist's final solve of the *unrestricted* program (both models free for
every type) runs up to this many types: ~60 iterations, <= 2 s at N = 400, but
MUMPS slows to 0.2-1.4 s per iteration at N = 1000 (14-107 s, measured), so
above it the one-model structure is confirmed by the numpy mixing audit only."""
MAX_LAZY_ROUNDS = 3
"""Rounds of lazy IC generation (add violated pairs, re-solve)."""
T_START_FACTOR = 0.9
"""Start transfers: this factor times the binding-downward-IC schedule of the
start quantities (strictly IC and IR when those are monotone)."""

# Ipopt defaults (the scenario's [solver] options override them)
CONVEX_SOLVER_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-10, "max_iter": 3000}
# non-convex menu programs: stay in the start's basin (see module docstring);
# tol 1e-12 because the smallest served quantities sit on flat stretches
# (measured: q error 1e-7 at tol 1e-10, ~1e-9 at 1e-12).
START_SOLVER_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-12, "max_iter": 3000,
                         "mu_init": 1e-9, "bound_push": 1e-8, "bound_frac": 1e-8}


CONVEX_START_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-12, "max_iter": 3000}
"""Convex programs (one-model efficient allocations, assigned monopolist menus): Ipopt's default barrier (a convex
program has one basin, so there is nothing to stay in); tol 1e-12 as for the
non-convex programs (the objective then carries ~12 digits, which the cut-off
comparison below needs)."""
RETRIES = ({"mu_init": 1e-7, "max_iter": 500}, {"tol": 1e-10, "max_iter": 500})
"""A start that stops short of optimality (Ipopt: 'very little progress' at an
essentially optimal point, measured on the monopolist at N = 80) is re-solved
from its last iterate with these option changes, in turn.  The first keeps tol
1e-12 (a looser tol shifts objectives by up to ~1e-6, enough to mislead the
cut-off search); the second is still 1e4 below TOL_DISCRETE.  Retries stop at 500
iterations: healthy solves here take ≤ 250, and retries that ran to 3000 were diverging
(objective → −1e22 on a σ+γ_L = 0.89 Beta scenario, 15–30 s each, measured)."""


def _solve_start(ctx, m, label, build_seconds=0.0, defaults=None):
    """Solve a program from its start (default options: START_SOLVER_DEFAULTS); retried with RETRIES if not optimal."""
    defaults = START_SOLVER_DEFAULTS if defaults is None else defaults
    r = ctx.solve(m, label, build_seconds, defaults=defaults)
    its, first = r.iterations, r.status.value
    for extra in RETRIES:
        if r.ok:
            break
        tag = ", ".join(f"{k}={v:g}" for k, v in extra.items())
        r = ctx.solve(m, f"{label}[retry {tag}]", 0.0, defaults={**defaults, **extra})
        its += r.iterations
        r.message = f"retried ({tag}) after '{first}': {r.message}"
    r.iterations = its
    u = getattr(m, "_units", None)
    if u is not None and r.objective is not None and np.isfinite(r.objective):
        r.objective *= u.P  # nondimensional program (Units): objective back in money
    return r


def validate_options(v, opts, path, tech):
    v.keys(opts, path, {"gamma_L", "gamma_F", "c_L", "c_F", "convergence", "refine",
                        "task_cells", "task_profiles"})
    s = tech.sigma
    gL = v.number(opts, path, "gamma_L", lo=0, hi=1 - s, lo_open=True, hi_open=True, required=True)
    gF = v.number(opts, path, "gamma_F", lo=0, hi=gL, hi_open=True, default=0.0)
    # c_L <= 1e6 ($ per unit of aggregate quality, types of order 1-100): beyond
    # it every quantity is below ~1e-20 of the type scale, under what Ipopt's
    # absolute tolerances resolve; c_L = 1e308 ran for >10 min (issue 16).
    cL = v.number(opts, path, "c_L", lo=0, hi=1e6, lo_open=True, required=True)
    cF = v.number(opts, path, "c_F", lo=0, hi=cL, lo_open=True, hi_open=True, required=True)
    conv = v.numbers(opts, path, "convergence", lo=2, min_len=2, default=[], increasing=True)
    if any(int(x) != x for x in conv):
        v.fail(path + ".convergence", conv, "a strictly increasing list of at least 2 integers >= 2 (numbers of types)")
    return {
        "gamma_L": gL, "gamma_F": gF, "c_L": cL, "c_F": cF,
        "convergence": [int(x) for x in conv],
        "refine": v.number(opts, path, "refine", lo=1, hi=1000, integer=True, default=10),
        "task_cells": v.number(opts, path, "task_cells", lo=0, hi=20_000, integer=True, default=40),
        "task_profiles": v.number(opts, path, "task_profiles", lo=1, hi=20, integer=True, default=3),
    }


# =====================================================================
# independent numpy pieces (no closed-form solution used)
# =====================================================================
def fringe_topup_numeric(theta, a, sigma: float, c_F: float, iters: int = 200) -> np.ndarray:
    r"""Buyer's fringe purchase :math:`\arg\max_{x\ge0}\theta(a+x)^\sigma-c_Fx` by bisection
    on the first-order condition (no closed form): x = 0 if the marginal value at
    x = 0 is ≤ c_F, else the root of :math:`\theta\sigma(a+x)^{\sigma-1}=c_F`."""
    th, a = np.broadcast_arrays(np.asarray(theta, float), np.maximum(np.asarray(a, float), 0.0))
    th, a = th.astype(float), a.astype(float)

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
    lo = np.zeros_like(a)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pos = mv(mid) > 0
        lo, hi = np.where(pos, mid, lo), np.where(pos, hi, mid)
        if np.all((hi - lo) <= 4e-16 * np.maximum(hi, 1e-300)):
            break
    return np.where(buy, 0.5 * (lo + hi), 0.0)


def buyer_value_numeric(theta, a, sigma: float, c_F: float) -> np.ndarray:
    """Value of fringe-equivalent leader quantity a = q^r after the numeric top-up.

    The inner FOC θσ(a+x)^(σ−1) = c_F fixes a + x = S(θ) whatever a is, so the top-up is
    (S(θ) − a)^+ with S(θ) = :func:`fringe_topup_numeric` at a = 0 (bisection once per θ,
    not per pair; the same root up to the bisection's 4e-16 relative width)."""
    th = np.asarray(theta, float)
    S = fringe_topup_numeric(th, 0.0, sigma, c_F)
    a = np.maximum(np.asarray(a, float), 0.0)
    se = np.maximum(a, S)
    return th * se**sigma - c_F * (se - a)


def leader_audit(lf: cc.LeaderFringe, theta, q, T) -> dict:
    r"""All-pairs IC and IR of a leader menu with the numeric top-up.

    ``viol[k, l] = [u(θ_k,q_l) − T_l] − U_k`` (column N: the outside option),
    positive = violated.  Returns U, u0, viol, worst ic, worst ir."""
    th, q, T = (np.asarray(x, float) for x in (theta, q, T))
    a = np.maximum(q, 0.0) ** lf.r
    own = buyer_value_numeric(th, a, lf.sigma, lf.c_F) - T
    u0 = buyer_value_numeric(th, np.zeros_like(th), lf.sigma, lf.c_F)
    dev = buyer_value_numeric(th[:, None], a[None, :], lf.sigma, lf.c_F) - T[None, :]
    viol = np.concatenate([dev - own[:, None], (u0 - own)[:, None]], axis=1)
    np.fill_diagonal(viol[:, :-1], -np.inf)
    return {"U": own, "u0": u0, "viol": viol, "q_F": fringe_topup_numeric(th, a, lf.sigma, lf.c_F),
            "ic": float(np.max(viol[:, :-1])) if len(th) > 1 else -np.inf,
            "ir": float(np.max(viol[:, -1]))}


def leader_regions(lf: cc.LeaderFringe, theta, q, q_scale: float) -> np.ndarray:
    """Region of every type read off a solved menu (0 fringe only, 1 limit pricing, 2 interior).

    Served iff q_k > TOL_SERVED·scale.  Limit pricing: type k buys no fringe
    tokens at q_k but type k+1 would (q_k^r < A_{k+1}); for the top type: q_N^r
    ≤ A_N (it is exactly at the margin of topping up).  A is the numeric
    stand-alone fringe purchase (top-up at q = 0)."""
    th, q = np.asarray(theta, float), np.asarray(q, float)
    A = fringe_topup_numeric(th, 0.0, lf.sigma, lf.c_F)
    a = np.maximum(q, 0.0) ** lf.r
    served = q > TOL_SERVED * q_scale
    A_next = np.append(A[1:], np.nan)
    limit = np.where(np.arange(len(th)) < len(th) - 1, a < A_next * (1 - TOL_REGION), a <= A * (1 + TOL_REGION))
    return np.where(served, np.where(limit, 1, 2), 0)


def _region_mismatches(lf, theta, reg, reg_ref, q_ref, q_scale) -> int:
    """Types whose NLP region differs from the discrete closed form's, not counting types
    whose closed-form q lies within TOL_DISCRETE·max q of a region boundary of
    :func:`leader_regions` (the limit quality of the next type, q̂_{k+1} = A_{k+1}^{1/r}, or
    the served cut-off): there the label is decided by solver accuracy (measured: N = 1000,
    θ_k = 0.6995 next to θ_hi, q_cf 2e-7·max q below q̂_{k+1}), and a counted mismatch
    always means a q error above TOL_DISCRETE, which the q_L row reports too."""
    th, q = np.asarray(theta, float), np.asarray(q_ref, float)
    band = TOL_DISCRETE * max(float(np.max(np.abs(q))), 1e-300)
    A = fringe_topup_numeric(th, 0.0, lf.sigma, lf.c_F)
    qhat_next = np.append(A[1:], A[-1]) ** (1 / lf.r)
    ambiguous = (np.abs(q - qhat_next) <= band) | ((q > 0) & (np.abs(q - TOL_SERVED * q_scale) <= band))
    return int(np.sum((np.asarray(reg) != np.asarray(reg_ref)) & ~ambiguous))


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


TIE = 1e-7
"""Relative difference below which two starts' objectives count as equal: starts
that end in the same local optimum agree to ~1e-11 at tol 1e-12 (measured).
Neighbouring cut-offs near the optimum differ by ~1/N² (leader: 7e-5 relative
at N = 60, ~4e-6 at N = 240), so 1e-7 separates them up to N ~ 1000."""


def _better(a: float, b: float) -> bool:
    return a > b + TIE * max(1.0, abs(b))


def _cutoff_search(f, lo: int, hi: int, better=None) -> int:
    """Best integer cut-off of f on [lo, hi] where f is flat (a plateau), then
    increasing, then decreasing: bisection on the sign of f(c+1) − f(c), ties
    going right, then a walk to neighbouring cut-offs until neither improves.

    The shape is what Ipopt produces here: a start whose cut-off is too low
    ends in one and the same too-early local optimum (plateau); above it the
    start's cut-off is kept and profit is unimodal in it.  (A golden-section
    search was misled by that plateau — measured on the monopolist, N = 16.)"""
    better = _better if better is None else better
    a, b = lo, hi
    while a < b:
        c = (a + b) // 2
        if better(f(c), f(c + 1)):
            b = c
        else:
            a = c + 1
    cut = a
    while True:
        nb = [c for c in (cut - 1, cut + 1) if lo <= c <= hi]
        best = max(nb, key=f)
        if not better(f(best), f(cut)):
            return cut
        cut = best


# =====================================================================
# 1. task assignment
# =====================================================================
def build_assignment(tech: cf.Technology, w, X, Phi):
    """Task-assignment program for profile w over n cells (module docstring, item 1).

    X: (2, J) token budgets per model and class; Phi: (2,) fine-tuning factors."""
    w = np.asarray(w, float)
    n = len(w)
    X = np.asarray(X, float)
    s = tech.sigma
    m = pyo.ConcreteModel(name="task_assignment")
    m.CELLS = pyo.RangeSet(0, n - 1)
    m.MODELS = pyo.RangeSet(0, 1)
    m.TOKENS = pyo.RangeSet(0, tech.J - 1)
    m.w = pyo.Param(m.CELLS, initialize=dict(enumerate(w)))
    # a neutral start: half the tasks on each model, budgets spread evenly
    m.a = pyo.Var(m.CELLS, bounds=(0.0, 1.0), initialize=0.5)
    m.y = pyo.Var(m.MODELS, m.CELLS, m.TOKENS, bounds=(0.0, None), initialize=lambda m, l, i, j: X[l, j])
    m.budget = pyo.Constraint(m.MODELS, m.TOKENS,
                              rule=lambda m, l, j: sum(m.y[l, i, j] for i in m.CELLS) / n == X[l, j])

    def share(m, l, i):
        return m.a[i] if l == 0 else 1 - m.a[i]

    m.value = pyo.Objective(expr=sum(
        m.w[i] / n * Phi[l] * share(m, l, i) ** (1 - s) * gain.psi(tech, [m.y[l, i, j] for j in m.TOKENS])
        for l in m.MODELS for i in m.CELLS), sense=pyo.maximize)
    return m


def _assignment_checks(res, tech, ctx, opts, gammas):
    """Random profiles + a flat one: value vs U(θ,Q1,Q2) and the share rule."""
    rng = np.random.default_rng(20250207)
    n, s = opts["task_cells"], tech.sigma
    rows, vals, refs = [], [], []
    profiles = [("flat", np.ones(n))] + [(f"random[{p}]", rng.uniform(0.05, 1.0, n))
                                           for p in range(opts["task_profiles"])]
    for name, w in profiles:
        X = rng.uniform(0.2, 2.0, (2, tech.J))
        z = rng.uniform(0.5, 2.0, 2)
        Phi = z ** np.asarray(gammas)  # Φ_ℓ = z_ℓ^γ_ℓ with z fixed
        with Timer() as tb:
            m = build_assignment(tech, w, X, Phi)
        r = ctx.solve(m, f"task_assignment[{name}]", tb.seconds, defaults=CONVEX_SOLVER_DEFAULTS)
        res.solves[f"task_assignment[{name}]"] = r
        a = np.array([pyo.value(m.a[i]) for i in m.CELLS])
        y = np.array([[[pyo.value(m.y[l, i, j]) for j in m.TOKENS] for i in m.CELLS] for l in m.MODELS])
        Q = Phi * cf.psi(tech, X)  # qualities of the two budgets
        theta = cc.aggregate_type(w, s)
        U = float(cc.indirect_utility(theta, Q[0], Q[1], s))
        s1, _ = cc.task_shares(Q[0], Q[1], s)
        v = (Phi[:, None] * cf.psi(tech, y)) ** (1 / s)  # pooled effective tokens per cell and model
        V = v.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            a_cell = v[0] / V  # optimal share of each cell given its tokens
        mvec = w ** (1 / (1 - s))
        vw_share = float(np.sum(a * V) / np.sum(V))
        vals.append(r.objective)
        refs.append(U)
        chk = "task_assignment"
        res.checks.append(compare(NAME, chk, f"per-cell share a_i = v1/(v1+v2) [{name}]", a, a_cell, TOL_ASSIGN))
        res.checks.append(compare(NAME, chk, f"pooled tokens ∝ w^(1/(1-σ)) [{name}]", V / V.mean(),
                                  mvec / mvec.mean(), TOL_ASSIGN))
        res.checks.append(compare(NAME, chk, f"value-weighted model-1 share [{name}]", vw_share, s1, TOL_ASSIGN))
        if name == "flat":  # constant profile: the task-mass share itself is the rule
            res.checks.append(compare(NAME, chk, "task-mass share of model 1 [flat]", a.mean(), s1, TOL_ASSIGN))
        x_task = y[0] / np.maximum(a, 1e-300)[:, None]
        rows.append({"profile": name, "cells": n, "theta_w": theta, "Q_1": Q[0], "Q_2": Q[1],
                     "U_nlp": r.objective, "U_closed_form": U, "rel_err": abs(r.objective - U) / abs(U),
                     "model1_task_mass_share": a.mean(), "model1_value_weighted_share": vw_share,
                     "model1_share_rule": float(s1), "tokens_per_task_model1_min": x_task.sum(axis=1).min(),
                     "tokens_per_task_model1_max": x_task.sum(axis=1).max(), "status": r.status.value})
    res.checks.append(compare(NAME, "task_assignment", "U(θ,Q1,Q2) = θ(Q1^(1/σ)+Q2^(1/σ))^σ", vals, refs,
                              TOL_ASSIGN, index=[p for p, _ in profiles]))
    res.tables["task_assignment"] = pd.DataFrame(rows)


# =====================================================================
# 2./3. two models: efficient allocation and the multi-model monopolist
# =====================================================================
def _quality_scale(models, theta) -> float:
    return max(float(cc.first_best_quality(mm, np.max(theta))) for mm in models)


def _token_scale(models, theta) -> float:
    """Scale of linear-cost units: the larger first-best q = Q^(1/η) of the top type."""
    return max(float(cc.first_best_quality(mm, np.max(theta))) ** (1 / mm.eta) for mm in models)


def _scale_two_model(m, models, theta, objective):
    """User scaling to O(1): tokens by the top type's first best, qualities by its
    quality, money by its value."""
    s = models.sigma
    Qs = _quality_scale(models, theta)  # token variables are O(1) by construction (_two_model_vars)
    ts = float(np.max(theta)) * Qs
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[objective] = 1.0 / ts
    for name, scale in (("q", 1.0), ("V", Qs), ("quality", Qs ** (1 / s)), ("mono", Qs),
                        ("t", ts), ("ir", ts), ("ic_down", ts), ("ic_up", ts)):
        for c in getattr(m, name).values() if hasattr(m, name) else ():
            sf[c] = 1.0 / scale


@dataclass(frozen=True)
class Units:
    r"""Units in which a program is written (nondimensionalisation, docs/model.md §2.7).

    The model is homogeneous: with a quality unit ``Q`` and a type unit ``θu``
    (money unit ``P = θu·Q``), qualities ``Q̃ = Q/Q``, types ``θ̃ = θ/θu``,
    tokens of a model with exponent η ``q̃ = q/Q^{1/η}``, money ``t̃ = t/P``
    and costs ``c̃ = c·Q^{1/η}/P`` give the *same* problem in O(1) numbers
    (θ̃ ≤ 1, the top type's first-best quality 1).  Why not Ipopt's user scaling
    alone: Ipopt also stops on *unscaled* absolute tolerances (dual_inf_tol,
    constr_viol_tol, compl_inf_tol) and evaluates pow at the unscaled values;
    at σ = 0.9, θ ≈ 25, c_F = 0.004 quantities are ~1e33, the unscaled
    complementarity stayed at 9e4 while the scaled NLP error was 1e-16, and Ipopt
    drove μ to 1e-39 until it evaluated pow(0, 1/η) (measured, repro
    competition_11_0)."""

    theta: float
    Q: float

    @property
    def P(self) -> float:
        return self.theta * self.Q

    def token(self, eta: float) -> float:
        return self.Q ** (1.0 / eta)

    def models(self, models):
        out = _Models(tuple(cc.ModelCost(mm.c * self.token(mm.eta) / self.P, mm.eta, mm.name) for mm in models))
        out.sigma = models.sigma
        return out

    def tokens(self, models) -> np.ndarray:
        return np.array([self.token(mm.eta) for mm in models])


def _units(models, theta) -> Units:
    """Units of a two-model program: θ_max and the top type's larger first-best quality."""
    th = float(np.max(theta))
    return Units(theta=th, Q=max(_quality_scale(models, theta), 1e-300))


def _nondim(models, theta, q0):
    """(units, models, θ, q0) of the nondimensional program (:class:`Units`)."""
    u = _units(models, theta)
    q0 = None if q0 is None else np.asarray(q0, float) / u.tokens(models)
    return u, u.models(models), np.asarray(theta, float) / u.theta, q0


def _model_tokens(models, theta) -> np.ndarray:
    """τ_ℓ: each model's own first-best tokens for the top type (the unit of its token variables)."""
    return np.array([max(float(cc.first_best_quality(mm, np.max(theta))) ** (1 / mm.eta), 1e-300) for mm in models])


def _two_model_vars(m, models, theta, q0):
    """Token variables ``m.q[k, ℓ] = q_{kℓ}/τ_ℓ ≥ floor`` (τ_ℓ = :func:`_model_tokens`: O(1) per
    model — one token unit for both models left the weaker model's tokens ~1e-19 of it, below
    the floor, at σ+γ_L = 0.89, measured), pooled value ``Σ_ℓ (τ_ℓ x)^(η_ℓ/σ)``, spend
    ``Σ_ℓ c_ℓ τ_ℓ x``.  ``q0`` in linear-cost units of the (nondimensional) program."""
    s = models.sigma
    tau = m._tau = _model_tokens(models, theta)
    x0 = np.asarray(q0, float) / tau
    a = tau ** np.array([mm.eta / s for mm in models])
    m.TYPES = pyo.RangeSet(0, len(theta) - 1)
    m.MODELS = pyo.RangeSet(0, len(models) - 1)
    m.theta = pyo.Param(m.TYPES, initialize=dict(enumerate(np.asarray(theta, float))))
    m.q = pyo.Var(m.TYPES, m.MODELS, bounds=(FLOOR_TWO_MODEL, None),
                  initialize=lambda m, k, l: max(x0[k, l], FLOOR_TWO_MODEL))
    m.pooled = pyo.Expression(m.TYPES, rule=lambda m, k: sum(float(a[l]) * m.q[k, l] ** (models[l].eta / s)
                                                             for l in m.MODELS))
    m.spend = pyo.Expression(m.TYPES, rule=lambda m, k: sum(models[l].c * float(tau[l]) * m.q[k, l]
                                                            for l in m.MODELS))


def build_efficient(models, theta, mass, q0, only=None, weights=None):
    """Surplus-maximising allocation per type on both models (module docstring, item 2).

    Variables are each model's linear-cost units ``q[k, ℓ] = Q_{kℓ}^{1/η_ℓ}``
    (spend ``c_ℓ q``); the buyer's value is ``θ_k(Σ_ℓ q_{kℓ}^{η_ℓ/σ})^σ`` (η_ℓ/σ ≥ 1:
    no infinite slope at 0, so an unused model sits at its floor with a strictly
    negative marginal surplus and the floor costs only c·floor.  In quality
    units the objective is flat — quadratic in Q — at an unused model, and
    Ipopt stops ~sqrt(tol) away; with x = Q^(1/σ) the concave cost has an
    infinite slope at 0 — both measured).

    ``only`` = ℓ: model ℓ alone (the other's tokens fixed at the floor); then
    the objective θ(q^(η/σ) + floor)^σ − c q is concave in q (η < 1): convex.

    ``weights`` (default: the masses) weigh each type's surplus in the objective;
    ``"per-type"``: 1 / (the type's surplus at the start q0), so that every
    type's term and KKT conditions are O(1).  The program is separable by type,
    so any positive weights give the same allocation.  With mass weights
    Ipopt's stopping test ignores types of mass ~1e-12..1e-19 (Beta tails: q off
    by up to 1e5 relative), and with equal weights types whose surplus is 1e-12
    of the top type's (σ+γ = 0.89: S ∝ θ^9) — both measured."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    u, models, th, q0 = _nondim(models, th, q0)
    s = models.sigma
    m = pyo.ConcreteModel(name="efficient_two_models")
    m._units, m._models = u, models
    _two_model_vars(m, models, th, q0)
    if isinstance(weights, str):  # "per-type": O(1) terms, from the start's own surplus
        S0 = np.abs(_type_surplus(models, th, np.maximum(np.asarray(q0, float), FLOOR_TWO_MODEL * m._tau)))
        weights = 1.0 / np.maximum(S0, 1e-12 * max(float(np.max(S0)), 1e-300))
        per_type = True
    else:
        per_type = False
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(p if weights is None else np.asarray(weights, float))))
    m.surplus = pyo.Objective(expr=sum(m.p[k] * (m.theta[k] * m.pooled[k] ** s - m.spend[k]) for k in m.TYPES),
                              sense=pyo.maximize)
    _scale_two_model(m, models, th, m.surplus)
    if per_type:  # each type's term O(1), each type's tokens in units of its start
        m.scaling_factor[m.surplus] = 1.0 / len(th)
        q0a = np.asarray(q0, float) / m._tau  # in the variables' units
        for l in m.MODELS:
            if only == 1 - l or float(np.max(q0a[:, l])) <= 0:
                continue  # fixed, or no start scale: the global token scale stays
            ql = np.maximum(q0a[:, l], 1e-12 * float(np.max(q0a[:, l])))
            for k in m.TYPES:
                m.scaling_factor[m.q[k, l]] = 1.0 / ql[k]
    if only is not None:  # single-model program: the other model's tokens fixed at their floor
        for k in m.TYPES:
            m.q[k, 1 - only].fix(FLOOR_TWO_MODEL)
            del m.scaling_factor[m.q[k, 1 - only]]  # fixed: not in the NL file
    return m


def build_monopolist(models, theta, mass, q0, t0=None):
    """Multi-model monopolist menu over discrete types (module docstring, item 3).

    Units as in :func:`build_efficient`; ``quality[k]: V_k^{1/σ} = Σ_ℓ q_{kℓ}^{η_ℓ/σ}``
    (written in this direction it stays smooth at V = 0 for excluded types)."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th)
    u, models, th, q0 = _nondim(models, th, q0)
    t0 = None if t0 is None else np.asarray(t0, float) / u.P
    s = models.sigma
    m = pyo.ConcreteModel(name="multi_model_monopolist")
    m._units, m._models = u, models
    _two_model_vars(m, models, th, q0)
    qv = _read_q(m) / u.tokens(models)  # the start, in the program's units
    V0 = np.maximum.accumulate(_pooled(models, qv) ** s)
    if t0 is None:
        t0 = T_START_FACTOR * cc.screening_transfers(th, V0)  # strictly IC and IR for monotone V0
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(p)))
    m.V = pyo.Var(m.TYPES, bounds=(0.0, None), initialize=lambda m, k: V0[k])
    m.t = pyo.Var(m.TYPES, initialize=lambda m, k: t0[k])
    m.quality = pyo.Constraint(m.TYPES, rule=lambda m, k: m.V[k] ** (1 / s) == m.pooled[k])
    # IR of the lowest type only: U_k ≥ U_{k−1} + (θ_k − θ_{k−1})V_{k−1} ≥ U_{k−1} by
    # ic_down, so the other IR rows are implied (audited in numpy).  With all N
    # IR rows the excluded types make IR, IC, mono and the floors active at
    # once and Ipopt took 2.5x the iterations (measured, N = 64).
    m.IR_TYPES = pyo.Set(initialize=[0])
    m.ir = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: m.theta[k] * m.V[k] - m.t[k] >= 0)
    m.ic_down = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else
                               m.theta[k] * (m.V[k] - m.V[k - 1]) - m.t[k] + m.t[k - 1] >= 0)
    m.ic_up = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == N - 1 else
                             m.theta[k] * (m.V[k] - m.V[k + 1]) - m.t[k] + m.t[k + 1] >= 0)
    m.mono = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else m.V[k] - m.V[k - 1] >= 0)
    m.profit = pyo.Objective(expr=sum(m.p[k] * (m.t[k] - m.spend[k]) for k in m.TYPES), sense=pyo.maximize)
    _scale_two_model(m, models, th, m.profit)
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
    the other IR rows are implied at the optimum and audited in numpy."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    s = models.sigma
    assign = np.asarray(assign, int)
    u = _units(models, th)
    models, th = u.models(models), th / u.theta
    V0 = np.asarray(V0, float) / u.Q
    t0 = None if t0 is None else np.asarray(t0, float) / u.P
    m = pyo.ConcreteModel(name="multi_model_monopolist_assigned")
    m._units, m._models = u, models
    m.TYPES = pyo.RangeSet(0, len(th) - 1)
    Qs = _quality_scale(models, th)
    ts = float(np.max(th)) * Qs
    V0 = np.maximum.accumulate(np.maximum(np.asarray(V0, float), 0.0))
    # start strictly inside the bounds (interior point): V0 ≥ 1e-6 of the scale
    V0 = np.maximum(V0, 1e-6 * Qs)
    if t0 is None:
        t0 = T_START_FACTOR * cc.screening_transfers(th, V0)
    m.V = pyo.Var(m.TYPES, bounds=(0.0, None), initialize=dict(enumerate(V0)))
    m.t = pyo.Var(m.TYPES, initialize=dict(enumerate(np.asarray(t0, float))))
    cost = {k: models[int(assign[k])].c * m.V[k] ** (1.0 / models[int(assign[k])].eta) for k in range(len(th))}
    m.ir = pyo.Constraint(expr=th[0] * m.V[0] - m.t[0] >= 0)
    m.ic_down = pyo.Constraint(pyo.RangeSet(1, len(th) - 1) if len(th) > 1 else [],
                               rule=lambda m, k: th[k] * (m.V[k] - m.V[k - 1]) - m.t[k] + m.t[k - 1] >= 0)
    m.mono = pyo.Constraint(pyo.RangeSet(1, len(th) - 1) if len(th) > 1 else [],
                            rule=lambda m, k: m.V[k] - m.V[k - 1] >= 0)
    m.profit = pyo.Objective(expr=sum(float(p[k]) * (m.t[k] - cost[k]) for k in range(len(th))),
                             sense=pyo.maximize)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    # objective per type O(1) (not O(mass)): Ipopt's barrier leaves a type at a flat optimum
    # (φ_k ≈ 0: V_k = 0 with a zero bound multiplier) at V ~ sqrt(μ / (p_k c)); with the
    # objective scaled by 1/max p that is sqrt(μ) ~ 3e-7 of the scale instead of 3e-6 at
    # N = 100 (θ = k/N, measured) and independent of N
    sf[m.profit] = 1.0 / (ts * float(np.max(p)))
    sf[m.ir] = 1.0 / ts
    for k in m.TYPES:
        sf[m.V[k]] = 1.0 / Qs
        sf[m.t[k]] = 1.0 / ts
    for c in m.ic_down.values():
        sf[c] = 1.0 / ts
    for c in m.mono.values():
        sf[c] = 1.0 / Qs
    del s
    return m


def _read_q(m) -> np.ndarray:
    """Linear-cost units q[k, ℓ] per type and model, in the scenario's units (:class:`Units`)."""
    x = np.array([[pyo.value(m.q[k, l]) for l in m.MODELS] for k in m.TYPES])
    return x * m._tau * m._units.tokens(m._models)


def _read_V(m) -> np.ndarray:
    """The value V_k per type, in the scenario's units."""
    return np.array([pyo.value(m.V[k]) for k in m.TYPES]) * m._units.Q


def _read_t(m) -> np.ndarray:
    """The transfer t_k per type, in the scenario's units."""
    return np.array([pyo.value(m.t[k]) for k in m.TYPES]) * m._units.P


def _pooled(models, q) -> np.ndarray:
    """Σ_ℓ q_ℓ^(η_ℓ/σ) = V^(1/σ) per type (numpy)."""
    return sum(np.maximum(q[:, l], 0.0) ** (mm.eta / models.sigma) for l, mm in enumerate(models))


def _quality(models, q) -> np.ndarray:
    """Qualities Q_ℓ = q_ℓ^η_ℓ, shape (N, 2)."""
    return np.stack([np.maximum(q[:, l], 0.0) ** mm.eta for l, mm in enumerate(models)], axis=1)


def _type_surplus(models, theta, q):
    return theta * _pooled(models, q) ** models.sigma - q @ np.array([mm.c for mm in models])


SERVED_V = 1e-5
"""A type is served (two-model programs) when its value V = (Σ_ℓ Q_ℓ^{1/σ})^σ
exceeds this fraction of the type's own scale, its first-best quality
max_ℓ Q_ℓ^FB(θ_k) (:func:`_type_scale`).  Not an absolute token cut-off: the
lowest type of a fine grid buys tokens ~1e-7 of the top type's and is served
(the old cut-off called it 'none'), and at σ+γ = 0.89 the fringe types' V is
1e-9 of the top type's (a cut-off relative to max V called them 'none').  The same rule labels the NLP and the closed
form; types whose closed-form V lies within TOL_DISCRETE of the cut-off are
not counted as mismatches (a label there is decided by solver accuracy), so a
counted mismatch always means a V error above TOL_DISCRETE."""
MIX_SHARE = 1e-6
"""A served type uses 'both' models when the smaller model's share of
V^{1/σ} exceeds this; an unused model sits at its floor (share < 1e-12,
measured), a genuine mix has an O(1) share."""


def _type_scale(models, theta) -> np.ndarray:
    """Per-type quality scale: the first-best quality of the better model, max_ℓ Q_ℓ^FB(θ_k)."""
    return np.maximum(np.max(np.stack([cc.first_best_quality(mm, theta) for mm in models]), axis=0), 1e-300)


def _labels_from_quality(Q, sigma: float, V_scale=None) -> np.ndarray:
    """Model per type from qualities Q (N, 2): −1 none, 0/1 the model, 2 both (SERVED_V, MIX_SHARE)."""
    c = np.maximum(np.asarray(Q, float), 0.0) ** (1.0 / sigma)
    tot = c.sum(axis=1)
    V = tot ** sigma
    Vs = float(np.max(V)) if V_scale is None else V_scale
    with np.errstate(invalid="ignore", divide="ignore"):
        minor = np.where(tot > 0, c.min(axis=1) / tot, 0.0)
    served = V > SERVED_V * Vs
    return np.where(served, np.where(minor > MIX_SHARE, 2, np.argmax(c, axis=1)), -1)


def _model_labels(models, q, theta) -> np.ndarray:
    """Model per type of an NLP allocation in linear-cost units q (N, 2) (:func:`_labels_from_quality`)."""
    return _labels_from_quality(_quality(models, q), models.sigma, _type_scale(models, theta))


def _label_mismatches(models, label, label_ref, V_ref, theta) -> int:
    """Types labelled differently from the closed form, not counting types whose closed-form
    V is within TOL_DISCRETE·max V of the served cut-off (see SERVED_V)."""
    V_ref = np.asarray(V_ref, float)
    Vs = float(np.max(V_ref)) if len(V_ref) and np.max(V_ref) > 0 else 1.0
    ambiguous = np.abs(V_ref - SERVED_V * _type_scale(models, theta)) <= TOL_DISCRETE * Vs
    return int(np.sum((np.asarray(label) != np.asarray(label_ref)) & ~ambiguous))


def _switches(theta, model) -> list[tuple[float, float, int, int]]:
    """(midpoint, step, from, to) wherever the model label changes along θ."""
    return [(0.5 * (theta[i] + theta[i + 1]), theta[i + 1] - theta[i], int(model[i]), int(model[i + 1]))
            for i in np.nonzero(np.diff(model))[0]]


def _model_names(models, model) -> list[str]:
    names = [mm.name for mm in models]
    return [names[i] if i in (0, 1) else ("none" if i < 0 else "both") for i in model]


@dataclass
class Attempt:
    """One start of a non-convex program."""

    label: str
    status: str
    objective: float
    iterations: int
    detail: str = ""
    result: object = field(default=None, repr=False)
    values: dict = field(default_factory=dict, repr=False)


def _attempt_table(attempts) -> pd.DataFrame:
    return pd.DataFrame([{"start": a.label, "status": a.status, "objective": a.objective,
                          "iterations": a.iterations, "detail": a.detail} for a in attempts])


def _fb_tokens(models, theta) -> np.ndarray:
    """First-best linear-cost units of each model alone, (N, 2): used for start points only."""
    return np.stack([cc.first_best_quality(mm, theta) ** (1 / mm.eta) for mm in models], axis=1)


def _efficient(res, models, theta, mass, ctx):
    """Each model alone (convex programs), per-type best (separable objective), then a
    final solve of the unrestricted program (both models free for every type) from it.

    The non-convexity is only which model a type uses (each type has a local
    optimum on each model); one program per model finds both, the per-type
    best is the global optimum among one-model allocations, and the
    unrestricted final solve shows that no type gains by moving or mixing.
    (Blind starts of the unrestricted program — one model, or half of each —
    took 340–400 iterations at N = 400, crawling along the unused model's floor;
    the one-model programs take ~10–30, measured.)"""
    qfb = _fb_tokens(models, theta)
    starts = {f"{models[0].name}_only": (qfb * [1.0, 0.0], 0), f"{models[1].name}_only": (qfb * [0.0, 1.0], 1)}
    attempts = []
    for label, (q0, only) in starts.items():
        with Timer() as tb:
            m = build_efficient(models, theta, mass, q0, only=only, weights="per-type")
        r = _solve_start(ctx, m, f"efficient[{label}]", tb.seconds, defaults=CONVEX_START_DEFAULTS)
        q_l = _read_q(m)
        q_l[:, 1 - only] = 0.0  # the other model is not in this program (fixed at its floor): unused
        attempts.append(Attempt(label, r.status.value, float(np.sum(mass * _type_surplus(models, theta, q_l))),
                                r.iterations, values={"q": q_l}, result=r,
                                detail=r.message if "retried" in r.message else ""))
    ok = [a for a in attempts if a.status == "optimal"]
    if not ok:
        res.tables["efficient_starts"] = _attempt_table(attempts)
        res.error = "efficient allocation: no start converged"
        res.notes.append(f"efficient: {len(attempts)} starts, 0 converged")
        return None
    for a in attempts:
        res.solves[f"efficient[{a.label}]"] = a.result
    S = np.stack([_type_surplus(models, theta, a.values["q"]) for a in ok])
    best = np.argmax(S, axis=0)
    qc = np.stack([ok[b].values["q"][k] for k, b in enumerate(best)])
    obj_c = float(np.sum(mass * _type_surplus(models, theta, qc)))
    q_out, obj_out, used = qc, obj_c, "per-type best of the one-model programs"
    if len(theta) <= UNRESTRICTED_MAX_N:
        with Timer() as tb:
            m = build_efficient(models, theta, mass, qc, weights="per-type")
        r = _solve_start(ctx, m, "efficient[unrestricted final]", tb.seconds)
        obj_r = float(np.sum(mass * _type_surplus(models, theta, _read_q(m))))
        attempts.append(Attempt("unrestricted final (both models free) from the per-type best", r.status.value,
                                obj_r, r.iterations,
                                detail=", ".join(f"{a.label}: {int(np.sum(best == i))} types"
                                                 for i, a in enumerate(ok))))
        if r.ok and _better_convex(obj_r, obj_c):
            q_out, obj_out, used = _read_q(m), obj_r, "unrestricted final (better than every one-model start)"
            res.solves["efficient[unrestricted final]"] = r
        elif r.ok:
            res.solves["efficient[unrestricted final]"] = r
        fin = f"unrestricted final {r.status.value} {obj_r:.10g} ({r.iterations} it)"
    else:
        fin = f"unrestricted final skipped (N > {UNRESTRICTED_MAX_N})"
    res.tables["efficient_starts"] = _attempt_table(attempts)
    # the solve whose result is reported (the best one-model program, or the unrestricted final)
    res.solves["efficient"] = (res.solves["efficient[unrestricted final]"] if used.startswith("unrestricted")
                               else max(ok, key=lambda a: a.objective).result)
    obj = [a.objective for a in ok]
    res.notes.append(f"efficient: {len(attempts)} solves, {sum(a.status == 'optimal' for a in attempts)} converged; "
                     f"one-model programs {', '.join(f'{a.label} {a.objective:.8g}' for a in ok)}; per-type best "
                     f"{obj_c:.10g}; {fin}; reported: {used} (spread over starts {max(obj) - min(obj):.4g})")
    _mixing_audit(res, models, _pooled(models, q_out) ** models.sigma, q_out, "efficient_mixing_audit")
    return {"q": q_out, "objective": obj_out}


TIE_CONVEX = 1e-10
"""Cut-off search over *convex* assigned programs: two cut-offs tie when their
optima differ by less than this (relative).  Each optimum is global and
accurate to ~1e-12 relative at tol 1e-12 (cut-offs among excluded types give
the same program and agree to ~1e-13, measured), while neighbouring cut-offs
near the optimum differ by ~1/N² relative (1e-6 at N = 1000): 1e-10 separates
them up to N ~ 10^4."""


def _better_convex(a: float, b: float) -> bool:
    return a > b + TIE_CONVEX * max(1.0, abs(b))


def _monopolist(res, models, theta, mass, ctx, schedule: str = "cutoff", coarse=None, tag: str = ""):
    """Multi-model monopolist: outer search over the model cut-off, convex inner programs.

    The only non-convexity is *which types sit on which model*; at the optimum
    that is a cut-off (module docstring of :func:`build_monopolist_assigned`).
    For a cut-off c (types below c on the low-η model) the assigned program is
    convex and solved to its global optimum; its value f(c) is flat (cut-offs
    among excluded types), then unimodal in c (measured with the exact discrete
    closed form on uniform and c_F-sweep grids), so :func:`_cutoff_search`
    (bisection, ties right, then a neighbour walk) finds the best c with
    ~2 log2 N solves; a coarse scan of 9 cut-offs guards against a second
    hump.  Each solve starts from the nearest cut-off already solved.  A final
    solve of the *unrestricted* program (both models free for every type,
    :func:`build_monopolist`) from the best menu confirms that no type gains
    by moving or mixing; the better of the two is reported (ties: the convex
    one, which is the more accurate).  ``schedule="multistart"`` runs the
    previous blind multi-start of the unrestricted program (bench baseline).

    ``coarse`` = (θ0, V0, cut0): the best menu of a coarser grid of the same
    distribution (:func:`_grid_ladder`); then only a neighbour walk from the
    cut-off at the same θ is run (the full search ran on the coarse grid), each
    solve starting from the coarse V interpolated.  ``tag`` labels the solves."""
    if schedule == "multistart":
        return _monopolist_multistart(res, models, theta, mass, ctx)
    N = len(theta)
    lo_eta = 0 if models[0].eta < models[1].eta else 1
    phi = np.maximum(cc.discrete_virtual_values(theta, mass), 0.0)
    Vfb = np.stack([cc.first_best_quality(mm, phi) for mm in models], axis=1)
    attempts, cache, solved = [], {}, {}

    def assignment(cut):
        return np.where(np.arange(N) < cut, lo_eta, 1 - lo_eta)

    def f(cut):
        if cut in cache:
            return cache[cut]
        assign = assignment(cut)
        if solved:
            near = min(solved, key=lambda c: (abs(c - cut), c))
            V0, t0 = solved[near]
        elif coarse is not None:
            V0, t0 = np.interp(theta, coarse[0], coarse[1]), None
        else:
            V0, t0 = Vfb[np.arange(N), assign], None
        with Timer() as tb:
            m = build_monopolist_assigned(models, theta, mass, assign, V0, t0)
        label = f"{tag}cutoff[{cut}] θ_c={theta[min(cut, N - 1)]:.4g}"
        r = _solve_start(ctx, m, f"monopolist[{label}]", tb.seconds, defaults=CONVEX_START_DEFAULTS)
        V = _read_V(m)
        t = _read_t(m)
        q = np.zeros((N, 2))
        q[np.arange(N), assign] = np.maximum(V, 0.0) ** (1 / np.array([models[a].eta for a in assign]))
        sw = _switches(theta, _model_labels(models, q, theta))
        attempts.append(Attempt(label, r.status.value, r.objective, r.iterations, result=r,
                                values={"q": q, "V": V, "t": t, "cut": cut},
                                detail="; ".join(f"{x[2]}→{x[3]} at θ≈{x[0]:.4g}" for x in sw)
                                + (f" ({r.message.split(':')[0]})" if "retried" in r.message else "")))
        if r.ok:
            solved[cut] = (V, t)
        cache[cut] = r.objective if r.ok else -np.inf
        return cache[cut]

    if coarse is None:
        f(N)  # everyone on the low-η model
        f(0)  # everyone on the other model
        _cutoff_search(f, 0, N, better=_better_convex)
        for c in np.unique(np.linspace(0, N, 9).round().astype(int)):
            f(int(c))
        cut = max(cache, key=lambda c: (cache[c], c))
    else:  # the cut-off at the same θ as the coarse grid's best
        th0, _, c0 = coarse
        edge = th0[c0] if c0 < len(th0) else np.inf
        if 0 < c0 < len(th0):
            edge = 0.5 * (th0[c0 - 1] + th0[c0])
        cut = int(np.searchsorted(theta, edge))
        f(cut)
    while True:
        nb = [c for c in (cut - 1, cut + 1) if 0 <= c <= N]
        cand = max(nb, key=f)
        if not _better_convex(f(cand), f(cut)):
            break
        cut = cand
    ok = [a for a in attempts if a.status == "optimal"]
    if not ok:
        res.tables["monopolist_starts"] = _attempt_table(attempts)
        res.solves[f"monopolist[{tag.strip(' :')}]" if tag else "monopolist"] = attempts[-1].result
        res.error = "multi-model monopolist: no start converged"
        res.notes.append(f"monopolist: {len(attempts)} starts, 0 converged")
        return None
    best = max(ok, key=lambda a: (a.objective, a.values["cut"] == cut))
    chosen, fin = best, None
    if N <= UNRESTRICTED_MAX_N and coarse is None:
        # final: the unrestricted program, every type free to move or mix, from the best menu
        q0, t0 = best.values["q"], best.values["t"]
        with Timer() as tb:
            m = build_monopolist(models, theta, mass, q0, t0)
        r = _solve_start(ctx, m, "monopolist[final unrestricted]", tb.seconds)
        qf = _read_q(m)
        fin = Attempt("final (unrestricted: both models free, from the best cut-off)", r.status.value, r.objective,
                      r.iterations, result=r,
                      values={"q": qf, "V": _read_V(m),
                              "t": _read_t(m), "cut": best.values["cut"]},
                      detail="; ".join(f"{x[2]}→{x[3]} at θ≈{x[0]:.4g}"
                                       for x in _switches(theta, _model_labels(models, qf, theta))))
        attempts.append(fin)
        if fin.status == "optimal" and _better_convex(fin.objective, best.objective):
            chosen = fin
        elif fin.status == "optimal":
            res.solves["monopolist[final unrestricted]"] = r
        else:
            res.notes.append(f"monopolist: the unrestricted final solve ended '{fin.status}' (not used; the convex "
                             "cut-off optimum is reported)")
    tab = _attempt_table(attempts)
    tab.insert(0, "N", N)
    old_tab = res.tables.get("monopolist_starts")
    res.tables["monopolist_starts"] = tab if old_tab is None else pd.concat([old_tab, tab], ignore_index=True)
    key = f"monopolist[{tag.strip(' :')}]" if tag else "monopolist"
    res.solves[key] = chosen.result
    obj = np.array([a.objective for a in ok])
    n_conv = sum(a.status == "optimal" for a in attempts)
    if fin is None:
        fin_txt = f"unrestricted final skipped (N > {UNRESTRICTED_MAX_N}; one-model structure by the numpy mixing audit)"
    else:
        fin_txt = f"unrestricted final from it: {fin.status}, {fin.objective:.12g} ({fin.iterations} it)"
        if chosen is fin:
            fin_txt += " - better, reported"
    n_cut_ok = sum(1 for c in cache if np.isfinite(cache[c]))
    res.notes.append(
        f"monopolist{tag and ' ' + tag.strip()}: {len(attempts)} solves, {n_conv} converged ({n_cut_ok} of {len(cache)} convex cut-off "
        f"programs); best cut-off {best.values['cut']} objective {best.objective:.12g}; {fin_txt}; "
        f"spread over cut-offs {obj.max() - obj.min():.4g}")
    _mixing_audit(res, models, chosen.values["V"], chosen.values["q"])
    return chosen


MIX_GRID = 201
"""Shares of V^(1/σ) on the first model tried per type by the mixing audit."""


def _mixing_audit(res, models, V, q, check="monopolist_mixing_audit"):
    """Numpy audit of the one-model structure: no split of each type's V^(1/σ) between
    the two models (MIX_GRID shares, both ends included) delivers V more cheaply than
    the menu's own tokens.  Worst saving / max spend ≤ TOL_AUDIT (homogeneous; was max(1, spend))."""
    s = models.sigma
    P = np.maximum(V, 0.0)[:, None] ** (1 / s)
    sh = np.linspace(0.0, 1.0, MIX_GRID)[None, :]
    cost = sum(mm.c * (P * (sh if l == 0 else 1 - sh)) ** (s / mm.eta) for l, mm in enumerate(models))
    spend = q @ np.array([mm.c for mm in models])
    saving = float(np.max(spend - cost.min(axis=1)))
    scale = float(np.max(spend)) if len(spend) and np.max(spend) > 0 else 1.0
    res.checks.append(bound_check(NAME, check, "worst saving from splitting a type's V between "
                                  "the models / max spend", saving / scale, TOL_AUDIT))
    _audit_rows(res, [f"{check.split('_')[0]}: cheaper delivery by moving or mixing models"], [saving],
                [len(V) * MIX_GRID])


COARSE_MAX_N = 250
"""Grids above this many types are reached coarse-to-fine (:func:`_grid_ladder`): the
full start schedule (cut-off search with its coarse scan; the leader's regime and
cut-off starts) runs on a grid of ≤ COARSE_MAX_N types of the same distribution,
then each doubling walks from the previous grid's best cut-off (profit is unimodal
in the cut-off near the optimum).  Measured: 4–6 solves per refinement instead of
~25 starts per grid."""


def _grid_ladder(scn, N) -> list:
    """Coarser grids (θ, mass) of the scenario's distribution, coarsest first, halving N
    until ≤ COARSE_MAX_N; empty for N ≤ COARSE_MAX_N or discrete (file) types."""
    if scn.types.kind == "discrete" or N <= COARSE_MAX_N:
        return []
    sizes, n = [], N
    while n > COARSE_MAX_N:
        n = (n + 1) // 2
        sizes.append(n)
    return [scn.types.discretise(n, scn.grid) for n in reversed(sizes)]


def _monopolist_ladder(res, models, scn, theta, mass, ctx):
    """Monopolist on the scenario grid, through the coarse grids of :func:`_grid_ladder`."""
    coarse = None
    for th, ms in _grid_ladder(scn, len(theta)):
        a = _monopolist(res, models, th, ms, ctx, coarse=coarse, tag=f"N={len(th)}: ")
        if a is None:
            return None
        coarse = (th, a.values["V"], int(a.values["cut"]))
    return _monopolist(res, models, theta, mass, ctx, coarse=coarse)


def _monopolist_multistart(res, models, theta, mass, ctx):
    """Previous schedule (bench baseline): starts on each model, on both, then switch
    starts of the unrestricted program scheduled by :func:`_cutoff_search`.

    Start quantities: each model's first best at the discrete virtual value
    φ_k (docs/model.md §2.4), 0 where φ_k ≤ 0 — close enough for Ipopt (small barrier)
    to keep the start's model assignment; cruder starts (half the first best at
    θ) all drifted to one switch type, measured."""
    N = len(theta)
    lo_eta = 0 if models[0].eta < models[1].eta else 1
    qfb = _fb_tokens(models, np.maximum(cc.discrete_virtual_values(theta, mass), 0.0))

    def start_for(cut):  # types below the cut on the low-η model, the rest on the other
        q0 = np.zeros((N, 2))
        low = np.arange(N) < cut
        q0[low, lo_eta] = qfb[low, lo_eta]
        q0[~low, 1 - lo_eta] = qfb[~low, 1 - lo_eta]
        return q0

    attempts, cache = [], {}

    def solve(label, q0):
        with Timer() as tb:
            m = build_monopolist(models, theta, mass, q0)
        r = _solve_start(ctx, m, f"monopolist[{label}]", tb.seconds)
        q = _read_q(m)
        vals = {"q": q, "V": _read_V(m),
                "t": _read_t(m)}
        sw = _switches(theta, _model_labels(models, q, theta))
        a = Attempt(label, r.status.value, r.objective, r.iterations, result=r, values=vals,
                    detail="; ".join(f"{x[2]}→{x[3]} at θ≈{x[0]:.4g}" for x in sw)
                    + (f" ({r.message.split(':')[0]})" if "retried" in r.message else ""))
        attempts.append(a)
        return a

    solve(f"{models[lo_eta].name}_only", start_for(N))
    solve(f"{models[1 - lo_eta].name}_only", start_for(0))
    solve("both_models", 0.5 * qfb)

    def f(cut):
        if cut not in cache:
            a = solve(f"switch_start[{cut}] θ_c={theta[min(cut, N - 1)]:.4g}", start_for(cut))
            cache[cut] = a.objective if a.status == "optimal" else -np.inf
        return cache[cut]

    _cutoff_search(f, 0, N)
    # the cut-off profile is not always unimodal (seen in a c_F sweep at low
    # fringe cost: the search stopped 1.5 % short); a coarse scan of cut-offs
    # plus a neighbour walk from the best one found makes the search global
    for c in np.unique(np.linspace(0, N, 9).round().astype(int)):
        f(int(c))
    cut = max(cache, key=cache.get)
    while True:
        nb = [c for c in (cut - 1, cut + 1) if 0 <= c <= N]
        cand = max(nb, key=f)
        if not _better(f(cand), f(cut)):
            break
        cut = cand
    ok = [a for a in attempts if a.status == "optimal"]
    res.tables["monopolist_starts"] = _attempt_table(attempts)
    if not ok:
        res.error = "multi-model monopolist: no start converged"
        return None
    best = max(ok, key=lambda a: a.objective)
    res.solves["monopolist"] = best.result
    obj = np.array([a.objective for a in ok])
    n_best = int(np.sum(obj >= best.objective - 1e-9 * max(1.0, abs(best.objective))))
    res.notes.append(f"monopolist: {len(attempts)} starts, {len(ok)} converged; best {best.label} "
                     f"objective {best.objective:.10g}; spread (best − worst converged) {obj.max() - obj.min():.4g}; "
                     f"{n_best} start(s) reach the best within 1e-9")
    return best


def _two_model_checks(res, models, theta, mass, dist, eff, mon):
    """Efficient and monopolist NLPs vs closed forms; returns the discrete monopolist reference."""
    qs = _token_scale(models, theta)
    names = [mm.name for mm in models]
    if eff is not None:
        q = eff["q"]
        qref = (cc.efficient_quality(models, theta).T) ** (1 / np.array([mm.eta for mm in models]))
        chk = "efficient_vs_closed_form"
        Qe = cc.efficient_quality(models, theta).T
        model = _model_labels(models, q, theta)
        model_ref = _labels_from_quality(Qe, models.sigma, _type_scale(models, theta))
        res.checks.append(bound_check(NAME, chk, "types on another model than the closed form",
                                      _label_mismatches(models, model, model_ref, Qe.max(axis=1), theta), 0))
        for l, nm in enumerate(names):
            res.checks.append(compare(NAME, chk, f"q[{nm}] = Q^(1/η)", q[:, l], qref[:, l], TOL_DISCRETE, index=theta))
        res.checks.append(compare(NAME, chk, "V = (Q1^(1/σ)+Q2^(1/σ))^σ", _pooled(models, q) ** models.sigma,
                                  _pooled(models, qref) ** models.sigma, TOL_DISCRETE, index=theta))
        res.checks.append(compare(NAME, chk, "expected surplus", eff["objective"],
                                  float(np.sum(mass * cc.efficient_surplus(models, theta))), TOL_DISCRETE))
        te = cc.efficient_switch_point(models)
        sw = [x for x in _switches(theta, model) if x[2] in (0, 1) and x[3] in (0, 1)]
        if theta[0] < te < theta[-1]:
            if len(sw) == 1:
                mid, step = sw[0][0], sw[0][1]
                res.checks.append(compare(NAME, "efficient_switch_point", "θ^e (midpoint of NLP switch)", mid, te,
                                          step / te, index=["within one grid step"]))
            else:
                res.checks.append(bound_check(NAME, "efficient_switch_point", "number of NLP model switches − 1",
                                              len(sw) - 1, 0))
        Q, Qref = _quality(models, q), _quality(models, qref)
        res.tables["efficient"] = pd.DataFrame({
            "theta": theta, "mass": mass, **{f"q_{nm}": q[:, l] for l, nm in enumerate(names)},
            **{f"Q_{nm}": Q[:, l] for l, nm in enumerate(names)},
            **{f"Q_{nm}_closed_form": Qref[:, l] for l, nm in enumerate(names)},
            "model": _model_names(models, model),
            "model_closed_form": _model_names(models, model_ref),
            "surplus": _type_surplus(models, theta, q), "surplus_closed_form": cc.efficient_surplus(models, theta)})
    if mon is None:
        return None
    ref = cc.monopolist_discrete(models, theta, mass)
    q, V, t = mon.values["q"], mon.values["V"], mon.values["t"]
    qref = ref["Q"].T ** (1 / np.array([mm.eta for mm in models]))
    chk = "monopolist_vs_discrete_closed_form"
    model = _model_labels(models, q, theta)
    model_ref = _labels_from_quality(ref["Q"].T, models.sigma, _type_scale(models, theta))
    res.checks.append(bound_check(NAME, chk, "types on another model than the closed form",
                                  _label_mismatches(models, model, model_ref, ref["V"], theta), 0))
    res.checks.append(compare(NAME, chk, "V", V, ref["V"], TOL_DISCRETE, index=theta))
    for l, nm in enumerate(names):
        res.checks.append(compare(NAME, chk, f"q[{nm}] = Q^(1/η)", q[:, l], qref[:, l], TOL_DISCRETE, index=theta))
    res.checks.append(compare(NAME, chk, "t", t, ref["t"], TOL_DISCRETE, index=theta))
    res.checks.append(compare(NAME, chk, "profit", mon.objective, ref["profit"], TOL_DISCRETE))
    if mon.objective > ref["profit"] + TOL_DISCRETE * abs(ref["profit"]):
        res.notes.append(f"MONOPOLIST: the NLP menu earns MORE than monopolist_discrete ({mon.objective:.10g} > "
                         f"{ref['profit']:.10g}): the closed form is not the optimum")
    U = theta * V - t  # independent all-pairs audit of the menu (linear utility θV − t)
    viol_ic = float(np.max(theta[:, None] * V[None, :] - t[None, :] - U[:, None]))
    scale = _utility_scale(t, theta * V)  # homogeneous money scale (not max(1, |t|), see _utility_scale)
    _audit_rows(res, ["monopolist: all-pairs IC", "monopolist: IR"], [viol_ic, float(np.max(-U))],
                [len(theta) ** 2, len(theta)])
    res.checks.append(bound_check(NAME, "monopolist_numpy_audit_all_pairs", "worst IC violation / max(|t|,θV)",
                                  viol_ic / scale, TOL_AUDIT))
    res.checks.append(bound_check(NAME, "monopolist_numpy_audit_all_pairs", "worst IR violation / max(|t|,θV)",
                                  float(np.max(-U)) / scale, TOL_AUDIT))
    if dist is not None:
        _monopolist_continuous_checks(res, models, theta, dist, V, model, mass)
    Q = _quality(models, q)
    res.tables["monopolist"] = pd.DataFrame({
        "theta": theta, "mass": mass, "V": V, "V_closed_form": ref["V"],
        **{f"q_{nm}": q[:, l] for l, nm in enumerate(names)}, **{f"Q_{nm}": Q[:, l] for l, nm in enumerate(names)},
        "t": t, "t_closed_form": ref["t"], "U": theta * V - t, "phi_discrete": ref["phi"],
        "model": _model_names(models, model), "model_closed_form": _model_names(models, model_ref)})
    return ref


def _monopolist_continuous_checks(res, models, theta, dist, V, model, mass=None):
    """Exclusion, switch and versioning jump vs the continuous closed form (within discretisation)."""
    served = np.nonzero(model >= 0)[0]
    excl = cc.exclusion_type(dist)
    if len(served) and served[0] > 0:
        k = served[0]
        mid, step = 0.5 * (theta[k - 1] + theta[k]), theta[k] - theta[k - 1]
        res.checks.append(compare(NAME, "monopolist_vs_continuous", "exclusion type (midpoint)", mid, excl,
                                  step / max(abs(excl), 1e-300), index=["within one grid step"]))
    sw = [x for x in _switches(theta, model) if x[2] >= 0 and x[3] >= 0]
    ts = cc.monopolist_switch_type(models, dist)
    if not (np.isfinite(ts) and sw):
        return
    mid, step, _, _ = sw[0]
    res.checks.append(compare(NAME, "monopolist_vs_continuous", "switch type: h(θ) = θ^e (midpoint)", mid, ts,
                              step / ts, index=["within one grid step"]))
    res.checks.append(bound_check(NAME, "monopolist_vs_continuous", "number of model switches − 1", len(sw) - 1, 0))
    k = int(np.searchsorted(theta, mid))
    jump = V[k] - V[k - 1]
    te = cc.efficient_switch_point(models)
    F, L = (models[0], models[1]) if models[0].eta < models[1].eta else (models[1], models[0])
    jump_ref = float(cc.first_best_quality(L, te) - cc.first_best_quality(F, te))
    # discretisation bound (mean value theorem): V_k = V_L(φ_k), V_{k−1} = V_F(φ_{k−1}) with the
    # discrete virtual values, the reference V_ℓ(θ^e); all of φ_{k−1}, φ_k, h_{k−1}, h_k, θ^e lie
    # in I, so |jump − jump_ref| ≤ (max_I |V_F'| + max_I |V_L'|)·|I|.  V_ℓ(h) ∝ h^(η/(1−η)) is
    # convex or concave, so its largest slope on I is at an end of I.  (The slope at θ^e alone
    # is not a bound: σ+γ_L = 0.76 makes V_L ∝ h^3.2 and the jump missed it by 5.1 vs 3.5,
    # valid_scenarios competition_21_7.)
    h = dist.virtual_value(theta)
    pts = [h[k - 1], h[k], te]
    if mass is not None:
        phi = cc.discrete_virtual_values(theta, mass)
        pts += [phi[k - 1], phi[k]]
    lo, hi = max(min(pts), 1e-300), max(pts)
    eps = 1e-6 * max(te, 1e-12)

    def slope(mm, x):
        x = max(x, 2 * eps)
        return abs(float(cc.first_best_quality(mm, x + eps) - cc.first_best_quality(mm, x - eps))) / (2 * eps)

    bound = sum(max(slope(mm, lo), slope(mm, hi)) for mm in (F, L)) * (hi - lo)
    res.checks.append(compare(NAME, "monopolist_vs_continuous", "versioning jump in V at the switch", jump, jump_ref,
                              bound / abs(jump_ref), index=["bound max_I(|V_F'|+|V_L'|)·|I|"]))
    res.notes.append(f"monopolist versioning: V jumps by {jump:.6g} between θ = {theta[k - 1]:.4g} and {theta[k]:.4g} "
                     f"(continuous closed form: {jump_ref:.6g} at h = θ^e = {te:.6g}, switch type {ts:.6g})")


# =====================================================================
# 4. leader vs competitive fringe
# =====================================================================
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


def _leader_scales(lf, theta):
    A = fringe_topup_numeric(theta, 0.0, lf.sigma, lf.c_F)  # stand-alone fringe purchase (numeric)
    q_fb = (lf.eta * float(np.max(theta)) / lf.c_L) ** (1 / (1 - lf.eta))  # leader first best at θ_max
    qs = max(q_fb, float(np.max(A)) ** (1 / lf.r), 1e-12)
    ts = max(float(np.max(theta)) * qs**lf.eta, 1e-300)
    return A, qs, ts


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


def build_leader(lf: cc.LeaderFringe, theta, mass, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    r"""Leader's menu with the buyer's fringe top-up explicit (module docstring, item 4).

    ``pairs``: IC rows (k, l) "type k vs item l" (default: downward adjacent);
    ``ir_types``: types with an explicit outside-option row (default: the lowest).
    Start (q0, T0, f0); T0 defaults to a strictly IC/IR-feasible schedule and every
    dual variable s starts at the deviator's numeric top-up optimum."""
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    N = len(th)
    s, r, cF, cL = lf.sigma, lf.r, lf.c_F, lf.c_L
    A, qs, ts = _leader_scales(lf, th)
    q0 = np.maximum(np.maximum.accumulate(np.maximum(np.asarray(q0, float), 0.0)), FLOOR * qs)
    a0 = q0**r
    if T0 is None:  # binding-downward-IC schedule scaled by 0.9: strictly IC (monotone q0) and IR
        u = buyer_value_numeric(th, a0, s, cF)
        u_prev = buyer_value_numeric(th, np.concatenate([[0.0], a0[:-1]]), s, cF)
        T0 = T_START_FACTOR * np.cumsum(u - u_prev)
    if f0 is None:
        f0 = fringe_topup_numeric(th, a0, s, cF)
    pairs = sorted(pairs if pairs is not None else [(k, k - 1) for k in range(1, N)])
    ir_types = sorted(set(ir_types))

    # every dual variable s starts at the deviator's numeric top-up optimum (one vectorised bisection)
    kk = np.array([k for k, _ in pairs] + list(ir_types), dtype=int)
    aa = np.array([a0[l] for _, l in pairs] + [0.0] * len(ir_types), dtype=float)
    s0 = np.maximum(aa + fringe_topup_numeric(th[kk], aa, s, cF), 1e-300) * (1 + 1e-9) if len(kk) else np.zeros(0)
    s_init = {pr: float(v) for pr, v in zip(pairs, s0[:len(pairs)])}
    s_out_init = {k: float(v) for k, v in zip(ir_types, s0[len(pairs):])}

    m = pyo.ConcreteModel(name="leader_fringe")
    m.TYPES = pyo.RangeSet(0, N - 1)
    m.PAIRS = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    m.IR_TYPES = pyo.Set(initialize=ir_types, ordered=True)
    m.theta = pyo.Param(m.TYPES, initialize=dict(enumerate(th)))
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(p)))
    m.q = pyo.Var(m.TYPES, bounds=(FLOOR * qs, None), initialize=dict(enumerate(q0)))
    m.T = pyo.Var(m.TYPES, initialize=dict(enumerate(np.asarray(T0, float))))
    m.f = pyo.Var(m.TYPES, bounds=(0.0, None), initialize=dict(enumerate(np.asarray(f0, float))))
    s_floor = FLOOR * max(float(np.max(A)), 1e-300)
    m.s = pyo.Var(m.PAIRS, bounds=(s_floor, None), initialize=s_init)
    m.s_out = pyo.Var(m.IR_TYPES, bounds=(s_floor, None), initialize=s_out_init)

    # buyer k's utility from its own item, own top-up f_k explicit
    m.own = pyo.Expression(m.TYPES, rule=lambda m, k: m.theta[k] * (m.q[k] ** r + m.f[k]) ** s - cF * m.f[k] - m.T[k])

    def dual_value(m, k, sv, a):  # D_k(s; a) = θ_k[(1−σ)s^σ + σ a s^(σ−1)] ≥ max_x θ_k(a+x)^σ − c_F x
        return m.theta[k] * ((1 - s) * sv**s + s * a * sv ** (s - 1))

    m.ic = pyo.Constraint(m.PAIRS, rule=lambda m, k, l: m.own[k] - (dual_value(m, k, m.s[k, l], m.q[l] ** r) - m.T[l]) >= 0)
    m.ir = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: m.own[k] - dual_value(m, k, m.s_out[k], 0.0) >= 0)
    # KKT sign of the inner problem (dual feasibility, multiplier of x ≥ 0 is ≥ 0), scaled by 1/c_F
    m.kkt = pyo.Constraint(m.PAIRS, rule=lambda m, k, l: 1 - m.theta[k] * s / cF * m.s[k, l] ** (s - 1) >= 0)
    m.kkt_out = pyo.Constraint(m.IR_TYPES, rule=lambda m, k: 1 - m.theta[k] * s / cF * m.s_out[k] ** (s - 1) >= 0)
    m.mono = pyo.Constraint(m.TYPES, rule=lambda m, k: pyo.Constraint.Skip if k == 0 else m.q[k] - m.q[k - 1] >= 0)
    m.profit = pyo.Objective(expr=sum(m.p[k] * (m.T[k] - cL * m.q[k]) for k in m.TYPES), sense=pyo.maximize)

    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[m.profit] = 1.0 / ts
    Ak = np.maximum(A, float(np.max(A)) * 1e-6 if np.max(A) > 0 else 1.0)
    for k in m.TYPES:
        sf[m.q[k]] = 1.0 / qs
        sf[m.T[k]] = 1.0 / ts
        sf[m.f[k]] = 1.0 / Ak[k]
        if k > 0:
            sf[m.mono[k]] = 1.0 / qs
    for k, l in pairs:
        sf[m.s[k, l]] = 1.0 / max(Ak[k], a0[l])
        sf[m.ic[k, l]] = 1.0 / ts
    for k in ir_types:
        sf[m.s_out[k]] = 1.0 / Ak[k]
        sf[m.ir[k]] = 1.0 / ts
    return m


def read_leader(m, theta, mass, r) -> LeaderMenu:
    """The menu of a solved leader program, in the scenario's units (:func:`build_leader_nondim`)."""
    K = list(m.TYPES)
    u = getattr(m, "_units", None)
    tq, tf, P = (*m._leader_tokens, u.P) if u is not None else (1.0, 1.0, 1.0)
    return LeaderMenu(theta=np.asarray(theta, float), mass=np.asarray(mass, float),
                      q=tq * np.array([pyo.value(m.q[k]) for k in K]), T=P * np.array([pyo.value(m.T[k]) for k in K]),
                      f=tf * np.array([pyo.value(m.f[k]) for k in K]), objective=r.objective,
                      pairs=list(m.PAIRS), ir_types=list(m.IR_TYPES), result=r)


def _leader_units(lf, theta):
    """Units of the leader program (:class:`Units`): θ_max and the top type's quality scale."""
    _, qs, _ = _leader_scales(lf, theta)
    u = Units(theta=float(np.max(theta)), Q=qs**lf.eta)
    lf_s = cc.LeaderFringe(sigma=lf.sigma, gamma_L=lf.gamma_L, c_L=lf.c_L * u.token(lf.eta) / u.P,
                           c_F=lf.c_F * u.token(lf.sigma) / u.P)
    return u, lf_s


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


def solve_leader(lf, theta, mass, ctx, label, q0, T0=None, f0=None, pairs=None, ir_types=(0,), lazy=False):
    """Build and solve; with ``lazy`` add every IC/IR pair the numpy audit finds violated and re-solve."""
    with Timer() as tb:
        m = build_leader_nondim(lf, theta, mass, q0, T0, f0, pairs, ir_types)
    r = _solve_start(ctx, m, label, tb.seconds)
    menu = read_leader(m, theta, mass, r)
    rounds = 0
    while lazy and r.ok and rounds < MAX_LAZY_ROUNDS:
        aud = leader_audit(lf, theta, menu.q, menu.T)
        scale = _utility_scale(menu.T, aud["U"])
        bad = np.argwhere(aud["viol"] > TOL_AUDIT * scale)
        if not len(bad):
            break
        rounds += 1
        N = len(theta)
        new_pairs = set(menu.pairs) | {(int(k), int(l)) for k, l in bad if l < N}
        new_ir = set(menu.ir_types) | {int(k) for k, l in bad if l == N}
        ctx.progress(f"    {label}: lazy IC round {rounds}: adding {len(bad)} violated rows")
        with Timer() as tb:
            m = build_leader_nondim(lf, theta, mass, menu.q, menu.T, menu.f, sorted(new_pairs), sorted(new_ir))
        r = _solve_start(ctx, m, f"{label}[lazy {rounds}]", tb.seconds)
        menu = read_leader(m, theta, mass, r)
    return menu


def _leader_start_guesses(lf, theta, mass):
    """Candidate-regime start quantities: limit quality and interior (discrete virtual value)."""
    A = fringe_topup_numeric(theta, 0.0, lf.sigma, lf.c_F)
    q_limit = A ** (1 / lf.r)  # the buyer stops topping up at q^r = A
    phi = cc.discrete_virtual_values(theta, mass)
    q_int = (lf.eta * np.maximum(phi, 0.0) / lf.c_L) ** (1 / (1 - lf.eta))
    return q_limit, q_int


def _entry_index(q, qs) -> int:
    srv = np.nonzero(q > TOL_SERVED * qs)[0]
    return int(srv[0]) if len(srv) else len(q)


def leader_multistart(lf, theta, mass, ctx, tag=""):
    """All starts of the leader's NLP: one per candidate regime (all-fringe, limit
    pricing, interior), then cut-off starts scheduled by :func:`_cutoff_search`.
    Returns the list of :class:`Attempt` (menus in ``values["menu"]``)."""
    N = len(theta)
    _, qs, _ = _leader_scales(lf, theta)
    q_limit, q_int = _leader_start_guesses(lf, theta, mass)
    upper = np.maximum(q_limit, q_int)
    attempts, cache = [], {}

    def run_start(label, q0):
        menu = solve_leader(lf, theta, mass, ctx, f"leader_fringe{tag}[{label}]", q0)
        r = menu.result
        attempts.append(Attempt(label, r.status.value, r.objective, r.iterations,
                                detail=f"first served θ = {theta[_entry_index(menu.q, qs)]:.4g}"
                                if _entry_index(menu.q, qs) < N else "leader serves nobody",
                                result=r, values={"menu": menu}))
        return attempts[-1]

    run_start("all_fringe", np.zeros(N))
    run_start("limit_pricing", q_limit)
    run_start("interior", np.maximum(q_int, FLOOR * qs))

    def f(cut):
        if cut not in cache:
            q0 = np.where(np.arange(N) >= cut, upper, 0.0)
            a = run_start(f"cutoff[{cut}] θ_c={theta[min(cut, N - 1)]:.4g}", q0)
            cache[cut] = a.objective if a.status == "optimal" else -np.inf
        return cache[cut]

    _cutoff_search(f, 0, N)
    return attempts


def _best_attempt(attempts):
    ok = [a for a in attempts if a.status == "optimal"]
    pool = ok or attempts
    return max(pool, key=lambda a: a.objective if np.isfinite(a.objective) else -np.inf)


def _leader_refine(lf, theta, mass, ctx, coarse: LeaderMenu, label):
    """Finer grid: start from the coarse menu (interpolated), then neighbouring cut-offs."""
    N = len(theta)
    _, cqs, _ = _leader_scales(lf, coarse.theta)
    ce = _entry_index(coarse.q, cqs)
    q_limit, q_int = _leader_start_guesses(lf, theta, mass)
    upper = np.maximum(q_limit, q_int)
    served_from = coarse.theta[ce] if ce < len(coarse.q) else np.inf
    # interpolate the served part of the coarse menu; unserved types start at 0
    qi = np.interp(theta, coarse.theta, coarse.q)
    base_cut = int(np.searchsorted(theta, 0.5 * (served_from + (coarse.theta[ce - 1] if 0 < ce < len(coarse.q)
                                                                 else served_from))))
    cache, attempts = {}, []

    def f(cut):
        if cut in cache:
            return cache[cut]
        # types at or above the cut start in the served basin: the coarse menu where it
        # is at least the limit quality there, else the larger regime guess
        q0 = np.where(np.arange(N) >= cut, np.where(qi >= q_limit, qi, upper), 0.0)
        menu = solve_leader(lf, theta, mass, ctx, f"{label}[cutoff {cut}]", q0)
        r = menu.result
        attempts.append(Attempt(f"cutoff[{cut}]", r.status.value, r.objective, r.iterations, result=r,
                                values={"menu": menu}))
        cache[cut] = r.objective if r.ok else -np.inf
        return cache[cut]

    cut = min(max(base_cut, 0), N)
    while True:  # profit is unimodal in the cut-off near the optimum: walk uphill
        here = f(cut)
        up = f(cut + 1) if cut < N else -np.inf
        down = f(cut - 1) if cut > 0 else -np.inf
        if _better(up, here) and up >= down:
            cut += 1
        elif _better(down, here):
            cut -= 1
        else:
            break
    return attempts


# ------------------------------------------------------------- leader run
def leader_solve(res, lf, scn, ctx, theta, mass):
    """The leader's start schedule on the scenario grid (coarse-to-fine above COARSE_MAX_N),
    then the lazy-IC final solve from the best start.  Fills res (solves, starts table,
    notes); returns (final LeaderMenu, menus solved on the way by N), or None."""
    N = len(theta)
    ladder, known, tables = _grid_ladder(scn, N), {}, []
    if ladder:  # coarse-to-fine (COARSE_MAX_N): all starts on the coarsest grid, then walks
        grids = ladder + [(theta, mass)]
        prev = None
        for i, (th, ms) in enumerate(grids):
            n = len(th)
            att = (leader_multistart(lf, th, ms, ctx, tag=f"[N={n}]") if i == 0 else
                   _leader_refine(lf, th, ms, ctx, prev, f"leader_fringe[N={n}]"))
            tab = _attempt_table(att)
            tab.insert(0, "N", n)
            tables.append(tab)
            if not any(a.status == "optimal" for a in att):
                attempts = att
                break
            b = _best_attempt(att)
            prev = known[n] = b.values["menu"]
            if n != N:
                res.solves[f"leader_fringe[N={n}]"] = b.result
            attempts = att
        res.notes.append(f"leader_fringe: coarse-to-fine over N = {[len(g[0]) for g in grids]} (all starts on the "
                         f"coarsest grid, then neighbour walks of the cut-off; COARSE_MAX_N = {COARSE_MAX_N})")
    else:
        attempts = leader_multistart(lf, theta, mass, ctx)
    if not any(a.status == "optimal" for a in attempts):
        res.tables["leader_fringe_starts"] = (pd.concat(tables, ignore_index=True) if tables
                                              else _attempt_table(attempts))
        res.error = f"leader_fringe: none of {len(attempts)} starts converged"
        res.notes.append(f"leader_fringe: {len(attempts)} starts, 0 converged: no menu, no checks")
        return None
    best = _best_attempt(attempts)
    menu = best.values["menu"]
    # lazy IC generation on the chosen menu (a no-op when the audit is clean)
    final = solve_leader(lf, theta, mass, ctx, "leader_fringe[final]", menu.q, menu.T, menu.f,
                         menu.pairs, menu.ir_types, lazy=True)
    attempts.append(Attempt("final (from best, lazy IC audit)", final.result.status.value, final.objective,
                            final.result.iterations, detail=f"{len(final.pairs)} IC rows, {len(final.ir_types)} IR rows"))
    res.solves["leader_fringe"] = final.result
    if tables:
        tab = _attempt_table(attempts[-1:])
        tab.insert(0, "N", N)
        res.tables["leader_fringe_starts"] = pd.concat(tables + [tab], ignore_index=True)
    else:
        res.tables["leader_fringe_starts"] = _attempt_table(attempts)
    known[N] = final
    ok = [a.objective for a in attempts if a.status == "optimal"]
    res.notes.append(
        f"leader_fringe: {len(attempts)} solves, {len(ok)} converged; regime starts: "
        + ", ".join(f"{a.label} {a.objective:.8g}" for a in attempts[:3])
        + f"; best {best.label} {best.objective:.10g}; spread over converged starts {max(ok) - min(ok):.4g}")
    return final, known


def _leader(res, lf, scn, opts, ctx, theta, mass):
    N = len(theta)
    dist = scn.types if scn.types.kind != "discrete" else None
    solved = leader_solve(res, lf, scn, ctx, theta, mass)
    if solved is None:
        return None
    final, known = solved
    _, qs, ts = _leader_scales(lf, theta)
    # exact discrete optimum under the NLP's own constraints (monotone q: ironed when the
    # pointwise schedule is not monotone -- then the pointwise menu is not IC, repro competition_11_4)
    ref = cc.leader_discrete_monotone(lf, theta, mass)
    if ref["ironed"]:
        pooled = [f"θ∈[{theta[i]:.4g}, {theta[e]:.4g}]" for i, e in ref["blocks"] if e > i]
        res.notes.append("leader_fringe: the pointwise discrete schedule is not monotone; reference = the ironed "
                         f"discrete optimum (pooled: {', '.join(pooled)})")
    reg = leader_regions(lf, theta, final.q, qs)
    aud = leader_audit(lf, theta, final.q, final.T)
    chk = "leader_vs_discrete_closed_form"
    res.checks.append(bound_check(NAME, chk, "types in another region than leader_discrete",
                                  _region_mismatches(lf, theta, reg, ref["region"], ref["q_L"], qs), 0))
    res.checks.append(compare(NAME, chk, "q_L", final.q, ref["q_L"], TOL_DISCRETE, index=theta,
                              scale=_ref_scale(ref["q_L"], qs)))
    # Q_L of an unserved type is 0, not floor^η (η small: FLOOR^0.07 ≈ 0.14 of the scale)
    res.checks.append(compare(NAME, chk, "Q_L", _leader_quality(lf, final.q, reg), ref["Q_L"], TOL_DISCRETE,
                              index=theta, scale=_ref_scale(ref["Q_L"], qs**lf.eta)))
    # the buyer's top-up at the NLP's item (numeric bisection), not the variable f: where the
    # own-top-up objective is flat at f = 0 (q_k at or just above the limit quality) the NLP's
    # f is determined only to O(sqrt(tol)) (1e-5 of max q_F, repro competition_11_4) while its
    # effect on the buyer's utility is O(f²); that effect is checked on its own below
    qF = fringe_topup_numeric(theta, np.maximum(final.q, 0.0) ** lf.r, lf.sigma, lf.c_F)
    # scale: the buyer's effective tokens in fringe units, max(q_F, q_L^r): q_F = A − q_L^r inherits the
    # leader's error δ(q_L^r), and where q_L^cf = 0 the NLP's q_L ~ 1e-11·max q_L still gives q_L^r ~ 1e-6
    # of max q_F when the leader's scale dwarfs the fringe's (repro competition_11_4)
    qF_scale = max(float(np.max(np.abs(ref["q_F"]))), float(np.max(ref["q_L"] ** lf.r)), 1e-300)
    res.checks.append(compare(NAME, chk, "q_F (buyer's top-up at the NLP item)", qF, ref["q_F"], TOL_DISCRETE,
                              index=theta, scale=qF_scale))
    own_f = theta * (np.maximum(final.q, 0.0) ** lf.r + np.maximum(final.f, 0.0)) ** lf.sigma - lf.c_F * np.maximum(final.f, 0.0)
    own_u = buyer_value_numeric(theta, np.maximum(final.q, 0.0) ** lf.r, lf.sigma, lf.c_F)
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "own-item utility with the NLP's top-up f "
                                  "below the buyer's best / max(|T|,|U|)",
                                  float(np.max(own_u - own_f)) / _utility_scale(final.T, aud["U"]), TOL_AUDIT))
    res.checks.append(compare(NAME, chk, "T", final.T, ref["T"], TOL_DISCRETE, index=theta,
                              scale=_ref_scale(ref["T"], ts)))
    res.checks.append(compare(NAME, chk, "U", aud["U"], ref["U"], TOL_DISCRETE, index=theta))
    res.checks.append(compare(NAME, chk, "profit", final.objective, ref["profit"], TOL_DISCRETE,
                              scale=_ref_scale(ref["profit"], ts)))
    if final.objective > ref["profit"] + TOL_DISCRETE * abs(ref["profit"]):
        res.notes.append(f"LEADER–FRINGE: the NLP menu earns MORE than leader_discrete on the same grid "
                         f"({final.objective:.10g} > {ref['profit']:.10g}); the discrete closed form is not optimal")
    scale = _utility_scale(final.T, aud["U"])
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "worst IC violation / max(|T|,|U|)",
                                  aud["ic"] / scale, TOL_AUDIT))
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "worst IR violation / max(|T|,|U|)",
                                  aud["ir"] / scale, TOL_AUDIT))
    _audit_rows(res, ["leader: all-pairs IC (numeric top-up)", "leader: IR vs fringe only"],
                [aud["ic"], aud["ir"]], [N * (N - 1), N])
    if dist is not None and not cc.leader_schedule_is_monotone(lf, dist):
        res.notes.append("leader_fringe: the continuous closed-form schedule is not monotone for this distribution "
                         "(ironing needed): continuous comparisons skipped")
        dist = None
    cont = cc.leader_continuous(lf, dist, theta) if dist is not None else None
    th_out = _leader_thresholds(res, lf, dist, theta, reg, ref)
    res.tables["leader_fringe"] = _leader_table(lf, theta, mass, final, aud, reg, ref, cont)
    _leader_finer_grid(res, lf, scn, opts, theta, mass, res.tables["leader_fringe"], aud, dist, cont,
                       final.objective)
    conv = None
    if opts["convergence"] and dist is not None:
        conv = _leader_convergence(res, lf, scn, ctx, opts["convergence"], final, known)
    elif opts["convergence"]:
        res.notes.append("leader_fringe: convergence study skipped (no continuous closed form for these types)")
    return {"menu": final, "ref": ref, "region": reg, "audit": aud, "cont": cont, "thresholds": th_out,
            "conv": conv}


FINE_CHUNK = 2000
"""Fine types per block of the finer-grid choice (memory: block × N floats)."""


def _leader_finer_grid(res, lf, scn, opts, theta, mass, table, aud, dist, cont, profit_grid):
    r"""Types on a ``refine``× finer grid choose from the *exported* menu (table columns
    q_L, t) or the fringe alone, each with its numeric top-up.

    Checks (h_i = distance of fine type i to the nearest grid type):

    * **choice within its cell** — for an IC menu with monotone q (u has
      increasing differences), a type between grid types θ_k < θ < θ_{k+1}
      prefers item k to every lower item and the outside option, and item k+1
      to every higher item, so its best item is k or k+1 (below θ_1: item 1 or
      the outside option; above θ_N: item N).  Checked: the best utility over
      all items minus the best over those allowed ≤ TOL_AUDIT·max(|T|,|U|).
      A non-IC menu fails it.
    * **utility vs the continuous closed form** — U_fine and the continuous
      U(θ) are Lipschitz with constant L = max(max_l Q_L,l, A(θ_max)^σ, max Q_L^cont)
      (envelope: u_θ = max(q^η, A^σ)), so
      |U_fine(θ_i) − U_cont(θ_i)| ≤ e_grid + 2 L h_i, e_grid = max_k |U_k − U_cont(θ_k)|
      on the solved grid (O(1/N) by the convergence rows).  Checked: the worst
      excess over that bound ≤ TOL_AUDIT·max(|T|,|U|).
    * **leader profit vs the continuous closed form** — a fine type in grid
      cell k picks item k−1, k or k+1, so with π_k = T_k − c_L q_k (π_0 = 0)
      |profit_fine − profit_grid| ≤ B = Σ_k p_k max(|π_k − π_{k−1}|, |π_{k+1} − π_k|)
      ≤ 2 max_k p_k · TV(π) = O(1/N), hence |profit_fine − profit_cont| ≤
      |profit_grid − profit_cont| + B.  Checked: the excess ≤ TOL_AUDIT·max(|T|,|U|)."""
    N = len(theta)
    q = table["q_L"].to_numpy(float)
    T = table["t"].to_numpy(float)
    scale = _utility_scale(T, aud["U"])
    slack = TOL_AUDIT * scale
    fine_th, fine_p = (scn.types.discretise(N * opts["refine"], scn.grid) if dist is not None else (theta, mass))
    a = np.maximum(q, 0.0) ** lf.r
    kk = np.searchsorted(theta, fine_th)  # grid types θ_{kk-1} < θ ≤ θ_{kk}
    U_f = np.empty(len(fine_th))
    pick = np.empty(len(fine_th), dtype=int)
    regret = np.empty(len(fine_th))
    for i0 in range(0, len(fine_th), FINE_CHUNK):
        th = fine_th[i0:i0 + FINE_CHUNK]
        vals = np.concatenate([buyer_value_numeric(th[:, None], a[None, :], lf.sigma, lf.c_F) - T[None, :],
                               buyer_value_numeric(th, 0.0, lf.sigma, lf.c_F)[:, None]], axis=1)
        best = np.argmax(vals, axis=1)
        U_f[i0:i0 + len(th)] = vals[np.arange(len(th)), best]
        pick[i0:i0 + len(th)] = best
        hi = np.minimum(kk[i0:i0 + len(th)], N - 1)  # allowed: items hi-1, hi (outside option below θ_1)
        lo = hi - 1
        allowed = np.where(kk[i0:i0 + len(th)] == 0, np.maximum(vals[np.arange(len(th)), 0], vals[:, N]),
                           np.where(kk[i0:i0 + len(th)] >= N, vals[np.arange(len(th)), N - 1],
                                    np.maximum(vals[np.arange(len(th)), np.maximum(lo, 0)],
                                               vals[np.arange(len(th)), hi])))
        regret[i0:i0 + len(th)] = U_f[i0:i0 + len(th)] - allowed
    chk = "leader_finer_grid_choice"
    worst = float(np.max(regret))
    res.checks.append(bound_check(NAME, chk, "best utility over all items − best over the type's cell items "
                                  "(≤ TOL_AUDIT·max(|T|,|U|))", worst, slack))
    rows = [("leader: finer-grid choice outside the type's cell (utility gain)", worst, len(fine_th))]
    if dist is not None and cont is not None:
        fc = cc.leader_continuous(lf, dist, fine_th)
        e_grid = float(np.max(np.abs(aud["U"] - cont["U"])))
        A_top = float(fringe_topup_numeric(fine_th[-1:], 0.0, lf.sigma, lf.c_F)[0])
        L = max(float(np.max(np.maximum(q, 0.0) ** lf.eta)), A_top ** lf.sigma, float(np.max(fc["Q_L"])))
        h = np.min(np.abs(fine_th[:, None] - theta[None, :]), axis=1) if N * len(fine_th) <= 4e7 else \
            np.minimum(np.abs(fine_th - theta[np.clip(kk, 0, N - 1)]), np.abs(fine_th - theta[np.clip(kk - 1, 0, N - 1)]))
        excess_U = float(np.max(np.abs(U_f - fc["U"]) - (e_grid + 2 * L * h)))
        res.checks.append(bound_check(NAME, chk, "|U_fine − U_cont| − (e_grid + 2·L·h) (O(1/N) bound; ≤ TOL_AUDIT·"
                                      "max(|T|,|U|))", excess_U, slack))
        pi = T - lf.c_L * q
        d = np.abs(np.diff(np.concatenate([[0.0], pi, [pi[-1]]])))
        B = float(np.sum(mass * np.maximum(d[:-1], d[1:])))
        pi_pick = np.where(pick < N, np.append(pi, 0.0)[np.minimum(pick, N)], 0.0)
        profit_fine = float(np.sum(fine_p * pi_pick) / np.sum(fine_p))
        prof_cont = cc.leader_summary(lf, dist)["profit"]
        excess_P = abs(profit_fine - prof_cont) - (abs(profit_grid - prof_cont) + B)
        res.checks.append(bound_check(NAME, chk, "|profit_fine − profit_cont| − (|profit_N − profit_cont| + B) "
                                      "(B = Σ p_k·max adjacent |Δπ| = O(1/N); ≤ TOL_AUDIT·max(|T|,|U|))",
                                      excess_P, slack))
        res.notes.append(f"leader finer grid ({len(fine_th)} types): max |U_fine − U_cont| = "
                         f"{np.max(np.abs(U_f - fc['U'])):.3g} (bound e_grid + 2Lh ≤ {e_grid + 2 * L * np.max(h):.3g}); "
                         f"profit_fine {profit_fine:.8g} vs continuous {prof_cont:.8g} (|diff| "
                         f"{abs(profit_fine - prof_cont):.3g}, bound {abs(profit_grid - prof_cont) + B:.3g})")
        rows += [("leader: finer-grid utility vs continuous, excess over bound", excess_U, len(fine_th)),
                 ("leader: finer-grid profit vs continuous, excess over bound", excess_P, 1)]
    _audit_rows(res, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def _audit_rows(res, names, worst, rows):
    df = pd.DataFrame({"audit": names, "worst_violation": worst, "rows_checked": rows})
    res.tables["audit"] = pd.concat([res.tables["audit"], df], ignore_index=True) if "audit" in res.tables else df


def _leader_quality(lf, q, region) -> np.ndarray:
    """Leader quality Q_L = q^η of served types, 0 for types in region 0 (q at its floor)."""
    return np.where(np.asarray(region) > 0, np.maximum(np.asarray(q, float), 0.0) ** lf.eta, 0.0)


def _leader_table(lf, theta, mass, menu, aud, reg, ref, cont):
    q_dev_next = np.append(fringe_topup_numeric(theta[1:], np.maximum(menu.q[:-1], 0) ** lf.r, lf.sigma, lf.c_F), np.nan)
    d = {"theta": theta, "mass": mass, "region": reg, "q_L": menu.q, "Q_L": _leader_quality(lf, menu.q, reg),
         "q_F": aud["q_F"], "Q_F": aud["q_F"] ** lf.sigma, "t": menu.T, "U": aud["U"], "u_0": aud["u0"],
         "rent_over_fringe_only": aud["U"] - aud["u0"],
         "next_type_topup_at_this_item": q_dev_next,
         "q_L_discrete_cf": ref["q_L"], "t_discrete_cf": ref["T"], "region_discrete_cf": ref["region"]}
    if cont is not None:
        d.update({"q_L_continuous_cf": cont["q_L"], "t_continuous_cf": cont["T"], "U_continuous_cf": cont["U"],
                  "region_continuous_cf": cont["region"]})
    return pd.DataFrame(d)


def _leader_thresholds(res, lf, dist, theta, reg, ref):
    """NLP thresholds vs the discrete and continuous closed forms.

    Proposition 4's thresholds as the economics defines them: the leader's
    entry (θ_lo, or θ* when the middle region is empty) and the first interior
    type (θ_hi, or θ*).  NLP values are midpoints between neighbouring grid
    types; the check is 'within one grid step' of the continuous value."""
    nlp, dref = region_thresholds(theta, reg), region_thresholds(theta, ref["region"])
    cont = cc.leader_thresholds(lf, dist) if dist is not None else None
    mid_ne = None if cont is None else bool(cont["middle_nonempty"])
    names = {"entry": "theta_lo" if mid_ne in (True, None) else "theta_star (entry)",
             "interior_from": "theta_hi" if mid_ne in (True, None) else "theta_star (interior from)"}
    rows = []
    for key, label in names.items():
        n, dd = nlp[key], dref[key]
        c = float(cont[key]) if cont is not None and np.isfinite(cont[key]) else np.nan
        rows.append({"threshold": label, "nlp_midpoint": n[0] if n else np.nan, "grid_step": n[1] if n else np.nan,
                     "discrete_closed_form_midpoint": dd[0] if dd else np.nan, "continuous_closed_form": c,
                     "abs_diff_continuous": abs(n[0] - c) if n and np.isfinite(c) else np.nan})
        chk = "leader_thresholds_vs_continuous"
        if n and np.isfinite(c):
            res.checks.append(compare(NAME, chk, f"{label} (NLP midpoint)", n[0], c, n[1] / c,
                                      index=["within one grid step"]))
        elif cont is not None and (n is None) != (not (np.isfinite(c) and theta[0] < c < theta[-1])):
            res.checks.append(bound_check(NAME, chk, f"{label}: NLP and continuous closed form disagree on "
                                          "whether this threshold lies on the grid", 1.0, 0.0))
    n_limit = int(np.sum(reg == 1))
    if cont is not None:
        res.notes.append(f"leader_fringe regions (NLP): fringe only {int(np.sum(reg == 0))} types, limit pricing "
                         f"{n_limit}, interior {int(np.sum(reg == 2))}; continuous closed form: middle region "
                         f"{'non-empty' if mid_ne else 'EMPTY'} (θ_lo={cont['theta_lo']:.6g}, "
                         f"θ_hi={cont['theta_hi']:.6g}, θ*={cont['theta_star']:.6g})")
        if not mid_ne:
            # empty in the continuum; on a grid at most the entry type could be limit-priced
            res.checks.append(bound_check(NAME, "leader_empty_middle", "limit-priced types in the NLP menu", n_limit,
                                          1.0))
        else:
            # each region the continuum says is non-empty must hold NLP types --
            # unless it is narrower than two grid steps (then no grid type need fall in it)
            lo, hi = dist.support
            step = float(np.max(np.diff(theta))) if len(theta) > 1 else 0.0
            widths = {0: cont["theta_lo"] - lo, 1: cont["theta_hi"] - cont["theta_lo"], 2: hi - cont["theta_hi"]}
            wide = [r for r, w in widths.items() if np.isfinite(w) and w > 2 * step]
            if wide:
                res.checks.append(bound_check(
                    NAME, "leader_three_regions", "1 − min(types per region wider than 2 grid steps) (≤ 0: non-empty)",
                    1.0 - min(int(np.sum(reg == r)) for r in wide), 0.0, index=f"regions {wide}"))
            else:
                res.notes.append("leader_fringe: every region is narrower than two grid steps; region check skipped")
    df = pd.DataFrame(rows)
    res.tables["thresholds"] = df
    return df


def _rel_inf(x, y) -> float:
    """max|x − y| / max|y| (the verification rule; absolute when every reference is 0)."""
    sc = float(np.max(np.abs(y)))
    d = float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
    return d / sc if sc > 0 else d


def _leader_convergence(res, lf, scn, ctx, sizes, base: LeaderMenu, known=None):
    """Relative errors vs the continuous closed form at the requested N (report and order)."""
    dist = scn.types
    rows = []
    prev = base
    wel = cc.leader_summary(lf, dist)
    thr = cc.leader_thresholds(lf, dist)
    for N in sizes:
        th, ms = dist.discretise(N, scn.grid)
        if N == len(base.theta) and np.allclose(th, base.theta):
            menu, n_solves = base, 0
        elif known and N in known and np.allclose(th, known[N].theta):
            menu, n_solves = known[N], 0  # solved on the way up (coarse-to-fine)
        else:
            att = _leader_refine(lf, th, ms, ctx, prev, f"leader_fringe[N={N}]")
            best = _best_attempt(att)
            menu, n_solves = best.values["menu"], len(att)
            res.solves[f"leader_fringe[N={N}]"] = best.result
        prev = menu
        cont = cc.leader_continuous(lf, dist, th)
        ref = cc.leader_discrete_monotone(lf, th, ms)
        aud = leader_audit(lf, th, menu.q, menu.T)
        step = float(np.max(np.diff(th)))
        near = np.zeros(len(th), bool)  # types within 2 grid steps of a continuous region boundary
        for key in ("entry", "interior_from"):
            if np.isfinite(thr[key]):
                near |= np.abs(th - thr[key]) <= 2 * step
        w = ms / ms.sum()

        def l1(x, y):
            sc = float(np.max(np.abs(y)))
            return float(np.sum(w * np.abs(x - y)) / sc) if sc > 0 else np.nan

        def away(x, y):
            sc = float(np.max(np.abs(y)))
            if np.sum(~near) < MIN_AWAY_TYPES or sc <= 0:
                return np.nan
            return float(np.max(np.abs(x - y)[~near]) / sc)

        rows.append({"N": N, "l1_rel_err_q_L": l1(menu.q, cont["q_L"]), "l1_rel_err_t": l1(menu.T, cont["T"]),
                     "l1_rel_err_U": l1(aud["U"], cont["U"]),
                     "max_rel_err_q_L_away_from_thresholds": away(menu.q, cont["q_L"]),
                     "max_rel_err_t_away_from_thresholds": away(menu.T, cont["T"]),
                     # relative to the continuous profit; absolute if the leader earns nothing there
                     "rel_err_profit": abs(menu.objective - wel["profit"]) / (abs(wel["profit"]) or 1.0),
                     "profit": menu.objective, "profit_continuous_cf": wel["profit"],
                     "profit_discrete_cf": ref["profit"],
                     "max_rel_err_vs_discrete_cf_q_L": _rel_inf(menu.q, ref["q_L"]),
                     "max_rel_err_vs_discrete_cf_t": _rel_inf(menu.T, ref["T"]),
                     "worst_ic_ir_violation": max(aud["ic"], aud["ir"]), "extra_solves": n_solves,
                     "status": menu.result.status.value if menu.result is not None else ""})
    df = pd.DataFrame(rows)
    for col in ("l1_rel_err_q_L", "l1_rel_err_t", "max_rel_err_q_L_away_from_thresholds",
                "max_rel_err_t_away_from_thresholds", "rel_err_profit"):
        e = df[col].to_numpy()
        ok = bool(np.all(np.isfinite(e)) and np.all(e > 0))
        order = float(-np.polyfit(np.log(df["N"]), np.log(e), 1)[0]) if ok else np.nan
        df[f"order_{col}"] = order
        if col not in ORDER_CHECKED:
            continue  # L1 through a jump: reported, not checked (ORDER_CHECKED)
        if not ok:
            res.notes.append(f"leader_fringe convergence: order of {col} not checked (fewer than {MIN_AWAY_TYPES} "
                             "types away from the thresholds on the coarsest grid, or a zero error)")
            continue
        if float(np.min(e)) <= ORDER_NOISE_FLOOR:
            res.notes.append(f"leader_fringe convergence: order of {col} not checked (error {np.min(e):.2e} at the "
                             f"solver-accuracy level ≤ {ORDER_NOISE_FLOOR:g})")
            continue
        lo, hi = ORDER_BAND
        res.checks.append(compare(NAME, "leader_convergence_to_continuous", f"observed order of {col}", order, 1.0,
                                  max(1.0 - lo, hi - 1.0), index=[f"band [{lo}, {hi}]"]))
    for col in ("max_rel_err_vs_discrete_cf_q_L", "max_rel_err_vs_discrete_cf_t"):
        res.checks.append(bound_check(NAME, "leader_finer_grids_vs_discrete_cf", f"{col} (worst over N)",
                                      float(df[col].max()), TOL_DISCRETE))
    res.checks.append(bound_check(NAME, "leader_finer_grids_audit", "worst IC/IR violation over N (absolute)",
                                  float(df["worst_ic_ir_violation"].max()),
                                  TOL_AUDIT * _utility_scale(base.T, leader_audit(lf, base.theta, base.q, base.T)["U"])))
    res.tables["leader_fringe_convergence"] = df
    return df


# =====================================================================
# welfare and figures
# =====================================================================
def _welfare(res, lf, models, theta, mass, dist, eff, mon, lead, mon_ref=None):
    rows = []
    names = [mm.name for mm in models]
    if eff is not None:
        S = _type_surplus(models, theta, eff["q"])
        model = _model_labels(models, eff["q"], theta)
        desc = _describe(theta, model, {0: f"{names[0]} model", 1: f"{names[1]} model", -1: "nobody", 2: "both"})
        rows.append({"regime": "efficient", "source": "NLP (discrete types)", "profit": 0.0,
                     "consumer_surplus": float(np.sum(mass * S)), "total_surplus": float(np.sum(mass * S)),
                     "who_serves_whom": desc})
        tot = float(np.sum(mass * cc.efficient_surplus(models, theta)))
        rows.append({"regime": "efficient", "source": "closed form (discrete types)", "profit": 0.0,
                     "consumer_surplus": tot, "total_surplus": tot,
                     "who_serves_whom": f"{names[0]} below θ^e = {cc.efficient_switch_point(models):.4g}, "
                                        f"{names[1]} above"})
    if mon is not None:
        V, t, q = mon.values["V"], mon.values["t"], mon.values["q"]
        K = q @ np.array([mm.c for mm in models])
        model = _model_labels(models, q, theta)
        rows.append({"regime": "multi-model monopolist", "source": "NLP (discrete types)", "profit": mon.objective,
                     "consumer_surplus": float(np.sum(mass * (theta * V - t))),
                     "total_surplus": float(np.sum(mass * (theta * V - K))),
                     "who_serves_whom": _describe(theta, model, {0: f"{names[0]} model", 1: f"{names[1]} model",
                                                                 -1: "excluded", 2: "both"})})
        md = mon_ref if mon_ref is not None else cc.monopolist_discrete(models, theta, mass)
        rows.append({"regime": "multi-model monopolist", "source": "closed form (discrete types)", "profit": md["profit"],
                     "consumer_surplus": md["consumer_surplus"], "total_surplus": md["total_surplus"],
                     "who_serves_whom": _describe(theta, md["model"], {0: f"{names[0]} model", 1: f"{names[1]} model",
                                                                       -1: "excluded"})})
    if lead is not None:
        menu = lead["menu"]
        qf = lead["audit"]["q_F"]  # the buyer's top-up at the NLP item (see the q_F check)
        tot = theta * (np.maximum(menu.q, 0) ** lf.r + qf) ** lf.sigma - lf.c_L * menu.q - lf.c_F * qf
        rows.append({"regime": "leader vs fringe", "source": "NLP (discrete types)", "profit": menu.objective,
                     "consumer_surplus": float(np.sum(mass * lead["audit"]["U"])),
                     "total_surplus": float(np.sum(mass * tot)),
                     "who_serves_whom": _describe(theta, lead["region"], {0: "fringe only", 1: "leader (limit pricing)",
                                                                          2: "leader (interior)"})})
        ref = lead["ref"]
        rows.append({"regime": "leader vs fringe", "source": "closed form (discrete types)", "profit": ref["profit"],
                     "consumer_surplus": ref["consumer_surplus"], "total_surplus": ref["total_surplus"],
                     "who_serves_whom": _describe(theta, ref["region"], {0: "fringe only", 1: "leader (limit pricing)",
                                                                         2: "leader (interior)"})})
    if dist is not None and lf is not None and eff is not None and mon is not None and lead is not None:
        wc = cc.welfare_comparison(lf, dist)
        thr = cc.leader_thresholds(lf, dist)
        te = cc.efficient_switch_point(models)
        descr = {"efficient": f"{names[0]} below θ^e = {te:.4g}, {names[1]} above",
                 "monopolist": f"excluded below {cc.exclusion_type(dist):.4g}; {names[0]} up to "
                               f"{cc.monopolist_switch_type(models, dist):.4g}; {names[1]} above",
                 "leader_fringe": (f"fringe only below θ_lo = {thr['theta_lo']:.4g}; limit pricing to θ_hi = "
                                   f"{thr['theta_hi']:.4g}; interior above") if thr["middle_nonempty"] else
                 f"fringe only below θ* = {thr['theta_star']:.4g}; interior above (middle region empty)"}
        label = {"efficient": "efficient", "monopolist": "multi-model monopolist", "leader_fringe": "leader vs fringe"}
        for key, d in wc.items():
            rows.append({"regime": label[key], "source": "closed form (continuous types)", "profit": d["profit"],
                         "consumer_surplus": d["consumer_surplus"], "total_surplus": d["total_surplus"],
                         "who_serves_whom": descr[key]})
    df = pd.DataFrame(rows, columns=["regime", "source", "profit", "consumer_surplus", "total_surplus",
                                     "who_serves_whom"])
    res.tables["welfare"] = df
    # discrete-type welfare must match the discrete closed forms (same menus)
    for reg in df["regime"].unique():
        a = df[(df.regime == reg) & (df.source == "NLP (discrete types)")]
        b = df[(df.regime == reg) & (df.source == "closed form (discrete types)")]
        if len(a) and len(b):
            # a part that is exactly 0 in the closed form (no consumer surplus, no profit) is
            # judged on the regime's total surplus, not in absolute money (_ref_scale)
            unit = max(abs(float(b["total_surplus"].iloc[0])), 1e-300)
            for col in ("profit", "consumer_surplus", "total_surplus"):
                res.checks.append(compare(NAME, "welfare_vs_discrete_closed_form", f"{reg}: {col}",
                                          a[col].iloc[0], b[col].iloc[0], TOL_DISCRETE,
                                          scale=_ref_scale(b[col].iloc[0], unit)))
    return df


def _describe(theta, label, names) -> str:
    """'name θ∈[a, b]; ...' runs of equal labels along the grid."""
    out, i = [], 0
    label = np.asarray(label)
    while i < len(label):
        j = i
        while j + 1 < len(label) and label[j + 1] == label[i]:
            j += 1
        out.append(f"{names.get(int(label[i]), str(label[i]))} θ∈[{theta[i]:.4g}, {theta[j]:.4g}]")
        i = j + 1
    return "; ".join(out)


def _figures(lf, models, theta, dist, eff, mon, lead, mon_ref):
    from models import plotting

    figs = {}
    if lead is not None:
        menu, reg = lead["menu"], lead["region"]
        fig, ax = plotting.new()
        colours = {0: "tab:gray", 1: "tab:orange", 2: "tab:green"}
        names = {0: "fringe only", 1: "limit pricing", 2: "interior"}
        edges = np.concatenate([[theta[0] - 0.5 * (theta[1] - theta[0])], 0.5 * (theta[1:] + theta[:-1]),
                                [theta[-1] + 0.5 * (theta[-1] - theta[-2])]])
        seen = set()
        for k in range(len(theta)):
            ax.axvspan(edges[k], edges[k + 1], color=colours[int(reg[k])], alpha=0.12, lw=0,
                       label=None if reg[k] in seen else f"NLP region: {names[int(reg[k])]}")
            seen.add(reg[k])
        if dist is not None:
            grid = np.linspace(*dist.support, 1201)
            c = cc.leader_continuous(lf, dist, grid)
            plotting.closed_form_line(ax, grid, c["Q_L"], "leader Q_L (continuous closed form)", color="tab:blue")
            plotting.closed_form_line(ax, grid, np.maximum(c["q_F"], 0) ** lf.sigma, "fringe Q_F (continuous closed form)",
                                      color="tab:red")
        plotting.numeric_markers(ax, theta, _leader_quality(lf, menu.q, reg), "leader Q_L (NLP)", color="tab:blue")
        plotting.numeric_markers(ax, theta, lead["audit"]["q_F"] ** lf.sigma, "fringe Q_F (buyer's top-up at the NLP menu)",
                                 color="tab:red")
        plotting.labels(ax, "type θ", "quality bought", "Leader vs competitive fringe: quantities")
        ax.legend(frameon=False, fontsize=7)
        figs["leader_fringe_quantities"] = fig

        fig, ax = plotting.new()
        if dist is not None:
            plotting.closed_form_line(ax, grid, c["T"], "transfer to leader (continuous closed form)", color="tab:blue")
            plotting.closed_form_line(ax, grid, c["U"], "buyer utility (continuous)", color="tab:green")
            plotting.closed_form_line(ax, grid, c["u0"], "fringe-only utility u(θ,0)", color="tab:gray")
        plotting.numeric_markers(ax, theta, menu.T, "transfer (NLP)", color="tab:blue")
        plotting.numeric_markers(ax, theta, lead["audit"]["U"], "utility (NLP)", color="tab:green")
        plotting.labels(ax, "type θ", "$", "Leader vs fringe: transfers and utility")
        figs["leader_fringe_transfers"] = fig

        if dist is not None:
            fig, ax = plotting.new()
            cfs = np.linspace(0.05 * lf.c_L, 0.995 * lf.c_L, 80)
            lo, hi, st = [], [], []
            for cF in cfs:
                lf2 = cc.LeaderFringe(lf.sigma, lf.gamma_L, lf.c_L, float(cF))
                d = cc.leader_thresholds(lf2, dist)
                lo.append(d["theta_lo"] if d["middle_nonempty"] else np.nan)
                hi.append(d["theta_hi"] if d["middle_nonempty"] else np.nan)
                st.append(d["theta_star"])
            plotting.closed_form_line(ax, cfs, lo, "θ_lo (closed form)")
            plotting.closed_form_line(ax, cfs, hi, "θ_hi (closed form)")
            plotting.closed_form_line(ax, cfs, st, "θ* (closed form, empty middle)")
            th = lead["thresholds"]
            for _, row in th.iterrows():
                if np.isfinite(row["nlp_midpoint"]):
                    ax.errorbar([lf.c_F], [row["nlp_midpoint"]], yerr=[[0.5 * row["grid_step"]], [0.5 * row["grid_step"]]],
                                fmt="o", mfc="none", color="k", capsize=3,
                                label=f"NLP {row['threshold']} (± half grid step)")
            ax.set_ylim(dist.support[0], dist.support[1])
            plotting.labels(ax, "fringe cost c_F", "threshold type", "Proposition 4 thresholds vs c_F")
            ax.legend(frameon=False, fontsize=7)
            figs["thresholds_vs_cF"] = fig

    if eff is not None or mon is not None:
        fig, ax = plotting.new()
        names = [mm.name for mm in models]
        colours = ("tab:red", "tab:blue")
        if eff is not None:
            if dist is not None:
                grid = np.linspace(*dist.support, 1201)
                Qe = cc.efficient_quality(models, grid)
                for l, nm in enumerate(names):
                    plotting.closed_form_line(ax, grid, Qe[l], f"efficient Q[{nm}] (closed form)", color=colours[l])
            for l, nm in enumerate(names):
                plotting.numeric_markers(ax, theta, _quality(models, eff["q"])[:, l], f"efficient Q[{nm}] (NLP)",
                                         color=colours[l])
        if mon is not None:
            if mon_ref is not None:
                ax.plot(theta, mon_ref["V"], "-", lw=0.8, color="k", label="monopolist V (discrete closed form)")
            ax.plot(theta, mon.values["V"], "s", ms=3, mfc="none", color="k", label="monopolist V (NLP)")
        plotting.labels(ax, "type θ", "quality", "Two models: efficient and monopolist")
        ax.legend(frameon=False, fontsize=7)
        figs["two_model_benchmarks"] = fig
    return figs


# =====================================================================
# 5. leader vs a fringe that fine-tunes (γ_F > 0)
# =====================================================================
def tuned_units(tf: cc.TunedFringe, theta):
    """Nondimensional units (:class:`Units`) of the tuned-fringe leader program and the
    program's own TunedFringe (costs in those units)."""
    th = float(np.max(theta))
    Q_L = (tf.eta * th / tf.c_L) ** (tf.eta / (1 - tf.eta))  # leader first best at θ_max
    Q_F = float(cc.tuned_stand_alone(tf, th)) ** (tf.sigma + tf.gamma_F)  # fringe-only quality of θ_max
    u = Units(theta=th, Q=max(Q_L, Q_F, 1e-300))
    tf_s = cc.TunedFringe(sigma=tf.sigma, gamma_L=tf.gamma_L, gamma_F=tf.gamma_F,
                          c_L=tf.c_L * u.token(tf.eta) / u.P, c_F=tf.c_F * u.token(tf.sigma + tf.gamma_F) / u.P)
    return u, tf_s


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


def solve_leader_tuned(tf, theta, mass, ctx, label, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    """Build, solve and add every IC/IR pair the exact all-pairs audit finds violated (lazy rows)."""
    with Timer() as tb:
        m = build_leader_tuned(tf, theta, mass, q0, T0, f0, pairs, ir_types)
    r = _solve_start(ctx, m, label, tb.seconds)
    menu = read_leader(m, theta, mass, r)
    for rounds in range(1, MAX_LAZY_ROUNDS + 1):
        if not r.ok:
            break
        aud = tuned_audit(tf, theta, menu.q, menu.T)
        bad = np.argwhere(aud["viol"] > TOL_AUDIT * _utility_scale(menu.T, aud["U"]))
        if not len(bad):
            break
        N = len(theta)
        new_pairs = set(menu.pairs) | {(int(a), int(b)) for a, b in bad if b < N}
        new_ir = set(menu.ir_types) | {int(a) for a, b in bad if b == N}
        ctx.progress(f"    {label}: lazy IC round {rounds}: adding {len(bad)} violated rows")
        with Timer() as tb:
            m = build_leader_tuned(tf, theta, mass, menu.q, menu.T, menu.f, sorted(new_pairs), sorted(new_ir))
        r = _solve_start(ctx, m, f"{label}[lazy {rounds}]", tb.seconds)
        menu = read_leader(m, theta, mass, r)
    return menu


def leader_tuned_multistart(tf, theta, mass, ctx):
    """Starts: all-fringe, the γ_F = 0 discrete optimum (continuation), the γ_F = 0 menu's
    quantities scaled up to the tuned fringe's stand-alone quality, then cut-off starts."""
    N = len(theta)
    lf0 = tf.at_gamma_F_zero()
    ref0 = cc.leader_discrete_monotone(lf0, theta, mass)
    q_lim, q_int = _leader_start_guesses(lf0, theta, mass)
    xA = cc.tuned_stand_alone(tf, theta)
    q_lim_t = xA ** (tf.kappa / tf.r)  # leader quality matching the fringe-only quality
    upper = np.maximum(np.maximum(q_lim_t, q_int), ref0["q_L"])
    attempts, cache = [], {}

    def run_start(lab, q0):
        menu = solve_leader_tuned(tf, theta, mass, ctx, f"leader_tuned_fringe[{lab}]", q0)
        r = menu.result
        attempts.append(Attempt(lab, r.status.value, r.objective, r.iterations, result=r, values={"menu": menu}))
        return attempts[-1]

    run_start("all_fringe", np.zeros(N))
    run_start("gamma_F=0 optimum", ref0["q_L"])
    run_start("tuned limit", q_lim_t)

    def f(cut):
        if cut not in cache:
            a = run_start(f"cutoff[{cut}]", np.where(np.arange(N) >= cut, upper, 0.0))
            cache[cut] = a.objective if a.status == "optimal" else -np.inf
        return cache[cut]

    _cutoff_search(f, 0, N)
    return attempts, ref0


def _leader_tuned(res, tf, theta, mass, ctx):
    """γ_F > 0: solve, audit (exact and exhaustive top-up, all pairs), compare with γ_F = 0."""
    N = len(theta)
    attempts, ref0 = leader_tuned_multistart(tf, theta, mass, ctx)
    res.tables["leader_tuned_fringe_starts"] = _attempt_table(attempts)
    best = _best_attempt(attempts)
    if best.status != "optimal":
        res.error = f"leader_tuned_fringe: none of {len(attempts)} starts converged"
        res.solves["leader_tuned_fringe"] = best.result
        return None
    menu = best.values["menu"]
    res.solves["leader_tuned_fringe"] = menu.result
    aud = tuned_audit(tf, theta, menu.q, menu.T)
    scale = _utility_scale(menu.T, aud["U"])
    chk = "leader_tuned_fringe_audit"
    res.checks.append(bound_check(NAME, chk, "worst IC violation / max(|T|,|U|) (exact top-up)", aud["ic"] / scale,
                                  TOL_AUDIT))
    res.checks.append(bound_check(NAME, chk, "worst IR violation / max(|T|,|U|) (exact top-up)", aud["ir"] / scale,
                                  TOL_AUDIT))
    # independent: the buyer's value of every item by exhaustive 1-D search (no FOC), all N² pairs
    qq = np.concatenate([menu.q, [0.0]])
    TT = np.concatenate([menu.T, [0.0]])
    U_ex = exhaustive_topup_value(tf, theta[:, None], qq[None, :]) - TT[None, :]
    own_ex = U_ex[np.arange(N), np.arange(N)]
    worst_ex = float(np.max(U_ex - own_ex[:, None]))
    res.checks.append(bound_check(NAME, chk, "worst gain from any item or fringe only (exhaustive 1-D top-up "
                                  "search) / max(|T|,|U|)", worst_ex / scale, TOL_AUDIT))
    # the exact top-up is never beaten by the exhaustive search (it is the max of g)
    u_exact = cc.tuned_buyer_value(tf, theta[:, None], qq[None, :])
    res.checks.append(bound_check(NAME, chk, "exhaustive search value − exact top-up value (all pairs) / "
                                  "max(|T|,|U|)", float(np.max(U_ex + TT[None, :] - u_exact)) / scale, TOL_AUDIT))
    _audit_rows(res, ["leader (γ_F>0): all-pairs IC, exact top-up", "leader (γ_F>0): IR vs fringe only",
                      "leader (γ_F>0): all pairs, exhaustive 1-D top-up"], [aud["ic"], aud["ir"], worst_ex],
                [N * (N - 1), N, N * (N + 1)])
    own_f = theta * (menu.q**tf.r + np.maximum(menu.f, 0) ** tf.kappa) ** tf.sigma - tf.c_F * np.maximum(menu.f, 0)
    res.checks.append(bound_check(NAME, chk, "own-item utility with the NLP's top-up f below the buyer's best / "
                                  "max(|T|,|U|)", float(np.max(aud["U"] + menu.T - own_f)) / scale, TOL_AUDIT))
    ok = [a for a in attempts if a.status == "optimal"]
    spread = max(a.objective for a in ok) - min(a.objective for a in ok)
    served = menu.q > TOL_SERVED * max(float(np.max(menu.q)), 1e-300)
    multi = served & (aud["q_F"] > 0)
    res.tables["leader_tuned_fringe"] = pd.DataFrame({
        "theta": theta, "mass": mass, "q_L": menu.q, "Q_L": np.where(served, menu.q**tf.eta, 0.0), "q_F": aud["q_F"],
        "Q_F": aud["q_F"] ** (tf.sigma + tf.gamma_F), "t": menu.T, "U": aud["U"], "u_0": aud["u0"],
        "multi_homes": multi, "q_L_gamma_F0_discrete": ref0["q_L"], "t_gamma_F0_discrete": ref0["T"]})
    first = int(np.argmax(served)) if served.any() else N
    res.notes.append(
        f"leader_tuned_fringe (γ_F = {tf.gamma_F:g}): {len(attempts)} starts, {len(ok)} converged, spread "
        f"{spread:.3g}; profit {menu.objective:.10g} (γ_F = 0 discrete optimum {ref0['profit']:.10g}); leader serves "
        + (f"θ ≥ {theta[first]:.4g}" if first < N else "nobody")
        + f"; {int(multi.sum())} types multi-home (buy leader and fringe)")
    return {"menu": menu, "audit": aud, "ref0": ref0}


# =====================================================================
# run
# =====================================================================
# =====================================================================
# run
# =====================================================================
class _Models(tuple):
    """(model 1, model 2) with the shared σ attached."""

    sigma: float


def _two_models(sigma, opts) -> _Models:
    F = cc.ModelCost(opts["c_F"], sigma + opts["gamma_F"], "fringe" if opts["gamma_F"] == 0 else "model 1")
    L = cc.ModelCost(opts["c_L"], sigma + opts["gamma_L"], "leader" if opts["gamma_F"] == 0 else "model 2")
    out = _Models((F, L))
    out.sigma = sigma
    return out


def run(scn, opts, ctx) -> RegimeResult:
    """Task assignment, efficient allocation, multi-model monopolist, leader vs fringe,
    welfare comparison and figures for one scenario (module docstring)."""
    tech = scn.technology
    res = RegimeResult(NAME)
    s = tech.sigma
    models = _two_models(s, opts)
    theta, mass = scn.discrete_types()
    dist = scn.types if scn.types.kind != "discrete" else None
    if tech.K:
        res.notes.append("the [technology] fine-tuning block is not used here: each model's γ and cost are "
                         "[regimes.competition] gamma_L/gamma_F, c_L/c_F; [technology] gives σ and the token classes")
    if opts["task_cells"]:
        _assignment_checks(res, tech, ctx, opts, (opts["gamma_F"], opts["gamma_L"]))
    eff = _efficient(res, models, theta, mass, ctx)
    mon = _monopolist_ladder(res, models, scn, theta, mass, ctx)
    if dist is not None and not np.all(np.diff(dist.virtual_value(theta)) > 0):
        res.notes.append("virtual value not increasing on the grid: continuous monopolist comparisons skipped")
        mdist = None
    else:
        mdist = dist
    mon_ref = _two_model_checks(res, models, theta, mass, mdist, eff, mon)
    lead, lf = None, None
    if opts["gamma_F"] == 0:
        lf = cc.LeaderFringe(sigma=s, gamma_L=opts["gamma_L"], c_L=opts["c_L"], c_F=opts["c_F"])
        lead = _leader(res, lf, scn, opts, ctx, theta, mass)
    elif opts["gamma_F"] < opts["gamma_L"]:  # a fringe that fine-tunes: exact non-concave top-up
        tf = cc.TunedFringe(sigma=s, gamma_L=opts["gamma_L"], gamma_F=opts["gamma_F"], c_L=opts["c_L"], c_F=opts["c_F"])
        _leader_tuned(res, tf, theta, mass, ctx)
    else:
        res.notes.append("gamma_F >= gamma_L: the fringe is the better-tuned model; leader vs fringe skipped")
    _welfare(res, lf, models, theta, mass, dist if lf is not None else None, eff, mon, lead, mon_ref)
    if getattr(ctx, "figures", True):  # sweeps draw their own (Context.figures = False)
        res.figures.update(_figures(lf, models, theta, dist, eff, mon, lead, mon_ref))
    return res



