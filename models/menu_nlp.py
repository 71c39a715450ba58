"""The local-IC budget menu as a *structured* NLP: vectorised numpy callbacks
behind PyNumero's ``CyIpoptProblemInterface`` (no Pyomo model, no NL file).

It is the same program as ``budgets.build_menu(..., ic="local")`` -- same
variables, rows, bounds, objective and user scaling, in the same order -- so
Ipopt takes the same path; only the evaluation engine differs.  Pyomo's
algebraic model spends ~60 % of its time at N = 10^5 building the model and
writing/reading the NL file (measured: build 11 s + translate 22 s of 68 s);
here set-up is a few numpy arrays and every callback is O(N) vector work.
``tests/test_menu_nlp.py`` checks derivatives by finite differences and that
both formulations give the same menu.

Program (types k = 0..N-1, θ increasing, masses p_k)::

    max  Σ_k p_k (t_k − c·X_k − ĉ·Z_k)
    s.t. quality[k]:  Q_k − Ψ(X_k)Φ(Z_k) ≤ 0                  (N rows)
         ir:          θ_0 Q_0 − t_0 ≥ 0                        (1 row)
         ic_down[k]:  θ_k (Q_k − Q_{k−1}) − t_k + t_{k−1} ≥ 0   (N−1 rows)
         mono[k]:     Q_k − Q_{k−1} ≥ 0                        (N−1 rows)
         0 ≤ X, Z, Q ≤ their upper bounds (budgets.UB_FACTOR)

Variables are stored block-wise: X_0..X_{J−1}, Z_0..Z_{K−1}, Q, t (N each).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models import solver  # noqa: F401  (names the project's ASL build first)
from models.budgets import menu_scales, menu_upper_bounds, start_floors  # noqa: F401  (one scaling, one set of bounds for every form)
from models.closed_form import budgets as cb
from models.closed_form import cost as cf

_INF = 2e19  # Ipopt's "no bound" (nlp_upper_bound_inf is 1e19)


from models.budgets import _ces, gain_derivatives  # noqa: E402,F401  (one implementation, in budgets)


def neutral_start(tech: cf.Technology, theta):
    """``build_menu``'s start: first-best quality at half scale."""
    Q0 = np.maximum(0.5 * cf.first_best_quality(tech, theta), 1e-3 * cf.first_best_quality(tech, theta[-1]))
    X0, Z0 = cf.inputs(tech, Q0)
    return Q0, _cols(X0, len(theta)), _cols(Z0, len(theta)), 0.5 * theta * Q0


def _cols(a, N):
    """(N, d) array from cf.inputs output (which may be (N,) or (N, 0))."""
    a = np.asarray(a, float)
    return a[:, None] if a.ndim == 1 else a.reshape(N, a.shape[-1] if a.ndim > 1 else 1)


def _types(nlp, tech, theta, mass):
    """Common attributes of both menu NLPs; returns (θ, p, N, J, K)."""
    nlp.tech = tech
    nlp.theta = th = np.asarray(theta, float)
    nlp.mass = p = np.asarray(mass, float)
    N, J, K = len(th), tech.J, tech.K
    if N < 2 or np.any(np.diff(th) <= 0):
        raise ValueError("types must be at least two, strictly increasing")
    nlp.N, nlp.J, nlp.K = N, J, K
    nlp.d = J + K  # inputs per type
    return th, p, N, J, K


def _upper_bounds(tech, theta, mass) -> np.ndarray:
    """budgets.menu_upper_bounds over the (X, Z, Q) blocks, N entries each."""
    Qub, Xub, Zub = menu_upper_bounds(tech, theta, mass)
    N = len(theta)
    return np.concatenate([np.repeat(Xub, N), np.repeat(np.asarray(Zub, float)[: tech.K], N), np.full(N, Qub)])


