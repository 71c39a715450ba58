r"""Regime ``versions``: L ≥ 2 model versions sold by one provider (a small, a mid and a frontier
model; issue 13 item 3, docs/model.md §2.7 "L ≥ 3 versions").

Three Pyomo programs, each compared with the closed forms of :mod:`models.closed_form.versions`
(written independently, no Pyomo), and, for L = 2, those closed forms against the two-model ones
of :mod:`models.closed_form.competition`:

1. **Task assignment** (:func:`build_assignment`): a buyer with weights ``w_i`` on n task cells
   holds quality budgets ``Q_ℓ`` on L models and chooses per cell the task shares ``a[ℓ,i]``
   (Σ_ℓ a = 1) and the share ``y[ℓ,i]`` of model ℓ's budget spent there ((1/n)Σ_i y = 1).  Cell
   value ``w_i Σ_ℓ Q_ℓ a^{1−σ} y^σ`` is a perspective of a concave function, so the program is
   jointly concave: Ipopt's optimum is global.  Checked: value = ``θ(w)(Σ_ℓ Q_ℓ^{1/σ})^σ`` and the
   value-weighted task shares = ``Q_ℓ^{1/σ}/Σ_j Q_j^{1/σ}``.
2. **Efficient allocation** (:func:`build_efficient`): per type, tokens of every model in
   linear-cost units ``q[k,ℓ]`` (spend ``c_ℓ q``), value ``θ_k(Σ_ℓ q^{η_ℓ/σ})^σ``.  Not concave
   (every type has a local optimum on each model): one convex program per model (the others at
   their floor), the per-type best of the L (the objective is separable by type), then the
   unrestricted program (all models free for every type) from it, and a numpy audit that no
   split of a type's V between models is cheaper.
3. **Multi-model monopolist**: menu ``(V_k, t_k)`` with ``V = U/θ``; the only non-convexity is
   which types sit on which model, and at the optimum that is monotone in θ (the cheapest model
   at a monotone V moves to higher η), i.e. L − 1 cut-offs.  For fixed cut-offs the program
   (:func:`build_monopolist_assigned`) is convex.  The outer search (:func:`_monopolist`): all
   L one-model assignments, a coarse scan of cut-off vectors, coordinate-wise bisection on the
   profit difference (ties right), a neighbour walk over single and paired ±1 moves and a light-type
   pass (one-type moves across types of mass < max p/1e3, each mass band compared on its own scale:
   :func:`_light_pass`); each
   solve warm-started from the nearest vector solved.  Every solve is reported
   (``monopolist_starts``).  The unrestricted program (:func:`build_monopolist`: every model's
   tokens free per type) is solved from the best menu, and the numpy mixing audit and an
   all-pairs IC/IR audit judge the result.  No closed form is used to build or start a program
   (the units use the top type's first-best quality as a scale only).

Units: every program is written in nondimensional units (types / θ_max, qualities / the top
type's best first-best quality Q, money / θ_max·Q; costs rescaled), as the two-model regime does
(docs/model.md §2.7 "Units"), and results are scaled back.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from models import plotting
from models.closed_form import competition as cc
from models.closed_form import versions as cv
from models.results import RegimeResult, bound_check, compare
from models.solver import Timer

from .units import require_double_range  # a failed regime where the first bests leave double range
from .solving import Attempt, _attempt_table  # one start record and its table for every competition program

NAME = "versions"

# ----------------------------------------------------------- tolerances
TOL_ASSIGN = 1e-7
"""Task assignment: U = θ(Σ Q^{1/σ})^σ holds exactly on the discrete measure; an O(1) concave
program at Ipopt tol 1e-10 agrees to ~1e-10 (measured); 1e-7 is the issue's target."""
TOL_DISCRETE = 1e-6
"""NLP vs the exact discrete closed form (efficient, monopolist V, t, profit): convex programs at
tol 1e-12 in O(1) units give ~1e-9 relative (measured); 1e-6 is the issue's target."""
TOL_AUDIT = 1e-7
"""All-pairs IC/IR and mixing audits, worst violation / max(|t|,|U|) or / max spend: binding rows
hold to the solver's constraint tolerance (~1e-10 scaled)."""
TOL_IDENTITY = 1e-10
"""Two closed forms of the same number (L = 2 special case): each is exact to round-off or to
brentq's 1e-14; 1e-10 leaves the conditioning of exp/log and powers up to 1/(1−η) ≈ 10."""
L2_WELL = 1e-5
"""L = 2 special case: V is compared on types whose tail mass 1 − P_k and mass (relative to max p)
are at least this.  The two-model closed form's φ carries the round-off of 1 − cumsum(p), ~1e-16/p_k
relative (8e-8 in V at p ~ 1e-9, measured): at p ≥ 1e-5 that is ≤ 1e-11, below TOL_IDENTITY."""
FLOOR = 1e-16
"""Token floor of the unused models, relative to each type's own token unit: V = (Σ q^{η/σ})^σ
has η/σ ≥ 1, so a floored model adds ~floor^{η/σ·σ} ≤ 1e-16 to V."""
SERVED = 1e-6
"""The NLP serves a type when V > SERVED·max V (the V check is at TOL_DISCRETE on that scale, so a
label below it is decided by solver accuracy); labels and switches are compared on the types
whose label is clear (:func:`_clear`)."""
TIE_CONVEX = 1e-10
"""Two cut-off vectors tie when their (global, convex) optima differ by less than this relative:
each is accurate to ~1e-12 at tol 1e-12, neighbouring vectors near the optimum differ by ~1/N²."""
MIX_GRID = 41
"""Points per simplex edge of the mixing audit: every split of a type's V^{1/σ} over the L models
on a simplex lattice of this resolution (L = 3: 861 splits per type)."""
UNRESTRICTED_MAX_N = 200
"""The unrestricted (all models free) final solves run up to this many types (N·L token variables)."""
COARSE_POINTS = 6
"""Cut-off values per coordinate of the coarse scan (non-decreasing vectors: 21 for L = 3); 4 for
L ≥ 4 (20 vectors for L = 4 instead of 56: 62 s at N = 79, L = 4, measured)."""
MAX_ROUNDS = 8
"""Rounds of coordinate-wise cut-off search (each round searches every cut-off once)."""

CONVEX_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-12, "max_iter": 3000}
"""Convex programs: Ipopt's default barrier; tol 1e-12 so that objectives carry ~12 digits (the
cut-off comparison needs TIE_CONVEX)."""
ASSIGN_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-10, "max_iter": 3000}
START_DEFAULTS = {"bound_relax_factor": 0.0, "tol": 1e-12, "max_iter": 3000,
                  "mu_init": 1e-9, "bound_push": 1e-8, "bound_frac": 1e-8}
"""Non-convex unrestricted programs started at a menu: a small barrier keeps Ipopt in the
start's basin (as in the two-model regime)."""
RETRIES = ({"mu_init": 1e-7, "max_iter": 500}, {"tol": 1e-10, "max_iter": 500})
"""A solve that stops short of optimality is re-solved from its last iterate with these changes."""


def _solve(ctx, m, label, build_seconds=0.0, defaults=CONVEX_DEFAULTS, money=1.0):
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
    if r.objective is not None and np.isfinite(r.objective):
        r.objective *= money
    return r


# =====================================================================
# options
# =====================================================================
def validate_options(v, opts, path, tech):
    v.keys(opts, path, {"models", "task_cells", "task_profiles"})
    s = tech.sigma
    raw = opts.get("models")
    if not isinstance(raw, list) or not (2 <= len(raw) <= 8) or not all(isinstance(x, dict) for x in raw):
        v.fail(path + ".models", raw, "an array of 2 to 8 tables [[" + path + ".models]] with name, gamma, c")
    models, names = [], set()
    for i, mt in enumerate(raw):
        p = f"{path}.models[{i}]"
        v.keys(mt, p, {"name", "gamma", "c"})
        name = v.string(mt, p, "name", default=f"model {i + 1}") or f"model {i + 1}"
        if name in names:
            v.fail(p + ".name", name, "a name not used by another model")
        names.add(name)
        g = v.number(mt, p, "gamma", lo=0, hi=1 - s, hi_open=True, required=True)
        # c <= 1e6 as in the two-model regime: beyond it quantities fall below what Ipopt resolves
        c = v.number(mt, p, "c", lo=0, hi=1e6, lo_open=True, required=True)
        models.append({"name": name, "gamma": g, "c": c})
    etas = sorted(s + m["gamma"] for m in models)
    if any(b - a <= 1e-9 for a, b in zip(etas[:-1], etas[1:])):
        v.fail(path + ".models", [m["gamma"] for m in models], "models with pairwise different gamma")
    return {"models": models,
            "task_cells": v.number(opts, path, "task_cells", lo=0, hi=20_000, integer=True, default=40),
            "task_profiles": v.number(opts, path, "task_profiles", lo=1, hi=20, integer=True, default=3)}


