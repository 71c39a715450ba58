"""The structured (vectorised) budget-menu NLP against the Pyomo model.

``models.menu_nlp.BudgetMenuNLP`` claims to be the *same program* as
``budgets.build_menu(ic="local")``.  Checked three ways: its derivatives by
finite differences, its rows/objective against the Pyomo model evaluated at
the same point, and its solution against both the Pyomo solve and the
discrete closed form.
"""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from models import budgets, solver
from models.closed_form import budgets as cb
from models.closed_form.cost import Technology
from models.run import Context
from models.type_space import TypeDistribution

pytestmark = pytest.mark.skipif("cyipopt" not in solver.available_routes(), reason="needs the cyipopt route")

TECHS = {
    "ces": Technology(sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 2.0), gamma=0.2, rho_hat=0.0,
                      alpha_hat=(1.0,), cost_hat=(3.0,)),
    "cobb-douglas": Technology(sigma=0.45, rho=0.0, alpha=(0.5, 0.5), cost=(1.0, 1.5), gamma=0.25,
                               alpha_hat=(1.0,), cost_hat=(2.0,)),
    "baseline": Technology(sigma=0.5, rho=-0.5, alpha=(0.3, 0.7), cost=(1.0, 2.0), gamma=0.3,
                           alpha_hat=(1.0,), cost_hat=(4.0,), baseline=0.02),
    "ces-K2": Technology(sigma=0.4, rho=0.3, alpha=(0.5, 0.5), cost=(1.0, 1.0), gamma=0.3, rho_hat=-0.7,
                         alpha_hat=(0.4, 0.6), cost_hat=(2.0, 5.0)),
    "no-fine-tuning": Technology(sigma=0.6, rho=0.2, alpha=(0.5, 0.3, 0.2), cost=(1.0, 2.0, 0.5)),
}


def _nlp(tech, N=7, seed=0, presolved=False):
    from models.menu_nlp import BudgetMenuNLP, PresolvedBudgetMenuNLP

    rng = np.random.default_rng(seed)
    theta = np.sort(rng.uniform(0.1, 1.0, N))
    mass = rng.uniform(0.5, 1.5, N)
    cls = PresolvedBudgetMenuNLP if presolved else BudgetMenuNLP
    return cls(tech, theta, mass / mass.sum())


def _jac_dense(p, v):
    rows, cols = p.jacobianstructure()
    J = np.zeros((len(p.g_lb()), p.nv))
    np.add.at(J, (rows, cols), p.jacobian(v))
    return J


def _point(p, seed=1):
    """Inputs, Q and t in [0.2, 1.2]: away from 0, where x^(ρ−1) is steep and
    central differences lose their accuracy (h/x must stay small)."""
    return np.random.default_rng(seed).uniform(0.2, 1.2, p.nv)


@pytest.mark.parametrize("presolved", [False, True], ids=["structured", "presolved"])
@pytest.mark.parametrize("name", sorted(TECHS))
def test_derivatives_match_finite_differences(name, presolved):
    """Jacobian and Lagrangian Hessian vs central differences.  Step h = 1e-6
    on O(0.1-1) inputs: truncation O(h²|f'''|) ~ 1e-11 and round-off
    O(ε|f|/h) ~ 1e-10, so 1e-6 relative leaves a wide margin while a wrong
    exponent or a missing cross term is off by O(1)."""
    p = _nlp(TECHS[name], presolved=presolved)
    v = _point(p)
    h = 1e-6
    J = _jac_dense(p, v)
    lam = np.random.default_rng(2).uniform(0.1, 2.0, len(p.g_lb()))
    hr, hc = p.hessianstructure()
    H = np.zeros((p.nv, p.nv))
    np.add.at(H, (hr, hc), p.hessian(v, lam, 1.0))
    H = H + np.tril(H, -1).T
    Jfd = np.zeros_like(J)
    Hfd = np.zeros_like(H)
    for i in range(p.nv):
        e = np.zeros(p.nv)
        e[i] = h
        Jfd[:, i] = (p.constraints(v + e) - p.constraints(v - e)) / (2 * h)
        Hfd[:, i] = (lam @ _jac_dense(p, v + e) - lam @ _jac_dense(p, v - e)) / (2 * h)
    scale = np.max(np.abs(Jfd))
    assert np.max(np.abs(J - Jfd)) <= 1e-6 * scale
    assert np.max(np.abs(H - Hfd)) <= 1e-6 * max(np.max(np.abs(Hfd)), 1.0)
    g = p.gradient(v)
    gfd = np.array([(p.objective(v + h * np.eye(p.nv)[i]) - p.objective(v - h * np.eye(p.nv)[i])) / (2 * h)
                    for i in range(p.nv)])
    assert np.max(np.abs(g - gfd)) <= 1e-6 * np.max(np.abs(g))


