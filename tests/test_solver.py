"""models.solver against real Ipopt (no mocks).

Both routes are exercised on every run, and a missing one is a failure, not
a skip: the cyipopt route (the project's own, casadi's Ipopt) and the
executable route (``ipopt`` on PATH through Pyomo's NL writer and SOL reader,
what conda users get) -- with conda's ``ipopt`` where it is on PATH, else with
the project's AMPL driver around the same Ipopt (tools/ampl_ipopt, built by
the ``ipopt_executable`` fixture).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyomo.environ as pyo
import pytest

from models import solver
from models.solver import NotConverged, SolverUnavailable, Status

SPEED = "component"  # default speed marker (conftest); tests marked otherwise override it

ROUTES = ["cyipopt", "ipopt"]

# The solver tolerance every value test here uses.
TOL = 1e-10
# HS071 (Hock & Schittkowski problem 71).  Its optimum has x0 on the bound
# x0 >= 1.  Two reference values:
# * as published by Hock & Schittkowski, 9 significant digits (rounding
#   error <= 5e-8 absolute, 3e-9 relative);
HS071_PUBLISHED = 17.0140173
# * as printed in Ipopt's own documentation (C++ tutorial output) with Ipopt's
#   default options.  It is 1.5e-7 *below* the true optimum 17.01401729: by
#   default Ipopt relaxes every bound by bound_relax_factor = 1e-8, and the
#   active bound x0 >= 1 is met at x0 = 1 - 1e-8 (bound multiplier ~15).
HS071_IPOPT_DOC = 17.014017140224134
# the Ipopt option that removes that relaxation
EXACT_BOUNDS = {"bound_relax_factor": 0.0}


def hs071() -> pyo.ConcreteModel:
    m = pyo.ConcreteModel(name="hs071")
    m.I = pyo.RangeSet(0, 3)
    m.x = pyo.Var(m.I, bounds=(1, 5), initialize={0: 1.0, 1: 5.0, 2: 5.0, 3: 1.0})
    m.obj = pyo.Objective(expr=m.x[0] * m.x[3] * (m.x[0] + m.x[1] + m.x[2]) + m.x[2])
    m.product = pyo.Constraint(expr=m.x[0] * m.x[1] * m.x[2] * m.x[3] >= 25)
    m.sphere = pyo.Constraint(expr=sum(m.x[i] ** 2 for i in m.I) == 40)
    return m


@pytest.fixture(params=ROUTES)
def route(request) -> str:
    r = request.param
    if r == "ipopt":
        request.getfixturevalue("exe_on_path")  # conda's ipopt, else the project's AMPL driver
    if r not in solver.available_routes():
        pytest.fail(f"route {r!r} is missing: run `bash tools/setup.sh` (a missing route is a failure)")
    return r


# ------------------------------------------------------------------ routes
@pytest.mark.unit
def test_cyipopt_route_is_available():
    assert "cyipopt" in solver.available_routes(), solver.INSTALL_HINT


@pytest.mark.unit
def test_pick_route_rejects_unknown_name():
    with pytest.raises(ValueError, match="solver route must be one of"):
        solver.pick_route("nonsense")


@pytest.mark.unit
def test_pick_route_auto_returns_an_available_route():
    assert solver.pick_route("auto") in solver.available_routes()


@pytest.mark.unit
@pytest.mark.skipif(shutil.which("ipopt") is not None, reason="an ipopt executable is on PATH here")
def test_pick_route_ipopt_without_executable_raises():
    with pytest.raises(SolverUnavailable, match="'ipopt' is not available"):
        solver.pick_route("ipopt")


# ------------------------------------------------------------------ HS071
def test_hs071(route):
    m = hs071()
    r = solver.solve(m, route=route, options={"tol": TOL})
    assert r.status is Status.OPTIMAL and r.ok
    # Default options vs Ipopt's documented run (same relaxed bound): at tol
    # 1e-10 the objective of this well-conditioned NLP is accurate to ~1e-11
    # [observed 1e-13 relative]; rel 1e-10.
    assert r.objective == pytest.approx(HS071_IPOPT_DOC, rel=1e-10)
    # With exact bounds vs the published value: rel 1e-8 is 3x the rounding of
    # the 9-digit reference (3e-9) [observed 6.4e-10].  (With the default
    # relaxed bound the gap is 8.8e-9: too close to 1e-8 to be a fair test.)
    exact = solver.solve(hs071(), route=route, options={"tol": TOL, **EXACT_BOUNDS})
    assert exact.objective == pytest.approx(HS071_PUBLISHED, rel=1e-8)
    assert exact.objective > r.objective  # the relaxed bound can only help a minimisation
    assert r.objective == pytest.approx(pyo.value(m.obj), rel=1e-15)  # the solution was loaded
    assert r.iterations > 0
    assert r.route == route and r.route in solver.available_routes()
    assert isinstance(r.ipopt_version, str) and r.ipopt_version and r.ipopt_version != "unknown"
    for t in (r.build_seconds, r.translate_seconds, r.solve_seconds, r.total_seconds):
        assert t >= 0
    assert r.solve_seconds > 0  # Ipopt did run
    if route == "cyipopt":
        assert (r.n_variables, r.n_constraints) == (4, 2)
        # the casadi build the project pins (see tools/setup.sh)
        assert r.ipopt_version.startswith("3.14.")
    summary = r.summary()
    assert summary["status"] == "optimal" and summary["objective"] == r.objective


# ------------------------------------------------------- dual convention
# Each problem: (name, sense, builder(rhs) -> model with constraint m.c, rhs,
# expected sign of d(objective)/d(rhs)).  The objectives are nonlinear and
# the constraints binding, so every dual is O(1): a sign error shows up as
# an error of 2|dual|, orders of magnitude above the FD tolerance.
def _max_le(b):
    # max x + 2y  s.t.  x^2 + y^2 <= b   ->  V(b) = sqrt(5 b),  V' = sqrt(5/b)/2 > 0
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=1.0)
    m.y = pyo.Var(initialize=1.0)
    m.obj = pyo.Objective(expr=m.x + 2 * m.y, sense=pyo.maximize)
    m.c = pyo.Constraint(expr=m.x**2 + m.y**2 <= b)
    return m


def _max_ge(b):
    # max -(x-1)^2 - (y-1)^2 - x y  s.t.  x + 2 y >= b  (b = 6: unconstrained optimum infeasible)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=0.5)
    m.y = pyo.Var(initialize=0.5)
    m.obj = pyo.Objective(expr=-(m.x - 1) ** 2 - (m.y - 1) ** 2 - 0.5 * m.x * m.y, sense=pyo.maximize)
    m.c = pyo.Constraint(expr=m.x + 2 * m.y >= b)
    return m


def _min_le(b):
    # min (x-3)^2 + (y-2)^2  s.t.  x^2 + y <= b  (b = 2: unconstrained optimum infeasible)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=0.0)
    m.y = pyo.Var(initialize=0.0)
    m.obj = pyo.Objective(expr=(m.x - 3) ** 2 + (m.y - 2) ** 2)
    m.c = pyo.Constraint(expr=m.x**2 + m.y <= b)
    return m


def _min_ge(b):
    # min exp(x) + y^2  s.t.  x + y >= b
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=0.0)
    m.y = pyo.Var(initialize=0.0)
    m.obj = pyo.Objective(expr=pyo.exp(m.x) + m.y**2)
    m.c = pyo.Constraint(expr=m.x + m.y >= b)
    return m


def _min_eq(b):
    # min x^2 + 2 y^2 + x y + x^4  s.t.  x + y == b
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=0.0)
    m.y = pyo.Var(initialize=0.0)
    m.obj = pyo.Objective(expr=m.x**2 + 2 * m.y**2 + m.x * m.y + m.x**4)
    m.c = pyo.Constraint(expr=m.x + m.y == b)
    return m


DUAL_CASES = [
    pytest.param(_max_le, 5.0, +1, id="max-binding-le"),
    pytest.param(_max_ge, 6.0, -1, id="max-binding-ge"),
    pytest.param(_min_le, 2.0, -1, id="min-binding-le"),
    pytest.param(_min_ge, 2.0, +1, id="min-binding-ge"),
    pytest.param(_min_eq, 1.5, +1, id="min-equality"),
]

FD_STEP = 1e-5
# Two option sets, two tolerances (observed errors in brackets):
# * Ipopt's defaults, as every regime uses them.  Ipopt relaxes each bound by
#   bound_relax_factor = 1e-8 (relative), so the re-solved objectives are
#   V((b +- h)(1 + 1e-8)) and the FD slope carries a relative error ~1e-8
#   [observed <= 1.1e-8]; rel 1e-7 leaves 10x margin.
# * bound_relax_factor = 0: what is left is the FD truncation h^2/6 |V'''|
#   ~ 1e-11, round-off eps |V| / h ~ 1e-10 and the objective accuracy of a
#   solve at tol 1e-10 after Newton's quadratic final steps [observed
#   <= 7e-11]; abs 1e-9.
# A sign error would be off by 2|dual| >= 1: 1e7x above either tolerance.
FD_OPTIONS = {
    "ipopt-defaults": ({"tol": TOL}, dict(rel=1e-7, abs=0.0)),
    "no-bound-relax": ({"tol": TOL, "bound_relax_factor": 0.0}, dict(rel=0.0, abs=1e-9)),
}


def _solve_value(builder, rhs, route, options=None):
    m = builder(rhs)
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    r = solver.solve(m, route=route, options=dict(options or {"tol": TOL}))
    return m, r


@pytest.mark.parametrize("variant", list(FD_OPTIONS))
@pytest.mark.parametrize("builder, rhs, sign", DUAL_CASES)
def test_dual_is_derivative_of_objective_wrt_rhs(route, builder, rhs, sign, variant):
    options, tol = FD_OPTIONS[variant]
    m, r = _solve_value(builder, rhs, route, options)
    _, r_up = _solve_value(builder, rhs + FD_STEP, route, options)
    _, r_dn = _solve_value(builder, rhs - FD_STEP, route, options)
    fd = (r_up.objective - r_dn.objective) / (2 * FD_STEP)
    assert abs(fd) > 0.4, "constraint should bind with an O(1) multiplier"
    assert fd * sign > 0, "test problem does not have the intended sign"
    assert r.duals[m.c] == pytest.approx(fd, **tol)
    assert m.dual[m.c] == pytest.approx(fd, **tol)
    assert m.dual[m.c] == r.duals[m.c]  # the Suffix is filled from the same numbers


def test_dual_closed_form_max_le(route):
    # a second, exact reference for one case: V(b) = sqrt(5 b), V'(b) = sqrt(5/b)/2 = 0.5 at b = 5.
    # With bound_relax_factor 1e-8 the dual is V' at b(1 + 1e-8): off by ~2.5e-9 [observed];
    # the KKT residual at tol 1e-10 adds ~1e-10.  1e-8 absolute.
    m, r = _solve_value(_max_le, 5.0, route)
    assert r.duals[m.c] == pytest.approx(0.5, abs=1e-8)
    assert r.duals[m.c] > 0  # maximisation, binding <=: relaxing the bound helps


# ---------------------------------------------------------- failure paths
def test_max_iter_raises_not_converged(route):
    with pytest.raises(NotConverged) as exc:
        solver.solve(hs071(), route=route, options={"max_iter": 2})
    res = exc.value.result
    assert res.status is Status.MAX_ITERATIONS
    assert not res.ok
    assert res.iterations == 2
    assert "max_iterations" in str(exc.value)


def test_max_iter_allow_nonoptimal_returns_result(route):
    r = solver.solve(hs071(), route=route, options={"max_iter": 2}, allow_nonoptimal=True)
    assert r.ok is False
    assert r.status is Status.MAX_ITERATIONS
    assert r.objective != pytest.approx(HS071_IPOPT_DOC, rel=1e-6)  # genuinely not at the optimum


def test_unavailable_linear_solver_is_an_error_status(route):
    # 'ma27' is a valid setting whose (HSL) library is not installed here:
    # Ipopt reports "Invalid option encountered" (code -12) -> ERROR, never
    # a silent fall-back to MUMPS (SOLVER.md pitfall).
    r = solver.solve(hs071(), route=route, options={"linear_solver": "ma27"}, allow_nonoptimal=True)
    assert r.status is Status.ERROR
    assert not r.ok
    with pytest.raises(NotConverged):
        solver.solve(hs071(), route=route, options={"linear_solver": "ma27"})


def test_invalid_linear_solver_name_is_not_silent(route):
    # A name Ipopt does not know.  cyipopt's add_option raises a bare
    # TypeError("Error while assigning an option") before Ipopt starts;
    # solver.py turns it into a ValueError that names the option.  Either way
    # it must never come back OPTIMAL.
    if route == "cyipopt":
        with pytest.raises(ValueError, match="linear_solver='no_such_solver'"):
            solver.solve(hs071(), route=route, options={"linear_solver": "no_such_solver"},
                         allow_nonoptimal=True)
    else:
        r = solver.solve(hs071(), route=route, options={"linear_solver": "no_such_solver"},
                         allow_nonoptimal=True)
        assert r.status is Status.ERROR


def test_integer_value_for_real_option_is_accepted(route):
    # TOML `bound_relax_factor = 0` in [solver.options] arrives as an int; cyipopt's
    # add_option rejects an int for a real option, so solver.py retries it as float.
    r = solver.solve(hs071(), route=route, options={"tol": TOL, "bound_relax_factor": 0})
    assert r.ok
    assert r.objective == pytest.approx(HS071_PUBLISHED, rel=1e-8)  # the option took effect (see test_hs071)
    assert r.objective != pytest.approx(HS071_IPOPT_DOC, rel=1e-9)


# ------------------------------------------------------- options, warm start
def test_output_file_option_passes_through(route, tmp_path):
    log = tmp_path / "ipopt.log"
    solver.solve(hs071(), route=route, options={"tol": TOL, "output_file": str(log), "file_print_level": 5})
    text = log.read_text()
    assert "Number of Iterations" in text
    assert "EXIT: Optimal Solution Found." in text


def test_output_file_alone_writes_a_log(route, tmp_path):
    log = tmp_path / "ipopt.log"
    solver.solve(hs071(), route=route, options={"output_file": str(log)})
    assert "Number of Iterations" in log.read_text()


def test_stray_ipopt_opt_in_the_working_directory_is_not_read(route, tmp_path, monkeypatch):
    """Ipopt reads ./ipopt.opt by default: a file left in the user's folder would change every solve
    unseen (session 16: `max_iter 0` in it made every regime of a run 'not converged')."""
    (tmp_path / "ipopt.opt").write_text("max_iter 0\n")
    monkeypatch.chdir(tmp_path)
    r = solver.solve(hs071(), route=route, options={"tol": TOL}, allow_nonoptimal=True)
    assert r.status is Status.OPTIMAL and r.iterations > 0, (r.status, r.iterations)


def test_max_iter_option_reaches_ipopt(route):
    # pass-through of an integer option, observable in the result
    r = solver.solve(hs071(), route=route, options={"max_iter": 4}, allow_nonoptimal=True)
    assert r.iterations == 4 and r.status is Status.MAX_ITERATIONS


def test_warm_start_needs_no_more_iterations(route):
    if route != "cyipopt":
        pytest.skip("warm starts with multipliers are a cyipopt-route feature")
    m = hs071()
    cold = solver.solve(m, route=route, options={"tol": TOL})
    assert cold.warm is not None
    warm = solver.solve(m, route=route, options={"tol": TOL}, warm_start=cold.warm)
    assert warm.ok
    assert warm.iterations <= cold.iterations
    # same optimum: both at tol 1e-10 (see test_hs071)
    assert warm.objective == pytest.approx(cold.objective, rel=1e-10)


def test_iteration_callback_sees_every_iteration(route):
    seen = []
    r = solver.solve(hs071(), route=route, options={"tol": TOL},
                     iteration_callback=lambda k, obj: seen.append((k, obj)))
    ks = [k for k, _ in seen]
    # cyipopt: Ipopt's intermediate callback, every iteration; the executable:
    # its iteration table read from the output file (every 0.5 s and at the end),
    # so at least the last iteration, with its objective
    if route == "cyipopt":
        assert ks == list(range(r.iterations + 1))
    assert ks and ks[-1] == r.iterations and ks == sorted(set(ks))
    # the last objective as Ipopt prints it (7 significant digits in the table)
    assert seen[-1][1] == pytest.approx(r.objective, rel=1e-6)


def test_progress_arrives_while_ipopt_runs(route, monkeypatch):
    """A long solve reports iterations while it runs (issue 12), on both routes.  The
    executable's iteration table is read every FOLLOW_PERIOD (0.5 s); here every 10 ms,
    so that a ~0.3 s solve (a 1-D nonconvex chain) stands in for a long one."""
    monkeypatch.setattr(solver, "FOLLOW_PERIOD", 0.01)
    m = pyo.ConcreteModel()
    n = 1500
    m.I = pyo.RangeSet(0, n - 1)
    m.x = pyo.Var(m.I, bounds=(-2, 2), initialize=lambda m, i: 0.5 + 0.1 * ((i * 7919) % 11))
    m.o = pyo.Objective(expr=sum((m.x[i] - 1) ** 4 + 0.1 * m.x[i] ** 2 * m.x[(i + 1) % n] ** 2 for i in m.I))
    m.c = pyo.Constraint(pyo.RangeSet(0, n - 2), rule=lambda m, i: m.x[i] ** 2 + m.x[i + 1] ** 2 <= 1.5)
    import time

    t0 = time.perf_counter()
    stamps = []
    r = solver.solve(m, route=route, options={"tol": 1e-8},
                     iteration_callback=lambda k, obj: stamps.append((time.perf_counter() - t0, k)))
    assert r.ok, r.message
    assert stamps[-1][1] == r.iterations
    # progress arrived before the end: some iteration was reported while Ipopt was still running
    assert len({k for _, k in stamps}) >= 2


@pytest.mark.component
def test_linear_solver_failure_is_surfaced_in_the_message():
    """A linear solver Ipopt cannot load (no HSL library here) fails the solve at once, and
    the result's message carries Ipopt's own error text, not only "Invalid option"
    (print_level 0 would otherwise hide it).  Options bypass scenario validation here."""
    if not solver.option_catalog_available():
        pytest.skip("no cyipopt")
    if solver.linear_solver_available("ma27"):
        pytest.skip("HSL is installed here")
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10), initialize=1.0)
    m.o = pyo.Objective(expr=(m.x - 2) ** 2)
    r = solver.solve(m, route="cyipopt", options={"linear_solver": "ma27"}, allow_nonoptimal=True)
    assert r.status is solver.Status.ERROR
    assert "libhsl" in r.message


@pytest.mark.unit
def test_error_watch_stops_on_a_linear_solver_error(tmp_path):
    """The watch reads Ipopt's error-only log; this is the line Ipopt 3.14 writes when
    MUMPS runs out of memory (IpMumpsSolverInterface.cpp), as seen at n = 2e6."""
    opts = {}
    w = solver._ErrorWatch(opts)
    assert opts["file_print_level"] == 1 and w.ok()
    with open(opts["output_file"], "w") as fh:
        fh.write("*" * 78 + "\nThis program contains Ipopt, a library for large-scale nonlinear optimization.\n"
                 + "*" * 78 + "\n\nMUMPS returned INFO(1) = -13 - out of memory when trying to allocate 3344 MB.\n")
    assert not w.ok()
    msg = w.close("User requested stop.")
    assert msg.startswith("linear solver failed, Ipopt stopped: MUMPS returned INFO(1) = -13")
    assert not Path(opts["output_file"]).exists()


def test_long_solve_reports_progress_lines(route, monkeypatch):
    """run.Context: a solve longer than PROGRESS_AFTER says so every PROGRESS_EVERY seconds
    (iteration and objective) through the context's progress callable (here both set to
    0 s, so that HS071 stands in for a long solve); the usual one-line summary follows."""
    from models import run

    monkeypatch.setattr(run, "PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(run, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(solver, "FOLLOW_PERIOD", 0.001)
    lines = []
    ctx = run.Context(route=route, options={"tol": TOL}, progress=lines.append)
    r = ctx.solve(hs071(), "hs071")
    assert r.ok
    beats = [ln for ln in lines if "still solving: Ipopt iteration" in ln]
    assert beats and lines[-1].startswith("    hs071: optimal, objective")
    last_k = int(re.search(r"iteration (\d+)", beats[-1])[1])
    assert last_k == r.iterations
    # with the defaults (5 s) a 0.1 s solve prints no progress line
    monkeypatch.setattr(run, "PROGRESS_AFTER", 5.0)
    monkeypatch.setattr(run, "PROGRESS_EVERY", 5.0)
    lines.clear()
    ctx.solve(hs071(), "hs071")
    assert len(lines) == 1


# ------------------------------------------- option validation on the executable route
def test_executable_option_catalog(exe_on_path):
    """The executable's own option list (``ipopt --print-options``, kinds from the LaTeX
    form) drives the pre-solve checks of route "ipopt", as cyipopt's list does for its route."""
    cat = solver.ipopt_option_catalog("ipopt")
    assert {"tol", "max_iter", "linear_solver", "mu_strategy"} <= set(cat)
    assert cat["max_iter"].kind == "integer" and cat["tol"].kind == "real"
    assert cat["bound_mult_init_val"].kind == "real"  # an integral default (1) does not make it integer
    assert solver.check_option("tol", 1e-9, "ipopt") is None
    assert "0.0 < tol" in solver.check_option("tol", -1, "ipopt")
    assert "an integer" in solver.check_option("max_iter", 2.5, "ipopt")
    assert "did you mean tol" in solver.check_option("tolx", 1, "ipopt")
    if "llm-pricing project" in __import__("subprocess").run([str(exe_on_path), "-v"], capture_output=True,
                                                             text=True).stdout:
        # the project's driver runs the same Ipopt as the cyipopt route: the same list, option by option
        cy = solver.ipopt_option_catalog("cyipopt")
        assert set(cat) == set(cy)
        assert all((cat[k].kind, cat[k].lo, cat[k].hi, cat[k].values) == (cy[k].kind, cy[k].lo, cy[k].hi,
                                                                         cy[k].values) for k in cat)