def model_list(sigma: float, opts) -> list[cc.ModelCost]:
    return [cc.ModelCost(m["c"], sigma + m["gamma"], m["name"]) for m in opts["models"]]


# =====================================================================
# units
# =====================================================================
@dataclass(frozen=True)
class Units:
    """θu = θ_max, Q = the top type's best first-best quality, money P = θu·Q."""

    theta: float
    Q: float

    @property
    def P(self) -> float:
        return self.theta * self.Q

    def models(self, models):
        return [cc.ModelCost(m.c * self.Q ** (1 / m.eta) / self.P, m.eta, m.name) for m in models]


def units(models, theta) -> Units:
    th = float(np.max(theta))
    return Units(th, max(max(float(cc.first_best_quality(m, th)) for m in models), 1e-300))


# =====================================================================
# 1. task assignment
# =====================================================================
def build_assignment(w, Q, sigma: float):
    """Task assignment over n cells and L models (module docstring, item 1)."""
    w, Q = np.asarray(w, float), np.asarray(Q, float)
    n, L = len(w), len(Q)
    m = pyo.ConcreteModel(name="task_assignment_L")
    m.CELLS, m.MODELS = pyo.RangeSet(0, n - 1), pyo.RangeSet(0, L - 1)
    m.a = pyo.Var(m.MODELS, m.CELLS, bounds=(0.0, 1.0), initialize=1.0 / L)  # neutral start
    m.y = pyo.Var(m.MODELS, m.CELLS, bounds=(0.0, None), initialize=1.0)
    m.tasks = pyo.Constraint(m.CELLS, rule=lambda m, i: sum(m.a[l, i] for l in m.MODELS) == 1)
    m.budget = pyo.Constraint(m.MODELS, rule=lambda m, l: sum(m.y[l, i] for i in m.CELLS) / n == 1)
    m.value = pyo.Objective(expr=sum(float(w[i]) / n * float(Q[l]) * m.a[l, i] ** (1 - sigma) * m.y[l, i] ** sigma
                                     for l in m.MODELS for i in m.CELLS), sense=pyo.maximize)
    return m


def _assignment(res, ctx, sigma, L, opts):
    rng = np.random.default_rng(20260213)
    n = opts["task_cells"]
    profiles = [("flat", np.ones(n))] + [(f"random[{k}]", rng.uniform(0.05, 1.0, n))
                                           for k in range(opts["task_profiles"])]
    rows, vals, refs = [], [], []
    for name, w in profiles:
        Q = rng.uniform(0.2, 2.0, L)
        with Timer() as tb:
            m = build_assignment(w, Q, sigma)
        r = _solve(ctx, m, f"task_assignment[{name}]", tb.seconds, defaults=ASSIGN_DEFAULTS)
        res.solves[f"task_assignment[{name}]"] = r
        a = np.array([[pyo.value(m.a[l, i]) for i in m.CELLS] for l in m.MODELS])
        y = np.array([[pyo.value(m.y[l, i]) for i in m.CELLS] for l in m.MODELS])
        U = float(cv.indirect_utility(cc.aggregate_type(w, sigma), Q, sigma))
        rule = cv.task_shares(Q, sigma)
        P = (Q[:, None] ** (1 / sigma) * y).sum(axis=0)  # pooled effective tokens per cell
        vw = (a * P[None, :]).sum(axis=1) / P.sum()  # value-weighted share of each model
        vals.append(r.objective)
        refs.append(U)
        res.checks.append(compare(NAME, "task_assignment", f"value-weighted task shares [{name}]", vw, rule,
                                  TOL_ASSIGN, index=list(range(L)),
                                  advice="the share rule a_l = Q_l^(1/σ)/Σ Q^(1/σ) failed: the assignment NLP "
                                         "is not at its optimum (tighten tol)"))
        if name == "flat":
            res.checks.append(compare(NAME, "task_assignment", "task-mass shares [flat]", a.mean(axis=1), rule,
                                      TOL_ASSIGN, index=list(range(L))))
        rows.append({"profile": name, "cells": n, **{f"Q_{l + 1}": Q[l] for l in range(L)},
                     "U_nlp": r.objective, "U_closed_form": U, "rel_err": abs(r.objective - U) / abs(U),
                     **{f"share_{l + 1}": vw[l] for l in range(L)}, "status": r.status.value})
    res.checks.append(compare(NAME, "task_assignment", "U(θ,Q) = θ(Σ_l Q_l^(1/σ))^σ", vals, refs, TOL_ASSIGN,
                              index=[p for p, _ in profiles],
                              advice="the task-assignment NLP does not reproduce U: its optimum is wrong "
                                     "(tighten tol); the menus below do not depend on it"))
    res.tables["task_assignment"] = pd.DataFrame(rows)


# =====================================================================
# 2. efficient allocation
# =====================================================================
NEGLIGIBLE = 1e-250
"""A type whose token unit on a model is below this (in units of the top type's tokens: θ̃^{1/(1−η)}
underflows for η → 1, e.g. 0.006^100) gets that model's tokens fixed at the floor: its surplus
there is below 1e-250 of the top type's."""


def _type_tokens(models, th, sigma) -> tuple[np.ndarray, np.ndarray]:
    r"""Token unit per type and model (nondimensional models), :math:`\tilde\theta_k^{1/(1-\eta_\ell)}\,x_\ell`
    with :math:`x_\ell` the model's first-best tokens of the top type (θ̃ = 1): homogeneity makes a
    type's optimal tokens on model ℓ scale like this, so every token variable is O(1) — the unit of
    the two-model regime's token variables, per type.  Computed in logs; returns (τ, negligible),
    shape (N, L), with τ = NEGLIGIBLE where it underflows (and for θ ≤ 0)."""
    th = np.asarray(th, float)
    with np.errstate(divide="ignore"):
        lt = np.log(np.maximum(th, 0.0))
    logs = np.stack([lt / (1 - m.eta) + np.log(m.eta / m.c) / (1 - m.eta) for m in models], axis=1)
    # the value uses τ^(η/σ): negligible also when that power underflows (σ = 0.1, η/σ = 9: τ = 1e-40
    # gave 0^(σ−1) = inf at iteration 0, measured)
    pw = np.array([max(m.eta / sigma, 1.0) for m in models])[None, :]
    neg = ~(logs * pw > np.log(NEGLIGIBLE))
    return np.where(neg, NEGLIGIBLE, np.exp(np.minimum(logs, 700.0))), neg


def _pool(models, sigma, q):
    """V^{1/σ} = Σ_ℓ q_ℓ^{η_ℓ/σ} per type (numpy, q (N, L) in linear-cost units)."""
    return sum(np.maximum(q[:, l], 0.0) ** (m.eta / sigma) for l, m in enumerate(models))


def build_efficient(models, sigma, theta, q0, only=None):
    """Efficient allocation on L models (module docstring, item 2), nondimensional.  ``only`` = ℓ:
    model ℓ alone (the others fixed at the floor): concave, a convex program.  Each type's term is
    weighted by 1/τ (its surplus scale), which leaves the allocation unchanged (separable)."""
    u = units(models, theta)
    ms, th = u.models(models), np.asarray(theta, float) / u.theta
    tau, neg = _type_tokens(ms, th, sigma)
    N, L = tau.shape
    if q0 is None:  # neutral start: half the token unit on model ``only`` (not its optimum, x = 1)
        x0 = np.full((N, L), FLOOR)
        x0[:, only] = 0.5
    else:
        x0 = np.maximum(np.asarray(q0, float) / (tau * np.array([u.Q ** (1 / mm.eta) for mm in models])), FLOOR)
    m = pyo.ConcreteModel(name="efficient_L_models")
    m._u, m._tau = u, tau
    m.TYPES, m.MODELS = pyo.RangeSet(0, N - 1), pyo.RangeSet(0, L - 1)
    m.x = pyo.Var(m.TYPES, m.MODELS, bounds=(FLOOR, None), initialize=lambda m, k, l: float(x0[k, l]))
    # per-type weight: every term O(1).  One-model program: that model's scale (1/max_ℓ τ left a
    # high-η model's low types at 1e-16 of the objective: 'unbounded' at η = 0.92, measured);
    # unrestricted: the largest scale.
    # with τ the first-best tokens, a type's surplus on model ℓ is (c_ℓτ/η_ℓ)(x^η − ηx): weight 1/(cτ/η)
    scale = np.where(neg, 0.0, tau * np.array([mm.c / mm.eta for mm in ms])[None, :])
    sc = scale[:, only] if only is not None else scale.max(axis=1)
    wk = np.where(sc > 0, 1.0 / np.where(sc > 0, sc, 1.0), 0.0)
    # the models in each type's value: one-model program = that model only (the floors of the others,
    # in *their* units, dominated V for types whose unit there is 1e200 larger: Ipopt diverged to
    # 1e63, measured at η = 0.99); negligible units left out
    act = [[l for l in range(L) if (only is None or l == only) and not neg[k, l]] for k in range(N)]
    def value(k):
        if len(act[k]) == 1:  # one model: (τ^(η/σ) x^(η/σ))^σ = τ^η x^η exactly; the pooled form's second
            l = act[k][0]     # derivative overflowed at σ = 0.1, η = 0.91 (pool^(σ−2) = inf, measured)
            return float(tau[k, l] ** ms[l].eta) * m.x[k, l] ** ms[l].eta
        return sum(float(tau[k, l] ** (ms[l].eta / sigma)) * m.x[k, l] ** (ms[l].eta / sigma) for l in act[k]) ** sigma

    m.surplus = pyo.Objective(expr=sum(
        float(wk[k]) * (float(th[k]) * value(k) - sum(ms[l].c * float(tau[k, l]) * m.x[k, l] for l in act[k]))
        for k in m.TYPES if act[k]), sense=pyo.maximize)
    for k in m.TYPES:
        for l in m.MODELS:
            if (only is not None and l != only) or neg[k, l]:
                m.x[k, l].fix(FLOOR)
    return m