def _sparsity(nlp, A) -> None:
    """Jacobian and Hessian structure shared by both menu NLPs: N quality rows
    over (d inputs, Q) of each type -- inputs in blocks of N, Q at block d --
    then the linear rows A (COO); the Hessian is the lower triangle of each
    type's d×d input block."""
    N, d = nlp.N, nlp.d
    kk = np.arange(N)
    nlp._jrows = np.concatenate([np.repeat(kk, d + 1), A.row + N])
    nlp._jcols = np.concatenate([(kk[:, None] + N * np.arange(d + 1)[None, :]).ravel(), A.col])
    nlp._Avals = A.data
    nlp._hpairs = [(a, b) for a in range(d) for b in range(a + 1)]
    nlp._hrows = np.concatenate([kk + N * a for a, b in nlp._hpairs])
    nlp._hcols = np.concatenate([kk + N * b for a, b in nlp._hpairs])
    nlp._cache_x = nlp._cache = None


# --------------------------------------------------------------- the NLP
class BudgetMenuNLP(solver.structured_base()):
    """Local-IC budget menu over N discrete types (see the module doc)."""

    def __init__(self, tech: cf.Technology, theta, mass, start: cb.Menu | None = None):
        th, p, N, J, K = _types(self, tech, theta, mass)
        self.nv = (self.d + 2) * N
        self._iQ, self._it = self.d * N, (self.d + 1) * N
        self.cost = np.r_[np.asarray(tech.cost, float), np.asarray(tech.cost_hat, float)[:K]]
        # objective as handed to Ipopt: minimise −profit (PyNumero's convention
        # for a maximisation, so multipliers read as in solver._solve_cyipopt)
        self._grad = np.concatenate([np.repeat(self.cost, N) * np.tile(p, self.d), np.zeros(N), -p])
        # linear rows (IR, IC, mono) as one sparse block A v ≥ 0; the quality
        # rows are Q − ΨΦ ≤ 0 as Pyomo writes them, so multipliers (and the
        # duals solve_structured reports) match the Pyomo model's sign for sign
        k = np.arange(1, N)
        q, t = self._iQ, self._it
        ic_r = np.repeat(1 + np.arange(N - 1), 4)
        ic_c = np.stack([q + k, q + k - 1, t + k, t + k - 1], axis=1).ravel()
        ic_v = np.stack([th[1:], -th[1:], -np.ones(N - 1), np.ones(N - 1)], axis=1).ravel()
        mo_r = np.repeat(N + np.arange(N - 1), 2)
        mo_c = np.stack([q + k, q + k - 1], axis=1).ravel()
        mo_v = np.tile([1.0, -1.0], N - 1)
        A = sp.coo_matrix((np.concatenate([[th[0], -1.0], ic_v, mo_v]),
                           (np.concatenate([[0, 0], ic_r, mo_r]), np.concatenate([[q, t], ic_c, mo_c]))),
                          shape=(2 * N - 1, self.nv))
        self._A = A.tocsr()
        Acoo = self._A.tocoo()
        _sparsity(self, Acoo)
        # start and scaling
        if start is None:
            Q0, X0, Z0, t0 = neutral_start(tech, th)
        else:
            Q0, X0, Z0, t0 = start.Q, start.X, start.Z, start.t
        X0, Z0 = _cols(X0, N), _cols(Z0, N)[:, :K]
        xf, zf = start_floors(tech, th)
        self._ub = _upper_bounds(tech, th, p)
        self._x0 = np.concatenate([np.maximum(np.asarray(X0, float).T, xf[:, None]).ravel(),
                                   np.maximum(Z0.T, zf[:K, None]).ravel(), np.maximum(Q0, 0.0)])
        self._x0 = np.r_[np.minimum(self._x0, self._ub), np.asarray(t0, float)]
        Qs, Xs, Zs, ts, obj_s = menu_scales(tech, th, p)
        self._scaling = (obj_s, np.concatenate([np.repeat(1.0 / Xs, N), np.repeat(1.0 / Zs, N),
                                                np.full(N, 1.0 / Qs), np.full(N, 1.0 / ts)]),
                         np.concatenate([np.full(N, 1.0 / Qs), [1.0 / ts], np.full(N - 1, 1.0 / ts),
                                         np.full(N - 1, 1.0 / Qs)]))
        super().__init__()

    # ---- sizes, bounds, start, scaling
    def x_init(self):
        return self._x0

    def x_lb(self):
        return np.r_[np.zeros(self._it), np.full(self.N, -_INF)]

    def x_ub(self):
        return np.r_[self._ub, np.full(self.N, _INF)]

    def g_lb(self):
        return np.r_[np.full(self.N, -_INF), np.zeros(2 * self.N - 1)]

    def g_ub(self):
        return np.r_[np.zeros(self.N), np.full(2 * self.N - 1, _INF)]

    def scaling_factors(self):
        return self._scaling

    # ---- callbacks
    def _gain(self, v):
        """gain_derivatives at v, cached: Ipopt asks for rows, Jacobian and
        Hessian at the same point, and at N = 10^3 these numpy calls are a
        quarter of the run (perf)."""
        if self._cache_x is not None and np.array_equal(v, self._cache_x):
            return self._cache
        N = self.N
        X = v[: self.J * N].reshape(self.J, N)
        Z = v[self.J * N: self._iQ].reshape(self.K, N)
        self._cache = gain_derivatives(self.tech, X, Z)
        self._cache_x = np.array(v, copy=True)
        return self._cache

    def objective(self, v):
        return float(self._grad @ v)

    def gradient(self, v):
        return self._grad

    def constraints(self, v):
        val, _, _ = self._gain(v)
        return np.concatenate([v[self._iQ: self._it] - val, self._A @ v])

    def jacobianstructure(self):
        return self._jrows, self._jcols

    def jacobian(self, v):
        _, g, _ = self._gain(v)
        gv = np.concatenate([-g, np.ones((1, self.N))]).T.ravel()
        return np.concatenate([gv, self._Avals])

    def hessianstructure(self):
        return self._hrows, self._hcols

    def hessian(self, v, lam, obj_factor):
        # objective is linear: only the quality rows g_k = Q_k − ΨΦ contribute
        # λ_k ∇²g_k = −λ_k ∇²(ΨΦ) to Ipopt's Lagrangian f + λ'g
        _, _, H = self._gain(v)
        lk = lam[: self.N]
        return np.concatenate([-lk * H[a, b] for a, b in self._hpairs])

    # ---- results
    def profit(self, v) -> float:
        return -self.objective(v)

    def menu(self, v) -> cb.Menu:
        N, J, K = self.N, self.J, self.K
        X = v[: J * N].reshape(J, N).T.copy()
        Z = v[J * N: self._iQ].reshape(K, N).T.copy() if K else np.zeros((N, 0))
        return cb.Menu(self.theta, self.mass, v[self._iQ: self._it].copy(), X, Z, v[self._it:].copy(),
                       virtual=np.full(N, np.nan), pools=[])


