#!/usr/bin/env python
"""Budget menu with local IC: Pyomo+Ipopt vs scipy.optimize and CVXPY on the same program.

    .venv/bin/python bench/budget_menu.py [--sizes 1000,10000,100000]
        [--methods pyomo,trust-constr,cvxpy] [--timeout 300] [--threads 1] [--json FILE]

The discretised budget menu of data/budgets_cobb_douglas.toml (Cobb-Douglas,
J = 2 token classes, K = 1 fine-tuning class, σ + γ = 0.65 < 1) over N
uniform types on [0, 1] with equal spacing, written as docs/model.md §2.4's local
form — per type X_k1, X_k2, Z_k ≥ 0, Q_k ≥ 0, t_k::

    max  Σ_k p_k (t_k − c·X_k − ĉ Z_k)
    s.t. Q_k ≤ X_k1^(σα1) X_k2^(σα2) Z_k^γ          (gain, convex set)
         θ_1 Q_1 − t_1 ≥ 0                           (IR, lowest type)
         θ_k (Q_k − Q_{k−1}) − t_k + t_{k−1} ≥ 0     (adjacent downward IC)
         Q_k ≥ Q_{k−1}                               (monotone)

solved by

* ``pyomo``         models.budgets.build_menu(ic="local") + models.solver.solve
                    (cyipopt route, MENU_SOLVER_DEFAULTS) — the project's
                    algebraic model;
* ``structured``    models.menu_nlp.BudgetMenuNLP + models.solver.solve_structured:
                    the same program, rows, scaling and Ipopt options as
                    vectorised callbacks behind PyNumero's CyIpoptProblemInterface
                    — the full program without Pyomo's model building;
* ``presolved``     models.menu_nlp.PresolvedBudgetMenuNLP: the same program after
                    an exact presolve step (t in differences: each is a free
                    column singleton, removed with its IR/IC row; postsolve
                    recovers t) — what the budgets regime uses from N = 5000;
* ``trust-constr``  scipy.optimize.minimize(method="trust-constr"): sparse
                    Jacobians, exact gradients and exact Lagrangian Hessian;
* ``slsqp``         scipy.optimize.minimize(method="SLSQP"): exact dense
                    Jacobians (dense QP subproblems: small N only; not in
                    the default list: it fails on this program already at
                    N = 50, "Singular matrix E in LSQ subproblem");
* ``cvxpy``         CVXPY with its default solver for the problem class (it
                    prints which it picked); the gain constraint is DCP as a
                    chain of 3 vectorised power cones (x1^a x2^(1−a) ≥ u,
                    u^b z^(1−b) ≥ v, v^η·1^(1−η) ≥ Q), i.e. the geo_mean with a
                    constant 1 of weight 1−η, without N separate atoms;
* ``cvxpy-acc``     the same with Clarabel's tolerances tightened (CLARABEL_ACC)
                    so that its answer meets the issue's accuracy bar (Q error
                    ≤ 1e-6 vs the discrete closed form), which its defaults miss;
* ``cvxpy-presolved`` CVXPY (default Clarabel) given the presolved program too,
                    so the presolve step is not counted as the toolkit's edge.

Every baseline gets the same variables in the same units as Pyomo's user
scaling (quantities / first-best of the top type, money / its value), the
objective per unit of max mass as Pyomo (trust-constr) or per buyer (CVXPY:
Clarabel fails at 10^5 with the former, trust-constr diverges with the
latter), the same start where it takes one, and its solver's default
tolerances (Pyomo: the project's MENU_SOLVER_DEFAULTS, tol 1e-12).

Each (method, N) runs in a fresh subprocess (peak memory = ru_maxrss of that
child, imports included); one that exceeds --timeout, or that a method
cannot handle, prints "did not finish" and the larger sizes of that method
are skipped.  Each result is checked with numpy against the exact discrete
optimum (models.closed_form.budgets.discrete_menu): ``rel.err`` = (objective
− optimum)/|optimum|, ``Q err`` = max_k |Q_k − Q_k*| / max Q*, ``viol`` =
worst scaled constraint violation of the returned point, so a baseline that
stops early or inaccurately shows (ratios against a non-optimal status are
flagged).  ``cpu s`` is the child's user+sys CPU time: with
other processes on the 2 cores, wall times stretch, CPU times much less.

Needs cvxpy (bench-only dependency): .venv/bin/pip install -r bench/requirements.txt
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "data" / "budgets_cobb_douglas.toml"
METHODS = ("pyomo", "structured", "presolved", "trust-constr", "slsqp", "cvxpy", "cvxpy-acc", "cvxpy-presolved")
DEFAULT_METHODS = ("pyomo", "structured", "presolved", "trust-constr", "cvxpy", "cvxpy-acc", "cvxpy-presolved")
PROJECT_METHODS = ("pyomo", "structured", "presolved")
# The accuracy bar for a solved menu: max relative error on Q vs the
# discrete closed form (budgets.TOL_DISCRETE).
ACCURACY_BAR = 1e-6
# Clarabel tolerances for ``cvxpy-acc``: its defaults (1e-8) miss the bar
# (Q err 4.9e-6 at N = 10^3, 9.5e-5 at 10^4); 1e-10 meets it (2.8e-7, 3.0e-7);
# 1e-12 ends "optimal_inaccurate" at 10^4 (measured with this script's program).
CLARABEL_ACC = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
INSTALL = ".venv/bin/pip install -r bench/requirements.txt"
# SLSQP keeps dense (m+n)×n matrices and solves a dense LSQ per iteration:
# refuse sizes whose dense Jacobian alone would exceed this.
SLSQP_MAX_DENSE_BYTES = 2 * 1024**3


# ------------------------------------------------------------------ problem
class Problem:
    """The discretised program in scaled units (numpy; shared by every method).

    Variables v = [x1, x2, z, q, τ] (each length N) with X_j = Xs_j x_j,
    Z = Zs z, Q = Qs q, t = ts τ; minimise f(v) = −Σ w_k (τ_k − κ·inputs_k),
    w_k = p_k / max p, so profit = max p · ts · (−f).
    """

    def __init__(self, N: int):
        import numpy as np

        sys.path.insert(0, str(ROOT))
        from models import scenario
        from models.closed_form import cost as cf

        scn = scenario.load(SCENARIO)
        tech = scn.technology
        if not (tech.rho == 0 and tech.J == 2 and tech.K == 1 and tech.rho_hat == 0 and not tech.has_baseline):
            raise SystemExit(f"{SCENARIO.name}: the bench needs Cobb-Douglas with J = 2, K = 1, no baseline")
        self.tech = tech
        self.theta, self.mass = scn.discrete_types(N)
        self.N = N = len(self.theta)
        th = float(self.theta.max())
        self.Qs = float(cf.first_best_quality(tech, th))
        Xs, Zs = cf.inputs(tech, np.array(self.Qs))
        self.Xs, self.Zs = np.asarray(Xs, float), np.asarray(Zs, float)
        self.ts = th * self.Qs
        self.pmax = float(self.mass.max())
        self.a = np.array([tech.sigma * tech.alpha[0], tech.sigma * tech.alpha[1], tech.gamma])
        self.eta = float(self.a.sum())
        # Q_s·G = Ψ(Xs)Φ(Zs): G = 1 for a cost-minimising bundle, kept general
        self.G = float(np.prod(np.r_[self.Xs, self.Zs] ** self.a)) / self.Qs
        self.w = self.mass / self.pmax
        self.kappa = np.array([tech.cost[0] * self.Xs[0], tech.cost[1] * self.Xs[1],
                               tech.cost_hat[0] * self.Zs[0]]) / self.ts
        self.r = self.theta / th  # θ_k / θ_max: IC/IR coefficients in scaled units
        # build_menu's neutral start
        Q0 = np.maximum(0.5 * cf.first_best_quality(tech, self.theta), 1e-3 * self.Qs)
        X0, Z0 = cf.inputs(tech, Q0)
        t0 = 0.5 * self.theta * Q0
        self.v0 = np.concatenate([np.maximum(X0[:, 0], 1e-8) / self.Xs[0], np.maximum(X0[:, 1], 1e-8) / self.Xs[1],
                                  np.maximum(Z0[:, 0], 1e-8) / self.Zs[0], Q0 / self.Qs, t0 / self.ts])

    # unscaled arrays <-> scaled vector
    def unpack(self, v):
        N = self.N
        x1, x2, z, q, tau = (v[i * N:(i + 1) * N] for i in range(5))
        return x1, x2, z, q, tau

    def physical(self, v):
        import numpy as np

        x1, x2, z, q, tau = self.unpack(v)
        X = np.c_[x1 * self.Xs[0], x2 * self.Xs[1]]
        return X, (z * self.Zs[0])[:, None], q * self.Qs, tau * self.ts

    def reference(self):
        from models.closed_form import budgets as cb

        return cb.discrete_menu(self.tech, self.theta, self.mass)

    def reference_profit(self) -> float:
        return self.reference().profit(self.tech)

    def check(self, X, Z, Q, t) -> tuple[float, float]:
        """(profit, worst scaled violation) of a menu in physical units."""
        import numpy as np

        X, Z, Q, t = (np.asarray(a, float) for a in (X, Z, Q, t))
        profit = float(np.sum(self.mass * (t - X @ np.asarray(self.tech.cost) - Z @ np.asarray(self.tech.cost_hat))))
        gain = np.maximum(X[:, 0], 0) ** self.a[0] * np.maximum(X[:, 1], 0) ** self.a[1] * np.maximum(Z[:, 0], 0) ** self.a[2]
        th = self.theta
        viol = [
            np.max(Q - gain) / self.Qs,
            -(th[0] * Q[0] - t[0]) / self.ts,
            -np.min(th[1:] * (Q[1:] - Q[:-1]) - t[1:] + t[:-1], initial=0.0) / self.ts,
            -np.min(Q[1:] - Q[:-1], initial=0.0) / self.Qs,
            -np.min(X / self.Xs), -np.min(Z / self.Zs), -np.min(Q) / self.Qs,
        ]
        return profit, max(0.0, float(max(viol)))

    # -------- scipy pieces (scaled): f, ∇f, gain h(v) = G Π x^a − q ≥ 0, A v ≥ 0
    def objective(self):
        import numpy as np

        N, w, k = self.N, self.w, self.kappa
        g = np.concatenate([w * k[0], w * k[1], w * k[2], np.zeros(N), -w])

        def f(v):
            return float(g @ v)

        return f, (lambda v: g)

    def gain(self):
        import numpy as np
        import scipy.sparse as sp

        N, a, G = self.N, self.a, self.G
        rows = np.repeat(np.arange(N), 4)
        cols = (np.arange(N)[:, None] + N * np.arange(4)[None, :]).ravel()  # x1, x2, z, q of type k

        def parts(v):
            x = np.maximum(np.stack(self.unpack(v)[:3]), 1e-300)  # (3, N)
            P = G * np.prod(x ** a[:, None], axis=0)
            return x, P

        def h(v):
            _, P = parts(v)
            return P - self.unpack(v)[3]

        def jac(v):
            x, P = parts(v)
            vals = np.concatenate([a[:, None] * P / x, -np.ones((1, N))]).T.ravel()
            return sp.csr_matrix((vals, (rows, cols)), shape=(N, 5 * N))

        hr = np.concatenate([np.arange(N) + N * i for i in range(3) for j in range(3)])
        hc = np.concatenate([np.arange(N) + N * j for i in range(3) for j in range(3)])

        def hess(v, lam):
            x, P = parts(v)
            blocks = []
            for i in range(3):
                for j in range(3):
                    blocks.append(lam * P * (a[i] * a[j] - (a[i] if i == j else 0.0)) / (x[i] * x[j]))
            return sp.csr_matrix((np.concatenate(blocks), (hr, hc)), shape=(5 * N, 5 * N))

        return h, jac, hess

    def linear(self):
        """Sparse A with A v ≥ 0: IR (1 row), IC (N−1), monotone (N−1)."""
        import numpy as np
        import scipy.sparse as sp

        N, r = self.N, self.r
        q, tau = 3 * N, 4 * N
        k = np.arange(1, N)
        m = N - 1
        ic_r = np.repeat(1 + np.arange(m), 4)
        ic_c = np.stack([q + k, q + k - 1, tau + k, tau + k - 1], axis=1).ravel()
        ic_v = np.stack([r[1:], -r[1:], -np.ones(m), np.ones(m)], axis=1).ravel()
        mo_r = np.repeat(1 + m + np.arange(m), 2)
        mo_c = np.stack([q + k, q + k - 1], axis=1).ravel()
        mo_v = np.tile([1.0, -1.0], m)
        rows = np.concatenate([[0, 0], ic_r, mo_r])
        cols = np.concatenate([[q, tau], ic_c, mo_c])
        vals = np.concatenate([[r[0], -1.0], ic_v, mo_v])
        return sp.csr_matrix((vals, (rows, cols)), shape=(1 + 2 * m, 5 * N))


# ------------------------------------------------------------------ methods
def run_pyomo(prob: Problem) -> dict:
    import numpy as np

    from models.budgets import MENU_SOLVER_DEFAULTS, build_menu
    from models.solver import solve

    t0 = time.perf_counter()
    m = build_menu(prob.tech, prob.theta, prob.mass, ic="local")
    t1 = time.perf_counter()
    r = solve(m, options=_ipopt_options(MENU_SOLVER_DEFAULTS), build_seconds=t1 - t0, allow_nonoptimal=True)
    N = prob.N
    X = np.array([[m.X[k, j].value for j in range(2)] for k in range(N)])
    Z = np.array([[m.Z[k, 0].value] for k in range(N)])
    Q = np.array([m.Q[k].value for k in range(N)])
    t = np.array([m.t[k].value for k in range(N)])
    return {"build": r.build_seconds, "translate": r.translate_seconds, "solve": r.solve_seconds,
            "iterations": r.iterations, "status": r.status.value, "solver": f"Ipopt {r.ipopt_version} ({r.route})",
            "menu": (X, Z, Q, t)}


def _scipy_common(prob: Problem):
    import numpy as np

    f, grad = prob.objective()
    h, hjac, hhess = prob.gain()
    A = prob.linear()
    N = prob.N
    lb = np.r_[np.zeros(4 * N), np.full(N, -np.inf)]
    return f, grad, h, hjac, hhess, A, lb


def run_trust_constr(prob: Problem) -> dict:
    import numpy as np
    import scipy
    import scipy.sparse as sp
    from scipy.optimize import Bounds, LinearConstraint, NonlinearConstraint, minimize

    t0 = time.perf_counter()
    f, grad, h, hjac, hhess, A, lb = _scipy_common(prob)
    n = 5 * prob.N
    zero_h = sp.csr_matrix((n, n))
    cons = [NonlinearConstraint(h, 0.0, np.inf, jac=hjac, hess=hhess), LinearConstraint(A, 0.0, np.inf)]
    # keep_feasible=True (iterates inside the bounds) was measured worse: it
    # stops with "constraint violation exceeds gtol" 83% below the optimum
    bounds = Bounds(lb, np.full(n, np.inf))
    t1 = time.perf_counter()
    res = minimize(f, prob.v0, jac=grad, hess=lambda v: zero_h, method="trust-constr",
                   constraints=cons, bounds=bounds)
    t2 = time.perf_counter()
    return {"build": t1 - t0, "translate": 0.0, "solve": t2 - t1, "iterations": int(res.nit),
            "status": {1: "optimal", 2: "xtol"}.get(res.status, f"status {res.status}: {res.message}"),
            "solver": f"scipy {scipy.__version__} trust-constr", "menu": prob.physical(res.x)}


def run_slsqp(prob: Problem) -> dict:
    import numpy as np
    import scipy
    from scipy.optimize import minimize

    n, m = 5 * prob.N, 3 * prob.N - 1
    need = 8 * (m + n) * n
    if need > SLSQP_MAX_DENSE_BYTES:
        raise TooLarge(f"SLSQP dense matrices ~{need / 1024**3:.0f} GB > {SLSQP_MAX_DENSE_BYTES / 1024**3:.0f} GB")
    t0 = time.perf_counter()
    f, grad, h, hjac, hhess, A, lb = _scipy_common(prob)
    Ad = A.toarray()
    cons = [{"type": "ineq", "fun": h, "jac": lambda v: hjac(v).toarray()},
            {"type": "ineq", "fun": lambda v: Ad @ v, "jac": lambda v: Ad}]
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lb]
    t1 = time.perf_counter()
    res = minimize(f, prob.v0, jac=grad, method="SLSQP", constraints=cons, bounds=bounds,
                   options={"maxiter": 1000})
    t2 = time.perf_counter()
    return {"build": t1 - t0, "translate": 0.0, "solve": t2 - t1, "iterations": int(res.nit),
            "status": "optimal" if res.status == 0 else f"status {res.status}: {res.message}",
            "solver": f"scipy {scipy.__version__} SLSQP", "menu": prob.physical(res.x)}


IPOPT_ENV = "BUDGET_MENU_BENCH_IPOPT"  # JSON of --ipopt options, parent -> worker


def _ipopt_options(defaults) -> dict:
    """The project's defaults plus any --ipopt KEY=VALUE given to the bench."""
    return {**defaults, **json.loads(os.environ.get(IPOPT_ENV, "{}"))}


