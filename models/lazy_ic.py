r"""Lazy generation of incentive constraints for menus over many discrete types.

A menu assigns item ``m`` to type ``m``.  Incentive compatibility asks, for
every ordered pair (m, l),

.. math:: U_{mm} \ge U_{ml},\qquad U_{ml} = \text{utility of type } m \text{ from item } l,

which is M² rows: 2.56 million for a 40×40 grid of types.  Most of them are
slack at the optimum.  :func:`solve_lazy` keeps only a working set:

1. start from "local" pairs (neighbours in some type coordinates,
   :func:`nearest_pairs`, :func:`adjacent_pairs`);
2. solve the NLP with those rows only;
3. audit *all* M² pairs in numpy (:func:`audit`, vectorised, in row chunks so
   memory stays bounded: 1,600 types = 2.56M pairs take milliseconds);
4. add the violated pairs, most violated first, at most ``max_add`` per round;
5. re-solve warm (primal point and Ipopt multipliers of the previous round,
   new rows start at multiplier 0) until the worst violation over all pairs
   is ≤ ``tol`` (in units of the problem's money scale).

The loop knows nothing about the economics.  A problem is anything with

``n_types``
    number of types (= items);
``money_scale``
    a positive number; violations are reported divided by it;
``utilities() -> callable``
    reads the model's *current* solution once and returns ``u(rows)``, the
    (len(rows), n_types) matrix of type ``rows[k]``'s utility from every
    item, computed independently in numpy (from the tokens, not read off
    the constraint rows, so the audit checks the economics rather than the
    formulation);
``add_pairs(pairs) -> int``
    add the rows ``ic[m, l]`` for a (k, 2) integer array to the Pyomo model
    and return how many were new (:class:`PairConstraints` does the Pyomo
    part: a constraint indexed by a growing ``Set``, scaled like the
    model's other money rows);
``n_pairs() -> int``
    IC rows currently in the model.

:class:`BudgetMenuProblem` adapts the budget menu of ``models.budgets`` (types
with θ values; item = (Q, t)); ``models.distributions`` adapts the menu of
token distributions.  The solve itself is a callback too, so the caller keeps
its own options and progress reporting.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from models.closed_form import cost as cf
from models.solver import SolveResult, Status, WarmStart

# Stop when the worst IC violation over all M² pairs, divided by the
# problem's money scale, is at most this: a tenth of the 1e-7, so
# an IC audit at 1e-7 in the same units has a 10× margin over what the
# loop guarantees (models.distributions.TOL_AUDIT).  Ipopt's own violation
# of the rows in the model is ~1e-12 at tol 1e-12, so the loop can get
# there (it adds every pair violated by more than this).
LAZY_TOL = 1e-8
# Audit chunk: at most this many (m, l) entries in memory at once
# (2^22 doubles = 32 MB, ~3 ms per chunk for the 1,600-type grid).
CHUNK_ENTRIES = 1 << 22


class LazyProblem(Protocol):
    n_types: int
    money_scale: float

    def utilities(self) -> Callable[[np.ndarray], np.ndarray]: ...

    def add_pairs(self, pairs: np.ndarray) -> int: ...

    def n_pairs(self) -> int: ...


# ------------------------------------------------------------------ audit
@dataclass
class Audit:
    """Outcome of one all-pairs audit.  Violations are in money-scale units."""

    worst_ic: float  # max over m≠l of (U_ml − U_mm)⁺ / scale
    worst_pair: tuple[int, int]
    worst_ir: float  # max over m of (−U_mm)⁺ / scale
    n_violated: int  # pairs with violation > tol
    top: np.ndarray  # (k, 2) most violated pairs, most violated first (k ≤ cap)
    top_violation: np.ndarray  # (k,)
    seconds: float
    pairs_checked: int


def audit(utility: Callable[[np.ndarray], np.ndarray], n_types: int, scale: float = 1.0,
          tol: float = LAZY_TOL, cap: int | None = None, chunk_entries: int = CHUNK_ENTRIES) -> Audit:
    """Audit every IC pair (m, l) and IR of a square menu (type m owns item m).

    ``utility(rows)`` returns the (len(rows), n_types) utility matrix.  Rows
    are processed in chunks of ``chunk_entries // n_types``; per chunk only
    the ``cap`` largest violations are kept (argpartition), so the memory is
    O(chunk + cap) whatever M is.
    """
    t0 = time.perf_counter()
    M = int(n_types)
    rows_per = max(1, chunk_entries // max(M, 1))
    cap = M * M if cap is None else int(cap)
    worst, worst_pair, worst_ir, count = 0.0, (0, 0), 0.0, 0
    keep_v, keep_p = [], []
    for a in range(0, M, rows_per):
        rows = np.arange(a, min(a + rows_per, M))
        U = np.asarray(utility(rows), float)
        own = U[np.arange(len(rows)), rows]
        reg = (U - own[:, None]) / scale
        reg[np.arange(len(rows)), rows] = -np.inf  # a type never "deviates" to its own item
        k = int(np.argmax(reg))
        if reg.flat[k] > worst:
            worst, worst_pair = float(reg.flat[k]), (int(rows[k // M]), int(k % M))
        worst_ir = max(worst_ir, float(np.max(-own / scale)))
        bad = np.flatnonzero(reg > tol)
        count += bad.size
        if bad.size:
            vals = reg.flat[bad]
            if bad.size > cap:
                sel = np.argpartition(-vals, cap - 1)[:cap]
                bad, vals = bad[sel], vals[sel]
            keep_v.append(vals)
            keep_p.append(np.column_stack([rows[bad // M], bad % M]))
    if keep_v:
        v = np.concatenate(keep_v)
        p = np.concatenate(keep_p)
        order = np.argsort(-v, kind="stable")[:cap]
        top, top_v = p[order], v[order]
    else:
        top, top_v = np.empty((0, 2), int), np.empty(0)
    return Audit(worst_ic=max(worst, 0.0), worst_pair=worst_pair, worst_ir=max(worst_ir, 0.0), n_violated=count,
                 top=top, top_violation=top_v, seconds=time.perf_counter() - t0, pairs_checked=M * (M - 1))


# ----------------------------------------------------------- initial pairs
def nearest_pairs(coords, k: int, chunk_entries: int = CHUNK_ENTRIES) -> np.ndarray:
    """Ordered pairs (m, l) and (l, m) for the ``k`` nearest neighbours l of each
    type m in ``coords`` (M, d) (Euclidean; ties broken by index).  Chunked
    like :func:`audit`.  Returns a sorted unique (P, 2) array."""
    X = np.atleast_2d(np.asarray(coords, float))
    if X.shape[0] == 1 and X.ndim == 2 and np.ndim(coords) == 1:
        X = X.T
    M = X.shape[0]
    k = int(min(k, M - 1))
    if k <= 0:
        return np.empty((0, 2), int)
    sq = np.sum(X * X, axis=1)
    rows_per = max(1, chunk_entries // M)
    out = []
    for a in range(0, M, rows_per):
        rows = np.arange(a, min(a + rows_per, M))
        d = sq[rows, None] + sq[None, :] - 2 * X[rows] @ X.T
        d[np.arange(len(rows)), rows] = np.inf
        nb = np.argpartition(d, k - 1, axis=1)[:, :k]
        out.append(np.column_stack([np.repeat(rows, k), nb.ravel()]))
    p = np.concatenate(out)
    return unique_pairs(np.concatenate([p, p[:, ::-1]]))


def adjacent_pairs(order) -> np.ndarray:
    """Both directions between neighbours in a 1-D order (e.g. types sorted by θ)."""
    o = np.asarray(order, int)
    p = np.column_stack([o[:-1], o[1:]])
    return unique_pairs(np.concatenate([p, p[:, ::-1]]))


def unique_pairs(pairs) -> np.ndarray:
    p = np.asarray(pairs, int).reshape(-1, 2)
    p = p[p[:, 0] != p[:, 1]]
    return np.unique(p, axis=0) if len(p) else p


# ------------------------------------------------------ the Pyomo side
class PairConstraints:
    """A family of rows ``model.<name>[m, l]`` over a growing index set.

    ``rule(model, m, l)`` returns the relational expression; ``scale`` (if
    given and the model has a ``scaling_factor`` Suffix) is the row scale, a
    number or a function ``scale(m, l)`` of the pair.
    Adding a pair twice is a no-op.  ``model.<name>_PAIRS`` holds the index.
    """

    def __init__(self, model, name: str, rule: Callable, scale: float | Callable | None = None):
        self.model, self.rule, self.scale = model, rule, scale
        self.index = pyo.Set(dimen=2, ordered=True)
        model.add_component(f"{name}_PAIRS", self.index)
        self.con = pyo.Constraint(self.index)
        model.add_component(name, self.con)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, pair) -> bool:
        return tuple(pair) in self.index

    def add(self, pairs) -> int:
        sf = getattr(self.model, "scaling_factor", None)
        n = 0
        for m, l in np.asarray(pairs, int).reshape(-1, 2):
            p = (int(m), int(l))
            if m == l or p in self.index:
                continue
            self.index.add(p)
            c = self.con.add(p, self.rule(self.model, *p))
            if self.scale and isinstance(sf, pyo.Suffix):
                sf[c] = 1.0 / (self.scale(*p) if callable(self.scale) else self.scale)
            n += 1
        return n

    def pairs(self) -> np.ndarray:
        return np.array(list(self.index), int).reshape(-1, 2)


# ------------------------------------------------------------- the loop
@dataclass
class LazyRound:
    round: int
    active_pairs: int  # IC rows in the model when this round was solved
    added: int  # rows added after this round's audit
    worst_ic: float
    worst_ir: float
    violated_pairs: int
    status: str
    iterations: int
    objective: float
    build_seconds: float  # adding rows (Pyomo)
    translate_seconds: float
    solve_seconds: float
    audit_seconds: float


@dataclass
class LazyResult:
    result: SolveResult  # the last solve
    rounds: list[LazyRound]
    converged: bool  # worst violation over all pairs ≤ tol and the last solve optimal
    tol: float
    seconds: float  # wall clock of the whole loop (adding rows, solves, audits)
    initial_pairs: int
    final_audit: Audit | None = field(default=None, repr=False)
    stopped: str = ""  # why the loop stopped before converging or max_rounds ("" otherwise)

    @property
    def active_pairs(self) -> int:
        return self.rounds[-1].active_pairs if self.rounds else 0

    @property
    def pairs_added(self) -> int:
        return self.active_pairs - self.initial_pairs

    @property
    def worst_ic(self) -> float:
        return self.rounds[-1].worst_ic if self.rounds else float("nan")

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rounds])

    def summary(self) -> dict:
        return {"rounds": len(self.rounds), "initial_pairs": self.initial_pairs, "active_pairs": self.active_pairs,
                "pairs_added": self.pairs_added, "worst_ic": self.worst_ic, "converged": self.converged,
                "seconds": self.seconds,
                "solve_seconds": sum(r.solve_seconds + r.translate_seconds for r in self.rounds),
                "audit_seconds": sum(r.audit_seconds for r in self.rounds)}


def solve_lazy(problem: LazyProblem, solve: Callable[[WarmStart | None], SolveResult], *,
               initial_pairs=None, tol: float = LAZY_TOL, max_add: int | None = None, max_rounds: int = 30,
               warm: bool = True, progress: Callable[[str], None] | None = None,
               max_limit_rounds: int | None = None) -> LazyResult:
    """Solve with lazily generated IC rows (module doc).

    ``solve(warm_start)`` solves the model as it stands and returns a
    ``SolveResult`` (it must not raise on non-convergence).  ``max_add``
    caps the rows added per round (default: the number of types).  With
    ``warm`` the next round starts from the previous multipliers.
    ``max_limit_rounds`` (default: no limit): stop once that many rounds
    since the last optimal one ended at Ipopt's iteration or time limit
    (``LazyResult.stopped`` says so) -- each such round costs the whole
    iteration budget and its point is no basis for the next one.
    """
    t_start = time.perf_counter()
    M = problem.n_types
    cap = M if max_add is None else int(max_add)
    tb = time.perf_counter()
    if initial_pairs is not None and len(initial_pairs):
        problem.add_pairs(np.asarray(initial_pairs, int))
    n0 = active = problem.n_pairs()
    build_s = time.perf_counter() - tb
    rounds: list[LazyRound] = []
    warm_start = res = a = None
    converged = False
    stopped, at_limit = "", 0
    for r in range(1, max_rounds + 1):
        res = solve(warm_start)
        if res.status in (Status.MAX_ITERATIONS, Status.MAX_TIME):
            at_limit += 1
        elif res.ok:
            at_limit = 0
        a = audit(problem.utilities(), M, problem.money_scale, tol, cap)
        done = a.worst_ic <= tol
        tb = time.perf_counter()
        added = 0 if done else problem.add_pairs(a.top)
        rounds.append(LazyRound(r, active, added, a.worst_ic, a.worst_ir, a.n_violated, res.status.value,
                                res.iterations, res.objective, build_s, res.translate_seconds, res.solve_seconds,
                                a.seconds))
        build_s = time.perf_counter() - tb
        if progress:
            progress(f"      lazy IC round {r}: {active} pairs, {res.status.value}, objective {res.objective:.12g}, "
                     f"worst violation {a.worst_ic:.2e} ({a.n_violated} pairs > tol), +{added}")
        if done:
            converged = res.ok
            break
        if added == 0:  # the violated rows are in the model already: the solve itself is off
            break
        if max_limit_rounds and at_limit >= max_limit_rounds:
            stopped = f"{at_limit} rounds since the last optimal one ended at Ipopt's limit ({res.status.value})"
            if progress:
                progress(f"      lazy IC: stopped, {stopped} (worst violation {a.worst_ic:.2e})")
            break
        active += added
        warm_start = res.warm if warm else None
    return LazyResult(result=res, rounds=rounds, converged=converged, tol=tol,
                      seconds=time.perf_counter() - t_start, initial_pairs=n0, final_audit=a, stopped=stopped)


# --------------------------------------------- adapter: the budget menu
class BudgetMenuProblem:
    """The budget menu of ``models.budgets.build_menu`` over (possibly
    multi-dimensional) types that it sees only through θ: item l = (Q_l, t_l),
    type m's utility ``θ_m Q_l − t_l`` with Q_l = min(Q variable, Ψ(X_l)Φ(Z_l))
    recomputed from the inputs in numpy (inputs a hair above 0 on an
    excluded item give Ψ ~ √x ≫ x; the item can deliver exactly Q with fewer).

    Pass a model built with ``ic="local"``: its local rows (which presume
    types sorted by θ) are deactivated here and IC rows ``ic_lazy[m, l]`` are
    generated instead.
    """

    def __init__(self, model, tech):
        self.m, self.tech = model, tech
        for name in ("ic_down", "ic_up", "mono", "ic"):
            c = getattr(model, name, None)
            if c is not None:
                c.deactivate()
        self.theta = np.array([pyo.value(model.theta[k]) for k in model.TYPES])
        self.n_types = len(self.theta)
        self.money_scale = 1.0 / float(model.scaling_factor[model.profit]) \
            if isinstance(getattr(model, "scaling_factor", None), pyo.Suffix) else 1.0
        self.rows = PairConstraints(
            model, "ic_lazy",
            lambda m, k, l: m.theta[k] * (m.Q[k] - m.Q[l]) - m.t[k] + m.t[l] >= 0, scale=self.money_scale)

    def n_pairs(self) -> int:
        return len(self.rows)

    def add_pairs(self, pairs) -> int:
        return self.rows.add(pairs)

    def items(self):
        """(Q, t) of every item at the model's current values; Q from the inputs."""
        m = self.m
        X = np.array([[pyo.value(m.X[k, j]) for j in m.TOKENS] for k in m.TYPES])
        Z = np.array([[pyo.value(m.Z[k, i]) for i in m.FT] for k in m.TYPES])[:, : self.tech.K]
        Q = cf.psi(self.tech, X) * (cf.phi(self.tech, Z) if self.tech.K else 1.0)
        Q = np.minimum(Q, np.array([pyo.value(m.Q[k]) for k in m.TYPES]))
        t = np.array([pyo.value(m.t[k]) for k in m.TYPES])
        return Q, t

    def utilities(self):
        Q, t = self.items()
        return lambda rows: self.theta[rows, None] * Q[None, :] - t[None, :]
