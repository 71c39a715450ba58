r"""Regime ``distributions``: menus of token distributions, full contracting
(MODEL.md 2.5, 2.6).

Types are weight profiles :math:`w^m` over n task cells with masses
:math:`p_m`.  Item l fixes per-cell tokens :math:`x_{l,i}\in R^J_+`,
fine-tuning :math:`z_l\in R^K_+` and a transfer :math:`t_l`; the buyer cannot
move tokens across tasks.  NLP (one item per type)::

    max  Σ_m p_m (t_m − (1/n) Σ_i c·x_{m,i} − ĉ·z_m)
    s.t. gain[l, i]:   g_{l,i} ≤ Φ(z_l) Ψ(x_{l,i})              (per-cell gain)
         value[ω, l]:  S_{ω,l} = (1/n) Σ_i r^ω_i g_{l,i}          (value of item l to direction ω)
         ir[m]:        a_m S_{ω(m),m} − t_m ≥ 0
         ic[m, l]:     a_m (S_{ω(m),m} − S_{ω(m),l}) − t_m + t_l ≥ 0

Formulation notes
-----------------
* Per-cell gain variables ``g`` make every IR/IC row linear in (g, t).
  ``g ≤ Φ(z)Ψ(x)`` binds at the optimum (tokens cost money; lowering
  x_{l,i} until it binds changes no other row), and Φ(z)Ψ(x) is jointly
  concave when σ+γ < 1, so in these variables the whole program is a
  *convex* NLP (MODEL.md calls it non-convex: it is, written with V = Φ·ΣwΨ
  in the IC rows).  Multi-start is still run and its spread reported: it
  measures how well Ipopt lands on the one optimum.
* Each profile is written :math:`w^m=a_m r^{\omega(m)}` with
  :math:`\max_i r^\omega_i=1`; types sharing a direction ω (value–scale
  types with equal s, Assumption-1 types with equal relative profile) share
  the value variables S.  ``S[ω, l]`` (and its defining row) is created only
  when a row needs it, so each IC row has at most 4 non-zeros whatever n is.
* IC rows are all M(M−1) pairs (``ic="all-pairs"``) or generated lazily
  (``ic="lazy"``, :mod:`models.lazy_ic`).  The audit always checks every
  pair, from the tokens, in numpy (``closed_form.distributions.value_matrix``).
* Token bounds are x ≥ 0 and z ≥ 0 exactly (Ipopt ``bound_relax_factor = 0``,
  as in the budget menu), not ``gain.X_FLOOR``: a floor of 1e-9 on z costs
  ĉ·1e-9 per excluded type, a visible 2e-6 of the profit in small examples.
  Ψ and Φ have infinite slope at 0; interior-point iterates never reach the
  bound, and start points are kept ``START_FLOOR`` above it.  Tokens are
  read back *tightened* to the model's gains (:meth:`MenuProblem.arrays`).

Closed forms (MODEL.md 2.6, **derived**; the NLP is the judge) come from
``models.closed_form.distributions``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from models import gain, lazy_ic
from models.budgets import MENU_SOLVER_DEFAULTS, solve_menu as solve_budget_menu
from models.closed_form import cost as cf
from models.closed_form import distributions as D
from models.results import RegimeResult, bound_check, compare
from models.solver import Timer
from models.type_space import TypeDistribution

NAME = "distributions"
FAMILIES = ("two-types", "value-scale", "assumption1")
IC_FORMS = ("lazy", "all-pairs", "both")
STARTS = ("neutral", "budget", "closed-form")

# NLP vs discrete closed form (two types, value-scale, Proposition 3): Ipopt
# at tol 1e-12 on an O(1)-scaled convex program; the target 1e-6.
TOL_CLOSED_FORM = 1e-6
# Proposition 3: distribution profit = budget profit, two NLPs each at
# solver tolerance (objective error ~1e-10 relative): 1e-8 is "equal to
# solver tolerance" with two digits of margin.
TOL_PROP3 = 1e-8
# Lazy IC vs all pairs: the same convex program, both at tol 1e-12 (issue: 1e-7).
TOL_LAZY_VS_ALL = 1e-7
# IC/IR audit of a solved menu over all pairs, in units of max(1, max|t|):
# the active rows hold to Ipopt's constraint tolerance; a pair left out of
# the lazy working set is accepted up to the lazy tolerance (1e-7).
TOL_AUDIT = 1e-7
# Multi-start spread (max − min objective over converged starts) / |best|:
# the gain-space program is convex, so every start should land on the same
# optimum up to solver tolerance.
TOL_SPREAD = 1e-8
# Two NLP budget menus vs their closed form (Mussa–Rosen): as models.budgets.
TOL_BUDGET = 1e-6
# Ordering checks (budget ≤ distribution): allow solver noise only.
TOL_ORDER = 1e-9
# Start points keep every token variable at least this fraction of its scale
# above 0 (Ψ's slope is infinite at 0 and cannot be evaluated there).
START_FLOOR = 1e-6
Z_FLOOR = 1e-9


# ============================================================ options
def _marginal(v, d, path, key, what: str, unit_interval: bool):
    """A 1-D distribution ``{distribution, low, high, p, q, breakpoints, masses, n, grid}``."""
    t = v.table(d, path, key, required=True)
    p = f"{path}.{key}"
    kind = v.choice(t, p, "distribution", ("uniform", "beta", "piecewise"), required=True)
    allowed = {"distribution", "n"} | {"uniform": {"low", "high"}, "beta": {"low", "high", "p", "q"},
                                       "piecewise": {"breakpoints", "masses"}}[kind]
    if what == "w":
        allowed |= {"grid"}
    v.keys(t, p, allowed)
    n = v.number(t, p, "n", lo=2, hi=400, integer=True, required=True)
    grid = v.choice(t, p, "grid", ("equal-spacing", "equal-mass"), default="equal-spacing")
    hi_max = 1.0 if unit_interval else None
    if kind in ("uniform", "beta"):
        lo = v.number(t, p, "low", lo=0, hi=hi_max, default=0.0)
        hi = v.number(t, p, "high", lo=0, lo_open=True, hi=hi_max, default=1.0)
        if hi <= lo:
            v.fail(p + ".high", hi, f"a number > {p}.low = {lo:g}" + (" and <= 1" if unit_interval else ""))
        if kind == "uniform":
            dist = TypeDistribution("uniform", low=lo, high=hi)
        else:
            dist = TypeDistribution("beta", low=lo, high=hi,
                                    p=v.number(t, p, "p", lo=0, lo_open=True, required=True),
                                    q=v.number(t, p, "q", lo=0, lo_open=True, required=True))
    else:
        bp = v.numbers(t, p, "breakpoints", lo=0, hi=hi_max, min_len=2, required=True, increasing=True)
        ms = v.numbers(t, p, "masses", lo=0, lo_open=True, min_len=1, required=True)
        if len(ms) != len(bp) - 1 or abs(sum(ms) - 1) > 1e-9:
            v.fail(p + ".masses", ms, f"{len(bp) - 1} positive masses summing to 1 (one per interval)")
        dist = TypeDistribution("piecewise", breakpoints=tuple(bp), masses=tuple(ms))
    return {"dist": dist, "n": n, "grid": grid}


def validate_options(v, opts, path, tech):
    v.keys(opts, path, {"family", "ic", "starts", "random_starts", "seed", "all_pairs_max", "lazy", "pairs",
                        "value_scale", "assumption1"})
    fam = v.choice(opts, path, "family", FAMILIES, required=True)
    starts = opts.get("starts", list(STARTS))
    if not isinstance(starts, list) or not starts or any(s not in STARTS for s in starts) \
            or len(set(starts)) != len(starts):
        v.fail(path + ".starts", starts, "a non-empty list of distinct names from " + ", ".join(map(repr, STARTS)))
    out = {
        "family": fam,
        "ic": v.choice(opts, path, "ic", IC_FORMS, default="lazy"),
        "starts": list(starts),
        "random_starts": v.number(opts, path, "random_starts", lo=0, hi=20, integer=True, default=1),
        "seed": v.number(opts, path, "seed", lo=0, integer=True, default=0),
        "all_pairs_max": v.number(opts, path, "all_pairs_max", lo=2, hi=2000, integer=True, default=144),
    }
    lz = v.table(opts, path, "lazy")
    lp = path + ".lazy"
    v.keys(lz, lp, {"tol", "neighbours", "max_add", "max_rounds", "warm"})
    out["lazy"] = {
        "tol": v.number(lz, lp, "tol", lo=0, lo_open=True, hi=1e-3, default=lazy_ic.LAZY_TOL),
        "neighbours": v.number(lz, lp, "neighbours", lo=1, hi=100, integer=True, default=8),
        "max_add": v.number(lz, lp, "max_add", lo=0, integer=True, default=0),
        "max_rounds": v.number(lz, lp, "max_rounds", lo=1, hi=500, integer=True, default=40),
        "warm": v.boolean(lz, lp, "warm", default=True),
    }
    for other in {"pairs", "value_scale", "assumption1"} - {{"two-types": "pairs", "value-scale": "value_scale",
                                                            "assumption1": "assumption1"}[fam]}:
        if other in opts:
            v.fail(f"{path}.{other}", "(table)", f"only the table of the chosen family ({fam!r})")
    if fam == "two-types":
        arr = opts.get("pairs")
        pp = path + ".pairs"
        if not isinstance(arr, list) or not arr or not all(isinstance(x, dict) for x in arr):
            v.fail(pp, arr, "an array of tables [[" + pp + "]] with name, high, low, mass_high")
        cases = []
        for i, c in enumerate(arr):
            p = f"{pp}[{i}]"
            v.keys(c, p, {"name", "high", "low", "mass_high"})
            hi = v.numbers(c, p, "high", lo=0, min_len=1, required=True)
            lo = v.numbers(c, p, "low", lo=0, min_len=1, required=True)
            if len(lo) != len(hi):
                v.fail(p + ".low", lo, f"a list of {len(hi)} numbers >= 0 (one per task cell, as {p}.high)")
            if max(hi) <= 0 or max(lo) <= 0:
                v.fail(p + (".high" if max(hi) <= 0 else ".low"), hi if max(hi) <= 0 else lo,
                       "a profile with at least one positive weight")
            cases.append({"name": v.string(c, p, "name", default=f"pair{i + 1}"), "high": hi, "low": lo,
                          "mass_high": v.number(c, p, "mass_high", lo=0, hi=1, lo_open=True, hi_open=True,
                                                required=True)})
        if len({c["name"] for c in cases}) != len(cases):
            v.fail(pp + "[*].name", [c["name"] for c in cases], "distinct names")
        out["pairs"] = cases
    elif fam == "value-scale":
        vs = v.table(opts, path, "value_scale", required=True)
        p = path + ".value_scale"
        v.keys(vs, p, {"cells", "w", "s", "convergence", "refine"})
        w = _marginal(v, vs, p, "w", "w", unit_interval=False)
        s = _marginal(v, vs, p, "s", "s", unit_interval=True)
        cells = v.number(vs, p, "cells", lo=1, hi=400, integer=True, default=s["n"])
        if cells % s["n"]:
            v.fail(p + ".cells", cells, f"a multiple of {p}.s.n = {s['n']} (s points are j/s.n and must be "
                                        "cell boundaries)")
        conv = v.numbers(vs, p, "convergence", lo=2, hi=60, min_len=1, default=[], increasing=True)
        if any(int(x) != x for x in conv):
            v.fail(p + ".convergence", conv, "a strictly increasing list of integers 2..60 (N for N×N grids)")
        out["value_scale"] = {"w": w, "s": s, "cells": cells, "convergence": [int(x) for x in conv],
                              "refine": v.number(vs, p, "refine", lo=1, hi=20, integer=True, default=4)}
    else:
        a1 = v.table(opts, path, "assumption1", required=True)
        p = path + ".assumption1"
        v.keys(a1, p, {"profiles", "masses"})
        prof = a1.get("profiles")
        if not isinstance(prof, list) or not prof or not all(isinstance(r, list) for r in prof):
            v.fail(p + ".profiles", prof, "a list of relative task-weight profiles (lists of equal length)")
        rows = [v.numbers({"r": r}, f"{p}.profiles[{i}]", "r", lo=0) for i, r in enumerate(prof)]
        if len({len(r) for r in rows}) != 1:
            v.fail(p + ".profiles", prof, "profiles of equal length (one weight per task cell)")
        if any(max(r) <= 0 for r in rows):
            v.fail(p + ".profiles", prof, "profiles with at least one positive weight")
        ms = v.numbers(a1, p, "masses", lo=0, lo_open=True, default=[1.0] * len(rows))
        if len(ms) != len(rows):
            v.fail(p + ".masses", ms, f"{len(rows)} positive numbers (one per profile)")
        out["assumption1"] = {"profiles": rows, "masses": ms}
    return out


# ============================================================ type spaces
@dataclass
class TypeSpace:
    """Discrete multi-dimensional types: profiles ``W`` (M, n), masses, a
    per-type table of labels (w, s, θ, ω, ...) and coordinates for neighbours."""

    family: str
    name: str
    W: np.ndarray
    mass: np.ndarray
    labels: pd.DataFrame
    coords: np.ndarray

    @property
    def M(self) -> int:
        return self.W.shape[0]

    @property
    def n(self) -> int:
        return self.W.shape[1]


def s_points(dist: TypeDistribution, n_s: int):
    """s grid for the value–scale family: right ends j/n_s of n_s equal cells
    of [0, 1] with the cells' probabilities (zero-mass points dropped), so
    every s is a task-cell boundary whenever n is a multiple of n_s."""
    edges = np.linspace(0.0, 1.0, n_s + 1)
    mass = np.diff(dist.cdf(edges))
    keep = mass > 0
    return edges[1:][keep], mass[keep] / mass[keep].sum()


def value_scale_space(w_grid, w_mass, s_grid, s_mass, n: int, sigma: float, name="value-scale") -> TypeSpace:
    T = D.value_scale_types(w_grid, w_mass, s_grid, s_mass, n)
    lab = pd.DataFrame({"w": T["w"], "s": T["s"], "theta": T["w"] * T["s"] ** (1 - sigma)})
    coords = np.column_stack([T["iw"], T["js"]]).astype(float)  # grid neighbours
    return TypeSpace("value-scale", name, T["W"], T["mass"], lab, coords)


def value_scale_uniform(N: int, sigma: float, cells: int | None = None) -> TypeSpace:
    """w, s ~ U[0,1] independent on an N×N grid (w at cell midpoints, s at j/N), N cells unless given."""
    u = TypeDistribution("uniform", 0.0, 1.0)
    wg, wm = u.discretise(N)
    sg, sm = s_points(u, N)
    return value_scale_space(wg, wm, sg, sm, cells or N, sigma, name=f"{N}x{N}")


def two_type_space(wH, wL, pH, name="pair") -> TypeSpace:
    W = np.vstack([wH, wL]).astype(float)
    lab = pd.DataFrame({"type": ["H", "L"]})
    return TypeSpace("two-types", name, W, np.array([pH, 1 - pH]), lab, np.arange(2.0)[:, None])


def assumption1_space(theta, theta_mass, profiles, masses, sigma) -> TypeSpace:
    T = D.assumption1_types(theta, theta_mass, profiles, masses, sigma)
    lab = pd.DataFrame({"theta": T["theta"], "omega": T["omega"]})
    # neighbours: adjacent θ within a profile and every profile at the same θ
    k = np.searchsorted(np.unique(T["theta"]), T["theta"])
    coords = np.column_stack([k, T["omega"] * 0.9]).astype(float)
    return TypeSpace("assumption1", "assumption1", T["W"], T["mass"], lab, coords)


# ============================================================ the NLP
def _directions(W):
    """W = a[:, None] * R[omega]: rows normalised by their max, equal directions merged."""
    a = W.max(axis=1)
    Rn = np.divide(W, a[:, None], out=np.zeros_like(W), where=a[:, None] > 0)
    R, omega = np.unique(np.round(Rn, 12), axis=0, return_inverse=True)
    return a, R, omega.ravel()


def _scales(tech, W, mass):
    """Quantities by the top type's first-best, money by its value, the
    objective by the expected first-best surplus (so the scaled profit is
    O(0.1–1): Ipopt's stopping test bounds the complementarity of each of
    the ~10⁵ bound pairs, and their sum is the objective's error)."""
    thetas = D.theta_of(W, tech.sigma)
    th = float(np.max(thetas))
    Qs = float(cf.first_best_quality(tech, th))
    Xs, Zs = cf.inputs(tech, np.array(Qs))
    fb = float(np.sum(mass / mass.sum() * cf.first_best_surplus(tech, thetas)))
    return {"Q": Qs, "X": np.maximum(Xs, 1e-300), "Z": np.maximum(Zs, tech.baseline or 1e-300) if tech.K else Zs,
            "t": max(th * Qs, 1e-300), "profit": max(fb, 1e-300)}


def _gain_row(tech, m, l, i, form):
    x = [m.x[l, i, j] for j in m.TOKENS]
    z = [m.z[l, k] for k in m.FT]
    if form == "direct":
        return m.g[l, i] <= gain.phi(tech, z) * gain.psi(tech, x)
    # index form: CES index of the cell's tokens >= (g / Φ(z))^(1/σ)
    s = tech.sigma
    if tech.J == 1:
        index = x[0]
    elif tech.rho == 0:
        index = 1
        for j in range(tech.J):
            index = index * x[j] ** tech.alpha[j]
    else:
        index = sum(tech.alpha[j] * x[j] ** tech.rho for j in range(tech.J)) ** (1.0 / tech.rho)
    need = m.g[l, i] ** (1.0 / s)
    if tech.K:
        need = need * gain.phi(tech, z) ** (-1.0 / s)
    return index - need >= 0


def build_menu(tech: cf.Technology, types: TypeSpace, form: str = "index") -> tuple[pyo.ConcreteModel, "MenuProblem"]:
    """Pyomo model of the menu of token distributions without IC rows; the
    returned :class:`MenuProblem` adds them (all pairs or lazily)."""
    W, mass = types.W, types.mass
    M, n = W.shape
    a, R, omega = _directions(W)
    m = pyo.ConcreteModel(name=f"distribution_menu_{types.family}")
    m.TYPES = pyo.RangeSet(0, M - 1)
    m.CELLS = pyo.RangeSet(0, n - 1)
    m.TOKENS = pyo.RangeSet(0, tech.J - 1)
    m.FT = pyo.RangeSet(0, max(tech.K, 1) - 1)
    m.p = pyo.Param(m.TYPES, initialize=dict(enumerate(mass / mass.sum())))
    m.x = pyo.Var(m.TYPES, m.CELLS, m.TOKENS, bounds=(0.0, None), initialize=0.0)
    sc = _scales(tech, W, mass)
    zlo = Z_FLOOR * float(np.min(sc["Z"])) if tech.K and not tech.has_baseline else 0.0
    m.z = pyo.Var(m.TYPES, m.FT, bounds=(zlo, None), initialize=zlo)
    if tech.K == 0:
        m.z.fix(0.0)
    m.g = pyo.Var(m.TYPES, m.CELLS, bounds=(0.0, None), initialize=0.0)
    m.t = pyo.Var(m.TYPES, initialize=0.0)
    toks, fts = list(m.TOKENS), list(m.FT)
    m.gain = pyo.Constraint(m.TYPES, m.CELLS, rule=lambda m, l, i: _gain_row(tech, m, l, i, form))
    m.VALUES = pyo.Set(dimen=2, ordered=True)
    m.S = pyo.Var(m.VALUES, dense=False)
    m.value = pyo.Constraint(m.VALUES)
    cost_x = np.asarray(tech.cost, float)
    m.profit = pyo.Objective(expr=sum(
        m.p[l] * (m.t[l] - sum(cost_x[j] * m.x[l, i, j] for i in m.CELLS for j in toks) / n
                  - gain.spend_z(tech, [m.z[l, k] for k in fts])) for l in m.TYPES), sense=pyo.maximize)
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    sf = m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    sf[m.profit] = 1.0 / sc["profit"]
    for l in range(M):
        sf[m.t[l]] = 1.0 / sc["t"]
        for i in range(n):
            sf[m.g[l, i]] = 1.0 / sc["Q"]
            sf[m.gain[l, i]] = 1.0 / sc["Q"]
            for j in toks:
                sf[m.x[l, i, j]] = 1.0 / sc["X"][j]
        for k in range(tech.K):
            sf[m.z[l, k]] = 1.0 / sc["Z"][k]
    prob = MenuProblem(m, tech, types, a, R, omega, sc)
    m.ir = pyo.Constraint(m.TYPES, rule=lambda m, k: prob.own_value(k) - m.t[k] >= 0)
    for k in range(M):
        sf[m.ir[k]] = 1.0 / sc["t"]
    return m, prob


class MenuProblem:
    """Bookkeeping of one distribution-menu model: the value variables S
    created on demand, the IC rows (a :class:`lazy_ic.PairConstraints`), and
    the :mod:`models.lazy_ic` protocol (numpy utilities, add pairs)."""

    def __init__(self, m, tech, types: TypeSpace, a, R, omega, scales):
        self.m, self.tech, self.types = m, tech, types
        self.a, self.R, self.omega, self.sc = a, R, omega, scales
        self.n_types = types.M
        self.money_scale = scales["t"]
        self.rows = lazy_ic.PairConstraints(m, "ic", self._ic_rule, scale=scales["t"])

    # ---------------------------------------------------------- Pyomo side
    def S(self, om: int, l: int):
        m, key = self.m, (int(om), int(l))
        if key not in m.VALUES:
            m.VALUES.add(key)
            v = m.S[key]
            r = self.R[key[0]]
            cells = np.flatnonzero(r)
            n = self.types.n
            v.value = float(sum(r[i] * (m.g[key[1], i].value or 0.0) for i in cells) / n)
            c = m.value.add(key, v == sum(float(r[i]) / n * m.g[key[1], int(i)] for i in cells))
            m.scaling_factor[v] = 1.0 / self.sc["Q"]
            m.scaling_factor[c] = 1.0 / self.sc["Q"]
        return m.S[key]

    def own_value(self, k: int):
        return self.a[k] * self.S(self.omega[k], k) if self.a[k] > 0 else 0.0

    def _ic_rule(self, m, k, l):
        if self.a[k] == 0:
            return m.t[l] - m.t[k] >= 0
        om = self.omega[k]
        return self.a[k] * (self.S(om, k) - self.S(om, l)) - m.t[k] + m.t[l] >= 0

    def add_pairs(self, pairs) -> int:
        return self.rows.add(pairs)

    def n_pairs(self) -> int:
        return len(self.rows)

    def add_all_pairs(self) -> int:
        M = self.n_types
        k, l = np.nonzero(~np.eye(M, dtype=bool))
        return self.add_pairs(np.column_stack([k, l]))

    # ------------------------------------------------------------ values
    def arrays(self, tighten: bool = True):
        """(x (M, n, J), z (M, K), t (M,)) at the model's current values.

        With ``tighten`` the tokens of each cell are scaled down to the least
        that deliver the model's gain g (x ← x·min(1, g/(ΦΨ(x)))^(1/σ)): the
        interior point leaves x ~ μ/c > 0 on cells that should get nothing,
        and because Ψ has infinite slope at 0 such x carry a gain of
        ~√μ that the model does not count (g ≈ 0 there) but a deviating type
        would.  Tightening only lowers cost and makes every true gain equal
        to the model's g, so the menu read back is feasible for the true
        program whenever the NLP's rows hold.
        """
        m, tech, M, n = self.m, self.tech, self.types.M, self.types.n
        x = np.fromiter((v.value for v in m.x.values()), float, count=M * n * tech.J).reshape(M, n, tech.J)
        z = np.fromiter((v.value for v in m.z.values()), float).reshape(M, -1)[:, : tech.K]
        t = np.fromiter((v.value for v in m.t.values()), float, count=M)
        if tighten:
            g = np.maximum(np.fromiter((v.value for v in m.g.values()), float, count=M * n).reshape(M, n), 0.0)
            true = D.gain_profile(x, z, tech)
            f = np.divide(g, true, out=np.ones_like(g), where=true > g)
            x = x * np.minimum(f, 1.0)[..., None] ** (1.0 / tech.sigma)
        return x, z, t

    def utilities(self):
        x, z, t = self.arrays()
        G = D.gain_profile(x, z, self.tech)
        W, n = self.types.W, self.types.n
        return lambda rows: W[rows] @ G.T / n - t[None, :]

    def set_start(self, x, z, t) -> None:
        """Primal start from per-type items (x (M, n, J), z (M, K), t (M,))."""
        m, tech = self.m, self.tech
        # strictly inside x >= 0: Ψ's derivative is infinite at 0 and the
        # Jacobian is evaluated at the start point
        x = np.maximum(np.asarray(x, float), START_FLOOR * self.sc["X"])
        zz = np.asarray(z, float).reshape(self.types.M, -1)
        G = D.gain_profile(x, zz, tech)
        for (l, i, j), v in zip(m.x.keys(), x.ravel()):
            m.x[l, i, j].value = float(v)
        if tech.K:
            zf = START_FLOOR * self.sc["Z"]
            for (l, k), v in zip(m.z.keys(), zz.ravel()):
                m.z[l, k].value = max(float(v), float(zf[k]))
        for (l, i), v in zip(m.g.keys(), G.ravel()):
            m.g[l, i].value = float(v)
        for l, v in enumerate(np.asarray(t, float)):
            m.t[l].value = float(v)
        n = self.types.n
        for (om, l) in m.VALUES:
            m.S[om, l].value = float(self.R[om] @ G[l] / n)

    def menu(self) -> D.DistributionMenu:
        x, z, t = self.arrays()
        tech, W, mass = self.tech, self.types.W, self.types.mass / self.types.mass.sum()
        X = D.aggregate_tokens(x)
        Q = cf.psi(tech, X) * (cf.phi(tech, z) if tech.K else 1.0)
        return D.DistributionMenu(W=W, mass=mass, x=x, z=z, t=t, Q=np.asarray(Q),
                                  profit=float(np.sum(mass * (t - D.item_cost(x, z, tech)))), regime="NLP")


# ============================================================ starts
def neutral_start(tech, types: TypeSpace, scale: float = 0.5):
    """Each type its own Lemma-1 split of half its first-best quality, at half its value."""
    th = D.theta_of(types.W, tech.sigma)
    Q = scale * cf.first_best_quality(tech, th)
    X, Z = cf.inputs(tech, Q)
    return D.lemma1_split(types.W, X, tech.sigma), np.asarray(Z).reshape(types.M, -1), scale * th * Q


def random_start(tech, types: TypeSpace, rng):
    x, z, t = neutral_start(tech, types, scale=float(rng.uniform(0.2, 0.8)))
    x = x * rng.uniform(0.3, 1.7, x.shape)
    return x, z * rng.uniform(0.3, 1.7, z.shape), t * rng.uniform(0.0, 1.0, t.shape)


def menu_start(menu):
    x = D.per_task_tokens(menu)
    return x, np.asarray(menu.Z if isinstance(menu, D.BudgetMenu) else menu.z), np.asarray(menu.t)


# ============================================================ solving
@dataclass
class Solved:
    """The best of several starts, with the multi-start record and the lazy logs."""

    menu: D.DistributionMenu
    result: object  # SolveResult of the best start
    starts: pd.DataFrame
    lazy: dict = field(default_factory=dict)  # start -> LazyResult
    model: object = None
    problem: MenuProblem | None = None
    seconds: float = 0.0

    @property
    def spread(self) -> float:
        ok = self.starts[self.starts["status"] == "optimal"]["objective"]
        return float(ok.max() - ok.min()) if len(ok) else float("nan")


def solve_menu(tech, types: TypeSpace, ctx, label: str, *, ic: str = "lazy", starts: dict | None = None,
               lazy_opts: dict | None = None, model=None) -> Solved:
    """Solve the distribution menu from each start in ``starts`` (name ->
    (x, z, t)); IC rows all pairs or lazy.  With lazy IC the working set
    carries over from one start to the next (every start still ends with
    an all-pairs audit)."""
    t0 = time.perf_counter()
    lz = {"tol": lazy_ic.LAZY_TOL, "neighbours": 8, "max_add": 0, "max_rounds": 40, "warm": True,
          **(lazy_opts or {})}
    with Timer() as tb:
        if model is None:
            m, prob = build_menu(tech, types)
        else:
            m, prob = model
        if ic == "all-pairs":
            prob.add_all_pairs()
    starts = starts or {"neutral": neutral_start(tech, types)}
    rows, lazies, best = [], {}, None
    for name, (x, z, t) in starts.items():
        prob.set_start(x, z, t)
        lbl = f"{label}[{ic}, start={name}]"
        if ic == "all-pairs":
            r = ctx.solve(m, lbl, tb.seconds, defaults=MENU_SOLVER_DEFAULTS)
            a = lazy_ic.audit(prob.utilities(), prob.n_types, prob.money_scale)
            info = {"rounds": 1, "active_pairs": prob.n_pairs(), "pairs_added": 0, "worst_ic": a.worst_ic,
                    "seconds": r.total_seconds}
        else:
            init = lazy_ic.nearest_pairs(types.coords, lz["neighbours"]) if prob.n_pairs() == 0 else None
            lr = lazy_ic.solve_lazy(
                prob, lambda ws: ctx.solve(m, lbl, tb.seconds, defaults=MENU_SOLVER_DEFAULTS, warm_start=ws),
                initial_pairs=init, tol=lz["tol"], max_add=lz["max_add"] or None, max_rounds=lz["max_rounds"],
                warm=lz["warm"], progress=ctx.progress)
            r = lr.result
            lazies[name] = lr
            info = lr.summary()
        menu = prob.menu()
        rows.append({"start": name, "status": r.status.value, "objective": r.objective, "profit": menu.profit,
                     "iterations": r.iterations, **{k: info[k] for k in ("rounds", "active_pairs", "pairs_added",
                                                                         "worst_ic", "seconds")}})
        if r.ok and (best is None or r.objective > best[1].objective):
            best = (menu, r)
        elif best is None:
            best = (menu, r)
    # leave the model at the best start's point
    menu, r = best
    prob.set_start(menu.x, menu.z, menu.t)
    return Solved(menu=menu, result=r, starts=pd.DataFrame(rows), lazy=lazies, model=m, problem=prob,
                  seconds=time.perf_counter() - t0)
