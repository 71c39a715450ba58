"""How the competition programs are solved: Ipopt options and retries, the cut-off search, the
multi-starts, coarse-to-fine grid ladders and the lazy IC rows.  Writes the start tables and notes;
the mixing audit's rows come from :mod:`.audits`, the comparisons with the closed forms are in :mod:`.checks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from models.closed_form import competition as cc
from models.solver import Timer
from .audits import (
    fringe_topup_numeric, leader_audit, leader_regions, _mixing_audit, TOL_AUDIT, TOL_SERVED, tuned_audit, _utility_scale,
)
from .units import _fb_tokens, _leader_scales, _model_labels, _model_tokens, _switches, _type_surplus, _value
from .programs import (
    build_efficient, _efficient_units, build_leader_nondim, build_leader_tuned, build_monopolist, build_monopolist_assigned,
    BARRIER_RES, FLOOR, FLOOR_TWO_MODEL, KINK_RES, LeaderMenu, leader_gain_bound, leader_held_types, leader_light_bottom,
    leader_profit_scale, leader_type_scale, read_leader, _read_q, _read_t, _read_V,
)


UNRESTRICTED_MAX_N = 400
"""The monopolist's final solve of the *unrestricted* program (both models free for
every type) runs up to this many types: ~60 iterations, <= 2 s at N = 400, but
MUMPS slows to 0.2-1.4 s per iteration at N = 1000 (14-107 s, measured), so
above it the one-model structure is confirmed by the numpy mixing audit only."""


MAX_LAZY_ROUNDS = 3
"""Rounds of lazy IC generation (add violated pairs, re-solve)."""


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


TIE = 1e-9
"""Relative difference below which two starts' objectives count as equal: starts
that end in the same local optimum agree to ~1e-11 at tol 1e-12 (measured), so 1e-9
keeps a factor 100 over that noise.  Neighbouring cut-offs near the optimum differ by
~1/N² (leader: 7e-5 relative at N = 60, ~4e-6 at N = 240), but a cut-off that adds a
*marginal* type can gain much less: competition_50_13 (N = 68) serves θ = 5.8 with
q = 4e-6 of the top type's for a profit gain of 7e-8 relative, which the former 1e-7
treated as a tie (q_L check failed at 3.9e-6 > TOL_DISCRETE)."""


def _better(a: float, b: float) -> bool:
    return a > b + TIE * max(1.0, abs(b))


def _leader_better(lf, theta, mass):
    """Tie rule of the leader's cut-off comparisons: TIE relative to the larger of |b| and 1e-6 of
    the program's profit scale (:func:`programs.leader_profit_scale`), not to max(1, |b|) in money:
    when the served types are light the whole profit is ~1e-10 in money (competition_91_22) and
    every pair of starts tied."""
    S = leader_profit_scale(lf, theta, mass)

    def better(a: float, b: float) -> bool:
        return a > b + TIE * max(abs(b), 1e-6 * S, 1e-300)

    return better


def _cutoff_search(f, lo: int, hi: int, better=None) -> int:
    """Best integer cut-off of f on [lo, hi] where f is flat (a plateau), then
    increasing, then decreasing: bisection on the sign of f(c+1) − f(c), ties
    going right, then a walk to neighbouring cut-offs (from the best one evaluated)
    until neither improves.

    The shape is what Ipopt produces here: a start whose cut-off is too low
    ends in one and the same too-early local optimum (plateau); above it the
    start's cut-off is kept and profit is unimodal in it.  (A golden-section
    search was misled by that plateau — measured on the monopolist, N = 16.)"""
    better = _better if better is None else better
    seen = {}

    def g(c):
        if c not in seen:
            seen[c] = f(c)
        return seen[c]

    a, b = lo, hi
    while a < b:
        c = (a + b) // 2
        if better(g(c), g(c + 1)):
            b = c
        else:
            a = c + 1
    # the walk starts from the best cut-off evaluated so far: a start that ends in a worse local
    # optimum than its cut-off deserves breaks the shape and can send the bisection past the best
    # one (competition_50_13: f(5) < f(4) < f(8), the search ended at 4 and never tried 6, 7)
    return _walk_from_best(g, seen, a, lo, hi, better)


def _walk_from_best(g, seen: dict, cut: int, lo: int, hi: int, better) -> int:
    """From the best cut-off in ``seen`` (if better than ``cut``), step to a neighbouring
    cut-off on [lo, hi] while one improves; ``g`` is the memoised profit filling ``seen``."""
    top = max(seen, key=seen.get) if seen else cut
    if better(g(top), g(cut)):
        cut = top
    while True:
        nb = [c for c in (cut - 1, cut + 1) if lo <= c <= hi]
        best = max(nb, key=g)
        if not better(g(best), g(cut)):
            return cut
        cut = best


FULL_SCAN_MAX_N = 40
"""Leader cut-off starts: up to this many types every cut-off is started (at most N + 1 small solves,
~0.05 s each at N = 40); above it a coarse scan of COARSE_SCAN cut-offs between the bisection's
cut-off and the top, and a neighbour walk from the best one, guard the bisection
(:func:`_global_cutoff`).  Not below the bisection's cut-off: those starts serve nearly every type
and took 214–311 iterations on the empty-middle scenario's N = 250 grid (issue 13: < 300 per solve),
and on a grid of a distribution the local gain of a type rises with θ, so the profile is unimodal
there; a second hump needs far-apart types (files: every cut-off is started up to 40 types)."""


COARSE_SCAN = 9
"""Cut-offs of the coarse scan (evenly spaced on [lo, hi], ends included), as for the monopolist."""


def _global_cutoff(f, lo: int, hi: int, better=None) -> int:
    """:func:`_cutoff_search`, then a guard against a second hump of f: every cut-off when
    hi − lo ≤ FULL_SCAN_MAX_N, else a coarse scan above the bisection's cut-off (FULL_SCAN_MAX_N),
    then a neighbour walk from the best seen.

    The leader's profit from a cut-off start is *not* unimodal in the cut-off when types are far
    apart: each start keeps the types it starts serving if serving them is a local optimum
    (the gain Δ_k of a type is bimodal in q), so f(c) − f(c+1) is roughly the local gain of
    type c, whose sign can change more than once.  competition_90_26 (11 types from a file):
    f(7) < f(8) > f(9) < f(10); the bisection stopped at 8 (θ = 6.36 and 6.79 pooled at
    q = 2.68, profit 2.964) and never tried 10 (only the top type served, 3.051)."""
    better = _better if better is None else better
    seen = {}

    def g(c):
        if c not in seen:
            seen[c] = f(c)
        return seen[c]

    cut = _cutoff_search(g, lo, hi, better=better)
    grid = (range(lo, hi + 1) if hi - lo <= FULL_SCAN_MAX_N
            else np.unique(np.linspace(cut, hi, COARSE_SCAN).round().astype(int)))
    for c in grid:
        g(int(c))
    return _walk_from_best(g, seen, cut, lo, hi, better)


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
    # Tokens at the program's floor are its stand-in for 0 (ASL needs x > 0): read them as 0.  Only a
    # type with θ = 0 sits there (for θ > 0 the marginal value of the η = σ model is infinite at V = 0),
    # but V = (Σ q^(η/σ))^σ is not Lipschitz at 0: at σ = 0.1 the floor 1e-16·τ alone gave V = 2.3e-2 of
    # the top type's V (competition_70_35; 70_12: 1.2e-6) while every token row passed at 3e-11.
    # The floor is relative to each type's own token unit (programs._efficient_units).
    floor = FLOOR_TWO_MODEL * _efficient_units(models, theta)
    q_out = np.where(q_out <= 2 * floor, 0.0, q_out)
    obj_out = float(np.sum(mass * _type_surplus(models, theta, q_out))) if used.startswith("per-type") else obj_out
    _mixing_audit(res, models, _value(models, q_out), q_out, "efficient_mixing_audit")
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
    _mixing_audit(res, models, chosen.values["V"], chosen.values["q"], mass=mass)
    return chosen


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


def unserved_as_outside(lf, theta, menu: LeaderMenu) -> LeaderMenu:
    """The menu with every item the NLP does not sell (q_k below the break-even quality q_be, region 0
    of :func:`audits.leader_regions`) read as "no leader item": q_k = 0, T_k = 0, the buyer's top-up its
    stand-alone fringe purchase; the objective changes by Σ p_k(c_L q_k − T_k) over those types.

    Below q_be an item loses money on whoever buys it (u(θ, q) ≤ u0(θ) + c_F q^r), so at every optimum
    those types buy nothing from the leader (q = 0, T = T_0 = 0).  The NLP leaves them off its floor
    by the barrier: the IC row of type k has a multiplier ~ its tail mass 1 − P_(k−1), so its slack is
    ~ μ/(1 − P_(k−1)); for light top types that is a *negative* price, which every type can take.
    competition_90_47 (Beta(0.72, 3.6), the leader serves nobody): q up to 1.9e-7 of the quality scale,
    T down to −2.6e-5 (1.6e-7 of the utility scale); the all-pairs audit failed and the lazy re-solve of
    that degenerate menu (every item at ~0) ran to max_iter.  What the user gets for such a type is the
    outside option; the all-pairs audit then judges the menu that is exported."""
    # the floor of each type is relative to its own unit (programs.leader_type_scale), not the top's
    off = leader_regions(lf, theta, menu.q, leader_type_scale(lf, theta)) == 0
    if not off.any():
        return menu
    q, T, f = menu.q.copy(), menu.T.copy(), menu.f.copy()
    gain = float(np.sum(menu.mass[off] * (lf.c_L * q[off] - T[off])))
    q[off], T[off] = 0.0, 0.0
    f[off] = fringe_topup_numeric(np.asarray(theta, float)[off], 0.0, lf.sigma, lf.c_F)
    return replace(menu, q=q, T=T, f=f, objective=menu.objective + gain)


def _adjacent_rows(viol, bad, thr) -> set:
    """IC rows to add for the violated all-pairs entries ``bad`` (k, l) of a leader menu (γ_F = 0):
    the *adjacent* rows (j, j ± 1) between k and l that are themselves violated by more than ``thr``,
    or (k, l) itself when none is.

    Why adjacent rows suffice: the buyer's value u(θ, q) = max_x θ(q^r + x)^σ − c_F x has (weakly)
    increasing differences in (θ, q) (∂u/∂θ = max(q^r, A(θ))^σ, non-decreasing in q), so for a monotone
    q (the program's rows q_k ≥ q_(k−1)) the adjacent rows of one direction imply every row of that
    direction: U_j ≥ u(θ_j, q_(j+1)) − T_(j+1) for j = k … l−1 gives U_k ≥ u(θ_k, q_l) − T_l (telescoping,
    T_(j+1) − T_j ≥ u(θ_j, q_(j+1)) − u(θ_j, q_j) and increasing differences move each step down to θ_k).
    Why not (k, l) itself: an item of a type below the solver's resolution (profit weight < tol: nothing
    but the barrier places it) can be priced low enough that every lower type wants it
    (competition_92_33: the top type, mass 1.6e-23, at T = −0.2 of its binding price).  Adding the N − 1
    rows (k, N−1) for k < N−1 gave that one item N − 1 nearly parallel rows with multipliers ~ μ, and the
    re-solve ended 'acceptable' from every start (the exact discrete optimum included); the one
    adjacent row (N−2, N−1) pins it as well, and the re-solve ends 'optimal'."""
    rows = set()
    for k, l in bad:
        step = 1 if l > k else -1
        chain = [(j, j + step) for j in range(k, l, step)]
        hit = [pr for pr in chain if viol[pr] > thr]
        rows |= set(hit) if hit else {(k, l)}
    return rows


def _lazy_solve(ctx, label, build, audit, theta, mass, q0, T0, f0, pairs, ir_types, lazy=True, read=None,
                adjacent=False):
    """Build (``build(q0, T0, f0, pairs, ir_types)``) and solve; with ``lazy``, add every IC/IR pair
    that ``audit(q, T)`` (an all-pairs numpy audit) finds violated by more than TOL_AUDIT on the
    menu's utility scale, and re-solve from the last menu, up to MAX_LAZY_ROUNDS times.
    ``adjacent``: the IC rows added are those of :func:`_adjacent_rows` (single-crossing programs).
    ``read(menu)``: applied to every menu read off a solve (default: as read)."""
    read = (lambda mn: mn) if read is None else read
    with Timer() as tb:
        m = build(q0, T0, f0, pairs, ir_types)
    r = _solve_start(ctx, m, label, tb.seconds)
    menu = read(read_leader(m, theta, mass, r))
    for rounds in range(1, MAX_LAZY_ROUNDS + 1):
        if not (lazy and r.ok):
            break
        aud = audit(menu.q, menu.T)
        thr = TOL_AUDIT * _utility_scale(menu.T, aud["U"])
        bad = np.argwhere(aud["viol"] > thr)
        if not len(bad):
            break
        N = len(theta)
        ic = [(int(k), int(l)) for k, l in bad if l < N]
        new_pairs = set(menu.pairs) | (_adjacent_rows(aud["viol"], ic, thr) if adjacent else set(ic))
        new_ir = set(menu.ir_types) | {int(k) for k, l in bad if l == N}
        n_new = len(new_pairs - set(menu.pairs)) + len(new_ir - set(menu.ir_types))
        ctx.progress(f"    {label}: lazy IC round {rounds}: {len(bad)} violated pairs, adding {n_new} rows")
        with Timer() as tb:
            m = build(menu.q, menu.T, menu.f, sorted(new_pairs), sorted(new_ir))
        r = _solve_start(ctx, m, f"{label}[lazy {rounds}]", tb.seconds)
        menu = read(read_leader(m, theta, mass, r))
    return menu


def solve_leader(lf, theta, mass, ctx, label, q0, T0=None, f0=None, pairs=None, ir_types=(0,), lazy=False):
    """Build and solve; with ``lazy`` add the rows that the numpy all-pairs audit finds violated (IR rows,
    and for IC the violated adjacent rows between the pair, :func:`_adjacent_rows`) and re-solve."""
    return _lazy_solve(ctx, label, lambda *a: build_leader_nondim(lf, theta, mass, *a),
                       lambda q, T: leader_audit(lf, theta, q, T), theta, mass, q0, T0, f0, pairs, ir_types, lazy,
                       read=lambda mn: unserved_as_outside(lf, theta, mn), adjacent=True)


def _leader_start_guesses(lf, theta, mass):
    """Candidate-regime start quantities: limit quality and interior (discrete virtual value)."""
    A = fringe_topup_numeric(theta, 0.0, lf.sigma, lf.c_F)
    q_limit = A ** (1 / lf.r)  # the buyer stops topping up at q^r = A
    phi = cc.discrete_virtual_values(theta, mass)
    q_int = (lf.eta * np.maximum(phi, 0.0) / lf.c_L) ** (1 / (1 - lf.eta))
    return q_limit, q_int


def _entry_index(lf, theta, q, qs) -> int:
    """First type the menu serves, by the rule of :func:`audits.leader_regions` (q ≥ q_be): the old
    q > TOL_SERVED·q(θ_max) skipped every limit-priced type when their quantities are ≪ the top type's,
    so the finer grids' cut-off walk started 10 types too high and every start there failed
    (competition_70_11, N = 27: three starts 'infeasible', no menu)."""
    srv = np.nonzero(leader_regions(lf, theta, q, leader_type_scale(lf, theta)) > 0)[0]
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

    def run_start(label, q0, T0=None):
        menu = solve_leader(lf, theta, mass, ctx, f"leader_fringe{tag}[{label}]", q0, T0)
        r = menu.result
        # the objective of the menu that is exported (unsold items read as the outside option)
        attempts.append(Attempt(label, r.status.value, menu.objective, r.iterations,
                                detail=f"first served θ = {theta[_entry_index(lf, theta, menu.q, qs)]:.4g}"
                                if _entry_index(lf, theta, menu.q, qs) < N else "leader serves nobody",
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

    better = _leader_better(lf, theta, mass)
    _global_cutoff(f, 0, N, better=better)
    return attempts


def _best_attempt(attempts):
    ok = [a for a in attempts if a.status == "optimal"]
    pool = ok or attempts
    return max(pool, key=lambda a: a.objective if np.isfinite(a.objective) else -np.inf)


def _leader_refine(lf, theta, mass, ctx, coarse: LeaderMenu, label):
    """Finer grid: start from the coarse menu (interpolated), then neighbouring cut-offs."""
    N = len(theta)
    _, cqs, _ = _leader_scales(lf, coarse.theta)
    ce = _entry_index(lf, coarse.theta, coarse.q, cqs)
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
        attempts.append(Attempt(f"cutoff[{cut}]", r.status.value, menu.objective, r.iterations, result=r,
                                values={"menu": menu}))
        cache[cut] = menu.objective if r.ok else -np.inf
        return cache[cut]

    cut = min(max(base_cut, 0), N)
    better = _leader_better(lf, theta, mass)
    while True:  # profit is unimodal in the cut-off near the optimum: walk uphill
        here = f(cut)
        up = f(cut + 1) if cut < N else -np.inf
        down = f(cut - 1) if cut > 0 else -np.inf
        if better(up, here) and up >= down:
            cut += 1
        elif better(down, here):
            cut -= 1
        else:
            break
    if not any(a.status == "optimal" for a in attempts):
        # the walk is a heuristic (starts interpolated from the coarse menu); when none of its starts
        # converges, the grid gets the full start schedule (competition_70_11, N = 54: the three walk
        # starts ended 'infeasible' / max_iter, the regime starts of leader_multistart converge)
        attempts += leader_multistart(lf, theta, mass, ctx, tag=f"{label}[fallback]")
    return attempts


def leader_final(lf, theta, mass, ctx, menu: LeaderMenu, label: str) -> LeaderMenu:
    """Lazy IC generation on a chosen menu (the best start of a grid): the menu itself when its
    all-pairs audit is clean, else the lazy re-solve from it (:func:`solve_leader`, ``lazy=True``).

    A re-solve of the same program from its optimum adds nothing and, on a hard instance, ended
    'infeasible' after 3000 iterations (competition_50_36), hence the audit first.  Every grid whose
    menu is reported needs this step, not only the scenario grid: the starts carry the downward adjacent
    IC rows only, and the items of types below the solver's resolution are placed by the barrier alone
    (competition_81_0, convergence grids N = 22, 44: the top types' masses 1e-16 … 1e-52, their prices
    drifted down until lower types would take those items, all-pairs violations ~1e15, the money scale)."""
    aud = leader_audit(lf, theta, menu.q, menu.T)
    if not np.any(aud["viol"] > TOL_AUDIT * _utility_scale(menu.T, aud["U"])):
        return menu
    return solve_leader(lf, theta, mass, ctx, label, menu.q, menu.T, menu.f, menu.pairs, menu.ir_types, lazy=True)


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
    n_bad = sum(a.status != "optimal" for a in attempts)
    if n_bad and leader_gain_bound(lf, theta, mass) == 0.0:
        # stranger17 / comp17b: the starts stall on a flat objective; say so instead of leaving bare 'acceptable' rows
        res.notes.append(
            f"leader_fringe: no type can gain from a leader item (a priori bound Σ p_k G_k = 0: every type's best "
            f"item is worth no more than its fringe-only utility), so every IR menu's profit is ≤ 0 and serving "
            f"nobody is optimal.  The leader program's objective is then flat: {n_bad} of {len(attempts)} starts "
            f"ended short of 'optimal' (Ipopt stalls on the types of negligible mass, whose variables no gradient "
            f"pins); they are listed in the starts table, scored −∞ in the cut-off search and not used")
    best = _best_attempt(attempts)
    menu = best.values["menu"]
    final = leader_final(lf, theta, mass, ctx, menu, "leader_fringe[final]")
    attempts.append(Attempt("final (best start kept: all-pairs audit clean)" if final is menu else
                            "final (from best, lazy IC audit)", final.result.status.value, final.objective,
                            final.result.iterations, detail=f"{len(final.pairs)} IC rows, {len(final.ir_types)} IR rows"))
    res.solves["leader_fringe"] = final.result
    if tables:
        tab = _attempt_table(attempts[-1:])
        tab.insert(0, "N", N)
        res.tables["leader_fringe_starts"] = pd.concat(tables + [tab], ignore_index=True)
    else:
        res.tables["leader_fringe_starts"] = _attempt_table(attempts)
    known[N] = final
    n_out, share = leader_light_bottom(lf, theta, mass)
    if n_out:
        res.notes.append(
            f"leader_fringe: the {n_out} lowest types (θ ≤ {theta[n_out - 1]:.4g}, masses {np.min(mass[:n_out]):.1e} … "
            f"{np.max(mass[:n_out]):.1e}) are held at the outside option in the program: each one's optimum lies "
            f"within √mu_init = {KINK_RES:.1e} of the kink of its own utility, which Ipopt does not resolve, and "
            f"together they can add at most {share:.1e} of the a priori profit bound (programs.KINK_RES, "
            f"LIGHT_BOTTOM); the profit row against the discrete closed form judges what that costs")
    n_zero = int(np.sum(leader_held_types(lf, theta, mass))) - n_out
    if n_zero > 0:
        res.notes.append(
            f"leader_fringe: {n_zero} types that can gain nothing from a leader item (G_k = 0) and weigh less than "
            f"BARRIER_RES = {BARRIER_RES:.0e} of the objective are held at the outside option in the program: "
            f"exact (their optimum is no leader item), and the barrier, not the objective, would place them")
    ok = [a.objective for a in attempts if a.status == "optimal"]
    res.notes.append(
        f"leader_fringe: {len(attempts)} solves, {len(ok)} converged; regime starts: "
        + ", ".join(f"{a.label} {a.objective:.8g}" for a in attempts[:3])
        + f"; best {best.label} {best.objective:.10g}; spread over converged starts {max(ok) - min(ok):.4g}")
    return final, known


def solve_leader_tuned(tf, theta, mass, ctx, label, q0, T0=None, f0=None, pairs=None, ir_types=(0,)):
    """Build, solve and add every IC/IR pair the exact all-pairs audit finds violated (lazy rows)."""
    return _lazy_solve(ctx, label, lambda *a: build_leader_tuned(tf, theta, mass, *a),
                       lambda q, T: tuned_audit(tf, theta, q, T), theta, mass, q0, T0, f0, pairs, ir_types)


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

    _global_cutoff(f, 0, N)
    return attempts, ref0