def _read_eff(m, models):
    """Tokens q (N, L) in the scenario's units."""
    x = np.array([[pyo.value(m.x[k, l]) for l in m.MODELS] for k in m.TYPES])
    return x * m._tau * np.array([m._u.Q ** (1 / mm.eta) for mm in models])[None, :]


def _surplus(models, sigma, theta, q):
    return theta * _pool(models, sigma, q) ** sigma - q @ np.array([mm.c for mm in models])


def _efficient(res, models, sigma, theta, mass, ctx):
    N, L = len(theta), len(models)
    attempts, ok = [], []
    for l, mm in enumerate(models):
        with Timer() as tb:
            m = build_efficient(models, sigma, theta, None, only=l)
        r = _solve(ctx, m, f"efficient[{mm.name} only]", tb.seconds)
        q = _read_eff(m, models)
        q[:, [j for j in range(L) if j != l]] = 0.0  # the fixed models are unused
        a = Attempt(f"{mm.name} only", r.status.value, float(np.sum(mass * _surplus(models, sigma, theta, q))),
                    r.iterations, result=r, values={"q": q, "l": l})
        attempts.append(a)
        res.solves[f"efficient[{mm.name} only]"] = r
        if r.ok:
            ok.append(a)
    if not ok:
        res.tables["efficient_starts"] = _attempt_table(attempts)
        res.error = "efficient allocation: no one-model program converged"
        return None
    S = np.stack([_surplus(models, sigma, theta, a.values["q"]) for a in ok])
    best = np.argmax(S, axis=0)
    q = np.stack([ok[b].values["q"][k] for k, b in enumerate(best)])
    used = "per-type best of the one-model programs"
    if N <= UNRESTRICTED_MAX_N:
        with Timer() as tb:
            m = build_efficient(models, sigma, theta, np.maximum(q, 0.0))
        r = _solve(ctx, m, "efficient[unrestricted final]", tb.seconds, defaults=START_DEFAULTS)
        qf = _read_eff(m, models)
        objf = float(np.sum(mass * _surplus(models, sigma, theta, qf)))
        obj = float(np.sum(mass * _surplus(models, sigma, theta, q)))
        attempts.append(Attempt("unrestricted final (all models free) from the per-type best", r.status.value, objf,
                                r.iterations, result=r,
                                detail=", ".join(f"{a.label}: {int(np.sum(best == i))} types" for i, a in enumerate(ok))))
        if r.ok:
            res.solves["efficient[unrestricted final]"] = r
        else:  # a confirmation only: the reported allocation is the converged one-model optima
            res.notes.append(f"efficient: the unrestricted final solve ended '{r.status.value}' (not used; the "
                             "per-type best of the converged one-model programs is reported, judged by the mixing audit)")
        if r.ok and objf > obj + TIE_CONVEX * abs(obj):
            q, used = qf, "unrestricted final (better than the per-type best)"
    res.tables["efficient_starts"] = _attempt_table(attempts)
    res.notes.append(f"efficient: {len(attempts)} solves; reported: {used}")
    _mixing_audit(res, models, sigma, _pool(models, sigma, q) ** sigma, q, "efficient_mixing_audit")
    return {"q": q, "V": _pool(models, sigma, q) ** sigma}


# =====================================================================
# 3. multi-model monopolist
# =====================================================================
def build_monopolist_assigned(models, theta, mass, assign, V0, t0=None):
    """Monopolist menu for a fixed assignment (``assign[k]`` = model index): convex.  IR of the
    lowest type, adjacent downward IC, monotone V (the other IC/IR rows are implied for monotone V
    and audited in numpy).

    Per-type units: ``V_k = S_k v_k``, ``t_k = θ_k S_k τ_k`` with ``S_k`` the first-best quality of
    type k on its assigned model (the largest V it can get; computed in logs, ≥ NEGLIGIBLE), and
    every row divided by its own scale.  With one unit for all types, a cheap near-linear model
    (η = 0.985) put the other models' V at ~1e-80 of the scale and Ipopt stopped with 'unrecoverable
    error' on 20 of 31 programs (measured, L = 4, σ = 0.72)."""
    u = units(models, theta)
    ms, th, p = u.models(models), np.asarray(theta, float) / u.theta, np.asarray(mass, float)
    N = len(th)
    a = np.asarray(assign, int)
    eta = np.array([ms[l].eta for l in a])
    cc_ = np.array([ms[l].c for l in a])
    with np.errstate(divide="ignore"):
        logS = eta / (1 - eta) * np.log(np.maximum(eta * th / cc_, 0.0))
    S = np.where(logS > np.log(NEGLIGIBLE), np.exp(np.minimum(logS, 700.0)), NEGLIGIBLE)
    # running maxima: V is monotone and t cumulative, so a type after a cut-off to a model with a far
    # smaller first best still has V ≥ V_{k−1}; its own S made v and τ ~1e10+ ('diverging', max_iter at
    # 3000 iterations, versions_34_16, measured)
    S = np.maximum.accumulate(S)
    # θ_k = 0 (a discrete type at 0) or an underflowing unit: the transfer unit is the program's own
    Pk = th * S
    Pk = np.where((th > 0) & (S > NEGLIGIBLE) & (Pk > NEGLIGIBLE), Pk, 1.0)
    Pk = np.maximum.accumulate(Pk)
    # start: half of each type's unit (neutral), or a neighbour's menu clipped to [1e-6, 2] units
    # (an all-type quality unit there put v at 1e80 and Ipopt stopped at iteration 0, measured)
    v0 = np.full(N, 0.5) if V0 is None else np.clip(np.asarray(V0, float) / u.Q / S, 1e-6, 2.0)
    # transfers always from the start's V (binding downward IC, 0.9x: strictly feasible for monotone V);
    # a neighbour's t divided by a type's tiny unit put τ at 1e80 ('diverging' at iteration 0, measured)
    del t0
    t0 = 0.9 * cv.screening_transfers(th, np.maximum.accumulate(S * v0))
    m = pyo.ConcreteModel(name="monopolist_L_assigned")
    m._u, m._S, m._Pk = u, S, Pk
    m.TYPES = pyo.RangeSet(0, N - 1)
    m.V = pyo.Var(m.TYPES, bounds=(0.0, None), initialize=dict(enumerate(v0)))
    m.t = pyo.Var(m.TYPES, initialize=dict(enumerate(t0 / Pk)))
    Vx = {k: float(S[k]) * m.V[k] for k in range(N)}
    tx = {k: float(Pk[k]) * m.t[k] for k in range(N)}
    m.ir = pyo.Constraint(expr=(th[0] * Vx[0] - tx[0]) / float(Pk[0]) >= 0)
    rows = pyo.RangeSet(1, N - 1) if N > 1 else []
    m.ic_down = pyo.Constraint(rows, rule=lambda m, k: (th[k] * (Vx[k] - Vx[k - 1]) - tx[k] + tx[k - 1]) / float(Pk[k]) >= 0)
    m.mono = pyo.Constraint(rows, rule=lambda m, k: (Vx[k] - Vx[k - 1]) / float(S[k]) >= 0)
    m._type_profit = {k: float(p[k]) * (tx[k] - float(cc_[k] * S[k] ** (1 / eta[k])) * m.V[k] ** (1 / eta[k]))
                      for k in range(N)}
    m.profit = pyo.Objective(expr=sum(m._type_profit.values()), sense=pyo.maximize)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[m.profit] = 1.0 / float(np.max(p * Pk))  # the largest per-type term O(1)
    return m


W_FLOOR = 1e-20
"""Lower bound of the unrestricted program's per-type qualities ω (units of S_k): pow(0, 1/η) with
1/η < 2 has no second derivative at 0 (the AMPL library stops the solve, measured); the floor adds
≤ 1e-20 of S_k to V (the row is a 1/σ-norm) at a spend ≤ c S^{1/η}·1e-20, below every tolerance."""


