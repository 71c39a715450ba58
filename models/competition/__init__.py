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
   the program in ``(a, y)`` is the perspective of a concave function, hence
   jointly concave.  It is solved in unbounded variables ``a = 1/(1+e^{−u})``,
   ``y = e^z`` (no barrier distortion of small cells, no drift to a = 1 along
   the optimal face); their KKT points are interior KKT points of the concave
   program, so Ipopt's optimum is still global (:func:`build_assignment`).
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
   cut-off, when the grid is fine), guarded by :func:`_global_cutoff` (every cut-off up to
   FULL_SCAN_MAX_N types, else a coarse scan and a walk: far-apart types can give a second hump).  Every start solves the
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

Layout of the package, bottom up (each module imports only the ones listed before it: no circle):

- :mod:`.audits` — independent numpy checks (the buyer's top-up, all-pairs IC/IR audits) and the tolerances;
- :mod:`.units` — nondimensional units, per-type scales, reading model labels off a solution;
- :mod:`.programs` — the Pyomo programs (builders) and reading their solutions;
- :mod:`.solving` — how they are solved: Ipopt options, retries, cut-off search, multi-starts, grid
  ladders, lazy rows;
- :mod:`.checks` — verification rows against the closed forms (thresholds, finer grid, convergence order);
- :mod:`.outputs` — the leader and welfare tables and the figures;
- :mod:`.regime` — :func:`validate_options` and :func:`run`.

This module re-exports what :mod:`models.regimes`, the tests and the benches use.
"""
from __future__ import annotations

from .audits import (  # noqa: F401
    break_even_quality, buyer_value_numeric, fringe_topup_numeric, leader_audit, leader_regions,
    leader_type_weight, _mixing_audit, NAME, region_thresholds, _region_mismatches, TOL_ASSIGN, TOL_AUDIT, TOL_DISCRETE,
)
from .units import (  # noqa: F401
    _fb_tokens, _leader_scales, _model_labels, _nondim, _token_scale, _two_models, _type_surplus, Units,
)
from .programs import (  # noqa: F401
    build_assignment, build_efficient, build_leader, build_leader_tuned, LeaderMenu, _read_q,
)
from .solving import (  # noqa: F401
    _best_attempt, CONVEX_SOLVER_DEFAULTS, _cutoff_search, _efficient, FULL_SCAN_MAX_N, _global_cutoff, leader_multistart, leader_solve,
    _monopolist, _monopolist_ladder, solve_leader, _solve_start,
)
from .checks import (  # noqa: F401
    _assignment_checks, _leader_convergence, _leader_finer_grid, _monopolist_continuous_checks,
    _two_model_checks,
)
from .regime import _leader_tuned, run, validate_options  # noqa: F401

__all__ = ["NAME", "run", "validate_options"]