@pytest.mark.parametrize("name", sorted(TECHS))
def test_rows_equal_the_pyomo_model(name):
    """Every row, bound and scaling factor equals the Pyomo model's at a
    common point (rows are in the same order: quality, ir, ic_down, mono)."""
    tech = TECHS[name]
    p = _nlp(tech)
    m = budgets.build_menu(tech, p.theta, p.mass, "local")
    v = _point(p)
    N, J, K = p.N, tech.J, tech.K
    for k in range(N):
        for j in range(J):
            m.X[k, j].set_value(v[j * N + k])
        for i in range(K):
            m.Z[k, i].set_value(v[(J + i) * N + k])
        m.Q[k].set_value(v[p._iQ + k])
        m.t[k].set_value(v[p._it + k])
    pyomo_rows = np.concatenate([
        [pyo.value(m.quality[k].body) for k in range(N)],
        [pyo.value(m.ir[0].body)],
        [pyo.value(m.ic_down[k].body) for k in range(1, N)],
        [pyo.value(m.mono[k].body) for k in range(1, N)],
    ])
    np.testing.assert_allclose(p.constraints(v), pyomo_rows, rtol=1e-13, atol=1e-15)
    assert -p.objective(v) == pytest.approx(pyo.value(m.profit), rel=1e-13)
    # bounds and every scaling factor, component by component
    sf = m.scaling_factor
    pvars = [m.X[k, j] for j in range(J) for k in range(N)] + [m.Z[k, i] for i in range(K) for k in range(N)] \
        + [m.Q[k] for k in range(N)] + [m.t[k] for k in range(N)]
    cons = [m.quality[k] for k in range(N)] + [m.ir[0]] + [m.ic_down[k] for k in range(1, N)] \
        + [m.mono[k] for k in range(1, N)]
    obj_s, x_s, g_s = p.scaling_factors()
    assert obj_s == pytest.approx(sf[m.profit], rel=1e-14)
    np.testing.assert_allclose(x_s, [sf[v] for v in pvars], rtol=1e-14)
    np.testing.assert_allclose(g_s, [sf[c] for c in cons], rtol=1e-14)
    lb = np.array([-np.inf if v.lb is None else v.lb for v in pvars])
    np.testing.assert_array_equal(np.where(p.x_lb() < -1e19, -np.inf, p.x_lb()), lb)
    glb = np.array([-np.inf if c.lower is None else pyo.value(c.lower) for c in cons])
    gub = np.array([np.inf if c.upper is None else pyo.value(c.upper) for c in cons])
    np.testing.assert_array_equal(np.where(p.g_lb() < -1e19, -np.inf, p.g_lb()), glb)
    np.testing.assert_array_equal(np.where(p.g_ub() > 1e19, np.inf, p.g_ub()), gub)


def _ctx():
    return Context(route="cyipopt", options={}, progress=lambda *_: None)


@pytest.mark.parametrize("name,kind", [("ces", "uniform"), ("baseline", "beta"), ("cobb-douglas", "uniform"),
                                       ("no-fine-tuning", "beta")])