def build_monopolist(models, sigma, theta, mass, q0, t0):
    """Unrestricted monopolist: every model's quality free per type, ``V^{1/σ} = Σ_ℓ W_ℓ^{1/σ}`` with
    ``W_ℓ = q_ℓ^{η_ℓ}`` the quality bought on model ℓ; IR of the lowest type, adjacent IC both ways,
    monotone V.  Non-convex; started at a menu.

    Per-type units, as :func:`build_monopolist_assigned`: ``V_k = S_k v_k``, ``W_kℓ = S_k ω_kℓ``,
    ``t_k = P_k τ_k``, with S_k the start's V of the type (its first-best quality where the start does
    not serve it; running maximum) and P_k = θ_k S_k.  The quality row ``v^{1/σ} = Σ_ℓ ω^{1/σ}`` is
    then O(1) at the start for every served type, and the spend is ``c_ℓ S_k^{1/η_ℓ} ω^{1/η_ℓ}``
    (coefficient formed in logs).  Qualities, not tokens, are the variables: every power is ≥ 1, so
    ω → 0 is harmless (floor W_FLOOR), and an item priced out of the mix costs nothing to leave there.

    Two defects of the former token form (tokens x in the top type's units, x ≥ 1e-16,
    ``V^{1/σ} = Σ τ^{η/σ} x^{η/σ}``), both on versions_139_26 (σ = 0.05; stranger12, measured):
    the row was V^20 ~ 1e-20 for the low types, inside Ipopt's constraint tolerance, so V was free
    of the tokens and the final reported a profit 0.32 % above the exact optimum (V ≈ 0.26 bought
    with 4e-10 of tokens); and on a model with η = σ the token floor alone gave every type
    V = (τ·1e-16)^0.05 ≈ 0.16·τ^η, so no type could be excluded."""
    u = units(models, theta)
    ms, th, p = u.models(models), np.asarray(theta, float) / u.theta, np.asarray(mass, float)
    N, L = len(th), len(ms)
    eta = np.array([mm.eta for mm in ms])
    qunit = np.array([u.Q ** (1 / mm.eta) for mm in models])[None, :]
    qn = np.maximum(np.asarray(q0, float), 0.0) / qunit  # start tokens, nondimensional
    with np.errstate(divide="ignore"):
        lW0 = eta[None, :] * np.log(qn)  # log quality bought on each model (−inf where none)
        lfb = np.max([eta[l] / (1 - eta[l]) * np.log(np.maximum(eta[l] * th / ms[l].c, 0.0)) for l in range(L)],
                     axis=0)  # the type's first-best quality (log; −inf at θ = 0)
    top = np.max(lW0, axis=1)
    with np.errstate(invalid="ignore"):
        lV0 = np.where(np.isfinite(top), top + sigma * np.log(np.sum(np.exp((lW0 - top[:, None]) / sigma), axis=1)),
                       -np.inf)
    served = np.isfinite(lV0) & (lV0 > np.where(np.isfinite(lfb), lfb, -np.inf) + np.log(SERVED))
    lS = np.where(served, lV0, np.where(np.isfinite(lfb), lfb, np.log(NEGLIGIBLE)))
    lS = np.maximum.accumulate(np.maximum(lS, np.log(NEGLIGIBLE)))
    S = np.exp(np.minimum(lS, 700.0))
    Pk = th * S
    Pk = np.where((th > 0) & (Pk > NEGLIGIBLE), Pk, 1.0)
    Pk = np.maximum.accumulate(Pk)
    w0 = np.maximum(np.exp(np.minimum(lW0 - lS[:, None], 700.0)), W_FLOOR)
    v0 = np.exp(np.minimum(np.where(np.isfinite(lV0), lV0, -np.inf) - lS, 700.0))
    lcost = np.log([mm.c for mm in ms])[None, :] + lS[:, None] / eta[None, :]  # log of c_ℓ S_k^{1/η_ℓ}
    m = pyo.ConcreteModel(name="monopolist_L_unrestricted")
    m._u, m._S, m._Pk, m._eta = u, S, Pk, eta
    m.TYPES, m.MODELS = pyo.RangeSet(0, N - 1), pyo.RangeSet(0, L - 1)
    m.w = pyo.Var(m.TYPES, m.MODELS, bounds=(W_FLOOR, None), initialize=lambda m, k, l: float(w0[k, l]))
    # V ≥ W_FLOOR is implied by the row (Σ ω^(1/σ) ≥ W_FLOOR^(1/σ)); as a bound it keeps V^(1/σ) off 0,
    # where 1/σ < 2 has no second derivative (versions_139_21: a type at θ = 0 started at V = 0, measured)
    m.V = pyo.Var(m.TYPES, bounds=(W_FLOOR, None), initialize=dict(enumerate(np.maximum(v0, W_FLOOR))))
    m.t = pyo.Var(m.TYPES, initialize=dict(enumerate(np.asarray(t0, float) / u.P / Pk)))
    # a model whose spend coefficient overflows is priced out for that type (its quality stays at the floor)
    priced_out = lcost > 700.0
    for k in range(N):
        for l in range(L):
            if priced_out[k, l]:
                m.w[k, l].fix(W_FLOOR)
    m.quality = pyo.Constraint(m.TYPES, rule=lambda m, k: m.V[k] ** (1 / sigma) == sum(
        m.w[k, l] ** (1 / sigma) for l in m.MODELS))
    Vx = {k: float(S[k]) * m.V[k] for k in range(N)}
    tx = {k: float(Pk[k]) * m.t[k] for k in range(N)}
    m.ir = pyo.Constraint(expr=(th[0] * Vx[0] - tx[0]) / float(Pk[0]) >= 0)
    # each IC row divided by the larger of the two types' money units (Pk is non-decreasing)
    m.ic_down = pyo.Constraint(pyo.RangeSet(1, N - 1) if N > 1 else [],
                               rule=lambda m, k: (th[k] * (Vx[k] - Vx[k - 1]) - tx[k] + tx[k - 1]) / float(Pk[k]) >= 0)
    m.ic_up = pyo.Constraint(pyo.RangeSet(0, N - 2) if N > 1 else [],
                             rule=lambda m, k: (th[k] * (Vx[k] - Vx[k + 1]) - tx[k] + tx[k + 1]) / float(Pk[k + 1]) >= 0)
    m.mono = pyo.Constraint(pyo.RangeSet(1, N - 1) if N > 1 else [],
                            rule=lambda m, k: (Vx[k] - Vx[k - 1]) / float(S[k]) >= 0)
    m.profit = pyo.Objective(expr=sum(float(p[k]) * (tx[k] - sum(
        float(np.exp(lcost[k, l])) * m.w[k, l] ** (1 / eta[l]) for l in range(L) if not priced_out[k, l]))
        for k in m.TYPES), sense=pyo.maximize)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[m.profit] = 1.0 / float(np.max(p * Pk))  # the largest per-type term O(1)
    return m


def _read_menu(m):
    V = np.array([pyo.value(m.V[k]) for k in m.TYPES]) * getattr(m, "_S", 1.0) * m._u.Q
    t = np.array([pyo.value(m.t[k]) for k in m.TYPES]) * getattr(m, "_Pk", 1.0) * m._u.P
    return np.maximum(V, 0.0), t


def _read_tokens(m, models):
    """Tokens q (N, L) in the scenario's units: q = W^{1/η} (nondimensional) times the token unit."""
    w = np.array([[max(pyo.value(m.w[k, l]), 0.0) for l in m.MODELS] for k in m.TYPES])
    qn = (w * m._S[:, None]) ** (1 / m._eta[None, :])
    return qn * np.array([m._u.Q ** (1 / mm.eta) for mm in models])[None, :]


def _assign(order, cuts, N) -> np.ndarray:
    """Model per type for cut-offs c_1 ≤ … ≤ c_{L−1}: types k with j cut-offs ≤ k use order[j]."""
    return np.asarray(order)[np.searchsorted(np.asarray(cuts, int), np.arange(N), side="right")]


def _better(a, b) -> bool:
    return a > b + TIE_CONVEX * max(abs(b), 1e-300)


def _mass_bands(mass) -> np.ndarray:
    """Band per type: ⌊log(max p / p_k) / log LIGHT_BAND⌋ (0 = heavy; the bands of :func:`_refine_light`)."""
    p = np.asarray(mass, float)
    with np.errstate(divide="ignore"):
        return np.floor(np.log(np.max(p) / np.maximum(p, 1e-300)) / np.log(LIGHT_BAND)).astype(int)


def _type_terms(models, theta, mass, assign, V) -> np.ndarray:
    r"""Each type's term of the profit of a menu with binding downward IC and IR (summation by parts):
    :math:`J_k = V_k(p_k\theta_k - (\theta_{k+1}-\theta_k)T_{k+1}) - p_k C_{a_k}(V_k)`, T the tail mass
    (summed from the top: exact for tiny tails), Σ J = the profit at every optimum of an assigned program.
    Numpy on the NLP's V (no closed form); the transfers, whose light types Ipopt leaves loose, are not
    used, and J is stationary in V at the optimum (second order in the solver's V error)."""
    th, p, V = np.asarray(theta, float), np.asarray(mass, float), np.maximum(np.asarray(V, float), 0.0)
    T = np.cumsum(p[::-1])[::-1]
    T1 = np.append(T[1:], 0.0)
    dth = np.append(np.diff(th), 0.0)
    a = np.asarray(assign, int)
    c = np.array([models[l].c for l in a])
    e = np.array([models[l].eta for l in a])
    return V * (p * th - dth * T1) - p * c * V ** (1 / e)