def _run_menu_nlp(prob: Problem, cls_name: str) -> dict:
    from models import menu_nlp
    from models.budgets import MENU_SOLVER_DEFAULTS
    from models.solver import solve_structured

    t0 = time.perf_counter()
    p = getattr(menu_nlp, cls_name)(prob.tech, prob.theta, prob.mass)
    t1 = time.perf_counter()
    r = solve_structured(p, options=_ipopt_options(MENU_SOLVER_DEFAULTS), build_seconds=t1 - t0,
                         allow_nonoptimal=True)
    t2 = time.perf_counter()
    menu = p.menu(r.x)  # the presolved form's postsolve (transfers) counts as translation
    return {"build": r.build_seconds, "translate": r.translate_seconds + time.perf_counter() - t2,
            "solve": r.solve_seconds, "iterations": r.iterations, "status": r.status.value,
            "solver": f"Ipopt {r.ipopt_version} ({r.route}, {cls_name})", "menu": (menu.X, menu.Z, menu.Q, menu.t)}


def run_structured(prob: Problem) -> dict:
    return _run_menu_nlp(prob, "BudgetMenuNLP")


def run_presolved(prob: Problem) -> dict:
    return _run_menu_nlp(prob, "PresolvedBudgetMenuNLP")


def run_cvxpy_presolved(prob: Problem) -> dict:
    return run_cvxpy(prob, presolved=True)