def test_scenario_options_checked_against_the_route_that_runs(exe_on_path, tmp_path, monkeypatch):
    """A bad Ipopt option in a scenario whose route is "ipopt" is refused at load time (one
    ScenarioError naming the field and the allowed range), and so after ``--route ipopt``."""
    from conftest import TINY_SCENARIO
    from models import scenario

    f = tmp_path / "s.toml"
    f.write_text(TINY_SCENARIO + '\n[solver]\nroute = "ipopt"\n[solver.options]\nmu_init = -1.0\n')
    with pytest.raises(scenario.ScenarioError, match=r"'solver.options.mu_init' = -1.0 is invalid; allowed: "
                                                     r"a number with 0.0 < mu_init < \+inf"):
        scenario.load(f)
    # which Ipopt's list is asked: the route's (recorded, the real check still answers)
    asked = []
    real = solver.check_option
    monkeypatch.setattr(solver, "check_option", lambda k, v, route="cyipopt": asked.append(route) or real(k, v, route))
    f.write_text(TINY_SCENARIO + '\n[solver]\nroute = "cyipopt"\nmax_iter = 5\n')
    scn = scenario.load(f)
    assert asked == ["cyipopt"]
    scenario.check_solver_route(scn, "ipopt")
    assert scn.solver["route"] == "ipopt" and asked == ["cyipopt", "ipopt"]
    f.write_text(TINY_SCENARIO + '\n[solver]\nroute = "cyipopt"\n[solver.options]\nmu_init = -1.0\n')
    with pytest.raises(scenario.ScenarioError, match="mu_init"):
        scenario.load(f)