def _better_banded(Ja, Jb, band) -> bool:
    """Menu a beats menu b, each type on its own scale: mass bands heaviest first, the first band whose
    summed terms differ by more than TIE_CONVEX of its own summed |J| decides.  One objective tolerance
    for all types (:func:`_better`) hides a band of mass 1e-12 of max p (its whole profit is below the
    heavy types' round-off): versions_182_9 (Beta(4.9, 27.1), top masses 7e-14 … 2e-36) kept the top six
    types on the dearest model, V 0.31 of max V off the exact optimum."""
    for b in sorted(set(band.tolist())):
        sel = band == b
        d = float(np.sum(Ja[sel] - Jb[sel]))
        scale = float(np.sum(np.maximum(np.abs(Ja[sel]), np.abs(Jb[sel]))))
        if abs(d) > TIE_CONVEX * max(scale, 1e-300):
            return d > 0
    return False


def _monopolist(res, models, sigma, theta, mass, ctx):
    N, L = len(theta), len(models)
    order = list(np.argsort([mm.eta for mm in models], kind="stable"))  # the cheapest model moves up in η
    cache, solved, attempts = {}, {}, []

    def f(cuts):
        cuts = tuple(int(c) for c in cuts)
        if cuts in cache:
            return cache[cuts]
        assign = _assign(order, cuts, N)
        if solved:
            near = min(solved, key=lambda c: (sum(abs(a - b) for a, b in zip(c, cuts)), c))
            V0, t0 = solved[near]
        else:
            V0, t0 = None, None  # neutral start (build_monopolist_assigned)
        with Timer() as tb:
            m = build_monopolist_assigned(models, theta, mass, assign, V0, t0)
        label = "cutoffs" + str(list(cuts))
        r = _solve(ctx, m, f"monopolist[{label}]", tb.seconds, money=m._u.P)
        V, t = _read_menu(m)
        attempts.append(Attempt(label, r.status.value, r.objective, r.iterations, result=r,
                                values={"V": V, "t": t, "assign": assign, "cuts": cuts},
                                detail=_describe(theta, np.where(V > SERVED * max(V.max(), 1e-300), assign, -1),
                                                 models)))
        if r.ok:
            solved[cuts] = (V, t)
        cache[cuts] = r.objective if r.ok else -np.inf
        return cache[cuts]

    for j in range(L):  # every type on one model
        f(tuple(0 if i < j else N for i in range(L - 1)))
    grid = np.unique(np.linspace(0, N, COARSE_POINTS if L <= 3 else 4).round().astype(int))
    for cuts in itertools.combinations_with_replacement(grid, L - 1):
        f(cuts)
    best = max((c for c in cache if np.isfinite(cache[c])), key=lambda c: cache[c], default=None)
    if best is None:
        res.tables["monopolist_starts"] = _attempt_table(attempts)
        res.error = "multi-model monopolist: no assigned program converged"
        for a in attempts[-1:]:
            res.solves["monopolist"] = a.result
        return None
    def skip_excluded(cuts):
        """Cut-offs inside the excluded prefix (V = 0 at the best menu so far) all give the same program:
        move them to its end, so that a plateau of ties there does not stop the search (versions_33_15:
        [0, 0] and [1, 1] tie, type 0 excluded, and the optimum [2, 2] was never reached)."""
        V = solved[tuple(cuts)][0] if tuple(cuts) in solved else None
        if V is None:
            return list(cuts)
        e = int(np.argmax(V > SERVED * max(float(V.max()), 1e-300))) if np.any(V > 0) else 0
        return [max(c, e) for c in cuts]

    best = list(best)
    nb = skip_excluded(best)
    if nb != best and not _better(f(best), f(nb)):
        best = nb
    for _ in range(MAX_ROUNDS):  # coordinate-wise bisection on the profit difference (ties right)
        before = tuple(best)
        for i in range(L - 1):
            lo = best[i - 1] if i > 0 else 0
            hi = best[i + 1] if i < L - 2 else N

            def g(c, i=i):
                x = list(best)
                x[i] = c
                return f(x)
            a, b = lo, hi
            while a < b:
                c = (a + b) // 2
                if _better(g(c), g(c + 1)):
                    b = c
                else:
                    a = c + 1
            if _better(g(a), g(best[i])):
                best[i] = a
        if tuple(best) == before:
            break
    nb = skip_excluded(best)
    if nb != best and not _better(f(best), f(nb)):
        best = nb
    moves = [d for d in itertools.product((-1, 0, 1), repeat=L - 1) if any(d)]
    while True:  # neighbour walk: every single and joint ±1 move of the cut-offs
        nbrs = [tuple(b + d for b, d in zip(best, dd)) for dd in moves]
        nbrs = [c for c in nbrs if all(0 <= x <= N for x in c) and all(x <= y for x, y in zip(c[:-1], c[1:]))]
        cand = max(nbrs, key=f) if nbrs else None
        if cand is None or not _better(f(cand), f(best)):
            break
        best = list(cand)
    best = _light_pass(res, ctx, models, theta, mass, order, best, f, attempts)
    best = tuple(best)
    chosen = next(a for a in attempts if a.values["cuts"] == best and a.status == "optimal")
    res.solves["monopolist"] = chosen.result
    fin_txt = f"unrestricted final skipped (N > {UNRESTRICTED_MAX_N})"
    out = {"V": chosen.values["V"], "t": chosen.values["t"], "cuts": best, "assign": chosen.values["assign"],
           "objective": chosen.objective}
    out["V"], out["t"], n_band = _refine_light(res, ctx, models, theta, mass, out["assign"], out["V"], out["t"])
    q = np.zeros((N, L))
    q[np.arange(N), out["assign"]] = out["V"] ** (1 / np.array([models[a].eta for a in out["assign"]]))
    out["q"] = q
    if N <= UNRESTRICTED_MAX_N:
        with Timer() as tb:
            m = build_monopolist(models, sigma, theta, mass, q, out["t"])
        r = _solve(ctx, m, "monopolist[final unrestricted]", tb.seconds, defaults=START_DEFAULTS, money=m._u.P)
        V, t = _read_menu(m)
        qf = _read_tokens(m, models)
        lab = _labels(models, sigma, qf)
        attempts.append(Attempt("final (unrestricted: all models free, from the best cut-offs)", r.status.value,
                                r.objective, r.iterations, result=r, detail=_describe(theta, lab, models)))
        if r.ok:
            res.solves["monopolist[final unrestricted]"] = r
        else:  # as in the two-model regime: the converged convex cut-off optimum is reported
            res.notes.append(f"monopolist: the unrestricted final solve ended '{r.status.value}' (not used; the "
                             "convex cut-off optimum is reported, judged by the mixing audit)")
        fin_txt = f"unrestricted final {r.status.value} {r.objective:.12g} ({r.iterations} it)"
        if r.ok and _better(r.objective, chosen.objective):
            out.update(V=V, t=t, q=qf, objective=r.objective)
            fin_txt += " - better, reported"
            _tokens_row(res, models, sigma, V, qf)
    tab = _attempt_table(attempts)
    res.tables["monopolist_starts"] = tab
    n_ok = sum(np.isfinite(v) for v in cache.values())
    res.notes.append(f"monopolist: {len(attempts)} solves ({n_ok} of {len(cache)} convex cut-off programs converged); "
                     f"best cut-offs {list(best)} objective {chosen.objective:.12g}; {fin_txt}; "
                     f"iterations max {int(tab['iterations'].max())}")
    _snap_unpriced(res, out)
    _mixing_audit(res, models, sigma, out["V"], out["q"], "monopolist_mixing_audit")
    return out