def run_cvxpy_acc(prob: Problem) -> dict:
    return run_cvxpy(prob, CLARABEL_ACC)


def run_cvxpy(prob: Problem, solver_opts: dict | None = None, presolved: bool = False) -> dict:
    """The program in CVXPY (Clarabel, default or ``solver_opts``).  With
    ``presolved``: the presolved program -- max Σ Q_k(W_kθ_k − W_{k+1}θ_{k+1})
    − costs s.t. the gain cones and monotone Q -- and the same postsolve for t."""
    import cvxpy as cp
    import numpy as np

    t0 = time.perf_counter()
    # objective per buyer (weights p_k, Σ = 1) rather than Pyomo's per unit of
    # max mass (Σ = N): with the latter Clarabel stops with InsufficientProgress
    # at N = 10^5 and is 2x slower and 30x less accurate at 10^4 (measured);
    # trust-constr is the other way round (diverges with p_k weights).
    N, a, w, k, r = prob.N, prob.a, prob.mass, prob.kappa, prob.r
    x1, x2, z, q = (cp.Variable(N, nonneg=True) for _ in range(4))
    u, v = cp.Variable(N), cp.Variable(N)
    s12 = a[0] + a[1]
    cons = [
        cp.PowCone3D(x1, x2, u, np.full(N, a[0] / s12)),  # u ≤ x1^α x2^(1−α)
        cp.PowCone3D(u, z, v, np.full(N, s12 / prob.eta)),  # v ≤ u^β z^(1−β)
        cp.PowCone3D(v, np.ones(N), q / prob.G, np.full(N, prob.eta)),  # q/G ≤ v^η
    ]
    if presolved:
        W = np.cumsum(w[::-1])[::-1]
        tau = None
        obj = cp.Maximize((W * r - np.r_[W[1:] * r[1:], 0.0]) @ q - w @ (k[0] * x1 + k[1] * x2 + k[2] * z))
    else:  # rows in the order IR, IC, monotone (Clarabel's path depends on it)
        tau = cp.Variable(N)
        cons += [r[0] * q[0] - tau[0] >= 0, cp.multiply(r[1:], q[1:] - q[:-1]) - tau[1:] + tau[:-1] >= 0]
        obj = cp.Maximize(w @ (tau - k[0] * x1 - k[1] * x2 - k[2] * z))
    cons.append(q[1:] - q[:-1] >= 0)
    problem = cp.Problem(obj, cons)
    t1 = time.perf_counter()
    if solver_opts:
        problem.solve(solver="CLARABEL", **solver_opts)
    else:
        problem.solve()
    t2 = time.perf_counter()
    st = problem.solver_stats
    comp = float(getattr(problem, "compilation_time", 0.0) or 0.0)
    vals = [np.asarray(x.value if x.value is not None else np.full(N, np.nan), float) for x in (x1, x2, z, q)]
    if presolved:  # postsolve: the removed IR/IC rows hold with equality
        vals.append(np.cumsum(np.r_[r[0] * vals[3][0], r[1:] * np.diff(vals[3])]))
    else:
        vals.append(np.asarray(tau.value if tau.value is not None else np.full(N, np.nan), float))
    return {"build": t1 - t0, "translate": comp, "solve": (t2 - t1) - comp,
            "iterations": int(st.num_iters) if st.num_iters is not None else -1,
            "status": "optimal" if problem.status == "optimal" else str(problem.status),
            "solver": f"cvxpy {cp.__version__} -> {st.solver_name}" + (" (presolved)" if presolved else ""),
            "menu": prob.physical(np.concatenate(vals))}