def test_structured_solve_equals_pyomo_and_closed_form(name, kind):
    """Same program, same scaling, same start: Ipopt takes the same path, so
    the two solutions agree far below the 1e-6 closed-form tolerance
    (measured ~1e-14); 1e-9 allows for round-off differences in the
    evaluation order of the two engines over ~30 iterations."""
    tech = TECHS[name]
    dist = TypeDistribution("uniform") if kind == "uniform" else TypeDistribution("beta", p=2.0, q=3.0)
    theta, mass = dist.discretise(80, "equal-spacing")
    ctx = _ctx()
    _, a, ra = budgets.solve_menu(tech, theta, mass, ctx, "p", "local", formulation="pyomo")
    _, b, rb = budgets.solve_menu(tech, theta, mass, ctx, "s", "local", formulation="structured")
    _, c, rc = budgets.solve_menu(tech, theta, mass, ctx, "p", "local", formulation="presolved")
    assert ra.ok and rb.ok and rc.ok and rb.route == rc.route == "cyipopt-structured"
    # the presolved program takes its own path: it agrees with the full one
    # at solver accuracy (measured ~1e-9 relative on Q and t; tol 1e-12 on an
    # O(1)-scaled problem), far inside the 1e-6 closed-form tolerance
    for q in ("Q", "t", "X", "Z"):
        x, y = getattr(a, q), getattr(c, q)
        if x.size:
            assert np.max(np.abs(x - y)) <= 1e-7 * np.max(np.abs(x)), q
    assert rc.objective == pytest.approx(ra.objective, rel=1e-9)
    for q in ("Q", "t", "X", "Z"):
        x, y = getattr(a, q), getattr(b, q)
        if x.size:
            assert np.max(np.abs(x - y)) <= 1e-9 * np.max(np.abs(x)), q
    assert rb.objective == pytest.approx(b.profit(tech), rel=1e-12)
    # same rows, same signs: the multipliers are the Pyomo model's duals
    # (d profit / d rhs), e.g. the quality rows' shadow value of a unit of Q
    m = budgets.build_menu(tech, theta, mass, "local")
    rp = solver.solve(m, route="cyipopt", options=budgets.MENU_SOLVER_DEFAULTS)
    cons = [m.quality[k] for k in m.TYPES] + [m.ir[0]] + [m.ic_down[k] for k in range(1, len(theta))] \
        + [m.mono[k] for k in range(1, len(theta))]
    yp = np.array([rp.duals[c] for c in cons])
    assert np.max(np.abs(rb.constraint_duals - yp)) <= 1e-6 * np.max(np.abs(yp))
    ref = cb.discrete_menu(tech, theta, mass)
    assert np.max(np.abs(b.Q - ref.Q)) <= budgets.TOL_DISCRETE * np.max(ref.Q)
    assert np.max(np.abs(b.t - ref.t)) <= budgets.TOL_DISCRETE * np.max(np.abs(ref.t))


def test_auto_formulation_switches_at_threshold():
    assert budgets.use_structured("auto", "local", budgets.STRUCTURED_MIN_N - 1) is None
    assert budgets.use_structured("auto", "local", budgets.STRUCTURED_MIN_N) == "presolved"
    assert budgets.use_structured("structured", "all-pairs", 10) is None
    assert budgets.use_structured("pyomo", "local", 10**6) is None
    assert budgets.use_structured("structured", "local", 10) == "structured"
    # an ipopt executable as the scenario's route keeps the Pyomo model under auto
    assert budgets.use_structured("auto", "local", 10**6, route="ipopt") is None
    assert budgets.use_structured("presolved", "local", 10, route="ipopt") == "presolved"


def test_presolved_postsolve_binds_the_eliminated_rows():
    """Postsolved transfers make IR of the lowest type and every adjacent
    downward IC hold with equality, and the menu passes the all-pairs audit."""
    p = _nlp(TECHS["baseline"], N=60, presolved=True)
    r = solver.solve_structured(p, options=budgets.MENU_SOLVER_DEFAULTS)
    m = p.menu(r.x)
    th = p.theta
    assert th[0] * m.Q[0] - m.t[0] == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(th[1:] * np.diff(m.Q), np.diff(m.t), rtol=1e-12, atol=1e-15)
    a = cb.ic_audit(th, m.Q, m.t)
    assert a["ic"] <= budgets.TOL_AUDIT * np.max(np.abs(m.t)) and a["ir"] <= budgets.TOL_AUDIT * np.max(np.abs(m.t))
    assert r.objective == pytest.approx(m.profit(p.tech), rel=1e-12)


def test_nonconvergence_is_reported():
    """max_iter = 2 must come back as not optimal (and raise when not allowed)."""
    p = _nlp(TECHS["ces"], N=50)
    r = solver.solve_structured(p, options={"max_iter": 2}, allow_nonoptimal=True)
    assert r.status is solver.Status.MAX_ITERATIONS and not r.ok
    with pytest.raises(solver.NotConverged):
        solver.solve_structured(_nlp(TECHS["ces"], N=50), options={"max_iter": 2})