def _light_pass(res, ctx, models, theta, mass, order, best, f, attempts):
    """Final pass for cut-offs that move light types (mass < max p / LIGHT_BAND): the profit of such a move
    is below the objective's tie tolerance, so the bisection and the walk cannot see it.  Coordinate-wise,
    each cut-off walks up and down one type at a time across light types while the step is better (cut-offs
    stacked on it pushed along, so an empty middle model does not block the walk): each
    vector solved (convex, cached), its light bands re-solved (:func:`_refine_light`) and judged against
    the best by :func:`_better_banded` (each type on its own scale).  A one-type step changes that type's
    model only (the others' terms are the same up to the monotone rows), and which model a type prefers
    switches once in θ, so the walk stops at the best cut-off of its coordinate.  No closed form is used."""
    N, band = len(theta), _mass_bands(mass)
    light = band >= 1
    if not np.any(light):
        return list(best)
    memo = {}

    def terms(cuts):
        cuts = tuple(int(c) for c in cuts)
        if cuts not in memo:
            if not np.isfinite(f(cuts)):
                memo[cuts] = None
            else:
                a = next(x for x in reversed(attempts) if x.values.get("cuts") == cuts and x.status == "optimal")
                V, t, _ = _refine_light(res, ctx, models, theta, mass, a.values["assign"], a.values["V"],
                                        a.values["t"], record=False)
                memo[cuts] = _type_terms(models, theta, mass, a.values["assign"], V)
        return memo[cuts]

    def step(cuts, i, d):
        """Cut-off i moved by d, the others pushed along to keep the order (a cut-off stacked on it moves
        with it: versions_171_22, [36, 36] with a dominated middle model, reaches [33, 33] only so)."""
        x = list(cuts)
        x[i] += d
        for j in range(len(x)):
            x[j] = max(x[j], x[i]) if j > i else min(x[j], x[i]) if j < i else x[j]
        return x

    best = list(best)
    for _ in range(MAX_ROUNDS):
        before = tuple(best)
        for i in range(len(best)):
            for d in (1, -1):  # walk while a one-type step is better: it moves type min(best[i] + d, best[i])
                while 0 <= best[i] + d <= N and light[min(best[i] + d, best[i])]:
                    x = step(best, i, d)
                    if np.any((_assign(order, x, N) != _assign(order, best, N)) & ~light):
                        break  # the push moved a heavy type: the search above judged those
                    Jx, Jb = terms(x), terms(best)
                    if Jx is None or Jb is None or not _better_banded(Jx, Jb, band):
                        break
                    best = x
        if tuple(best) == before:
            break
    if memo:
        res.notes.append(f"monopolist: light-type pass solved {len(memo)} cut-off vectors (each type on its own "
                         f"scale); best cut-offs {list(best)}")
    return best


def _snap_unpriced(res, out):
    """Items with a price t ≤ 0, and every item below them, are the outside option (V = t = 0).

    Exact at every optimum: in an IC menu with monotone V, t_k − t_(k−1) ≥ θ_(k−1)(V_k − V_(k−1)) ≥ 0,
    and the first served type pays t = θ·V > 0 (IR binds), so t ≤ 0 only where V = 0.  The solver
    leaves excluded types at barrier noise, with negative prices (stranger S8-D9, v01_four_versions_beta:
    V ≈ 6e-14, t = −2.6e-14 in monopolist.csv); the two-model regime reads such items as 'no item' too.
    The exported menu is what the audits and the V/t rows judge."""
    t = np.asarray(out["t"], float)
    idx = np.nonzero(t <= 0)[0]
    if not len(idx):
        return
    k = int(idx[-1]) + 1
    if np.any(np.asarray(out["V"], float)[:k] > 0) or np.any(t[:k] != 0):
        out["V"] = np.asarray(out["V"], float).copy()
        out["t"], out["q"] = t.copy(), np.asarray(out["q"], float).copy()
        out["V"][:k], out["t"][:k], out["q"][:k] = 0.0, 0.0, 0.0
        res.notes.append(f"monopolist: the {k} lowest types' items had a price ≤ 0 (barrier noise on excluded "
                         "types): exported as the outside option (V = t = 0)")


LIGHT_BAND = 1e3
"""Types whose mass is below max p / LIGHT_BAND are re-solved band by band (:func:`_refine_light`)."""


def _refine_light(res, ctx, models, theta, mass, assign, V, t, record=True):
    r"""Re-solve the best assigned program band by band for light types (mass < max p / LIGHT_BAND;
    bands of a factor LIGHT_BAND in mass, heaviest first): the band and all lighter types free, the
    heavier ones fixed at their values, the objective the free types' profit scaled by the band's
    weight; the band's values are kept.  Exact: a joint optimum of the convex program is
    optimal for each block given the rest.  Why: Ipopt's stopping test sees a type's first-order
    condition weighted by its mass, so a Beta tail type of mass 2e-8 (of max 0.03) had V off by
    4e-6 of max V (versions_60_7, measured); in its band it is resolved to the solver's tol."""
    p = np.asarray(mass, float)
    with np.errstate(divide="ignore"):
        band = np.floor(np.log(np.max(p) / np.maximum(p, 1e-300)) / np.log(LIGHT_BAND)).astype(int)
    V, t = V.copy(), t.copy()
    n = 0
    for b in sorted(set(band[band >= 1].tolist())):
        free = band >= b  # this band and every lighter one (fixing a lighter, still inaccurate type
        # next to the band distorted it through the binding IC row between them: 5e-9 -> 1e-6, measured)
        with Timer() as tb:
            m = build_monopolist_assigned(models, theta, mass, assign, V, None)
            S, Pk, u = m._S, m._Pk, m._u
            for k in m.TYPES:
                m.V[k].set_value(V[k] / u.Q / S[k])
                m.t[k].set_value(t[k] / u.P / Pk[k])
                if not free[k]:
                    m.V[k].fix()
                    m.t[k].fix()
            # the objective holds the free types' terms only: with the fixed types' terms as constants it
            # was ~1e35 in the band's unit (masses 0.85 … 1.2e-35, Beta(1, 29)), its round-off ~1e19 swamped
            # the band's O(1) changes, the line search wandered (1,329 iterations) and a top type 'optimal'
            # at V 1.8x too large, t 1.9x, all-pairs IC violated by 1.9e-2 (versions_hyp, session 6)
            m.profit.deactivate()
            m.profit_band = pyo.Objective(expr=sum(m._type_profit[k] for k in m.TYPES if free[k]),
                                          sense=pyo.maximize)
            m.scaling_factor[m.profit_band] = 1.0 / float(np.max((p * Pk)[free]))
        r = _solve(ctx, m, f"monopolist[light band {b}: {int(free.sum())} types]", tb.seconds, money=u.P)
        if record:
            res.solves[f"monopolist[light band {b}]"] = r
        if r.ok:
            V2, t2 = _read_menu(m)
            V[band == b], t[band == b] = V2[band == b], t2[band == b]
            n += 1
    return V, t, n


def _labels(models, sigma, q, V_scale=None) -> np.ndarray:
    """Model per type from tokens q (N, L): −1 not served (V ≤ SERVED·V_scale, default max V), else
    the model carrying the largest share of V^{1/σ}."""
    c = np.stack([np.maximum(q[:, l], 0.0) ** (mm.eta / sigma) for l, mm in enumerate(models)], axis=1)
    V = c.sum(axis=1) ** sigma
    Vs = float(V.max()) if V_scale is None else V_scale
    return np.where(V > SERVED * max(Vs, 1e-300), np.argmax(c, axis=1), -1)


def _describe(theta, label, models) -> str:
    names = [mm.name for mm in models]
    parts, start = [], 0
    for k in range(1, len(label) + 1):
        if k == len(label) or label[k] != label[start]:
            nm = "none" if label[start] < 0 else names[label[start]]
            parts.append(f"{nm} θ∈[{theta[start]:.4g},{theta[k - 1]:.4g}]")
            start = k
    return "; ".join(parts)


def _simplex(L, n):
    """Points of the simplex lattice with n intervals per edge, shape (P, L)."""
    pts = [c for c in itertools.product(range(n + 1), repeat=L - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in pts], float) / n


def _tokens_row(res, models, sigma, V, q):
    """The reported V is what its tokens buy: max_k |V_k − (Σ_ℓ q_kℓ^(η_ℓ/σ))^σ| / max V ≤ TOL_DISCRETE (the
    bar of the V rows).  Only for a reported unrestricted final: the cut-off programs' tokens are V^(1/η)
    by construction, where the row could not fail."""
    Vq = _pool(models, sigma, q) ** sigma
    res.checks.append(bound_check(
        NAME, "monopolist_tokens_deliver_V", "max_k |V_k − (Σ_ℓ q_kℓ^(η_ℓ/σ))^σ| / max V (the unrestricted "
        "final's exported tokens)", float(np.max(np.abs(V - Vq)) / max(float(np.max(V)), 1e-300)),
        TOL_DISCRETE, index=f"{len(V)} types", advice="the exported tokens do not deliver the exported V: "
        "menu.csv's tokens and V are NOT verified (report the scenario)"))


def _mixing_audit(res, models, sigma, V, q, check):
    """No split of a type's V^{1/σ} over the L models (simplex lattice, corners included) delivers V
    more cheaply than the menu's own tokens.  Worst saving / max spend ≤ TOL_AUDIT."""
    S = _simplex(len(models), MIX_GRID - 1 if len(models) <= 3 else 8)
    P = np.maximum(V, 0.0)[:, None] ** (1 / sigma)
    cost = sum(mm.c * (P * S[None, :, l]) ** (sigma / mm.eta) for l, mm in enumerate(models))
    spend = q @ np.array([mm.c for mm in models])
    saving = float(np.max(spend - cost.min(axis=1)))
    scale = max(float(np.max(spend)), 1e-300)
    res.checks.append(bound_check(NAME, check, "worst saving from moving or splitting a type's V between the "
                                  "models / max spend", saving / scale, TOL_AUDIT, index=f"{len(V)}x{len(S)} splits",
                                  advice="a type could be served more cheaply on another model or a mix: the "
                                         "region search missed (report the scenario)"))