class PresolvedBudgetMenuNLP(solver.structured_base()):
    """The same local-IC program after an exact presolve step.

    In differences u_0 = t_0, u_k = t_k − t_{k−1} (a linear change of
    variables), each u_k is a free column that appears in one row only -- IR
    for u_0, ic_down[k] for u_k -- with objective coefficient W_k = Σ_{i≥k} p_i
    > 0.  Standard LP presolve removes such a "free column singleton" with its
    row: at every optimum the row is active, u_k = θ_k (Q_k − Q_{k−1}).  What
    is left, over (X, Z, Q) only::

        max  Σ_k Q_k (W_k θ_k − W_{k+1} θ_{k+1}) − Σ_k p_k (c·X_k + ĉ·Z_k)
        s.t. quality[k]: Q_k − Ψ(X_k)Φ(Z_k) ≤ 0,   mono[k]: Q_k − Q_{k−1} ≥ 0,
             0 ≤ X, Z, Q ≤ upper bounds (budgets.UB_FACTOR)

    (W_{N+1} = 0), and postsolve gives t_k = θ_0 Q_0 + Σ_{1≤i≤k} θ_i (Q_i − Q_{i−1}).
    This uses the program's structure only, never its solution (virtual
    values, ironing and the cost function C(Q) are the closed form's
    business; here ironing is the monotone rows and the input mix is the
    quality rows).  The KKT system shrinks from 8N to 6N and the solve time by
    ~35 % (bench/budget_menu.py, method ``presolved``); the independent numpy
    audit still checks every IC/IR pair of the postsolved menu.
    """

    def __init__(self, tech: cf.Technology, theta, mass, start: cb.Menu | None = None):
        th, p, N, J, K = _types(self, tech, theta, mass)
        self.nv = (self.d + 1) * N
        self._iQ = self.d * N
        W = np.cumsum(p[::-1])[::-1]  # W_k = Σ_{i≥k} p_i
        coef_q = W * th - np.r_[W[1:] * th[1:], 0.0]
        cost = np.r_[np.asarray(tech.cost, float), np.asarray(tech.cost_hat, float)[:K]]
        self._grad = np.concatenate([np.repeat(cost, N) * np.tile(p, self.d), -coef_q])  # minimise −profit
        k = np.arange(1, N)
        q = self._iQ
        A = sp.coo_matrix((np.tile([1.0, -1.0], N - 1),
                           (np.repeat(np.arange(N - 1), 2), np.stack([q + k, q + k - 1], axis=1).ravel())),
                          shape=(N - 1, self.nv))
        self._A = A.tocsr()
        _sparsity(self, A)
        if start is None:
            Q0, X0, Z0, _ = neutral_start(tech, th)
        else:
            Q0, X0, Z0 = start.Q, start.X, start.Z
        X0, Z0 = _cols(X0, N), _cols(Z0, N)[:, :K]
        xf, zf = start_floors(tech, th)
        self._ub = _upper_bounds(tech, th, p)
        self._x0 = np.minimum(np.concatenate([np.maximum(X0.T, xf[:, None]).ravel(),
                                              np.maximum(Z0.T, zf[:K, None]).ravel(), np.maximum(Q0, 0.0)]), self._ub)
        Qs, Xs, Zs, ts, obj_s = menu_scales(tech, th, p)
        self._scaling = (obj_s, np.concatenate([np.repeat(1.0 / Xs, N), np.repeat(1.0 / Zs, N), np.full(N, 1.0 / Qs)]),
                         np.full(2 * N - 1, 1.0 / Qs))
        super().__init__()

    def x_init(self):
        return self._x0

    def x_lb(self):
        return np.zeros(self.nv)

    def x_ub(self):
        return self._ub

    def g_lb(self):
        return np.r_[np.full(self.N, -_INF), np.zeros(self.N - 1)]

    def g_ub(self):
        return np.r_[np.zeros(self.N), np.full(self.N - 1, _INF)]

    def scaling_factors(self):
        return self._scaling

    _gain = BudgetMenuNLP._gain
    objective = BudgetMenuNLP.objective
    gradient = BudgetMenuNLP.gradient
    jacobianstructure = BudgetMenuNLP.jacobianstructure
    jacobian = BudgetMenuNLP.jacobian
    hessianstructure = BudgetMenuNLP.hessianstructure
    hessian = BudgetMenuNLP.hessian
    profit = BudgetMenuNLP.profit

    def constraints(self, v):
        val, _, _ = self._gain(v)
        return np.concatenate([v[self._iQ:] - val, self._A @ v])

    def transfers(self, Q) -> np.ndarray:
        """Postsolve: the eliminated IR and ic_down rows hold with equality."""
        th = self.theta
        return np.cumsum(np.r_[th[0] * Q[0], th[1:] * np.diff(Q)])

    def menu(self, v) -> cb.Menu:
        N, J, K = self.N, self.J, self.K
        X = v[: J * N].reshape(J, N).T.copy()
        Z = v[J * N: self._iQ].reshape(K, N).T.copy() if K else np.zeros((N, 0))
        Q = v[self._iQ:].copy()
        return cb.Menu(self.theta, self.mass, Q, X, Z, self.transfers(Q), virtual=np.full(N, np.nan), pools=[])
