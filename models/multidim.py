r"""Regime ``multidim``: the full budget program over multi-dimensional types
(docs/model.md, "The full budget program over multi-dimensional types"; issue 15 item 1).

Types are weight profiles :math:`w^m` over n task cells (masses :math:`p_m`);
item l is a budget :math:`(X_l\in R^J_+, Z_l\in R^K_+)` and a transfer
:math:`t_l`.  Type m's value of item l is the buyer's OWN optimal allocation

.. math:: V_{ml} = \max_{x_i\ge 0}\ \Phi(Z_l)\,\tfrac1n\sum_i w^m_i\,\Psi(x_i)
          \quad\text{s.t.}\quad \tfrac1n\sum_i x_{ij} = X_{lj},

written exactly in the NLP -- neither θ(w) nor Lemma 1 is used:

* **aggregate tokens** (the class split inside a cell is an exact inner
  problem): with H the degree-1 CES index (Ψ = H^σ), cells can get CES
  levels h_i from X (x_i with H(x_i) ≥ h_i, (1/n)Σ x_i ≤ X) iff
  (1/n) Σ_i h_i ≤ H(X) (only if: H concave, degree 1, monotone, so
  H(X) ≥ (1/n)Σ H(x_i); if: x_i = h_i X/H(X)).  So V_ml = max
  Φ(Z_l)(1/n)Σ_i w_i h_i^σ s.t. (1/n)Σ_i h_i ≤ H(X_l), and the NLP writes
  X_l = H_l·y with one class bundle y, H(y) ≥ 1 (see MultidimProblem);
* **own item** (the large side of IR and IC): a primal allocation
  :math:`h_{m,i}` with per-cell gains :math:`g_{m,i}`,
  ``gain[m,i]: h_{m,i} ≥ (g_{m,i}/Φ(Z_m))^{1/σ}`` (the convex form of
  models.distributions) and ``budget[m]: (1/n) Σ_i h_{m,i} ≤ H_m``; own value
  :math:`v_m=\frac1n\sum_i w^m_i g_{m,i}` ≤ V_mm for every feasible point,
  and the seller, who wants it large, drives it to V_mm;
* **deviation to item l** (the small side of IC): a dual (upper) bound.
  The Lagrangian of the allocation problem with a price β on the budget
  row separates by cell, each cell's conjugate is
  :math:`\sup_h[\Phi w_i h^\sigma-\beta h]=(1-\sigma)\sigma^{k}(\Phi w_i)^{1/(1-\sigma)}\beta^{-k}`,
  k = σ/(1−σ), so :math:`V_{ml}\le D_{ml}(\beta)=\beta H_l+A_m\Phi(Z_l)^{1/(1-\sigma)}\beta^{-k}`
  with :math:`A_m=(1-\sigma)\sigma^k\,\frac1n\sum_i (w^m_i)^{1/(1-\sigma)}` (the
  sum of the cells' conjugate coefficients), equality at the minimising β
  (concave problem, Slater).  Written with u = β^{−k}:
  ``epi[m,l]: τ·u^a ≥ H_l`` (a = (1−σ)/σ; τ ≥ β H_l) and the IC row
  ``ic[m,l]: v_m − t_m + t_l − τ_ml − A_m Φ(Z_l)^{1/(1−σ)} u_ml ≥ 0``.
  The seller picks (τ, u) per pair: the feasible set of (X, Z, t) is
  exactly that of the true IC row.  u → 0 (not β → ∞) is the excluded
  item's limit.

  A_m depends on w^m only through Σ_i w_i^{1/(1−σ)}: that the deviation
  side sees a profile only through this sum is a *result* of the dual (it
  is Lemma 1's content), not an assumption; the own side keeps the whole
  profile, every type has its own item and rows, and whether equal-θ
  profiles end with the same item is checked, not imposed.

IC over the M(M−1) pairs is generated lazily (:mod:`models.lazy_ic`): pairs
and their dual variables are added to the model as the audit finds them
violated.  The all-pairs audit (:class:`MultidimProblem.utilities`) does not
read the NLP's allocation or duals: for every (type, item) it recomputes the
buyer's allocation from the per-cell first-order conditions and the budget
rows, evaluates its value from Ψ cell by cell (a primal value P_ml ≤ V_ml),
and the dual bound D_ml ≥ V_ml at the allocation's prices; the deviation
side uses D, the own side P (conservative), and max |D − P| (a duality-gap
certificate that the recomputed allocation is optimal) is its own check.

Checks against the closed forms (models.closed_form.budgets): equal-θ
profiles receive the same item (Proposition 2), the menu equals the discrete
Mussa–Rosen menu in θ (``cb.discrete_menu``, ≤ 1e-6), each type's own
allocation follows x_i ∝ w_i^{1/(1−σ)} (Proposition 1 / Lemma 1 split), and,
on request (default for the Assumption-1 family), the distribution menu of
models.distributions on the same types: equal profit under Assumption 1
(Proposition 3), distributions ≥ budgets otherwise.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from models import gain, lazy_ic
from models import distributions as Dreg
from models.closed_form import budgets as cb
from models.closed_form import cost as cf
from models.results import RegimeResult, bound_check, compare
from models.solver import PRECISE_OPTIONS, Timer

NAME = "multidim"
FAMILIES = ("random", "csv", "value-scale", "assumption1", "two-types")
_FAMILY_TABLE = {"random": "random", "csv": "csv", "value-scale": "value_scale", "assumption1": "assumption1",
                 "two-types": "pairs"}

# NLP vs the discrete Mussa–Rosen closed form in θ, and the Lemma-1 split of
# the own allocation: Ipopt at tol 1e-12 on an O(1)-scaled program leaves
# ~1e-9 (measured ≤ 3e-9, docs/model.md); the target is 1e-6.
TOL_CLOSED_FORM = 1e-6
# Equal-θ spread of an item (max − min over the profiles of one θ, over the
# quantity's scale): two solutions of the same closed form, each within
# TOL_CLOSED_FORM of it.
TOL_SPREAD = 1e-6
# All-pairs IC/IR audit in money-scale units (θ̄·Q_FB(θ̄)): the lazy loop
# stops when no pair is violated by more than lazy.tol (default
# lazy_ic.LAZY_TOL = 1e-8, same units, same utilities), so 1e-7 is a 10×
# margin (as models.distributions.TOL_AUDIT).
TOL_AUDIT = 1e-7
# Duality gap D − P of the audit's recomputed allocations, in money-scale
# units: both are closed expressions of the same (m, l) evaluated in double
# precision (sums of n positive terms): round-off ~1e-15; 1e-10 leaves 1e5.
TOL_GAP = 1e-10
# Proposition 3: the two programs' profits, each an NLP at tol 1e-12, the
# budget program's lazy loop stopping at violations ≤ 1e-8 of the money
# scale (its profit can exceed the all-pairs optimum by Σ λ·ε ≲ 1e-8 of the
# profit scale): 1e-7 relative.
TOL_PROP3 = 1e-7
# KKT residual of the full program at a menu whose null items were fixed
# (MultidimProblem.exclusion_certificate), in units of max p (t rows) and
# max p·θ̄ (Q rows): the point is an Ipopt solve at tol 1e-12 whose Q and t
# are within ~1e-9 of the optimum (TOL_CLOSED_FORM's derivation), so its
# first-order residuals are of that size (measured 0 to 1e-10: the LP's
# multipliers absorb them); a wrongly excluded item leaves its virtual value
# (O(1) in these units, measured 0.3 on the 9×20 test case) in its Q row.
# 1e-6 as TOL_CLOSED_FORM.
TOL_KKT = 1e-6
# Served types (for the allocation check): Q above this fraction of max Q.
SERVED_RTOL = 1e-7
# An item is null (worth nothing to any type) when Ψ(X_l)Φ(Z_l) is below this
# fraction of the top type's first-best quality (Ipopt leaves a null item a
# hair above 0: interior point); see MultidimProblem.prune_null.  A pair set
# aside wrongly is caught by the next all-pairs audit and restored for good.
NULL_RTOL = 1e-6
# Fine-tuning floor relative to the top type's first-best z (homogeneous Φ:
# Φ(z)^(−1/σ) must stay finite), as models.distributions.Z_FLOOR.
Z_FLOOR = 1e-9
# Ipopt defaults: the budget menu's precise options plus the adaptive barrier
# update (as models.distributions.DIST_SOLVER_DEFAULTS).
# acceptable_iter = 0 (as models.distributions): no stop at an 'acceptable'
# point, which is never verified; measured on value–scale 6×6: with the
# heuristic on, 11 of 20 rounds and both re-solves stopped 'acceptable'
# (Q right to 6e-9); with it off every round ends 'optimal'.  Stricter, not looser.
SOLVER_DEFAULTS = {**PRECISE_OPTIONS, "mu_strategy": "adaptive", "acceptable_iter": 0}

# Stop the lazy loop once this many rounds since the last optimal one ended at
# Ipopt's iteration (or time) limit (lazy_ic.solve_lazy max_limit_rounds): each
# costs the whole budget (3,000 iterations, 30-90 s on multidim_192_7's 12
# types under load; 192_7 ran rounds 5-10 at the limit, 373 s; 198_25 239 s).
# Such a run is 'not converged' (exit 1) either way; this bounds what it costs.
# Measured cost: bilinear multidim_198_4 (rounds 3-5 at the limit, round 6
# optimal) now stops after round 4, not converged, where it could have gone on.
LAZY_LIMIT_ROUNDS = 2

MAX_TYPES = 2000
MAX_CELLS = 5000


# ============================================================ options
def validate_options(v, opts, path, tech):
    from models.cost import check_technology

    check_technology(v, tech)
    v.keys(opts, path, {"family", "lazy", "compare_distributions", "formulation", *_FAMILY_TABLE.values()})
    fam = v.choice(opts, path, "family", FAMILIES, required=True)
    for other in set(_FAMILY_TABLE.values()) - {_FAMILY_TABLE[fam]}:
        if other in opts:
            v.fail(f"{path}.{other}", "(table)", f"only the table of the chosen family ({fam!r})")
    out = {"family": fam, "formulation": v.choice(opts, path, "formulation", tuple(FORMULATIONS), default="convex"),
           "compare_distributions": v.boolean(opts, path, "compare_distributions", default=fam == "assumption1")}
    lz = v.table(opts, path, "lazy")
    lp = path + ".lazy"
    v.keys(lz, lp, {"tol", "neighbours", "max_add", "max_rounds", "per_type"})
    out["lazy"] = {
        "tol": v.number(lz, lp, "tol", lo=0, lo_open=True, hi=lazy_ic.LAZY_TOL, default=lazy_ic.LAZY_TOL),
        "neighbours": v.number(lz, lp, "neighbours", lo=0, hi=100, integer=True, default=0),
        "max_add": v.number(lz, lp, "max_add", lo=0, integer=True, default=0),
        "max_rounds": v.number(lz, lp, "max_rounds", lo=1, hi=500, integer=True, default=40),
        "per_type": v.number(lz, lp, "per_type", lo=0, hi=MAX_TYPES, integer=True, default=0),
    }
    key = _FAMILY_TABLE[fam]
    if fam in ("value-scale", "assumption1", "two-types"):
        sub = {"family": fam, **({key: opts[key]} if key in opts else {})}
        out[key] = Dreg.validate_options(v, sub, path, tech)[key]
    elif fam == "random":
        r = v.table(opts, path, "random")
        p = path + ".random"
        v.keys(r, p, {"cells", "thetas", "theta_masses", "profiles", "seed", "sparsity"})
        th = v.numbers(r, p, "thetas", lo=0, lo_open=True, min_len=1, default=[0.4, 0.6, 0.8, 1.0], increasing=True)
        tm = v.numbers(r, p, "theta_masses", lo=0, lo_open=True, default=[1.0] * len(th))
        if len(tm) != len(th):
            v.fail(p + ".theta_masses", tm, f"{len(th)} positive numbers (one per θ value)")
        out["random"] = {
            "cells": v.number(r, p, "cells", lo=1, hi=MAX_CELLS, integer=True, default=60),
            "thetas": th, "theta_masses": tm,
            "profiles": v.number(r, p, "profiles", lo=1, hi=100, integer=True, default=4),
            "seed": v.number(r, p, "seed", lo=0, integer=True, default=0),
            "sparsity": v.number(r, p, "sparsity", lo=0, hi=0.9, default=0.2),
        }
        if len(th) * out["random"]["profiles"] > MAX_TYPES:
            v.fail(p + ".profiles", out["random"]["profiles"], f"at most {MAX_TYPES // len(th)} "
                   f"(len(thetas) × profiles <= {MAX_TYPES} types)")
    else:
        c = v.table(opts, path, "csv", required=True)
        p = path + ".csv"
        v.keys(c, p, {"file"})
        fname = v.string(c, p, "file")
        if not fname:
            v.missing(p + ".file", "a CSV file relative to the scenario file: one row per type, an optional "
                      "column mass, the other columns the task-cell weights")
        out["csv"] = {"file": fname, **_read_profiles(v, p + ".file", fname)}
    return out


def _read_profiles(v, field, fname):
    """Profiles from a CSV: header row; column ``mass`` optional (default
    equal), every other column one task cell's weight (>= 0)."""
    src = Path(getattr(v, "source", "") or ".")
    fpath = Path(fname) if Path(fname).is_absolute() else (src.parent / fname if src.suffix else Path(fname))
    allowed = ("a readable UTF-8 CSV file relative to the scenario file: a header, one row per type (at most "
               f"{MAX_TYPES}), an optional column mass > 0, the other columns task-cell weights >= 0 with a "
               "positive weight in every row")
    try:
        with open(fpath, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        v.fail(field, fname, f"{allowed} ({exc})")
    if len(rows) < 2 or len(rows) - 1 > MAX_TYPES:
        v.fail(field, fname, allowed + f" (found {max(len(rows) - 1, 0)} rows)")
    head = [h.strip() for h in rows[0]]
    cells = [j for j, h in enumerate(head) if h != "mass"]
    if not cells or len(cells) > MAX_CELLS or len(head) - len(cells) > 1:
        v.fail(field, fname, allowed + f" (header: {head})")
    try:
        A = np.array([[float(x) for x in r] for r in rows[1:]], float)
    except ValueError as exc:
        v.fail(field, fname, f"{allowed} ({exc})")
    if A.ndim != 2 or A.shape[1] != len(head) or not np.all(np.isfinite(A)):
        v.fail(field, fname, allowed + " (every row as many finite numbers as the header)")
    W = A[:, cells]
    mass = A[:, head.index("mass")] if "mass" in head else np.ones(len(W))
    # name the first offending data row (1 = the row after the header) and what is wrong with it
    for r, (w, m) in enumerate(zip(W, mass), start=1):
        what = ("a negative weight" if np.any(w < 0) else "no positive weight" if w.max() <= 0
                else f"mass {m:g}" if m <= 0 else "")
        if what:
            v.fail(field, fname, f"{allowed} (data row {r}, line {r + 1} of the file: {what})")
    return {"W": W.tolist(), "mass": mass.tolist()}


# ============================================================ type spaces
def random_space(tech, thetas, theta_masses, profiles, cells, seed=0, sparsity=0.2) -> Dreg.TypeSpace:
    """``profiles`` random profiles per θ value over ``cells`` cells: weights
    U(0,1), each zero with probability ``sparsity``, scaled to the given θ.
    θ is used only to *draw* the types (so that several profiles share a θ);
    the program never sees it."""
    rng = np.random.default_rng(seed)
    W, mass, lab_th, lab_p = [], [], [], []
    tm = np.asarray(theta_masses, float) / np.sum(theta_masses)
    for th, q in zip(thetas, tm):
        for k in range(profiles):
            r = rng.uniform(0.0, 1.0, cells) * (rng.uniform(0.0, 1.0, cells) >= sparsity)
            if r.max() <= 0:
                r[rng.integers(cells)] = 1.0
            W.append(th * r / float(cb.aggregate_type(r, tech.sigma)))
            mass.append(q / profiles)
            lab_th.append(th)
            lab_p.append(k)
    W = np.array(W)
    lab = pd.DataFrame({"theta_drawn": lab_th, "profile": lab_p})
    return Dreg.TypeSpace("random", f"random:{len(thetas)}x{profiles}x{cells}", W, np.array(mass), lab, W.copy())


def type_spaces(scn, opts) -> list[Dreg.TypeSpace]:
    tech = scn.technology
    fam = opts["family"]
    if fam == "random":
        r = opts["random"]
        return [random_space(tech, r["thetas"], r["theta_masses"], r["profiles"], r["cells"], r["seed"],
                             r["sparsity"])]
    if fam == "csv":
        W = np.asarray(opts["csv"]["W"], float)
        mass = np.asarray(opts["csv"]["mass"], float)
        return [Dreg.TypeSpace("csv", f"csv:{len(W)}x{W.shape[1]}", W, mass / mass.sum(),
                               pd.DataFrame({"row": np.arange(len(W))}), W.copy())]
    if fam == "value-scale":
        vs = opts["value_scale"]
        wd, sd = vs["w"], vs["s"]
        wg, wm = wd["dist"].discretise(wd["n"], wd["grid"])
        sg, sm = Dreg.s_points(sd["dist"], sd["n"])
        return [Dreg.value_scale_space(wg, wm, sg, sm, vs["cells"], name=f"value-scale:{len(wg)}x{len(sg)}")]
    if fam == "assumption1":
        a1 = opts["assumption1"]
        theta, tmass = scn.discrete_types()
        return [Dreg.assumption1_space(theta, tmass, a1["profiles"], a1["masses"], tech.sigma,
                                       name=f"assumption1:{len(theta)}x{len(a1['profiles'])}")]
    return [Dreg.two_type_space(c["high"], c["low"], c["mass_high"], name=f"pair:{c['name']}")
            for c in opts["pairs"]]


# ============================================================ the NLP
def _H(tech, x):
    """Degree-1 CES index of J Pyomo expressions (Ψ = H^σ)."""
    if tech.J == 1:
        return x[0]
    if tech.rho == 0:
        out = 1
        for j in range(tech.J):
            out = out * x[j] ** tech.alpha[j]
        return out
    return gain._ces(tech.alpha, tech.rho, x)


def scales(tech, W, mass):
    """Scales from the top type's first best (scaling changes Ipopt's path,
    not the optimum, so taking it from a closed form leaves the checks
    independent): Q, X (J,), Z (K,), money t, objective, H of X, dual u."""
    th = cb.aggregate_type(W, tech.sigma)
    top = float(np.max(th))
    Qs = float(cf.first_best_quality(tech, top))
    Xs, Zs = cf.inputs(tech, np.array(Qs))
    Xs = np.atleast_1d(np.asarray(Xs, float)).ravel()
    Xs = np.maximum(Xs, 1e-6 * np.max(Xs))
    Zs = np.atleast_1d(np.asarray(Zs, float)).ravel()[: tech.K]
    if tech.K:
        Zs = np.maximum(np.maximum(Zs, tech.baseline or 0.0), 1e-6 * max(np.max(Zs), 1e-300))
    fb = float(np.sum(mass / mass.sum() * cf.first_best_surplus(tech, th)))
    Hs = float(cf.ces_index(Xs, tech.alpha, tech.rho))
    ts = max(top * Qs, 1e-300)
    beta = ts / max(Hs, 1e-300)  # price of one unit of H ~ value / H
    k = tech.sigma / (1 - tech.sigma)
    return {"Q": Qs, "X": Xs, "Z": Zs, "t": ts, "profit": max(fb, 1e-300), "H": max(Hs, 1e-300),
            "u": beta ** (-k), "theta": th}


class MultidimProblem:
    """The Pyomo program (module doc) and the lazy-IC adapter
    (``n_types``, ``money_scale``, ``utilities``, ``add_pairs``, ``n_pairs``).

    Item l's token budget is written X_l = H_l·y: H_l ≥ 0 its aggregate
    token quantity, y ∈ R^J_+ the class bundle of one unit, H(y) ≥ 1
    (J ≥ 2; y = 1 for J = 1), so H(X_l) ≥ H_l.  Exact: a buyer's value of
    a budget depends on X only through H(X) (module doc: the class split
    inside the cells), so replacing any menu's X_l by H(X_l)·y*, y* = argmin{c·y :
    H(y) ≥ 1}, keeps every value and every IC/IR row and does not raise the
    cost; the NLP finds y* itself (the seller's inner cost minimisation;
    the one bundle for all items is what makes it well posed -- an item
    with H_l → 0 would leave its own y_l free, measured 'infeasible' in
    round 4 of the 9×50, J = 2 case)."""

    def __init__(self, tech: cf.Technology, W, mass):
        self.tech = tech
        self.W = np.asarray(W, float)
        self.mass = np.asarray(mass, float) / np.sum(mass)
        M, n = self.W.shape
        self.n_types, self.n = M, n
        s = tech.sigma
        self.k, self.a = s / (1 - s), (1 - s) / s
        sc = self.sc = scales(tech, self.W, self.mass)
        self.money_scale = sc["t"]
        # the cells' conjugate coefficients, summed (module doc): Σ_i (1/n) w_i^(1/(1−σ))
        self.conj = np.sum(self.W ** (1 / (1 - s)), axis=1) / n
        self.A = (1 - s) * s ** self.k * self.conj
        m = self.m = pyo.ConcreteModel(name="multidim_budget_program")
        m.TYPES = pyo.RangeSet(0, M - 1)
        m.TOKENS = pyo.RangeSet(0, tech.J - 1)
        m.FT = pyo.RangeSet(0, max(tech.K, 1) - 1)
        toks, fts = list(m.TOKENS), list(m.FT)
        # cells with w^m_i = 0 carry no value for type m: its allocation there is 0
        # (any token put there is wasted), so they have no variables
        own = [(q, i) for q in range(M) for i in np.flatnonzero(self.W[q] > 0)]
        m.OWN = pyo.Set(dimen=2, initialize=own, ordered=True)
        self.zlo = Z_FLOOR * float(np.min(sc["Z"])) if tech.K and not tech.has_baseline else 0.0
        # aggregate token quantity H_l of item l and (J ≥ 2) the class bundle y of one
        # unit of H, H(y) ≥ 1, shared by the items (class docstring: exact)
        m.H = pyo.Var(m.TYPES, bounds=(0.0, None))
        if tech.J > 1:
            # y_j > 0: the CES index and its derivatives are evaluated at y (never at 0);
            # ρ = 1 (H linear) allows y_j = 0
            m.y = pyo.Var(m.TOKENS, bounds=(0.0 if tech.rho == 1 else 1e-12, None))
            m.unit_bundle = pyo.Constraint(expr=_H(tech, [m.y[j] for j in toks]) >= 1)
            m.X = pyo.Expression(m.TYPES, m.TOKENS, rule=lambda m, q, j: m.H[q] * m.y[j])
        else:
            m.X = pyo.Expression(m.TYPES, m.TOKENS, rule=lambda m, q, j: m.H[q])
        m.Z = pyo.Var(m.TYPES, m.FT, bounds=(self.zlo, None), initialize=self.zlo)
        if tech.K == 0:
            m.Z.fix(0.0)
        m.t = pyo.Var(m.TYPES, initialize=0.0)
        # own cells: aggregate tokens h_{m,i} (the cell's class split is the inner problem)
        m.h = pyo.Var(m.OWN, bounds=(0.0, None))
        # g >= 1e-14·Q_s when σ > ½ ((g/Φ)^(1/σ) has an infinite second
        # derivative at 0 there: models.distributions.G_FLOOR)
        self.glo = 1e-14 * sc["Q"] if s > 0.5 else 0.0
        m.g = pyo.Var(m.OWN, bounds=(self.glo, None))

        def zvec(q):
            return [m.Z[q, i] for i in fts]

        def gain_row(m, q, i):
            need = (m.g[q, i] / gain.phi(tech, zvec(q))) ** (1.0 / s) if tech.K else m.g[q, i] ** (1.0 / s)
            return m.h[q, i] - need >= 0

        m.gain = pyo.Constraint(m.OWN, rule=gain_row)
        cells_of = {q: [i for (qq, i) in own if qq == q] for q in range(M)}
        self.cells_of = cells_of
        m.budget = pyo.Constraint(m.TYPES, rule=lambda m, q: sum(m.h[q, i] for i in cells_of[q]) / n - m.H[q] <= 0)
        # own value v_m = (1/n) Σ_i w_i g_{m,i}: one variable and one defining row,
        # so each IC row has 5 non-zeros (t_m, t_l, v_m, τ, u) whatever n is
        m.v = pyo.Var(m.TYPES, initialize=0.0)
        m.value = pyo.Constraint(m.TYPES, rule=lambda m, q:
                                 m.v[q] - sum(float(self.W[q, i]) / n * m.g[q, i] for i in cells_of[q]) == 0)
        self.value = {q: m.v[q] for q in range(M)}
        m.ir = pyo.Constraint(m.TYPES, rule=lambda m, q: m.v[q] - m.t[q] >= 0)
        m.profit = pyo.Objective(expr=sum(float(self.mass[q]) * (m.t[q] - gain.spend_x(tech, [m.X[q, j] for j in toks])
                                                                 - gain.spend_z(tech, zvec(q))) for q in range(M)),
                                 sense=pyo.maximize)
        # pairs: dual variables created with their rows
        m.PAIRS = pyo.Set(dimen=2, ordered=True)
        m.u = pyo.Var(m.PAIRS, dense=False, bounds=(0.0, None))
        m.tau = pyo.Var(m.PAIRS, dense=False, bounds=(0.0, None))
        m.epi = pyo.Constraint(m.PAIRS)
        m.ic = pyo.Constraint(m.PAIRS)
        m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
        sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
        sf[m.profit] = 1.0 / sc["profit"]
        if tech.J > 1:
            for j in toks:
                sf[m.y[j]] = sc["H"] / sc["X"][j]
        for q in range(M):
            sf[m.t[q]] = 1.0 / sc["t"]
            sf[m.ir[q]] = 1.0 / sc["t"]
            sf[m.v[q]] = 1.0 / sc["t"]
            sf[m.value[q]] = 1.0 / sc["t"]
            sf[m.H[q]] = 1.0 / sc["H"]
            sf[m.budget[q]] = 1.0 / sc["H"]
            for kk in range(tech.K):
                sf[m.Z[q, kk]] = 1.0 / sc["Z"][kk]
        for (q, i) in own:
            sf[m.g[q, i]] = 1.0 / sc["Q"]
            sf[m.gain[q, i]] = 1.0 / sc["H"]
            sf[m.h[q, i]] = 1.0 / sc["H"]
        self.off: set = set()  # pairs set aside (prune_null)
        self.kept: set = set()  # pairs brought back by the audit (never set aside again)
        self.set_start()

    # ------------------------------------------------------------ starts
    def set_start(self, scale: float = 0.5):
        """Each item half the first best of its type's θ (a scale, not the
        answer), its aggregate tokens spread EVENLY over the type's positive
        cells (not the Lemma-1 split), gains at 90% of what the tokens give,
        the transfer at half the value; the class bundle y_l the first best's
        class ratio (the same for every item)."""
        tech, m, n = self.tech, self.m, self.n
        Q0 = np.maximum(scale * cf.first_best_quality(tech, self.sc["theta"]), 1e-3 * self.sc["Q"])
        X0, Z0 = cf.inputs(tech, Q0)
        X0 = np.maximum(np.asarray(X0, float).reshape(self.n_types, -1), 1e-6 * self.sc["X"][None, :])
        Z0 = np.asarray(Z0, float).reshape(self.n_types, -1)
        H0 = np.asarray(cf.ces_index(X0, tech.alpha, tech.rho), float).reshape(-1)
        if tech.J > 1:
            for j in m.TOKENS:
                m.y[j].value = float(X0[-1, j] / H0[-1])
        for q in range(self.n_types):
            m.H[q].value = float(H0[q])
            if tech.K:
                for kk in range(tech.K):
                    m.Z[q, kk].value = max(float(Z0[q, kk]), self.zlo, 1e-6 * float(self.sc["Z"][kk]))
            cells = self.cells_of[q]
            phi = float(cf.phi(tech, np.array([m.Z[q, kk].value for kk in range(tech.K)]))) if tech.K else 1.0
            v = 0.0
            for i in cells:
                hs = float(H0[q]) * n / len(cells)
                m.h[q, i].value = hs
                gi = max(0.9 * phi * hs ** tech.sigma, self.glo)
                m.g[q, i].value = gi
                v += self.W[q, i] / n * gi
            m.v[q].value = v
            m.t[q].value = 0.5 * v

    def _dual_start(self, q, l):
        """(u, τ) of pair (q, l) at the minimising dual price β for the
        model's current item l (the 1-D minimisation of β·H_l + A Φ^(1/(1−σ)) β^(−k))."""
        tech, m = self.tech, self.m
        H = max(float(pyo.value(m.H[l])), 1e-9 * self.sc["H"])
        Z = np.array([pyo.value(m.Z[l, kk]) for kk in range(tech.K)])
        phi = float(cf.phi(tech, Z)) if tech.K else 1.0
        Aq = self.A[q] * phi ** (1 / (1 - tech.sigma))
        beta = (self.k * Aq / H) ** (1 / (1 + self.k))
        u = beta ** (-self.k)
        return u, 1.0001 * u ** (-self.a) * H

    # ------------------------------------------------------------- pairs
    def n_pairs(self) -> int:
        return len(self.m.PAIRS) - len(self.off)

    def _pair_parts(self, p):
        m = self.m
        rows = [c[p] for c in (m.ic, m.epi) if p in c]
        return rows, [m.u[p], m.tau[p]]

    def prune_null(self) -> int:
        """Set aside the rows of pairs (m, l) whose item l is null at the
        model's current point (H(X_l) <= NULL_RTOL·H_s).  A null item is worth
        0 to every type, so its IC row is IR_m (in the model); kept, it pins
        τ = u = 0 with τ·u^a >= X_l = 0 wherever U_mm = 0, a cusp where MFCQ
        fails (measured: MUMPS fill grew 4x and 15-20 s per iteration at
        1,500 pairs on the 10×10 value–scale grid).  A set-aside pair whose
        item becomes worth deviating to is violated in the next all-pairs
        audit and comes back (add_pairs), so the loop still ends only when
        every pair holds."""
        m = self.m
        X, Z, _ = self.items()
        Q = cf.psi(self.tech, X) * (cf.phi(self.tech, Z) if self.tech.K else 1.0)
        null = Q <= NULL_RTOL * self.sc["Q"]
        n = 0
        for p in list(m.PAIRS):
            if p in self.off or p in self.kept or not null[p[1]]:
                continue
            self._set_aside(p)
            n += 1
        return n

    def null_items(self) -> np.ndarray:
        """Indices of the items that are null at the model's current point
        (Ψ(X_l)Φ(Z_l) <= NULL_RTOL·Q_s, the prune_null test)."""
        X, Z, _ = self.items()
        Q = cf.psi(self.tech, X) * (cf.phi(self.tech, Z) if self.tech.K else 1.0)
        return np.flatnonzero(np.asarray(Q, float).reshape(-1) <= NULL_RTOL * self.sc["Q"])

    def _null_parts(self, l):
        """(variable, value) pairs that make item l the null item and the rows of
        its own type that are then constant (bilinear form): no tokens, Z at
        its floor, own cells empty (gains at their floor), v at the value of
        the floor gains, t = 0 (the IR bound of a null item's own value ~0)."""
        m = self.m
        cells = self.cells_of[l]
        fix = [(m.H[l], 0.0)] + [(m.Z[l, kk], self.zlo) for kk in range(self.tech.K)]
        fix += [(m.h[l, i], 0.0) for i in cells] + [(m.g[l, i], self.glo) for i in cells]
        fix += [(m.v[l], float(sum(self.W[l, i] / self.n * self.glo for i in cells))), (m.t[l], 0.0)]
        rows = [m.gain[l, i] for i in cells] + [m.budget[l], m.value[l], m.ir[l]]
        return fix, rows

    def fix_null(self, items) -> int:
        """Make the items ``items`` the null item for the next solves (variables
        fixed, their own rows dropped) and set aside every pair (m, l) towards
        them: with item l FIXED at the null item, ic[m, l] reads
        U_m >= D_ml(Q_l ~ 0) - t_l = 0 (to ≤ θ̄·qlo), i.e. IR_m, which is in the model, so
        dropping it is exact for this restricted program (unlike prune_null,
        whose set-aside items may move).  Pairs (l, m) FROM these types stay.
        Whether excluding them is optimal for the full program is not decided
        here: exclusion_certificate checks it.  Returns the pairs set aside."""
        m = self.m
        sf = m.scaling_factor
        self.fixed_null = set(int(l) for l in items) | getattr(self, "fixed_null", set())
        for l in items:
            fix, rows = self._null_parts(int(l))
            for var, val in fix:
                var.fix(val)
                sf.clear_value(var)
            for c in rows:
                c.deactivate()
                sf.clear_value(c)
        n = 0
        for p in list(m.PAIRS):
            if p[1] in self.fixed_null and p not in self.off:
                self._set_aside(p)
                self.kept.discard(p)
                n += 1
        return n

    def exclusion_certificate(self, act_tol: float = lazy_ic.LAZY_TOL) -> dict:
        """KKT certificate, from the primal point alone, that the menu with the
        items ``self.fixed_null`` null is optimal for the FULL program (every
        item free, every pair), whatever Ipopt reported.

        Every buyer row sees an item through its quality Q_l (class doc of
        ConvexProblem), and both sides are homogeneous of degree 1 in Q_l: a
        type's own value of item q is ω_q·Q_q (the best allocation of the
        budget) and type m's deviation value of item l is κ_m·Q_l (the dual
        bound at its best price).  ω and κ are measured here with the audit's
        recomputed allocations (audit_values: primal P and dual D of a served
        item, divided by its Q; D − P is the gap check).  On (Q, t) the
        program is then max Σ p_q (t_q − C_q(Q_q)) subject to
        ω_q Q_q − t_q ≥ 0 (IR) and ω_m Q_m − t_m − κ_m Q_l + t_l ≥ 0 (IC),
        C convex and the rows linear: a convex program, so KKT at the point is
        global optimality.  C_q'(Q_q) = c·X_q/(σ Q_q) (X ∝ Q^(1/σ) at fixed Z,
        the envelope theorem for Z, which the restricted solve optimised) and
        C'(0) = 0 (1/σ > 1).  The multipliers λ (active IC pairs, slack ≤
        act_tol·money scale) and μ (active IR) are found by an LP that
        minimises the residuals of

          t_q:  p_q − μ_q − Σ_l λ_ql + Σ_m λ_mq = 0                      (every q)
          Q_q:  −p_q C_q'(Q_q) + ω_q (μ_q + Σ_l λ_ql) − Σ_m κ_m λ_mq = 0  (served q)
                                                               ≤ 0  (null q: Q_q = 0 bound)

        t rows in units of max p, Q rows in units of max p·θ̄ (θ̄ = money scale / Q_s).
        The null-q rows are the exclusion: no joint direction that serves null
        items raises profit (serving two pooled profiles together is covered,
        which a one-item-at-a-time test is not).  Returns the worst residual
        and what it was measured on."""
        import scipy.sparse as sp
        from scipy.optimize import linprog

        tech, M = self.tech, self.n_types
        X, Z, t = self.items()
        Q = np.asarray(cf.psi(tech, X) * (cf.phi(tech, Z) if tech.K else 1.0), float).reshape(-1)
        # items at the bound Q = 0: those fixed null and those null at this point
        # (Q <= NULL_RTOL·Q_s, an interior point's hair above 0)
        null = np.zeros(M, bool)
        null[sorted(getattr(self, "fixed_null", set()))] = True
        null[self.null_items()] = True
        j = int(np.argmax(Q))
        f = audit_values(tech, self.W, X[[j]], Z[[j]] if tech.K else Z[[j]])
        rows = np.arange(M)
        omega = f.primal(rows)[:, 0] / Q[j]
        kappa = f.dual(rows)[:, 0] / Q[j]
        spend = X @ np.asarray(tech.cost, float)
        Cp = np.where(null | (Q <= 0), 0.0, spend / (tech.sigma * np.maximum(Q, 1e-300)))
        Qe = np.where(null, 0.0, Q)
        own = omega * Qe - t
        slack = own[:, None] - kappa[:, None] * Qe[None, :] + t[None, :]
        np.fill_diagonal(slack, np.inf)
        sc = act_tol * self.money_scale
        pairs = np.argwhere(slack <= sc)
        irs = np.flatnonzero(own <= sc)
        nl, nm = len(pairs), len(irs)
        p = self.mass
        pn, qn = float(np.max(p)), float(np.max(p)) * self.money_scale / self.sc["Q"]
        # columns: λ (nl), μ (nm); rows: t_q (M), Q_q (M); sparse (4 entries per pair, 2 per IR)
        ia, ib = np.arange(nl), nl + np.arange(nm)
        pm_, pl_ = pairs[:, 0], pairs[:, 1]
        A = sp.csr_matrix((np.concatenate([np.full(nl, -1 / pn), np.full(nl, 1 / pn), omega[pm_] / qn,
                                           -kappa[pm_] / qn, np.full(nm, -1 / pn), omega[irs] / qn]),
                           (np.concatenate([pm_, pl_, M + pm_, M + pl_, irs, M + irs]),
                            np.concatenate([ia, ia, ia, ia, ib, ib]))), shape=(2 * M, nl + nm))
        b = np.concatenate([-p / pn, p * Cp / qn])
        eq = np.concatenate([np.ones(M, bool), ~null])
        # residual columns: r+ and r− on equalities, r >= 0 (allowed excess) on the null-Q inequalities
        ne, ni = int(eq.sum()), int((~eq).sum())
        Ae, be = A[np.flatnonzero(eq)], b[eq]
        Ai, bi = A[np.flatnonzero(~eq)], b[~eq]
        nv = nl + nm
        c = np.concatenate([np.zeros(nv), np.ones(2 * ne), np.ones(ni)])
        A_eq = sp.hstack([Ae, sp.identity(ne), -sp.identity(ne), sp.csr_matrix((ne, ni))], format="csr")
        A_ub = sp.hstack([Ai, sp.csr_matrix((ni, 2 * ne)), -sp.identity(ni)], format="csr") if ni else None
        res = linprog(c, A_ub=A_ub, b_ub=bi if ni else None, A_eq=A_eq, b_eq=be, bounds=(0, None), method="highs",
                      options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
        if not res.success:
            return {"residual": float("inf"), "message": res.message, "null": np.flatnonzero(null).tolist(),
                    "active_pairs": nl, "active_ir": nm}
        # the residuals of the multipliers found, recomputed (not the LP's slack columns,
        # which carry HiGHS's own feasibility tolerance)
        lam = np.maximum(res.x[:nv], 0.0)
        r = np.concatenate([Ae @ lam - be, np.maximum(Ai @ lam - bi, 0.0)])
        worst = float(np.max(np.abs(r))) if r.size else 0.0
        return {"residual": worst, "message": "", "null": np.flatnonzero(null).tolist(), "active_pairs": nl,
                "active_ir": nm}

    def prune_slack(self, rtol: float = 1e-6) -> int:
        """Set aside pairs whose IC row is slack by more than rtol·money scale at
        the current point.  A slack row leaves its dual variables (τ, u, d) a
        continuum of values (any point under the row's slack), so the KKT
        solution is not isolated; Ipopt then stalls at 'acceptable' near the
        optimum.  Used only for the final re-solve; the audit that follows
        checks every pair again."""
        m, n = self.m, 0
        for p in list(m.PAIRS):
            if p in self.off or pyo.value(m.ic[p].body) <= rtol * self.money_scale:
                continue
            self._set_aside(p)
            n += 1
        return n

    def _set_aside(self, p):
        """Deactivate pair p's rows and fix its dual variables (and drop their scaling)."""
        sf = self.m.scaling_factor
        rows, vars_ = self._pair_parts(p)
        for c in rows:
            c.deactivate()
            sf.clear_value(c)
        for x in vars_:
            x.fix()
            sf.clear_value(x)
        self.off.add(p)

    def _restore(self, p):
        rows, vars_ = self._pair_parts(p)
        m = self.m
        m.u[p].value, m.tau[p].value = self._dual_start(*p)
        for x in vars_:
            x.unfix()
        for c in rows:
            c.activate()
        sf = m.scaling_factor
        sf[m.ic[p]] = 1.0 / self.sc["t"]
        sf[m.epi[p]] = 1.0 / getattr(self, "epi_scale", self.sc["H"])
        sf[m.u[p]] = 1.0 / self.sc["u"]
        sf[m.tau[p]] = 1.0 / self.sc["t"]
        self.off.discard(p)
        self.kept.add(p)  # never set aside again: no cycling between the audit and the pruning

    per_type = 0  # lazy.per_type: at most this many new pairs per deviating type per round (0: no cap)

    def _select(self, pairs) -> np.ndarray:
        """The audit's violated pairs (most violated first), kept to the first
        ``per_type`` not yet active for each deviating type m (all if 0)."""
        pairs = np.asarray(pairs, int).reshape(-1, 2)
        if not self.per_type:
            return pairs
        m, cnt, keep = self.m, {}, []
        for q, l in pairs:
            p = (int(q), int(l))
            if q == l or (p in m.PAIRS and p not in self.off) or cnt.get(p[0], 0) >= self.per_type:
                continue
            cnt[p[0]] = cnt.get(p[0], 0) + 1
            keep.append(p)
        return np.array(keep, int).reshape(-1, 2)

    def add_pairs(self, pairs) -> int:
        tech, m, s = self.tech, self.m, self.tech.sigma
        sf = m.scaling_factor
        fts = list(m.FT)
        added = 0
        for q, l in self._select(pairs):
            p = (int(q), int(l))
            if p in self.off:
                self._restore(p)
                added += 1
                continue
            if q == l or p in m.PAIRS:
                continue
            m.PAIRS.add(p)
            m.u[p].value, m.tau[p].value = self._dual_start(*p)
            m.u[p].setlb(0.0)
            m.tau[p].setlb(0.0)
            sf[m.u[p]] = 1.0 / self.sc["u"]
            sf[m.tau[p]] = 1.0 / self.sc["t"]
            up = m.u[p] if self.a == 1 else m.u[p] ** self.a
            # τ·u^a ≥ H_l: with λ = β (the price of one unit of aggregate tokens), τ ≥ β H_l
            c = m.epi.add(p, m.tau[p] * up - m.H[l] >= 0)
            sf[c] = 1.0 / self.sc["H"]
            phi = gain.phi(tech, [m.Z[l, kk] for kk in fts]) ** (1 / (1 - s)) if tech.K else 1.0
            c = m.ic.add(p, self.value[p[0]] - m.t[p[0]] + m.t[l] - m.tau[p] - float(self.A[p[0]]) * phi * m.u[p] >= 0)
            sf[c] = 1.0 / self.sc["t"]
            added += 1
        return added

    # -------------------------------------------------------- solution
    def items(self):
        m, tech = self.m, self.tech
        X = np.array([[pyo.value(m.X[q, j]) for j in m.TOKENS] for q in m.TYPES])
        Z = np.array([[pyo.value(m.Z[q, kk]) for kk in range(tech.K)] for q in m.TYPES]).reshape(self.n_types, tech.K)
        t = np.array([pyo.value(m.t[q]) for q in m.TYPES])
        return X, Z, t

    def allocation(self) -> np.ndarray:
        """The NLP's own allocation (M, n, J): cell i gets h_{m,i} aggregate
        tokens, split across classes along the item's bundle,
        x_{m,i} = h_{m,i}·X_m/H(X_m) (the module doc's inner problem; any
        split with H(x_i) ≥ h_i and Σ_i x_i ≤ n X_m is as good); 0 on
        cells of zero weight."""
        m = self.m
        X, _, _ = self.items()
        HX = np.asarray(cf.ces_index(X, self.tech.alpha, self.tech.rho), float).reshape(-1)
        ray = np.divide(X, HX[:, None], out=np.zeros_like(X), where=HX[:, None] > 0)
        x = np.zeros((self.n_types, self.n, self.tech.J))
        for (q, i) in m.OWN:
            x[q, i, :] = pyo.value(m.h[q, i]) * ray[q]
        return x

    def utilities(self):
        X, Z, t = self.items()
        A = audit_values(self.tech, self.W, X, Z)
        return lambda rows: A(rows, t)


class ConvexProblem(MultidimProblem):
    r"""The same program written in item quality (docs/model.md §2.5a, "the
    convex form"; ``formulation = "convex"``, the default).

    Item l carries its quality Q_l as a variable; every buyer row sees a
    budget only through Q_l (module doc: the class split is an exact inner
    problem, and Φ(Z_l) rescales the aggregate tokens to
    H'_l = Φ(Z_l)^{1/σ} H(X_l) with Q_l = H'^σ):

    * production: the cheapest aggregate tokens for Q_l,
      H_l = (Q_l/Φ(Z_l))^{1/σ}, X_l = H_l·y* (y* = :func:`unit_bundle`,
      the cheapest bundle with H(y) ≥ 1; exact by the class docstring of
      MultidimProblem), so the cost c·X_l + ĉ·Z_l is convex in (Q_l, Z_l)
      when σ + γ ≤ 1 ((q, b) ↦ q^{1/σ}b^{−γ/σ} is convex and nonincreasing
      in b, and b = Φ(Z)^{1/γ} is concave).  Substituted, not a row
      H(X_l) ≥ (Q_l/Φ)^{1/σ}: measured, that row stays slack by the barrier's
      ~1e-12 at an excluded item, and Q = X^σ turns X = 1e-12 into
      Q = 1e-6 (the shipped scenario failed Q vs 1-D at 2.2e-6 and the audit at 1.6e-6);
    * own item in perspective form: s_{m,i} = Q_m h_{m,i}/H'_m (cell i's
      share of the budget times Q_m), ``budget[m]: (1/n)Σ_i s_{m,i} ≤ Q_m`` and
      ``value[m]: v_m ≤ (1/n)Σ_i w_i s_{m,i}^σ Q_m^{1−σ}`` (each term a weighted
      geometric mean, concave): exactly the own value of the allocation
      h_{m,i} = s_{m,i}H'_m/Q_m;
    * deviation to item l: the dual bound of the bilinear form with
      H'_l = Q_l^{1/σ}: ``epi[m,l]: τ^σ u^{1−σ} ≥ Q_l`` (concave geometric
      mean ≥ linear) and ``ic[m,l]: v_m − t_m + t_l − τ − A_m u ≥ 0``.

    Every row is convex (IC/IR linear, the objective concave): a KKT point is
    the global optimum, for any J, K with σ + γ ≤ 1.  The cusps: Q_l = 0
    (an excluded type's item) is the apex of the geometric-mean cones
    (gradients stay bounded along rays, the Hessian grows like 1/Q, as a log
    barrier's does; an interior point keeps Q, s, τ, u > 0); null items'
    pairs are set aside as in the bilinear form (prune_null)."""

    def __init__(self, tech: cf.Technology, W, mass, y=None):
        self.tech = tech
        self.W = np.asarray(W, float)
        self.mass = np.asarray(mass, float) / np.sum(mass)
        M, n = self.W.shape
        self.n_types, self.n = M, n
        s = tech.sigma
        self.k, self.a = s / (1 - s), (1 - s) / s
        sc = self.sc = scales(tech, self.W, self.mass)
        # the pair duals price H' = Q^(1/σ) (class docstring), not H(X): u's scale from
        # β = t_s/Q_s^(1/σ) (with K ≥ 1, H' = Φ(Z)^(1/σ) H(X) differs from H(X) by orders)
        sc["u"] = (sc["t"] / sc["Q"] ** (1 / s)) ** (-self.k)
        self.epi_scale = sc["Q"]
        self.money_scale = sc["t"]
        self.conj = np.sum(self.W ** (1 / (1 - s)), axis=1) / n
        self.A = (1 - s) * s ** self.k * self.conj
        m = self.m = pyo.ConcreteModel(name="multidim_budget_program_convex")
        m.TYPES = pyo.RangeSet(0, M - 1)
        m.TOKENS = pyo.RangeSet(0, tech.J - 1)
        m.FT = pyo.RangeSet(0, max(tech.K, 1) - 1)
        toks, fts = list(m.TOKENS), list(m.FT)
        own = [(q, i) for q in range(M) for i in np.flatnonzero(self.W[q] > 0)]
        m.OWN = pyo.Set(dimen=2, initialize=own, ordered=True)
        self.zlo = Z_FLOOR * float(np.min(sc["Z"])) if tech.K and not tech.has_baseline else 0.0
        # Q^(1/σ) has an infinite second derivative at 0 when σ > ½: Q ≥ 1e-14·Q_s
        # there (as models.distributions.G_FLOOR; its effect on any value is ≤ θ̄·1e-14·Q_s)
        self.qlo = 1e-14 * sc["Q"] if s > 0.5 else 0.0
        m.Q = pyo.Var(m.TYPES, bounds=(self.qlo, None))
        m.Z = pyo.Var(m.TYPES, m.FT, bounds=(self.zlo, None), initialize=self.zlo)
        if tech.K == 0:
            m.Z.fix(0.0)

        def zvec(q):
            return [m.Z[q, i] for i in fts]

        # the cheapest aggregate tokens for quality Q_l: H_l = (Q_l/Φ(Z_l))^(1/σ) (convex in
        # (Q, Z) when σ + γ ≤ 1), X_l = H_l·y (y the unit bundle, class docstring)
        if tech.J > 1 and y is None:
            raise ValueError("ConvexProblem: J >= 2 needs the unit bundle y (unit_bundle)")
        self.y = np.ones(1) if tech.J == 1 else np.asarray(y, float)
        m.H = pyo.Expression(m.TYPES, rule=lambda m, q: (m.Q[q] / gain.phi(tech, zvec(q))) ** (1.0 / s)
                             if tech.K else m.Q[q] ** (1.0 / s))
        m.X = pyo.Expression(m.TYPES, m.TOKENS, rule=lambda m, q, j: float(self.y[j]) * m.H[q])
        m.t = pyo.Var(m.TYPES, initialize=0.0)
        m.s = pyo.Var(m.OWN, bounds=(0.0, None))
        m.v = pyo.Var(m.TYPES, initialize=0.0)
        cells_of = {q: [i for (qq, i) in own if qq == q] for q in range(M)}
        self.cells_of = cells_of
        m.budget = pyo.Constraint(m.TYPES, rule=lambda m, q: sum(m.s[q, i] for i in cells_of[q]) / n - m.Q[q] <= 0)
        m.value = pyo.Constraint(m.TYPES, rule=lambda m, q: m.v[q] - sum(
            float(self.W[q, i]) / n * m.s[q, i] ** s * m.Q[q] ** (1 - s) for i in cells_of[q]) <= 0)
        self.value = {q: m.v[q] for q in range(M)}
        m.ir = pyo.Constraint(m.TYPES, rule=lambda m, q: m.v[q] - m.t[q] >= 0)
        m.profit = pyo.Objective(expr=sum(float(self.mass[q]) * (m.t[q] - gain.spend_x(tech, [m.X[q, j] for j in toks])
                                                                 - gain.spend_z(tech, zvec(q))) for q in range(M)),
                                 sense=pyo.maximize)
        m.PAIRS = pyo.Set(dimen=2, ordered=True)
        m.u = pyo.Var(m.PAIRS, dense=False, bounds=(0.0, None))
        m.tau = pyo.Var(m.PAIRS, dense=False, bounds=(0.0, None))
        m.epi = pyo.Constraint(m.PAIRS)
        m.ic = pyo.Constraint(m.PAIRS)
        m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
        sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
        sf[m.profit] = 1.0 / sc["profit"]
        for q in range(M):
            sf[m.t[q]] = 1.0 / sc["t"]
            sf[m.ir[q]] = 1.0 / sc["t"]
            sf[m.v[q]] = 1.0 / sc["t"]
            sf[m.value[q]] = 1.0 / sc["t"]
            sf[m.Q[q]] = 1.0 / sc["Q"]
            sf[m.budget[q]] = 1.0 / sc["Q"]
            for kk in range(tech.K):
                sf[m.Z[q, kk]] = 1.0 / sc["Z"][kk]
        for (q, i) in own:
            sf[m.s[q, i]] = 1.0 / sc["Q"]
        self.off: set = set()
        self.kept: set = set()
        self.set_start()

    def _null_parts(self, l):
        """Item l as the null item (convex form): Q at its floor, Z at its
        floor, own shares 0, v = t = 0; its budget, value and IR rows constant."""
        m = self.m
        cells = self.cells_of[l]
        fix = [(m.Q[l], self.qlo)] + [(m.Z[l, kk], self.zlo) for kk in range(self.tech.K)]
        fix += [(m.s[l, i], 0.0) for i in cells] + [(m.v[l], 0.0), (m.t[l], 0.0)]
        return fix, [m.budget[l], m.value[l], m.ir[l]]

    def set_start(self, scale: float = 0.5):
        """Each item half the first best of its type's θ (a scale, not the
        answer), shares EVEN over the type's positive cells (s_i = Q·n/#cells,
        not the Lemma-1 split), own value at 90 % of what they give, the
        transfer at half of it."""
        tech, m, n = self.tech, self.m, self.n
        Q0 = np.maximum(scale * cf.first_best_quality(tech, self.sc["theta"]), 1e-3 * self.sc["Q"])
        X0, Z0 = cf.inputs(tech, Q0)
        X0 = np.maximum(np.asarray(X0, float).reshape(self.n_types, -1), 1e-6 * self.sc["X"][None, :])
        Z0 = np.asarray(Z0, float).reshape(self.n_types, -1)
        for q in range(self.n_types):
            for kk in range(tech.K):
                m.Z[q, kk].value = max(float(Z0[q, kk]), self.zlo, 1e-6 * float(self.sc["Z"][kk]))
            Z = np.array([m.Z[q, kk].value for kk in range(tech.K)])
            Qq = float(cf.psi(tech, X0[q])) * (float(cf.phi(tech, Z)) if tech.K else 1.0)
            m.Q[q].value = max(Qq, self.qlo)
            cells = self.cells_of[q]
            v = 0.0
            for i in cells:
                si = m.Q[q].value * n / len(cells)
                m.s[q, i].value = si
                v += self.W[q, i] / n * si ** tech.sigma * m.Q[q].value ** (1 - tech.sigma)
            m.v[q].value = 0.9 * v
            m.t[q].value = 0.45 * v

    def _dual_start(self, q, l):
        """(u, τ) at the minimising price β of β·Q_l^(1/σ) + A_q β^(−k)."""
        m = self.m
        H = max(float(pyo.value(m.Q[l])), 1e-9 * self.sc["Q"]) ** (1 / self.tech.sigma)
        beta = (self.k * self.A[q] / H) ** (1 / (1 + self.k))
        u = beta ** (-self.k)
        return u, 1.0001 * u ** (-self.a) * H

    def add_pairs(self, pairs) -> int:
        m, s = self.m, self.tech.sigma
        sf = m.scaling_factor
        added = 0
        for q, l in self._select(pairs):
            p = (int(q), int(l))
            if p in self.off:
                self._restore(p)
                added += 1
                continue
            if q == l or p in m.PAIRS:
                continue
            m.PAIRS.add(p)
            m.u[p].value, m.tau[p].value = self._dual_start(*p)
            sf[m.u[p]] = 1.0 / self.sc["u"]
            sf[m.tau[p]] = 1.0 / self.sc["t"]
            c = m.epi.add(p, m.tau[p] ** s * m.u[p] ** (1 - s) - m.Q[l] >= 0)
            sf[c] = 1.0 / self.sc["Q"]
            c = m.ic.add(p, self.value[p[0]] - m.t[p[0]] + m.t[l] - m.tau[p] - float(self.A[p[0]]) * m.u[p] >= 0)
            sf[c] = 1.0 / self.sc["t"]
            added += 1
        return added

    def allocation(self) -> np.ndarray:
        """Own allocation (M, n, J): x_{m,i} = (s_{m,i}/Q_m)·X_m (s_i/Q_m is
        cell i's share h_i/H of the budget; class docstring)."""
        m = self.m
        X, _, _ = self.items()
        x = np.zeros((self.n_types, self.n, self.tech.J))
        for (q, i) in m.OWN:
            Qq = pyo.value(m.Q[q])
            if Qq > 0:
                x[q, i, :] = pyo.value(m.s[q, i]) / Qq * X[q]
        return x


def unit_bundle(tech, ctx, label: str):
    """y* = argmin{c·y : H(y) ≥ 1} (J ≥ 2): the seller's cheapest bundle of one
    unit of aggregate tokens, a fact of the technology alone (no type enters),
    solved as its own small convex NLP -- not taken from a closed form, so the
    menu's X is compared with the closed form's independently.  Returns
    (y, SolveResult or None for J = 1)."""
    if tech.J == 1:
        return np.ones(1), None
    m = pyo.ConcreteModel(name="unit_bundle")
    m.TOKENS = pyo.RangeSet(0, tech.J - 1)
    m.y = pyo.Var(m.TOKENS, bounds=(0.0 if tech.rho == 1 else 1e-12, None), initialize=1.0)
    m.unit = pyo.Constraint(expr=_H(tech, [m.y[j] for j in m.TOKENS]) >= 1)
    m.cost = pyo.Objective(expr=gain.spend_x(tech, [m.y[j] for j in m.TOKENS]), sense=pyo.minimize)
    r = ctx.solve(m, f"unit_bundle[{label}]", 0.0, defaults=SOLVER_DEFAULTS)
    return np.array([pyo.value(m.y[j]) for j in m.TOKENS]), r


# the program's two written forms (module doc; docs/model.md §2.5a): "bilinear" the aggregate-token
# form with τ·u^a ≥ H_l (session 6), "convex" every row convex (ConvexProblem)
FORMULATIONS = {"convex": ConvexProblem, "bilinear": MultidimProblem}


# ============================================================ the audit
def audit_values(tech, W, X, Z):
    """``f(rows, t)`` -> (len(rows), M) utilities of types ``rows`` from every
    item, recomputed from the budgets alone (not from the NLP's allocation or
    duals): the allocation from the per-cell first-order conditions
    σ Φ w_i H(x_i)^(σ−1) ∇H(x_i) = λ and the budget rows, its value P
    from Ψ cell by cell; off the diagonal the dual bound D(λ) ≥ V (the
    deviation side), on the diagonal P ≤ V (the own side).  ``f.gap(rows)``
    gives D − P."""
    s = tech.sigma
    k = s / (1 - s)
    W = np.asarray(W, float)
    M, n = W.shape
    H = cf.ces_index(np.asarray(X, float), tech.alpha, tech.rho)  # (M,)
    phi = np.asarray(cf.phi(tech, np.asarray(Z, float)), float).reshape(-1) if tech.K else np.ones(M)
    if phi.size == 1:
        phi = np.full(M, float(phi[0]))
    e = W ** (1 / (1 - s))
    S = e.mean(axis=1)  # budget row of the FOC allocation h_i ∝ (w_i/β)^(1/(1−σ))
    share = np.divide(e, S[:, None], out=np.zeros_like(e), where=S[:, None] > 0)  # h_i / H(X_l), mean 1
    # value of the allocation x_i = share_i·X_l (every cell on X_l's ray: ∇H(x_i) = ∇H(X_l)):
    # P_ml = Φ_l (1/n) Σ_i w_i H(share_i X_l)^σ = Φ_l H_l^σ · (1/n) Σ_i w_i share_i^σ
    c = np.mean(W * share ** s, axis=1)

    def primal(rows):
        return c[rows, None] * (phi * H ** s)[None, :]

    def dual(rows):
        # λ = β ∇H(X_l): β from the FOC, σ Φ_l w_i (share_i H_l)^(σ−1) = β (the same in every cell)
        Hp = np.maximum(H, 1e-300)[None, :]
        i0 = np.argmax(W[rows], axis=1)
        wi, si = W[rows, i0], share[rows, i0]
        beta = s * phi[None, :] * wi[:, None] * (si[:, None] * Hp) ** (s - 1)
        conj = (1 - s) * s ** k * S[rows, None] * phi[None, :] ** (1 / (1 - s)) * beta ** (-k)
        return np.where(H[None, :] > 0, beta * H[None, :] + conj, 0.0)

    def f(rows, t):
        rows = np.asarray(rows, int)
        U = dual(rows) - t[None, :]
        U[np.arange(len(rows)), rows] = primal(rows)[np.arange(len(rows)), rows] - t[rows]
        return U

    f.gap = lambda rows: dual(np.asarray(rows, int)) - primal(np.asarray(rows, int))
    f.primal, f.dual = (lambda rows: primal(np.asarray(rows, int))), (lambda rows: dual(np.asarray(rows, int)))
    return f


def worst_gap(tech, W, X, Z, scale) -> float:
    f = audit_values(tech, W, X, Z)
    M = len(W)
    rows_per = max(1, lazy_ic.CHUNK_ENTRIES // max(M, 1))
    worst = 0.0
    for a in range(0, M, rows_per):
        g = f.gap(np.arange(a, min(a + rows_per, M)))
        worst = max(worst, float(np.max(np.abs(g))) / scale)
    return worst


# ============================================================ solve
class Solved:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def solve_program(tech, types: Dreg.TypeSpace, ctx, label: str, lazy_opts: dict | None = None,
                  formulation: str = "convex") -> Solved:
    lz = {"tol": lazy_ic.LAZY_TOL, "neighbours": 0, "max_add": 0, "max_rounds": 40, "per_type": 0,
          **(lazy_opts or {})}
    t0 = time.perf_counter()
    with Timer() as tb:
        if formulation == "convex":
            y, ry = unit_bundle(tech, ctx, label)
            prob = ConvexProblem(tech, types.W, types.mass, y)
        else:
            ry = None
            prob = MultidimProblem(tech, types.W, types.mass)
    init = lazy_ic.nearest_pairs(types.coords, lz["neighbours"]) if lz["neighbours"] else None
    lbl = f"program[{label}]"

    def solve(ws, tag=""):
        prob.prune_null()
        return ctx.solve(prob.m, lbl + tag, tb.seconds, defaults=SOLVER_DEFAULTS, warm_start=ws)

    if init is not None:
        prob.add_pairs(init)
    # per_type: the audit passes every violated pair (most violated first) and
    # add_pairs keeps the first per_type new ones of each deviating type
    prob.per_type = int(lz["per_type"])
    cap = lz["max_add"] or (types.M * types.M if prob.per_type else None)
    lr = lazy_ic.solve_lazy(
        prob, solve,
        initial_pairs=None, tol=lz["tol"], max_add=cap, max_rounds=lz["max_rounds"],
        warm=lz.get("warm", True), progress=ctx.progress, max_limit_rounds=LAZY_LIMIT_ROUNDS)
    exclusion = None
    # stalled: the audit's violated pairs are all in the model (solve_lazy adds none) -- measured on the
    # bilinear form at σ = 0.264 (multidim_198_4): pairs into items with Q ~ 1e-7·Q_s, whose rows
    # τ·u^a >= H_l = Q^(1/σ) ~ 1e-25 hold only to Ipopt's absolute tolerance, violated by 1.8e-7 in the audit
    stalled = bool(lr.rounds) and lr.rounds[-1].added == 0 and lr.worst_ic > lr.tol and not lr.stopped
    end_free = not lr.converged and ((lr.worst_ic <= lr.tol and not lr.result.ok) or stalled)
    null = prob.null_items() if end_free else []
    if 0 < len(null) < types.M:
        # every pair holds but the last solve did not end optimal, with null items: the
        # cusp of prune_null's docstring (ic[m, l] from a type with U_m = 0 to a null item
        # l) is in the model; the re-solve below would set those pairs aside while their
        # items stay free, and return to a menu that serves them (multidim_192_3: the
        # no-IC optimum, IC violated by 3.3e-2).  Instead: fix the null items AT the null
        # item, so their pairs are exactly IR rows (fix_null), go on with the lazy loop
        # on that restricted program (every pair audited each round), and certify that
        # the exclusion is optimal for the full program (exclusion_certificate).
        free_round, free_status = len(lr.rounds), lr.result.status.value
        n_off = prob.fix_null(null)
        ctx.progress(f"      lazy IC: round {len(lr.rounds)} ended {lr.result.status.value} with "
                     + ("every pair holding" if not stalled else "its violated pairs all in the model") + f"; items {null.tolist()} fixed at the null item ({n_off} pairs towards them are "
                     "IR rows now), lazy loop goes on")
        lr2 = lazy_ic.solve_lazy(
            prob, lambda ws: solve(ws, "[null items fixed]"), initial_pairs=None, tol=lz["tol"], max_add=cap,
            max_rounds=max(1, lz["max_rounds"] - len(lr.rounds)), warm=lz.get("warm", True), progress=ctx.progress,
            max_limit_rounds=LAZY_LIMIT_ROUNDS)
        k0 = len(lr.rounds)
        for r in lr2.rounds:
            r.round += k0
        lr.rounds += lr2.rounds
        lr.result, lr.final_audit, lr.converged, lr.stopped = lr2.result, lr2.final_audit, lr2.converged, lr2.stopped
        exclusion = {**prob.exclusion_certificate(lz["tol"]), "free_round": free_round,
                     "free_status": free_status + (" (stalled: violated pairs all in the model)" if stalled else "")}
    for _ in range(2):
        if exclusion is not None or lr.converged or lr.worst_ic > lr.tol or lr.result.ok:
            break
        # every pair holds but Ipopt stopped at 'acceptable': solve again from
        # where it stopped, then audit every pair again (setting the slack
        # pairs aside first, prune_slack, was measured worse: 'infeasible'
        # on random:5x4x60)
        r2 = solve(lr.result.warm, "[re-solve]")
        a2 = lazy_ic.audit(prob.utilities(), prob.n_types, prob.money_scale, lr.tol, cap=1)
        lr.rounds.append(lazy_ic.LazyRound(len(lr.rounds) + 1, prob.n_pairs(), 0, a2.worst_ic, a2.worst_ir,
                                           a2.n_violated, r2.status.value, r2.iterations, r2.objective, 0.0,
                                           r2.translate_seconds, r2.solve_seconds, a2.seconds))
        lr.result, lr.final_audit = r2, a2
        lr.converged = r2.ok and a2.worst_ic <= lr.tol
    X, Z, t = prob.items()
    x = prob.allocation()
    Q = cf.psi(tech, X) * (cf.phi(tech, Z) if tech.K else 1.0)
    spend = X @ np.asarray(tech.cost, float) + (Z @ np.asarray(tech.cost_hat, float)[: tech.K] if tech.K else 0.0)
    profit = float(np.sum(prob.mass * (t - spend)))
    return Solved(problem=prob, lazy=lr, result=lr.result, unit=ry, X=X, Z=Z, t=t, x=x, Q=np.asarray(Q, float), profit=profit,
                  build_seconds=tb.seconds, seconds=time.perf_counter() - t0, exclusion=exclusion)


# ============================================================ run
def run(scn, opts, ctx) -> RegimeResult:
    tech = scn.technology
    res = RegimeResult(NAME)
    menus, sizes = [], []
    for types in type_spaces(scn, opts):
        label = types.name
        sol = solve_program(tech, types, ctx, label, opts["lazy"], opts.get("formulation", "convex"))
        res.solves[f"program[{label}]"] = sol.result
        if sol.unit is not None:
            res.solves[f"unit_bundle[{label}]"] = sol.unit
        ref, group, theta = closed_form_reference(tech, types.W, types.mass)
        checks(res, tech, types, sol, ref, group, theta, label)
        row = {"case": label, "types": types.M, "cells": types.n, "J": tech.J, "K": tech.K,
               "theta_values": len(ref.theta), "pairs_audited": types.M * (types.M - 1),
               "active_pairs": sol.lazy.active_pairs, "rounds": len(sol.lazy.rounds),
               "variables": sol.result.n_variables, "constraints": sol.result.n_constraints,
               "build_s": sol.build_seconds,
               "solve_s": sum(r.solve_seconds + r.translate_seconds for r in sol.lazy.rounds),
               "audit_s": sum(r.audit_seconds for r in sol.lazy.rounds), "total_s": sol.seconds,
               "profit": sol.profit, "profit_closed_form": ref.profit(tech),
               "worst_ic": sol.lazy.worst_ic}
        if opts["compare_distributions"]:
            row.update(_distributions(res, tech, types, ctx, label, sol, opts))
        sizes.append(row)
        menus.append(_menu_table(tech, types, sol, ref, group, theta, label))
        res.tables[f"lazy_rounds_{_slug(label)}"] = sol.lazy.table()
    res.tables["menu"] = pd.concat(menus, ignore_index=True)
    res.tables["sizes"] = pd.DataFrame(sizes)
    return res


def _slug(s):
    return "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")


def closed_form_reference(tech, W, mass):
    """The discrete Mussa–Rosen menu in θ (the distinct θ values, masses
    summed); ``group[m]`` = the θ value's index of type m."""
    theta = cb.aggregate_type(W, tech.sigma)
    key = np.round(theta / np.max(theta), 10)  # equal θ up to round-off of the profile's construction
    uniq, group = np.unique(key, return_inverse=True)
    tu = np.array([theta[group == g].mean() for g in range(len(uniq))])
    pu = np.bincount(group, weights=np.asarray(mass, float) / np.sum(mass))
    return cb.discrete_menu(tech, tu, pu), group.ravel(), theta


def checks(res, tech, types, sol, ref, group, theta, label):
    from models.cost import input_rows

    idx = [f"m={q},θ={th:.6g}" for q, th in enumerate(theta)]
    chk = f"menu_vs_1d_closed_form[{label}]"
    res.checks.append(compare(NAME, chk, "Q", sol.Q, ref.Q[group], TOL_CLOSED_FORM, index=idx))
    for quantity, num, rf, scale in input_rows(tech, sol.X, ref.X[group], sol.Z, ref.Z[group] if tech.K else sol.Z):
        res.checks.append(compare(NAME, chk, quantity, num, rf, TOL_CLOSED_FORM, index=idx, scale=scale))
    res.checks.append(compare(NAME, chk, "t", sol.t, ref.t[group], TOL_CLOSED_FORM, index=idx))
    res.checks.append(compare(NAME, chk, "profit", sol.profit, ref.profit(tech), TOL_CLOSED_FORM))
    # Proposition 2: profiles with equal θ receive the same item
    counts = np.bincount(group)
    if np.any(counts > 1):
        # each spread on its block's scale, as menu_vs_1d_closed_form's input rows
        # (cost.input_rows): a token class on the scale of all tokens, a fine-tuning class
        # on that of all fine-tuning inputs, floored at the top type's first-best Z
        # (scales(): at least the baseline b).  Its own max was the unit before: with a
        # baseline and Z* = 0 the NLP leaves Z ~ 2e-16 and two profiles' 2.0e-16 / 2.8e-16
        # read as a spread of 0.285 (bench seed 198 multidim_198_6).
        xs = float(np.max(np.abs(sol.X))) if sol.X.size else 0.0
        zs = max(float(np.max(np.abs(sol.Z))) if sol.Z.size else 0.0,
                 float(np.max(sol.problem.sc["Z"])) if tech.K else 0.0)
        qs = [("Q", sol.Q, float(np.max(np.abs(sol.Q)))), ("t", sol.t, float(np.max(np.abs(sol.t))))] \
            + [(f"X[{j}]", sol.X[:, j], xs) for j in range(tech.J)] \
            + [(f"Z[{kk}]", sol.Z[:, kk], zs) for kk in range(tech.K)]
        for q, val, unit in qs:
            spread = pd.Series(val).groupby(group).agg(np.ptp).to_numpy()
            g = int(np.argmax(spread))
            what = "max|Q|" if q == "Q" else "max|t|" if q == "t" else \
                "max over all token classes" if q[0] == "X" else "max(all fine-tuning inputs, first-best Z of the top type)"
            res.checks.append(bound_check(
                NAME, f"equal_theta_same_item[{label}]",
                f"max over θ values of the spread of {q} across profiles / {what} "
                f"({int(np.sum(counts > 1))} θ values shared by 2+ profiles, up to {int(counts.max())})",
                float(spread[g] / max(unit, 1e-300)), TOL_SPREAD, index=f"θ={ref.theta[g]:.6g}"))
    else:
        res.notes.append(f"{label}: no two profiles share a θ; the equal-θ item check has nothing to compare")
    # Proposition 1 / Lemma 1: the own allocation x_i ∝ w_i^(1/(1−σ))
    Xref = np.stack([cb.lemma1_split(types.W[q], sol.X[q], tech.sigma) for q in range(types.M)])
    scale = float(np.max(np.abs(Xref))) if Xref.size else 0.0
    res.checks.append(compare(NAME, f"allocation_vs_prop1[{label}]",
                              "own per-cell tokens x_{m,i,j} vs X_m,j·w_i^(1/(1−σ))/mean(w^(1/(1−σ)))",
                              sol.x.reshape(types.M, -1), Xref.reshape(types.M, -1), TOL_CLOSED_FORM, scale=scale))
    # the all-pairs audit (independent allocations, module doc)
    pm = sol.problem
    a = lazy_ic.audit(pm.utilities(), types.M, pm.money_scale, sol.lazy.tol, cap=10)
    res.checks.append(bound_check(NAME, f"all_pairs_audit[{label}]",
                                  f"worst IC violation over all {a.pairs_checked} pairs / (θ̄·Q_FB(θ̄)), "
                                  "allocations recomputed from the budgets", a.worst_ic, TOL_AUDIT,
                                  index=f"pair {a.worst_pair}"))
    res.checks.append(bound_check(NAME, f"all_pairs_audit[{label}]", "worst IR violation / (θ̄·Q_FB(θ̄))",
                                  a.worst_ir, TOL_AUDIT))
    res.checks.append(bound_check(NAME, f"all_pairs_audit[{label}]",
                                  "max |dual bound − primal value| of the recomputed allocations / (θ̄·Q_FB(θ̄))",
                                  worst_gap(tech, types.W, sol.X, sol.Z, pm.money_scale), TOL_GAP))
    ex = getattr(sol, "exclusion", None)
    if ex is not None:
        res.checks.append(bound_check(
            NAME, f"exclusion_kkt[{label}]",
            f"worst KKT residual of the full program (every item free, every pair) at the menu with items "
            f"{ex['null']} fixed null ({ex['active_pairs']} active pairs, {ex['active_ir']} active IR; "
            "t rows / max p, Q rows / (max p·θ̄))" + (f"; LP: {ex['message']}" if ex["message"] else ""),
            ex["residual"], TOL_KKT))
        res.notes.append(f"{label}: lazy round {ex['free_round']} (every item free) ended {ex['free_status']} "
                         f"with every pair holding, at the exclusion cusp; items {ex['null']} were fixed at the null "
                         "item, the lazy loop went on, and exclusion_kkt certifies that excluding them is optimal")
    if not sol.lazy.converged:
        res.notes.append(f"{label}: lazy IC loop did not converge in {len(sol.lazy.rounds)} rounds "
                         f"(worst violation {sol.lazy.worst_ic:.2e})"
                         + (f"; stopped early: {sol.lazy.stopped}" if sol.lazy.stopped else ""))
    res.notes.append(f"{label}: {types.M} types over {types.n} cells ({len(ref.theta)} θ values), "
                     f"{sol.lazy.active_pairs} of {types.M * (types.M - 1)} IC pairs in the model after "
                     f"{len(sol.lazy.rounds)} rounds, {sol.seconds:.1f} s")


def _distributions(res, tech, types, ctx, label, sol, opts) -> dict:
    """The menu of token distributions (models.distributions, full contracting)
    on the same types: Proposition 3 under Assumption 1, distributions ≥ budgets otherwise."""
    s = Dreg.solve_menu(tech, types, ctx, f"distributions[{label}]", ic="lazy",
                        starts={"neutral": Dreg.neutral_start(tech, types)}, lazy_opts={"tol": opts["lazy"]["tol"]})
    res.solves[f"distributions[{label}]"] = s.result
    dp = float(s.menu.profit)
    if opts["family"] == "assumption1":
        res.checks.append(compare(NAME, f"prop3_profit[{label}]",
                                  "distribution menu profit vs full budget program profit", dp, sol.profit, TOL_PROP3))
    else:
        res.checks.append(bound_check(NAME, f"distributions_at_least_budgets[{label}]",
                                      "(budget program profit − distribution menu profit) / |distribution profit|",
                                      (sol.profit - dp) / max(abs(dp), 1e-300), TOL_PROP3))
    return {"profit_distributions": dp, "ratio_distributions_budgets": dp / sol.profit if sol.profit else np.nan}


def _menu_table(tech, types, sol, ref, group, theta, label):
    d = {"case": label, "type": np.arange(types.M), "mass": types.mass / types.mass.sum(), "theta": theta,
         "theta_group": group}
    for c in types.labels.columns:
        d[c] = types.labels[c].to_numpy()
    for j in range(tech.J):
        d[f"X[{(tech.token_names or [str(j)] * tech.J)[j]}]"] = sol.X[:, j]
    for kk in range(tech.K):
        d[f"Z[{(tech.ft_names or [str(kk)] * tech.K)[kk]}]"] = sol.Z[:, kk]
    d.update({"Q": sol.Q, "t": sol.t, "Q_closed_form": ref.Q[group], "t_closed_form": ref.t[group]})
    return pd.DataFrame(d)