# =====================================================================
# checks against the closed forms
# =====================================================================
def _clear(ref_V, nlp_V, Vs) -> np.ndarray:
    """Types whose served/model label is decided beyond solver accuracy: excluded in the closed form
    (V = 0 exactly) and ≤ SERVED·max V in the NLP, or served with V > 2·SERVED·max V.  Others (a V
    within ~1e-6 of max V of 0: near the exclusion type, or everything on a model with η → 1, whose
    V ∝ h^{η/(1−η)} is tiny below the top) are judged by the V rows only."""
    return ((ref_V == 0) & (nlp_V <= SERVED * Vs)) | (ref_V > 2 * SERVED * Vs)


def _switch_rows(res, check, theta, label, ref_label, clear, cont, what):
    """Each continuous switch (i → j at θ_c) that the closed form resolves on the grid (clear types on
    both sides) must appear in the NLP's labels, between consecutive clear types within one step."""
    idx = np.nonzero(clear)[0]
    th, lab, rl = theta[idx], label[idx], ref_label[idx]
    for i, j, tc in cont:
        if not np.any((rl[:-1] == i) & (rl[1:] == j)):
            res.notes.append(f"{check}: switch {i}->{j} at θ={tc:.6g} not resolved on this grid (no clear type on "
                             "one side): judged by the V rows only")
            continue
        ks = np.nonzero((lab[:-1] == i) & (lab[1:] == j))[0]
        if len(ks):
            k = int(ks[np.argmin(np.abs(0.5 * (th[ks] + th[ks + 1]) - tc))])
            mid, step = 0.5 * (th[k] + th[k + 1]), th[k + 1] - th[k]
            val = abs(mid - tc) / step
        else:
            val = np.inf
        res.checks.append(bound_check(NAME, check, f"|discrete switch − θ_c| / grid step ({what})", val, 1.0,
                                      index=f"{i}->{j} at θ_c={tc:.6g}",
                                      advice="the switch between these models is more than one grid step from "
                                             "the continuous one: a region is missing or misplaced"))


def _checks(res, models, sigma, theta, mass, dist, eff, mon):
    N = len(theta)
    names = [mm.name for mm in models]
    # ---- efficient
    # a type on a switch point (tie within TIE_SWITCH) has two optimal models: the reference is the
    # closed form with the tie broken the way nearer the NLP's (both are exact optima)
    Ve_up, Ve_dn = cv.efficient_quality(models, theta, "up").sum(axis=0), cv.efficient_quality(models, theta, "down").sum(axis=0)
    pick_dn = np.abs(eff["V"] - Ve_dn) < np.abs(eff["V"] - Ve_up)
    Ve = np.where(pick_dn, Ve_dn, Ve_up)
    if np.any(Ve_up != Ve_dn):
        res.notes.append(f"efficient: {int(np.sum(Ve_up != Ve_dn))} type(s) on a switch point (two optimal models)")
    res.checks.append(compare(NAME, "efficient", "V per type", eff["V"], Ve, TOL_DISCRETE, index=list(range(N)),
                              advice="the efficient allocation NLP differs from the envelope closed form"))
    lab_e = _labels(models, sigma, eff["q"], float(Ve.max()))
    ref_e = np.where(Ve > 0, np.where(pick_dn, cv.efficient_model(models, theta, "down"),
                                      cv.efficient_model(models, theta, "up")), -1)
    clear_e = _clear(Ve, eff["V"], float(Ve.max()))
    res.checks.append(bound_check(NAME, "efficient", "types on a different model than the envelope's",
                                  float(np.sum((lab_e != ref_e) & clear_e)), 0.0, index=f"{int(clear_e.sum())} clear types"))
    lo, hi = float(theta[0]), float(theta[-1])
    cont_e = [(i, j, s) for i, j, s in cv.switch_points(models) if lo < s < hi]
    _switch_rows(res, "efficient", theta, lab_e, ref_e, clear_e, cont_e, "efficient, θ_ij")
    # ---- monopolist vs the exact discrete closed form
    ref = cv.monopolist_discrete(models, theta, mass)
    ref_dn = cv.monopolist_discrete(models, theta, mass, tie="down")
    if not np.array_equal(ref["model"], ref_dn["model"]):  # a virtual value on a switch: two optimal menus
        res.notes.append("monopolist: a virtual value lies on a switch point (two optimal menus, the nearer is the reference)")
        if np.max(np.abs(mon["V"] - ref_dn["V"])) < np.max(np.abs(mon["V"] - ref["V"])):
            ref = ref_dn
    Vs = float(np.max(ref["V"])) if np.max(ref["V"]) > 0 else 1.0
    res.checks.append(compare(NAME, "monopolist", "V per type", mon["V"], ref["V"], TOL_DISCRETE, index=list(range(N)),
                              advice="the menu's qualities differ from the exact discrete optimum: the cut-off "
                                     "search ended at another assignment, or a solve is inaccurate"))
    res.checks.append(compare(NAME, "monopolist", "t per type", mon["t"], ref["t"], TOL_DISCRETE, index=list(range(N))))
    prof = float(np.sum(mass * (mon["t"] - mon["q"] @ np.array([mm.c for mm in models]))))
    res.checks.append(compare(NAME, "monopolist", "profit", prof, ref["profit"], TOL_DISCRETE))
    lab_m = _labels(models, sigma, mon["q"], Vs)
    ref_m = np.where(ref["V"] > 0, ref["model"], -1)
    clear_m = _clear(ref["V"], mon["V"], Vs)
    res.checks.append(bound_check(NAME, "monopolist", "types on a different model than the closed form's",
                                  float(np.sum((lab_m != ref_m) & clear_m)), 0.0, index=f"{int(clear_m.sum())} clear types"))
    if dist is not None and np.all(np.diff(dist.virtual_value(theta)) > 0):
        cont_m = [(i, j, s) for i, j, s in cv.monopolist_switch_types(models, dist)]
        env = cv.envelope(models)
        # exclusion where the ironed h̄ turns positive (cv.monopolist_exclusion_type), inside the support: the sign
        # of h just above θ_min is not it (Beta p < 1: h(θ_min+) = θ_min > 0 on a sliver, then h < 0 up to an
        # up-crossing; competition_131_29's Beta(0.7886, 4.906) on [0.575, 22.34] excludes θ < 3.366)
        th_x = cv.monopolist_exclusion_type(dist)
        if np.isfinite(th_x) and th_x > dist.support[0]:
            cont_m = [(-1, env[0], th_x)] + cont_m
        _switch_rows(res, "monopolist", theta, lab_m, ref_m, clear_m, [c for c in cont_m if lo < c[2] < hi],
                     "monopolist, h(θ)=θ_ij")
    # versioning jumps: the NLP's jump lies in the bracket of the discrete virtual values around θ_ij
    phib = ref["phi_ironed"]
    jumps = []
    for jp in cv.versioning_jumps(models):
        i, j = jp["from"], jp["to"]
        ks = np.nonzero((lab_m[:-1] == i) & (lab_m[1:] == j) & clear_m[:-1] & clear_m[1:])[0]
        if not len(ks):
            continue
        k = int(ks[0])
        f0, f1 = phib[k], phib[k + 1]
        b_lo = float(cc.first_best_quality(models[j], f0) - cc.first_best_quality(models[i], f1))
        b_hi = float(cc.first_best_quality(models[j], f1) - cc.first_best_quality(models[i], f0))
        d = float(mon["V"][k + 1] - mon["V"][k])
        viol = max(b_lo - d, d - b_hi, 0.0) / Vs
        res.checks.append(bound_check(NAME, "monopolist", "versioning jump outside [Q_j(φ_k)−Q_i(φ_k+1), "
                                      "Q_j(φ_k+1)−Q_i(φ_k)] / max V", viol, TOL_DISCRETE,
                                      index=f"{names[i]}->{names[j]} at θ≈{0.5 * (theta[k] + theta[k + 1]):.5g}"))
        jumps.append({"from": names[i], "to": names[j], "switch_value_h": jp["h"],
                      "theta_below": theta[k], "theta_above": theta[k + 1], "jump_nlp": d,
                      "jump_continuous": jp["jump"], "V_below_continuous": jp["V_below"],
                      "V_above_continuous": jp["V_above"], "bracket_lo": b_lo, "bracket_hi": b_hi})
    res.tables["versioning_jumps"] = pd.DataFrame(jumps)
    # ---- all-pairs IC/IR audit (numpy)
    aud = cv.ic_audit(theta, mon["V"], mon["t"])
    res.checks.append(bound_check(NAME, "monopolist_audit", "worst IC violation, all N² pairs / max(|t|,|U|)",
                                  aud["ic"], TOL_AUDIT, index=f"{aud['pairs']} pairs",
                                  advice="a type prefers another type's item: the menu is not incentive compatible"))
    res.checks.append(bound_check(NAME, "monopolist_audit", "worst IR violation / max(|t|,|U|)", aud["ir"], TOL_AUDIT))
    # ---- L = 2 special case: every consecutive pair of envelope models vs the two-model closed forms
    for i, j, s in cv.switch_points(models):
        pair = [models[i], models[j]]
        res.checks.append(compare(NAME, "l2_special_case", f"θ_ij envelope vs two-model θ^e [{names[i]}, {names[j]}]",
                                  s, cc.efficient_switch_point(pair), TOL_IDENTITY))
        a, b = cv.monopolist_discrete(pair, theta, mass), cc.monopolist_discrete(pair, theta, mass)
        # the two-model code computes 1 − P_k as 1 − cumsum(p) and ties cut-offs within GAIN_TOL·max(1, |best|)
        # (absolute below a profit of 1): its V is undetermined for types whose tail or mass is tiny
        # (versions_33_12: Beta(1, 21), masses to 1e-40, its V pooled the top 24 types); those are not compared
        well = (cv.tail_mass(mass) >= L2_WELL * 1.0) & (np.asarray(mass) >= L2_WELL * float(np.max(mass)))
        well[-1] = mass[-1] >= L2_WELL * float(np.max(mass))
        res.checks.append(compare(NAME, "l2_special_case", f"monopolist V: ironing+envelope vs cut-off+PAVA "
                                  f"[{names[i]}, {names[j]}]", a["V"][well], b["V"][well], TOL_IDENTITY,
                                  index=[int(k) for k in np.nonzero(well)[0]],
                                  scale=max(float(np.max(np.abs(b["V"]))), 1e-300)))
        tol_p = TOL_IDENTITY + 2 * cc.GAIN_TOL * max(1.0, abs(b["virtual_objective"])) / max(abs(b["profit"]), 1e-300)
        res.checks.append(compare(NAME, "l2_special_case", f"monopolist profit [{names[i]}, {names[j]}]",
                                  a["profit"], b["profit"], tol_p))
    # ---- tables
    res.tables["models"] = _models_table(models, sigma, lab_e, lab_m)
    res.tables["efficient"] = pd.DataFrame({"theta": theta, "mass": mass, "model": [_nm(names, x) for x in lab_e],
                                            "V": eff["V"], "V_closed_form": Ve,
                                            **{f"Q_{names[l]}": eff["q"][:, l] ** models[l].eta
                                               for l in range(len(models))}})
    res.tables["monopolist"] = pd.DataFrame({"theta": theta, "mass": mass, "phi": ref["phi"],
                                             "phi_ironed": ref["phi_ironed"], "model": [_nm(names, x) for x in lab_m],
                                             "model_closed_form": [_nm(names, x) for x in ref_m],
                                             "V": mon["V"], "V_closed_form": ref["V"], "t": mon["t"],
                                             "t_closed_form": ref["t"], "U": theta * mon["V"] - mon["t"]})
    return ref