RUNNERS = {"pyomo": run_pyomo, "structured": run_structured, "presolved": run_presolved,
           "trust-constr": run_trust_constr, "slsqp": run_slsqp, "cvxpy": run_cvxpy, "cvxpy-acc": run_cvxpy_acc,
           "cvxpy-presolved": run_cvxpy_presolved}


class TooLarge(RuntimeError):
    """The method cannot handle this size (decided before trying)."""


def worker(method: str, N: int) -> dict:
    import resource

    if method.startswith("cvxpy"):
        try:
            import cvxpy  # noqa: F401
        except ImportError:
            return {"error": f"cvxpy is not installed: {INSTALL}"}
    import numpy as np

    prob = Problem(N)
    ref_menu = prob.reference()
    ref = ref_menu.profit(prob.tech)
    try:
        out = RUNNERS[method](prob)
    except TooLarge as exc:
        return {"error": str(exc), "too_large": True}
    menu = out.pop("menu")
    profit, viol = prob.check(*menu)
    q_err = float(np.max(np.abs(np.asarray(menu[2], float) - ref_menu.Q)) / ref_menu.Q.max())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.update(N=prob.N, objective=profit, reference=ref, rel_error=(profit - ref) / abs(ref), violation=viol,
               q_error=q_err,
               peak_mb=ru.ru_maxrss / 1024, cpu=ru.ru_utime + ru.ru_stime)
    out["total"] = out["build"] + out["translate"] + out["solve"]
    return out