def test_executable_that_rejects_an_option_is_an_error_not_a_traceback(exe_on_path):
    """Options bypassing validation (Python callers): the executable exits non-zero without a
    SOL file; the result is an ERROR whose message carries Ipopt's words."""
    r = solver.solve(hs071(), route="ipopt", options={"tol": -1.0}, allow_nonoptimal=True)
    assert r.status is Status.ERROR and "tol" in r.message
    assert r.objective != r.objective  # NaN: nothing was loaded


def test_acceptable_is_not_optimal_on_either_route(route):
    """Pyomo maps every AMPL solve_result_num 0-99 to 'optimal'; Ipopt's 'Solved To
    Acceptable Level' (1) must stay ACCEPTABLE (never verified).  Forced: an unreachable
    tol with acceptable termination after 1 acceptable iterate."""
    r = solver.solve(hs071(), route=route, allow_nonoptimal=True,
                     options={"tol": 1e-30, "acceptable_tol": 1e-2, "acceptable_iter": 1, "max_iter": 200})
    assert r.status is Status.ACCEPTABLE and not r.ok


@pytest.mark.integration
def test_asl_exit_inside_a_solve_is_not_silent(ipopt_executable, tmp_path):
    """Repro (competition, 13:58): ASL ends the process with exit(1) when a second
    derivative cannot be evaluated (pow''(0, 1.1) at the start x = 0); before the exit hook
    the run printed only ASL's line.  Now stderr has an error line naming the solve."""
    import subprocess
    import sys

    from conftest import ROOT

    script = tmp_path / "asl_exit.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\n" % str(ROOT) + (
        "import pyomo.environ as pyo\nfrom models import solver\n"
        "m = pyo.ConcreteModel()\nm.x = pyo.Var(initialize=0.0)\n"
        "m.o = pyo.Objective(expr=(m.x - 1) ** 2 + m.x ** 1.1)\n"
        "solver.solve(m, route='cyipopt', allow_nonoptimal=True, label='pow-at-zero')\n"))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 1
    assert "can't evaluate pow" in p.stderr  # ASL's own line (the cause of the exit)
    assert "error: the AMPL Solver Library stopped the process" in p.stderr and "'pow-at-zero'" in p.stderr
    ok = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r)\n" % str(ROOT)
                         + "from models import solver\nimport pyomo.environ as pyo\nm = pyo.ConcreteModel()\n"
                         "m.x = pyo.Var(initialize=1.0)\nm.o = pyo.Objective(expr=(m.x - 2) ** 2)\n"
                         "solver.solve(m, route='cyipopt')\n"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "error" not in ok.stderr  # a normal exit: the hook is disarmed


def test_scaling_of_unexported_components_is_not_warned_on_stdout(route, capsys, caplog):
    """stranger S9 D5: a scaling factor on a fixed variable (left out of the NL file) made Pyomo print
    "model contains export suffix 'scaling_factor' … Skipping." on stdout for every such solve.  The
    solver layer drops exactly that warning; the optimum is unchanged and other warnings still pass."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=0.0)
    m.y = pyo.Var(initialize=1.0)
    m.y.fix(1.0)
    m.o = pyo.Objective(expr=(m.x - 2 * m.y) ** 2)
    m.scaling_factor = pyo.Suffix(direction=pyo.Suffix.EXPORT)
    m.scaling_factor[m.x] = 1.0
    m.scaling_factor[m.y] = 2.0
    r = solver.solve(m, route=route)
    assert r.ok and abs(pyo.value(m.x) - 2.0) <= 1e-8
    out = capsys.readouterr()
    assert "scaling_factor" not in out.out + out.err and "scaling_factor" not in caplog.text
    import logging

    logging.getLogger("pyomo.repn.plugins.nl_writer").warning("another NL-writer warning")
    assert "another NL-writer warning" in caplog.text