def _nm(names, x):
    return "none" if x < 0 else names[x]


def _efficient_range(lo: float, hi: float) -> str:
    """The θ range where a model of the surplus envelope is efficient, in words (no 'inf' for 'no upper end')."""
    if not np.isfinite(hi):
        return f"θ ≥ {lo:.6g} (no upper end)" if lo > 0 else "every θ"
    return f"{lo:.6g} ≤ θ < {hi:.6g}" if lo > 0 else f"θ < {hi:.6g}"


def _models_table(models, sigma, lab_e, lab_m) -> pd.DataFrame:
    env = cv.envelope(models)
    sw = {(i, j): s for i, j, s in cv.switch_points(models)}
    Vg = np.geomspace(1e-8, 1e8, 4001)
    cheap = set(np.unique(cv.cheapest_model(models, Vg)).tolist())
    rows = []
    for l, mm in enumerate(models):
        lo = next((s for (i, j), s in sw.items() if j == l), 0.0)
        hi = next((s for (i, j), s in sw.items() if i == l), np.inf)
        # the top model of the envelope has no upper end: an empty cell and the words, not 'inf' (stranger17 F14)
        rows.append({"model": mm.name, "gamma": mm.eta - sigma, "eta": mm.eta, "c": mm.c,
                     "on_surplus_envelope": l in env, "cheapest_for_some_V": l in cheap,
                     "efficient_from_theta": lo if l in env else np.nan,
                     "efficient_to_theta": hi if l in env and np.isfinite(hi) else np.nan,
                     "efficient_for": _efficient_range(lo, hi) if l in env else "no θ (not on the surplus envelope)",
                     "types_efficient_nlp": int(np.sum(lab_e == l)), "types_monopolist_nlp": int(np.sum(lab_m == l))})
    return pd.DataFrame(rows)


# =====================================================================
# figures
# =====================================================================
def _figures(models, sigma, theta, eff, mon, ref, dist):
    figs = {}
    names = [mm.name for mm in models]
    colors = [f"C{l}" for l in range(len(models))]
    fig, ax = plotting.new()
    lo, hi = float(theta.min()), float(theta.max())
    tg = np.geomspace(max(lo, 1e-3 * hi) / 1.5, hi * 1.2, 600)
    for l, mm in enumerate(models):
        ax.plot(tg, cc.first_best_surplus(mm, tg), "--", lw=0.9, color=colors[l], label=f"S_{mm.name}(θ)")
    plotting.closed_form_line(ax, tg, cv.efficient_surplus(models, tg), label="upper envelope", color="k")
    edges = [tg[0]] + [s for _, _, s in cv.switch_points(models)] + [tg[-1]]
    for l, a_, b_ in zip(cv.envelope(models), edges[:-1], edges[1:]):
        ax.axvspan(max(a_, tg[0]), min(b_, tg[-1]), color=colors[l], alpha=0.07, lw=0)
    for i, j, s in cv.switch_points(models):
        ax.axvline(s, color="0.5", lw=0.7, ls=":")
        ax.annotate(f"{names[i]}→{names[j]}\nθ={s:.3g}", (s, float(cv.efficient_surplus(models, s))),
                    fontsize=7, xytext=(3, -18), textcoords="offset points")
    S_nlp = _surplus(models, sigma, theta, eff["q"])
    lab = _labels(models, sigma, eff["q"])
    for l in range(len(models)):
        sel = lab == l
        if np.any(sel):
            plotting.numeric_markers(ax, theta[sel], S_nlp[sel], label=f"NLP: {names[l]}", color=colors[l])
    ax.set_xscale("log")
    ax.set_yscale("log")
    plotting.labels(ax, "type θ", "first-best surplus S(θ)", "Upper envelope of the models' surpluses and regions")
    figs["upper_envelope"] = fig
    fig, ax = plotting.new()
    lab_m = _labels(models, sigma, mon["q"])
    for l in range(len(models)):
        sel = ref["model"] == l
        if np.any(sel):
            plotting.closed_form_line(ax, theta[sel], ref["V"][sel], label=f"closed form: {names[l]}", color=colors[l])
        sel = lab_m == l
        if np.any(sel):
            plotting.numeric_markers(ax, theta[sel], mon["V"][sel], label=f"NLP: {names[l]}", color=colors[l])
    if dist is not None and np.all(np.diff(dist.virtual_value(theta)) > 0):
        tg = np.linspace(*dist.support, 2001)[1:-1]
        Vc, mc = cv.monopolist_allocation(models, dist.virtual_value(tg))
        ax.plot(tg, np.where(mc >= 0, Vc, np.nan), "-", lw=0.7, color="0.55", label="continuous types")
    ax.set_yscale("symlog", linthresh=max(1e-3 * float(ref["V"].max()), 1e-300))
    plotting.labels(ax, "type θ", "V = U/θ", "Multi-model monopolist: versions and jumps")
    figs["monopolist_versions"] = fig
    return figs


# =====================================================================
def run(scn, opts, ctx) -> RegimeResult:
    """Task assignment, efficient allocation and the multi-model monopolist over L models."""
    tech = scn.technology
    s = tech.sigma
    res = RegimeResult(NAME)
    models = model_list(s, opts)
    theta, mass = scn.discrete_types()
    require_double_range(models, theta)
    dist = scn.types if scn.types.kind != "discrete" else None
    if tech.K:
        res.notes.append("the [technology] fine-tuning block is not used here: each model's γ and cost are "
                         "[regimes.versions] models; [technology] gives σ")
    env = cv.envelope(models)
    dominated = [models[l].name for l in range(len(models)) if l not in env]
    if dominated:
        res.notes.append("never sold (surplus line below the envelope of the others): " + ", ".join(dominated))
    if opts["task_cells"]:
        _assignment(res, ctx, s, len(models), opts)
    eff = _efficient(res, models, s, theta, mass, ctx)
    if eff is None:
        return res
    mon = _monopolist(res, models, s, theta, mass, ctx)
    if mon is None:
        return res
    ref = _checks(res, models, s, theta, mass, dist, eff, mon)
    if getattr(ctx, "figures", True):
        res.figures.update(_figures(models, s, theta, eff, mon, ref, dist))
    return res