# ------------------------------------------------------------------ parent
def run_case(method: str, N: int, timeout: float, threads: int | None = None) -> dict:
    env = dict(os.environ)
    env["PYOMO_CONFIG_DIR"] = str(ROOT / ".pyomo")
    if threads:
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, str(N)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish: > {timeout:g} s (killed)", "dnf": True}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"error": f"did not finish: {tail[0][:200]}", "dnf": True}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_child"] = wall
    if res.get("too_large"):
        res["error"] = "did not finish: " + res["error"]
        res["dnf"] = True
    return res


def _meets(r: dict) -> bool:
    return r.get("status") == "optimal" and r.get("q_error", float("inf")) <= ACCURACY_BAR


def _fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="numbers of types N (default 1000,10000,100000)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated, from {','.join(METHODS)} (default {','.join(DEFAULT_METHODS)})")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per (method, N) case (default 300)")
    ap.add_argument("--threads", type=int, default=None,
                    help="set OMP/OPENBLAS/MKL_NUM_THREADS in every case (default: leave the environment as is)")
    ap.add_argument("--json", type=Path, default=None, help="also write all measurements to this file")
    ap.add_argument("--ipopt", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Ipopt option for the pyomo and structured methods (repeatable), "
                         "e.g. --ipopt linear_solver=spral --ipopt tol=1e-10")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return 0

    extra = {}
    for kv in args.ipopt:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            ap.error(f"--ipopt wants KEY=VALUE, got {kv!r}")
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                pass
        extra[k.strip()] = v
    if extra:
        os.environ[IPOPT_ENV] = json.dumps(extra)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not sizes or min(sizes) < 2:
        ap.error(f"unknown method(s) {bad}; choose from {METHODS}" if bad else "--sizes: integers >= 2")
    if any(m.startswith("cvxpy") for m in methods):
        try:
            import cvxpy  # noqa: F401
        except ImportError:
            print(f"cvxpy is not installed (bench-only dependency): {INSTALL}\n"
                  f"running without it.", file=sys.stderr)
            methods = [m for m in methods if not m.startswith("cvxpy")]

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    print(f"budget menu, local IC, {SCENARIO.relative_to(ROOT)} (Cobb-Douglas J=2, K=1), uniform types on [0,1], "
          f"equal spacing; variables 5N, constraints 3N-1")
    print(f"machine: {os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"timeout {args.timeout:g} s per case; threads "
          f"{args.threads or os.environ.get('OMP_NUM_THREADS', 'as the environment (OMP_NUM_THREADS unset)')}"
          + (f"; extra Ipopt options {extra}" if extra else ""))
    results: dict[tuple[str, int], dict] = {}
    for method in methods:
        stop = None
        for N in sizes:
            if stop:
                results[(method, N)] = {"error": f"skipped ({stop})", "dnf": True}
                continue
            log(f"[{time.strftime('%H:%M:%S')}] {method} N={N} (load {os.getloadavg()[0]:.2f}) ...")
            r = run_case(method, N, args.timeout, args.threads)
            results[(method, N)] = r
            if r.get("dnf"):
                stop = f"N={N} did not finish"
            log("   " + (r["error"] if "error" in r else f"{r['total']:.2f} s, {r['status']}, rel.err {r['rel_error']:+.1e}"))
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")

    hdr = (f"{'method':<16}{'N':>7}{'build s':>9}{'transl. s':>10}{'solve s':>9}{'total s':>9}{'cpu s':>8}"
           f"{'peak MB':>9}{'iter':>6}  {'status':<10}{'rel.err':>10}{'Q err':>9}{'viol':>9}  bar")
    print(hdr)
    print("-" * len(hdr))
    for (method, N), r in results.items():
        if "error" in r:
            print(f"{method:<16}{N:>7}  {r['error']}")
            continue
        print(f"{method:<16}{N:>7}{r['build']:>9.2f}{r['translate']:>10.2f}{r['solve']:>9.2f}{r['total']:>9.2f}"
              f"{r['cpu']:>8.1f}{r['peak_mb']:>9.0f}{r['iterations']:>6}  {r['status'][:10]:<10}"
              f"{r['rel_error']:>+10.1e}{r['q_error']:>9.1e}{r['violation']:>9.1e}  "
              f"{'meets' if _meets(r) else 'MISSES'}")
    solvers = sorted({f"{m}: {r['solver']}" for (m, _), r in results.items() if "solver" in r})
    print("solvers: " + "; ".join(solvers))
    print("total = build + translate + solve (wall, imports and checks excluded); cpu s = the child's whole "
          "user+sys CPU incl. imports; rel.err = (objective - closed form)/|closed form|; Q err = max_k "
          "|Q_k - closed form| / max Q; viol = worst scaled constraint violation; bar = optimal with "
          f"Q err <= {ACCURACY_BAR:g} (the issue's accuracy requirement)")

    for own in [m for m in PROJECT_METHODS if m in methods]:
        print(f"\ntime ratios baseline / {own} (total s; > 1 means {own} is faster):")
        any_ratio = False
        for method in methods:
            if method in PROJECT_METHODS:
                continue
            for N in sizes:
                b, p = results.get((method, N), {}), results.get((own, N), {})
                if "total" in b and "total" in p:
                    any_ratio = True
                    flag = "" if _meets(b) else f"   [{method} misses the accuracy bar: {b['status'][:20]}, " \
                                                f"Q err {b['q_error']:.1e}]"
                    print(f"  {method:<16} N={N:<7} {b['total'] / p['total']:>8.2f}x   "
                          f"({b['total']:.2f} s / {p['total']:.2f} s; cpu {b['cpu']:.1f} / {p['cpu']:.1f} s){flag}")
        if not any_ratio:
            print(f"  none: no size where a baseline and {own} both finished")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("json", "worker")},
                                         "results": [{"method": m, "N": N, **r} for (m, N), r in results.items()]},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
