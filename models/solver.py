"""The one place that knows about solvers.

Two Ipopt routes exist (see ``docs/solver.md``):

``"ipopt"``
    the AMPL ``ipopt`` executable on ``PATH`` (conda-forge, idaes), driven
    through ``SolverFactory('ipopt')``;
``"cyipopt"``
    Pyomo's PyNumero interface (``PyomoNLP`` + ``CyIpoptNLP``) on the
    ``cyipopt`` module, here built against the Ipopt bundled in ``casadi``.
    We drive PyNumero directly rather than through ``SolverFactory('cyipopt')``
    so that translation and solve are timed separately, iterations are
    counted, and warm starts can carry multipliers.

``route="auto"`` prefers the executable when one is on ``PATH``.

Dual convention
---------------
Every dual this module reports -- in ``SolveResult.duals`` and in a
``model.dual`` Suffix when the model declares one -- is

    dual[c] = d(objective value) / d(rhs of c),

the sensitivity of the optimal objective *as written* (maximised or
minimised) to a shift of the constraint's active bound (``body <= ub``,
``body >= lb`` or ``body == rhs``).  A binding ``<=`` constraint in a
maximisation therefore has a dual >= 0, a binding ``>=`` constraint a dual
<= 0.  ``tests/test_solver.py`` proves the convention by finite differences
for both senses on every available route.
"""
from __future__ import annotations

import enum
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

import models  # noqa: F401  (sets PYOMO_CONFIG_DIR before Pyomo loads)
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap
from pyomo.opt import SolverFactory, TerminationCondition


class _DropUnexportedScaling:
    """Drop the NL writer's "export suffix 'scaling_factor' contains N component keys that are not
    exported" warning: the regimes scale every variable and row they build, and the writer leaves out
    the fixed ones (Z without fine-tuning, pinned types) and the deactivated rows, so their scaling
    factors have nothing to scale.  Ipopt's problem is unchanged; the line was printed on stdout for
    every such solve, also with --quiet (stranger S9 D5).  Any other suffix, or any other warning,
    is kept."""

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith("model contains export suffix 'scaling_factor'")


import logging as _logging  # noqa: E402

_logging.getLogger("pyomo.repn.plugins.nl_writer").addFilter(_DropUnexportedScaling())

ROUTES = ("auto", "ipopt", "cyipopt")

# Options for programs that are checked against closed forms to 1e-6 or
# better (regimes pass them as defaults; scenario options override them):
# bound_relax_factor = 0 keeps token variables >= 0 exactly, so powers are
# never evaluated at a negative argument and a variable at its bound is
# exactly there; tol 1e-12 because where Q ~ φ^(η/(1-η)) is flat (first served
# types) interior-point residue shows (budget menu N = 100: Q error 1e-6 at
# tol 1e-10, 1.5e-8 at 1e-12); adaptive barrier updates took ~27 iterations
# instead of 55-100 and avoided a spurious "local infeasibility" (N = 50).
PRECISE_OPTIONS = {"bound_relax_factor": 0.0, "tol": 1e-12, "mu_strategy": "adaptive"}
_LOCAL_ASL = models._LOCAL_PYOMO / "lib" / "libpynumero_ASL.so"


class SolverUnavailable(RuntimeError):
    """No Ipopt route works on this machine."""


class NotConverged(RuntimeError):
    """Ipopt stopped without an optimal point (and the caller did not opt in)."""

    def __init__(self, result: "SolveResult"):
        self.result = result
        super().__init__(
            f"Ipopt did not converge: {result.status.value} ({result.message}) "
            f"after {result.iterations} iterations"
        )


class Status(enum.Enum):
    """Termination status of one solve."""

    OPTIMAL = "optimal"
    ACCEPTABLE = "acceptable"  # 'solved to acceptable level': not verified
    MAX_ITERATIONS = "max_iterations"
    MAX_TIME = "max_time"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ERROR = "error"

    @property
    def ok(self) -> bool:
        return self is Status.OPTIMAL


# Ipopt's ApplicationReturnStatus codes (IpReturnCodes_inc.h)
_IPOPT_CODES = {
    0: Status.OPTIMAL,
    1: Status.ACCEPTABLE,
    2: Status.INFEASIBLE,
    3: Status.ERROR,  # search direction becomes too small
    4: Status.UNBOUNDED,  # diverging iterates
    5: Status.ERROR,  # user requested stop
    6: Status.ACCEPTABLE,  # feasible point found (square problems)
    -1: Status.MAX_ITERATIONS,
    -2: Status.ERROR,  # restoration failed
    -3: Status.ERROR,
    -4: Status.MAX_TIME,
    -5: Status.MAX_TIME,
    -10: Status.ERROR,
    -11: Status.ERROR,
    -12: Status.ERROR,  # invalid option
    -13: Status.ERROR,
    -100: Status.ERROR,
    -101: Status.ERROR,
    -102: Status.ERROR,
    -199: Status.ERROR,
}

TINY_STEP_RETRY = {"tiny_step_tol": 0.0}
"""Options of a retry after Ipopt's tiny-step stop (code 3, :func:`stopped_at_tiny_step`).  Ipopt ends a
run when its primal steps stay below tiny_step_tol (10·eps) relative to the variables, whatever its
KKT residual: two_type_121_9's budget menu (σ = 0.9, a baseline) stopped there at a dual infeasibility
of 3e-12 against tol 1e-12, one iteration before 'optimal' (21 iterations with the stop disabled).  With
the stop off, Ipopt's own convergence test (or max_iter) ends the run; a retry, not a default, because
the option also changes which steps skip the line search."""


ACCEPTABLE_RETRY = {"mu_strategy": "monotone", "mu_init": 1e-9}
"""Options of a warm retry (from the last iterate) after an 'acceptable' stop of a program whose only
job is a check of a closed form.  The budgets regime's Proposition-1 efficient program at σ + γ = 0.95
(stranger12's s11_high_eta) reached a dual infeasibility of 4e-12 against tol 1e-12, then its line
search failed 20 times (α ~ 2e-7): near the optimum the predicted decrease, ~inf_du²/curvature
~ 1e-22 of the objective, is below its round-off, and the adaptive barrier update kept proposing the
same step.  The monotone update from the last point with a small μ ends 'optimal' at the same tol
(14 iterations, objective equal to 1e-13).  Same tol, same checks: a retry, not a tolerance.
Since session 18 the budgets regime's exported menu solves (local, each all-pairs round, structured and
presolved forms) use it too: an 'acceptable' stop is retried once from its last iterate (stranger18's
s18, a type of mass 1e-12: acceptable -> optimal, and the polish then resolves that type)."""


def stopped_at_tiny_step(r: "SolveResult") -> bool:
    """Whether a solve ended on Ipopt's tiny-step stop (cyipopt's and the executable's wording)."""
    m = (r.message or "").lower()
    return r.status is Status.ERROR and ("very little progress" in m or "search direction is becoming too small" in m)


_PYOMO_TC = {
    TerminationCondition.optimal: Status.OPTIMAL,
    TerminationCondition.locallyOptimal: Status.OPTIMAL,
    TerminationCondition.maxIterations: Status.MAX_ITERATIONS,
    TerminationCondition.maxTimeLimit: Status.MAX_TIME,
    TerminationCondition.infeasible: Status.INFEASIBLE,
    TerminationCondition.unbounded: Status.UNBOUNDED,
}


@dataclass
class WarmStart:
    """Multipliers of a previous solve, keyed by Pyomo component data."""

    duals: ComponentMap = field(default_factory=ComponentMap)  # ConstraintData -> Ipopt y
    z_lower: ComponentMap = field(default_factory=ComponentMap)  # VarData -> z_L
    z_upper: ComponentMap = field(default_factory=ComponentMap)  # VarData -> z_U


@dataclass
class SolveResult:
    """Outcome of one NLP solve.

    Times are wall-clock seconds: ``build`` (Pyomo model construction, as
    reported by the caller), ``translate`` (NL writing / PyNumero set-up and
    loading the solution back), ``solve`` (inside Ipopt).

    ``duals`` (ComponentMap constraint -> d(obj)/d(rhs)) and ``warm`` are
    built on first access: at N = 10^5 types building them eagerly cost
    ~9 s of a ~60 s solve (measured) and most callers never look.
    ``x`` and ``constraint_duals`` hold the raw arrays of a structured solve
    (``solve_structured``), in the problem's own order.
    """

    status: Status
    objective: float
    iterations: int
    route: str
    ipopt_version: str
    message: str = ""
    build_seconds: float = 0.0
    translate_seconds: float = 0.0
    solve_seconds: float = 0.0
    n_variables: int = 0
    n_constraints: int = 0
    x: np.ndarray | None = field(default=None, repr=False)
    constraint_duals: np.ndarray | None = field(default=None, repr=False)
    _duals: ComponentMap | None = field(default=None, repr=False)
    _warm: WarmStart | None = field(default=None, repr=False)
    _lazy: Callable[[], tuple[ComponentMap, WarmStart | None]] | None = field(default=None, repr=False)

    def _materialise(self) -> None:
        if self._lazy is not None:
            self._duals, self._warm = self._lazy()
            self._lazy = None

    @property
    def duals(self) -> ComponentMap:
        self._materialise()
        return self._duals if self._duals is not None else ComponentMap()

    @property
    def warm(self) -> WarmStart | None:
        self._materialise()
        return self._warm

    @property
    def ok(self) -> bool:
        return self.status.ok

    @property
    def total_seconds(self) -> float:
        return self.build_seconds + self.translate_seconds + self.solve_seconds

    def summary(self) -> dict:
        return {
            "status": self.status.value,
            "objective": self.objective,
            "iterations": self.iterations,
            "route": self.route,
            "ipopt_version": self.ipopt_version,
            "message": self.message,
            "build_seconds": self.build_seconds,
            "translate_seconds": self.translate_seconds,
            "solve_seconds": self.solve_seconds,
            "n_variables": self.n_variables,
            "n_constraints": self.n_constraints,
        }


# ----------------------------------------------------------------- routes
def _exe_available() -> bool:
    return shutil.which("ipopt") is not None


def _import_cyipopt():
    """Import cyipopt with its BLAS single-threaded unless the user chose.

    Ipopt's MUMPS factorises our banded KKT systems through the OpenBLAS
    bundled with casadi, whose small dense fronts gain nothing from threads:
    at N = 10^4 types the budget menu solved in 2.50 s with one BLAS thread
    vs 2.93-3.14 s with two, at half the CPU (bench/budget_menu.py notes).
    OpenBLAS reads the variable once, when the library loads -- here; numpy's
    and scipy's own BLAS libraries are loaded before and keep their setting.
    (The environment is changed only for the import, from the main thread.)
    """
    import sys

    if "cyipopt" in sys.modules:
        return sys.modules["cyipopt"]
    chosen = any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS"))
    # cyipopt imports scipy, whose own OpenBLAS would otherwise load inside
    # the window below and stay single-threaded: load it first
    import scipy.linalg  # noqa: F401
    if not chosen:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import cyipopt
    finally:
        if not chosen:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
    return cyipopt


def _cyipopt_available() -> bool:
    try:
        _import_cyipopt()
        from pyomo.contrib.pynumero.asl import AmplInterface
    except Exception:
        return False
    if not AmplInterface.available() and _LOCAL_ASL.exists():
        # Pyomo was imported before ``models`` could point PYOMO_CONFIG_DIR
        # at the project's build: name the library explicitly.
        AmplInterface.libname = str(_LOCAL_ASL)
    return bool(AmplInterface.available())


def available_routes() -> list[str]:
    """Routes that work on this machine, in order of preference."""
    out = []
    if _exe_available():
        out.append("ipopt")
    if _cyipopt_available():
        out.append("cyipopt")
    return out


INSTALL_HINT = (
    "No Ipopt route works on this machine. Either put an `ipopt` executable on "
    "PATH (conda: `conda env create -f environment.yml`), or run the project's "
    "set-up (`bash tools/setup.sh`), which builds PyNumero's ASL library into "
    ".pyomo/lib and a cyipopt module against the Ipopt bundled in casadi."
)


def pick_route(route: str = "auto") -> str:
    if route not in ROUTES:
        raise ValueError(f"solver route must be one of {ROUTES}, got {route!r}")
    avail = available_routes()
    if route == "auto":
        if not avail:
            raise SolverUnavailable(INSTALL_HINT)
        return avail[0]
    if route not in avail:
        raise SolverUnavailable(f"solver route {route!r} is not available here. " + INSTALL_HINT)
    return route


def ipopt_version(route: str) -> str:
    if route == "cyipopt":
        import cyipopt

        v = getattr(cyipopt, "IPOPT_VERSION", None)
        return ".".join(map(str, v)) if v else "unknown"
    if route == "ipopt":
        v = SolverFactory("ipopt").version()
        return ".".join(map(str, v)) if v else "unknown"
    raise ValueError(route)


def _sense(model) -> int:
    objs = list(model.component_data_objects(pyo.Objective, active=True))
    if len(objs) != 1:
        raise ValueError(f"model must have exactly one active objective, has {len(objs)}")
    return objs[0].sense, objs[0]


# ---------------------------------------------------------------- solving
def solve(
    model,
    *,
    route: str = "auto",
    options: Mapping[str, Any] | None = None,
    allow_nonoptimal: bool = False,
    tee: bool = False,
    build_seconds: float = 0.0,
    warm_start: WarmStart | None = None,
    iteration_callback: Callable[[int, float], None] | None = None,
    label: str = "",
) -> SolveResult:
    """Solve ``model`` with Ipopt and load the solution into it.

    Parameters
    ----------
    options
        Ipopt options, passed through unchanged (``tol``, ``max_iter``,
        ``linear_solver``, ``print_level``, ``output_file``, ...).
    allow_nonoptimal
        If False (default) a non-optimal termination raises ``NotConverged``
        (the result is on the exception).  If True it is returned.
    warm_start
        Multipliers from a previous ``SolveResult.warm`` (cyipopt route):
        the primal start is always the model's current values; with this,
        duals are passed too and ``warm_start_init_point`` is switched on.
    """
    route = pick_route(route)
    opts = dict(options or {})
    _SOLVING.append(label or getattr(model, "name", "") or "unnamed model")
    _arm(_SOLVING[-1])
    try:
        return _solve(model, route, opts, allow_nonoptimal, tee, build_seconds, warm_start, iteration_callback)
    finally:
        _SOLVING.pop()
        _disarm()


# The AMPL Solver Library (under PyNumero) ends the process with exit(1) when a
# second derivative cannot be evaluated (e.g. pow''(0, 1.1): sphes has no error
# argument and PyNumero sets no error jump), printing only its own line.  A C
# exit hook (tools/ampl_ipopt/exit_guard.c, built by tools/setup.sh) armed
# during each solve then names the solve, so that such a run is never a silent
# exit 1.  (A Python ctypes callback cannot be that hook: C exit handlers also
# run after the interpreter has finalised, where it crashes.)
_SOLVING: list[str] = []
_EXIT_GUARD = None
_GUARD_LIB = models._LOCAL_PYOMO.parent / ".build" / "ampl_ipopt" / "lib" / "libexitguard.so"


def _exit_guard():
    global _EXIT_GUARD
    if _EXIT_GUARD is None:
        import ctypes

        _EXIT_GUARD = False
        if _GUARD_LIB.is_file():
            try:
                lib = ctypes.CDLL(str(_GUARD_LIB))
                lib.exit_guard_arm.argtypes = [ctypes.c_char_p]
                _EXIT_GUARD = lib
            except OSError:
                pass
    return _EXIT_GUARD or None


def _arm(label: str) -> None:
    g = _exit_guard()
    if g is not None:
        g.exit_guard_arm(label.encode(errors="replace"))


def _disarm() -> None:
    g = _exit_guard()
    if g is not None:
        if _SOLVING:
            g.exit_guard_arm(_SOLVING[-1].encode(errors="replace"))
        else:
            g.exit_guard_disarm()


def _solve(model, route, opts, allow_nonoptimal, tee, build_seconds, warm_start, iteration_callback):
    if not tee and "print_level" not in opts:
        opts["print_level"] = 0
        if "output_file" in opts:  # file_print_level defaults to print_level
            opts.setdefault("file_print_level", 5)
    # Ipopt reads options from option_file_name, by default ./ipopt.opt in the current directory: a stray
    # file there would change every solve unseen (max_iter 0 in it made every regime 'not converged'; an
    # output_file in it would overwrite a path).  The options are the scenario's and nothing else's: no file
    # is read (cyipopt: the empty name reads none; the executable: an empty file, below).
    opts.setdefault("option_file_name", "")
    if route == "cyipopt":
        from pyomo.contrib.pynumero.exceptions import PyNumeroEvaluationError

        try:
            res = _solve_cyipopt(model, opts, tee, warm_start, iteration_callback)
        except PyNumeroEvaluationError as exc:
            # the model cannot be evaluated (at its start, or where the solution was
            # loaded): numbers beyond double range, e.g. a cost of 1e308 or rho = -1e308.
            # A clean failure of this solve, not a traceback.
            res = SolveResult(status=Status.ERROR, objective=float("nan"), iterations=0, route="cyipopt",
                              ipopt_version=ipopt_version("cyipopt"),
                              message=f"the model's functions cannot be evaluated ({exc}): a value overflows "
                                      "double precision or leaves a function's domain")
    else:
        res = _solve_exe(model, opts, tee, iteration_callback)
    res.build_seconds = build_seconds
    if not res.ok and not allow_nonoptimal:
        raise NotConverged(res)
    return res


def _scaling_from_suffix(model, obj, pvars, cons):
    """User scaling factors from a ``scaling_factor`` Suffix on the model.

    Looks each component data up, then its indexed parent (a factor set on
    an indexed component applies to all its members) -- the rule PyNumero's
    ``SuffixFinder`` applies, without its walk up the block tree for each of
    ~10^6 components (9.6 s vs 0.4 s at N = 10^5, measured).  Models that put
    the Suffix on sub-blocks get PyNumero's lookup.
    """
    nested = any(isinstance(getattr(b, "scaling_factor", None), pyo.Suffix)
                 for b in model.block_data_objects(active=True, descend_into=True) if b is not model)
    if nested:
        return False
    sf = getattr(model, "scaling_factor", None)
    if not isinstance(sf, pyo.Suffix) or not sf.active or sf.get(None) is not None:
        # none, inactive, or with a model-wide default (key None): PyNumero's rules
        return None if not isinstance(sf, pyo.Suffix) else False
    get = sf.get

    def factors(items):
        out = np.ones(len(items))
        for i, c in enumerate(items):
            v = get(c)
            if v is None:
                v = get(c.parent_component())
            if v is not None:
                out[i] = v
        return out

    o = get(obj)
    if o is None:
        o = get(obj.parent_component())
    return (1.0 if o is None else float(o)), factors(pvars), factors(cons)


_BANNER = re.compile(r"^\*{20,}$|This program contains Ipopt|Ipopt is released as open source|"
                     r"For more information visit|^\s*$")


class _ErrorWatch:
    """Surface a linear-solver failure at once (issue 16).

    At print_level 0 Ipopt says nothing when MUMPS fails a factorisation
    (n = 2e6 budgets: ``MUMPS returned INFO(1) = -13``, out of memory, then
    Ipopt went into restoration at 2.4 s per iteration for 45 minutes).  The
    watch gives Ipopt an error-only log file (``file_print_level`` 1 =
    J_ERROR; Ipopt flushes it every iteration, measured) and looks at its size
    at every iteration: when a linear-solver error appears, the intermediate
    callback stops Ipopt (status "user requested stop" -> error) and the
    message carries Ipopt's own words.  A user's ``output_file`` disables it.
    """

    PATTERN = re.compile(r"MUMPS returned INFO|returned from MUMPS|MUMPS.*(error|fail)|out of memory|"
                         r"linear solver.*(fail|error)|(MA27|MA57|MA86|MA97|SPRAL|Pardiso).*(error|fail)",
                         re.IGNORECASE)

    def __init__(self, opts: dict):
        self.path = None
        self.failure = ""
        if "output_file" in opts:
            return
        fd, self.path = tempfile.mkstemp(prefix="ipopt_errors_", suffix=".log")
        os.close(fd)
        opts["output_file"] = self.path
        opts["file_print_level"] = 1

    def ok(self) -> bool:
        """False (stop Ipopt) once a linear-solver error is in the log."""
        if self.path is None or self.failure:
            return not self.failure
        try:
            if os.path.getsize(self.path) == 0:
                return True
            with open(self.path, errors="replace") as fh:
                text = fh.read()
        except OSError:
            return True
        m = self.PATTERN.search(text)
        if m:  # from the line that names the failure (the log starts with Ipopt's banner)
            start = text.rfind("\n", 0, m.start()) + 1
            self.failure = " ".join(text[start:].split())[:500]
            return False
        return True

    def close(self, message: str) -> str:
        text = ""
        if self.path is not None:
            try:
                with open(self.path, errors="replace") as fh:
                    text = " ".join(ln for ln in fh.read().splitlines() if not _BANNER.search(ln))
                    text = " ".join(text.split())[:500]
                os.unlink(self.path)
            except OSError:
                pass
        if self.failure:
            return f"linear solver failed, Ipopt stopped: {self.failure}"
        return f"{message} (Ipopt: {text})" if text else message


def _add_options(problem, opts) -> None:
    for k, v in opts.items():
        try:
            problem.add_option(k, v)
        except TypeError:
            if not isinstance(v, int):
                raise ValueError(f"Ipopt option {k}={v!r} was rejected") from None
            problem.add_option(k, float(v))  # TOML 0 for a real-valued option


def _run_ipopt(problem, x0, tee, lag=None, zl=None, zu=None):
    if tee:
        return problem.solve(x0, lagrange=lag, zl=zl, zu=zu)
    # Ipopt (and MUMPS) print on the C stdout: silence fd 1 only, so that
    # progress lines logged from the iteration callback (stderr) get through
    with _quiet_stdout():
        return problem.solve(x0, lagrange=lag, zl=zl, zu=zu)


def _message(info) -> str:
    m = info["status_msg"]
    return m.decode() if isinstance(m, bytes) else str(m)


def _solve_cyipopt(model, opts, tee, warm_start, iteration_callback) -> SolveResult:
    from pyomo.contrib.pynumero.interfaces.pyomo_nlp import PyomoNLP
    from pyomo.contrib.pynumero.interfaces.cyipopt_interface import CyIpoptNLP

    sense, obj_c = _sense(model)
    t0 = time.perf_counter()
    nlp = PyomoNLP(model)
    iters = [0]

    def _cb(nlp_, problem, alg_mod, iter_count, obj, inf_pr, inf_du, mu,
            d_norm, regularization_size, alpha_du, alpha_pr, ls_trials):
        iters[0] = iter_count
        if iteration_callback is not None:
            iteration_callback(iter_count, obj)
        return watch.ok()

    problem = CyIpoptNLP(nlp, intermediate_callback=_cb)
    cons = nlp.get_pyomo_constraints()
    pvars = nlp.get_pyomo_variables()
    # user scaling: a `scaling_factor` Suffix on the model (same as the
    # executable route, where Pyomo writes it into the NL file)
    scaling = _scaling_from_suffix(model, obj_c, pvars, cons)
    if scaling is False:
        obj_s, x_s, g_s = problem.scaling_factors()
        if any(v is not None for v in (obj_s, x_s, g_s)):
            scaling = (1.0 if obj_s is None else obj_s,
                       np.ones(len(pvars)) if x_s is None else x_s,
                       np.ones(len(cons)) if g_s is None else g_s)
        else:
            scaling = None
    if scaling is not None:
        problem.set_problem_scaling(*scaling)
        opts.setdefault("nlp_scaling_method", "user-scaling")
    x0 = nlp.init_primals()
    lag = zl = zu = None
    if warm_start is not None:
        # stored multipliers are in Ipopt's own sign convention
        lag = np.array([warm_start.duals.get(c, 0.0) for c in cons])
        zl = np.array([warm_start.z_lower.get(v, 0.0) for v in pvars])
        zu = np.array([warm_start.z_upper.get(v, 0.0) for v in pvars])
        opts.setdefault("warm_start_init_point", "yes")
        opts.setdefault("warm_start_bound_push", 1e-9)
        opts.setdefault("warm_start_mult_bound_push", 1e-9)
        opts.setdefault("mu_init", 1e-6)
    watch = _ErrorWatch(opts)
    try:
        _add_options(problem, opts)
        t1 = time.perf_counter()
        x, info = _run_ipopt(problem, x0, tee, lag, zl, zu)
    finally:
        message = watch.close(_message(info) if "info" in locals() else "")
    t2 = time.perf_counter()
    y = np.asarray(info["mult_g"], dtype=float)
    # load values directly: PyNumero's load_state_into_pyomo validates each
    # value and logs W1002 for a hair (~1e-18) outside a bound
    for v, val in zip(pvars, x.tolist()):
        v.set_value(val, skip_validation=True)
    nlp.set_primals(x)
    # Ipopt's Lagrangian is f + g'y with f minimised.  PyNumero hands Ipopt
    # the objective as written for min and its negative for max (checked by
    # finite differences in tests/test_solver.py), so d(obj)/d(rhs) = -y for
    # min and +y for max.  The objective value comes from the same evaluator.
    sign = -1.0 if sense == pyo.minimize else 1.0
    obj = -sign * float(nlp.evaluate_objective())
    dual = getattr(model, "dual", None)
    if isinstance(dual, pyo.Suffix):  # as the executable route does
        dual.clear()
        dual.update(zip(cons, (sign * y).tolist()))
    zL = np.asarray(info["mult_x_L"], float)
    zU = np.asarray(info["mult_x_U"], float)

    def lazy():
        duals = ComponentMap(zip(cons, (sign * y).tolist()))
        warm = WarmStart(duals=ComponentMap(zip(cons, y.tolist())),
                         z_lower=ComponentMap(zip(pvars, zL.tolist())),
                         z_upper=ComponentMap(zip(pvars, zU.tolist())))
        return duals, warm

    problem.close()
    t3 = time.perf_counter()
    return SolveResult(
        status=_IPOPT_CODES.get(int(info["status"]), Status.ERROR),
        objective=obj,
        iterations=int(iters[0]),
        route="cyipopt",
        ipopt_version=ipopt_version("cyipopt"),
        message=message,
        translate_seconds=(t1 - t0) + (t3 - t2),
        solve_seconds=t2 - t1,
        n_variables=len(pvars),
        n_constraints=len(cons),
        _lazy=lazy,
    )


# ------------------------------------------------------ structured problems
_STRUCTURED = None


def structured_base():
    """Base class for a *structured* NLP: PyNumero's ``CyIpoptProblemInterface``
    (Pyomo's extension point for problems that supply their own vectorised
    callbacks instead of a Pyomo model).  Subclasses implement x_init, x_lb,
    x_ub, g_lb, g_ub, scaling_factors, objective (as minimised by Ipopt),
    gradient, constraints, jacobian(structure), hessian(structure) and
    ``profit(x)``, the objective as the user reads it.  Created on first use
    because importing it loads cyipopt."""
    global _STRUCTURED
    if _STRUCTURED is None:
        if not _cyipopt_available():
            raise SolverUnavailable("a structured NLP needs the cyipopt route. " + INSTALL_HINT)
        from pyomo.contrib.pynumero.interfaces.cyipopt_interface import CyIpoptProblemInterface

        class StructuredProblem(CyIpoptProblemInterface):
            iterations = 0
            iteration_hook = None
            watch = None

            def intermediate(self, alg_mod, iter_count, obj_value, *rest):
                self.iterations = iter_count
                if self.iteration_hook is not None:
                    self.iteration_hook(iter_count, obj_value)
                return self.watch is None or self.watch.ok()

        _STRUCTURED = StructuredProblem
    return _STRUCTURED


def solve_structured(
    problem,
    *,
    options: Mapping[str, Any] | None = None,
    allow_nonoptimal: bool = False,
    tee: bool = False,
    build_seconds: float = 0.0,
    iteration_callback: Callable[[int, float], None] | None = None,
) -> SolveResult:
    """Solve a ``structured_base()`` problem with Ipopt (cyipopt route).

    ``result.x`` holds the solution in the problem's order, ``result.objective``
    is ``problem.profit(x)``, and ``result.constraint_duals`` follow this
    module's convention d(objective as written)/d(rhs) (the problem hands
    Ipopt the negated objective of a maximisation, as PyNumero does).
    """
    opts = dict(options or {})
    if not tee and "print_level" not in opts:
        opts["print_level"] = 0
        if "output_file" in opts:
            opts.setdefault("file_print_level", 5)
    t0 = time.perf_counter()
    problem.iteration_hook = iteration_callback
    obj_s, x_s, g_s = problem.scaling_factors()
    if obj_s is not None or x_s is not None or g_s is not None:
        problem.set_problem_scaling(1.0 if obj_s is None else obj_s,
                                    np.ones(len(problem.x_lb())) if x_s is None else x_s,
                                    np.ones(len(problem.g_lb())) if g_s is None else g_s)
        opts.setdefault("nlp_scaling_method", "user-scaling")
    problem.watch = watch = _ErrorWatch(opts)
    try:
        _add_options(problem, opts)
        t1 = time.perf_counter()
        x, info = _run_ipopt(problem, problem.x_init(), tee)
    finally:
        message = watch.close(_message(info) if "info" in locals() else "")
        problem.watch = None
    t2 = time.perf_counter()
    res = SolveResult(
        status=_IPOPT_CODES.get(int(info["status"]), Status.ERROR),
        objective=float(problem.profit(x)),
        iterations=int(problem.iterations),
        route="cyipopt-structured",
        ipopt_version=ipopt_version("cyipopt"),
        message=message,
        build_seconds=build_seconds,
        translate_seconds=t1 - t0,
        solve_seconds=t2 - t1,
        n_variables=len(x),
        n_constraints=len(info["mult_g"]),
        x=np.asarray(x, float),
        constraint_duals=np.asarray(info["mult_g"], float),
    )
    problem.close()
    if not res.ok and not allow_nonoptimal:
        raise NotConverged(res)
    return res


FOLLOW_PERIOD = 0.5  # s between two reads of the executable's iteration table
_ITER_LINE = re.compile(r"^\s*(\d+)r?\s+([-+]?\d\.\d+e[-+]\d+)\s", re.MULTILINE)


class _LogFollower:
    """Iteration progress of the executable route: Ipopt writes its iteration
    table to ``output_file`` (file_print_level 5, flushed every iteration);
    a thread reads what was appended every ``period`` seconds and hands the
    last iteration (number, objective) to ``callback``."""

    def __init__(self, path: str, callback, period: float | None = None):
        import threading

        self.path, self.callback = path, callback
        self.period = FOLLOW_PERIOD if period is None else period
        self._stop = threading.Event()
        self._pos, self._last = 0, -1
        self._thread = threading.Thread(target=self._run, name="ipopt-log", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            with open(self.path, errors="replace") as fh:
                fh.seek(self._pos)
                text = fh.read()
                self._pos = fh.tell()
        except OSError:
            return
        hits = _ITER_LINE.findall(text)
        if hits:
            k, obj = int(hits[-1][0]), float(hits[-1][1])
            if k != self._last:
                self._last = k
                self.callback(k, obj)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._poll()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # the last iterations


def _solve_exe(model, opts, tee, iteration_callback=None) -> SolveResult:
    """The executable route: Pyomo writes the NL file, runs ``ipopt STUB -AMPL
    key=value ...`` and reads the SOL file back (primals and constraint duals).
    Tested on every run with the project's own AMPL driver around the pinned
    Ipopt (tools/ampl_ipopt) and with a conda ``ipopt`` wherever one is on PATH."""
    from pyomo.common.errors import ApplicationError
    from pyomo.opt import SolverStatus

    sense, obj = _sense(model)
    had_suffix = isinstance(getattr(model, "dual", None), pyo.Suffix)
    if not had_suffix:
        model.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    user_out = opts.get("output_file")
    tmpdir = tempfile.mkdtemp(prefix="ipopt_")
    if not opts.get("option_file_name"):  # the AMPL driver takes no empty value: an empty options file
        opts["option_file_name"] = os.path.join(tmpdir, "none.opt")
        open(opts["option_file_name"], "w").close()
    out_file = user_out or os.path.join(tmpdir, "ipopt.out")
    log_file = os.path.join(tmpdir, "ipopt.log")
    opts["output_file"] = out_file
    if isinstance(getattr(model, "scaling_factor", None), pyo.Suffix):
        opts.setdefault("nlp_scaling_method", "user-scaling")
    opts.setdefault("file_print_level", 5)
    t0 = time.perf_counter()
    solver = SolverFactory("ipopt")
    follower = _LogFollower(out_file, iteration_callback) if iteration_callback is not None else None
    failure = None
    import io
    import logging

    from pyomo.common.log import LoggingIntercept

    said = io.StringIO()  # Pyomo logs a non-zero exit with the solver's output: keep it for the message
    try:
        with LoggingIntercept(said, "pyomo.opt", level=logging.WARNING):
            res = solver.solve(model, tee=tee, options=opts, load_solutions=False, logfile=log_file)
    except ApplicationError as exc:  # the executable exited non-zero (e.g. an option it rejects)
        failure = str(exc)
    finally:
        if follower is not None:
            follower.close()
    t1 = time.perf_counter()
    text = open(out_file, errors="replace").read() if os.path.exists(out_file) else ""
    log = open(log_file, errors="replace").read() if os.path.exists(log_file) else said.getvalue()
    m = re.search(r"Number of Iterations\.*:\s*(\d+)", text)
    iters = int(m.group(1)) if m else 0
    m = re.search(r"Total seconds in IPOPT[^=]*=\s*([0-9.eE+-]+)", text)
    ipopt_s = float(m.group(1)) if m else t1 - t0
    duals = ComponentMap()
    if failure is None:
        tc = res.solver.termination_condition
        message = str(res.solver.message or tc).replace("\\x3a", ":").strip()
        status = _PYOMO_TC.get(tc, Status.ERROR)
        # Pyomo maps every solve_result_num 0-99 to "optimal", Ipopt's
        # "Solved To Acceptable Level" (1) and "feasible point" (2) included:
        # those are not optimal here (never verified)
        if status is Status.OPTIMAL and not re.search(r"Optimal Solution Found", message):
            status = Status.ACCEPTABLE
        if len(res.solution) > 0:
            res.solver.status = SolverStatus.ok  # our status is recorded; no Pyomo warning on load
            model.solutions.load_from(res)
            # The AMPL executable reports duals of the problem as written with the
            # AMPL convention d(obj)/d(rhs) for minimisation (Pyomo #2831: opposite
            # to cyipopt's raw multipliers); for maximisation Ipopt's AMPL driver
            # negates the objective and the multipliers alike.  Proven by finite
            # differences in tests/test_solver.py on this route too.
            duals = ComponentMap((c, float(v)) for c, v in model.dual.items())
        if status is Status.ERROR or not message or message == "<undefined>":
            message = _exe_failure_text(text, log) or message
    else:
        status, message = Status.ERROR, f"{failure}: {_exe_failure_text(text, log)}".rstrip(": ")
    objective = float(pyo.value(obj)) if failure is None and len(res.solution) > 0 else float("nan")
    if not had_suffix:
        model.del_component(model.dual)
    else:
        _fill_dual_suffix(model, duals)
    shutil.rmtree(tmpdir, ignore_errors=True)  # (a user's output_file lives elsewhere)
    return SolveResult(
        status=status,
        objective=objective,
        iterations=iters,
        route="ipopt",
        ipopt_version=ipopt_version("ipopt"),
        message=message,
        translate_seconds=max(t1 - t0 - ipopt_s, 0.0),
        solve_seconds=ipopt_s,
        _duals=duals,
    )


def _exe_failure_text(out_text: str, log_text: str) -> str:
    """Ipopt's own words for a failed executable run: the EXIT line and the
    exception message from its output file, else what it printed (its log)."""
    lines = [ln.strip() for ln in out_text.splitlines()]
    keep = [ln for ln in lines if ln.startswith(("EXIT:", "Exception message:"))]
    if not keep:
        keep = [ln.strip() for ln in log_text.splitlines()
                if ln.strip() and not ln.startswith("Solver command line") and not _BANNER.search(ln)]
        keep = keep[-6:]
    return " ".join(" ".join(keep).split())[:500]


def _fill_dual_suffix(model, duals: dict) -> None:
    suffix = getattr(model, "dual", None)
    if isinstance(suffix, pyo.Suffix):
        suffix.clear()
        for c, v in duals.items():
            suffix[c] = v


class Timer:
    """``with Timer() as t: build()`` then ``t.seconds``."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        return False


# ------------------------------------------------------- option validation
# Scenario options are checked against the installed Ipopt's own option list
# *before* any solve.  The list is what Ipopt prints for
# ``print_options_documentation = yes`` (name, range or possible values,
# default) -- obtained once per process from a 1-variable probe problem
# (~20 ms) -- and each option's type (integer or real) is found by handing
# the probe its default as a Python int: Ipopt accepts an int only for an
# integer option.  Linear solvers Ipopt knows but cannot load (HSL, Pardiso
# are loaded from a library at run time) are found by a probe solve with
# that solver: Ipopt returns "Invalid option encountered" (-12) for them.

class OptionError(ValueError):
    """An Ipopt option that the installed Ipopt would reject."""


@dataclass
class OptionSpec:
    name: str
    kind: str  # "integer" | "real" | "string"
    lo: float = -np.inf
    hi: float = np.inf
    lo_open: bool = False
    hi_open: bool = False
    values: tuple = ()  # allowed strings; () with kind string and any_string: free text
    any_string: bool = False
    default: Any = None
    descriptions: dict = field(default_factory=dict)  # string value -> Ipopt's description

    def allowed(self) -> str:
        if self.kind == "string":
            if self.any_string:
                return "a string"
            return "one of " + ", ".join(repr(v) for v in self.values)
        def num(x):
            if x in (-np.inf, np.inf):
                return "-inf" if x < 0 else "+inf"
            return str(int(x)) if self.kind == "integer" else repr(x)
        kind = "an integer" if self.kind == "integer" else "a number"
        lo = f"{num(self.lo)} {'<' if self.lo_open else '<='} "
        hi = f" {'<' if self.hi_open else '<='} {num(self.hi)}"
        if self.kind == "integer":  # C int
            hi = hi if self.hi != np.inf else f" <= {_INT_MAX}"
        return f"{kind} with {lo}{self.name}{hi}"


_INT_MAX = 2 ** 31 - 1  # C int (scenario.IPOPT_INT_MAX is the same bound for [solver] max_iter)
_CATALOG: dict[str, OptionSpec] | None = None
_LINEAR_SOLVERS: dict[tuple, bool] = {}  # (solver name, route) -> loadable


class _ProbeProblem:
    """min (x - 1)^2 on [-10, 10]: the smallest problem Ipopt accepts."""

    def objective(self, x):
        return float((x[0] - 1.0) ** 2)

    def gradient(self, x):
        return np.array([2.0 * (x[0] - 1.0)])

    def constraints(self, x):
        return np.zeros(0)

    def jacobian(self, x):
        return np.zeros(0)


class _quiet_stdout:
    """Silence fd 1 (Ipopt prints option errors on the C stdout)."""

    def __enter__(self):
        import sys

        sys.stdout.flush()
        self._saved = os.dup(1)
        dn = os.open(os.devnull, os.O_WRONLY)
        os.dup2(dn, 1)
        os.close(dn)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 1)
        os.close(self._saved)
        return False


def _probe_problem():
    cy = _import_cyipopt()
    p = cy.Problem(n=1, m=0, problem_obj=_ProbeProblem(), lb=[-10.0], ub=[10.0], cl=[], cu=[])
    p.add_option("hessian_approximation", "limited-memory")
    p.add_option("sb", "yes")
    return p


def _parse_documentation(text: str) -> dict[str, OptionSpec]:
    num = r"([-+]?(?:inf|[0-9.]+(?:e[-+]?\d+)?))"
    rx_num = re.compile(rf"^(\w+)\s+{num}\s+(<=?)\s+\(\s*{num}\)\s+(<=?)\s+{num}\s*$")
    rx_str = re.compile(r'^(\w+)\s+\("(.*)"\)\s*$')
    rx_val = re.compile(r"^    - (\S+)\s*\[?(.*)")
    rx_cont = re.compile(r"^ {20,}(\S.*)")
    specs: dict[str, OptionSpec] = {}
    cur, last = None, None
    for line in text.splitlines():
        m = rx_num.match(line)
        if m:
            name, lo, lop, dflt, hop, hi = m.groups()
            f = lambda s: float(s.replace("+inf", "inf"))  # noqa: E731
            kind = "integer" if re.fullmatch(r"[-+]?\d+", dflt) else "real"
            specs[name] = cur = OptionSpec(name, kind, f(lo), f(hi), lop == "<", hop == "<", default=dflt)
            continue
        m = rx_str.match(line)
        if m:
            specs[m[1]] = cur = OptionSpec(m[1], "string", default=m[2])
            continue
        m = rx_val.match(line)
        if m and cur is not None and cur.kind == "string":
            if m[1] == "*":
                cur.any_string = True
            else:
                cur.values += (m[1],)
                cur.descriptions[m[1]] = m[2]
                last = m[1]
            continue
        m = rx_cont.match(line)
        if m and cur is not None and cur.kind == "string" and cur.values and cur.values[-1] == last:
            cur.descriptions[last] += " " + m[1]
    return specs


def _cyipopt_catalog() -> dict[str, OptionSpec]:
    """name -> OptionSpec of every option of the cyipopt route's Ipopt."""
    global _CATALOG
    if _CATALOG is not None:
        return _CATALOG
    fd, doc = tempfile.mkstemp(prefix="ipopt_options_", suffix=".txt")
    os.close(fd)
    try:
        p = _probe_problem()
        for k, v in (("print_options_documentation", "yes"), ("print_advanced_options", "yes"),
                     ("print_level", 0), ("output_file", doc), ("file_print_level", 5), ("max_iter", 0)):
            p.add_option(k, v)
        with _quiet_stdout():
            p.solve(np.array([0.0]))
        del p
        with open(doc, errors="replace") as fh:
            specs = _parse_documentation(fh.read())
    finally:
        os.unlink(doc)
    # an integral default does not make an option integer (bound_mult_init_val = 1 is real):
    # Ipopt accepts a Python int only for an integer option
    p = _probe_problem()
    with _quiet_stdout():
        for s in specs.values():
            if s.kind == "integer":
                try:
                    p.add_option(s.name, int(s.default))
                except TypeError:
                    s.kind = "real"
    _CATALOG = specs
    return specs


_EXE_CATALOGS: dict[str, dict[str, OptionSpec] | None] = {}
_LATEX_KIND = re.compile(r"\\label\{opt:(\w+)\}.*?The valid range for this (integer|real) option", re.DOTALL)


def _exe_catalog() -> dict[str, OptionSpec] | None:
    """name -> OptionSpec of the ``ipopt`` executable on PATH, from its own
    documentation (``ipopt --print-options``, Ipopt >= 3.14; the option kinds,
    integer or real, from ``--print-options=latex``, which names them), cached
    per executable.  None when the executable does not print its options
    (older builds): Ipopt itself then judges them."""
    import subprocess

    exe = shutil.which("ipopt")
    if exe is None:
        return None
    if exe not in _EXE_CATALOGS:
        specs = None
        try:
            text = subprocess.run([exe, "--print-options"], capture_output=True, text=True, timeout=60).stdout
            latex = subprocess.run([exe, "--print-options=latex"], capture_output=True, text=True,
                                   timeout=60).stdout
            specs = _parse_documentation(text) or None
            if specs:
                kinds = {}
                for block in latex.split("\\paragraph{")[1:]:
                    m = _LATEX_KIND.search(block)
                    if m:
                        kinds[m[1]] = m[2]
                for spec in specs.values():
                    if spec.kind == "integer" and kinds.get(spec.name) == "real":
                        spec.kind = "real"
        except (OSError, subprocess.SubprocessError):
            specs = None
        _EXE_CATALOGS[exe] = specs
    return _EXE_CATALOGS[exe]


def _catalog_route(route: str | None) -> str:
    if route in (None, "auto"):
        avail = available_routes()
        return avail[0] if avail else "cyipopt"
    return route


def ipopt_option_catalog(route: str | None = "cyipopt") -> dict[str, OptionSpec]:
    """name -> OptionSpec of every option of the Ipopt that ``route`` runs
    ("cyipopt", "ipopt", or None/"auto": the route ``pick_route`` would take)."""
    if _catalog_route(route) == "ipopt":
        cat = _exe_catalog()
        if cat is None:
            raise SolverUnavailable("the ipopt executable does not list its options (--print-options)")
        return cat
    return _cyipopt_catalog()


def linear_solver_available(name: str, route: str | None = "cyipopt") -> bool:
    """Can the installed Ipopt use this linear solver?

    Solvers compiled into Ipopt ("use the ... package": MUMPS, SPRAL here)
    are available.  The ones Ipopt loads from a library at run time (HSL's
    ma27/ma57/..., Pardiso) are available when that library loads
    (``hsllib`` / ``pardisolib`` defaults: libhsl.so, libpardiso.so).  A probe
    *solve* is not used: with no HSL library installed, a probe with
    ma97 crashed this Ipopt (segmentation fault, measured), ma27/ma57 returned
    "Invalid option encountered" (-12)."""
    import ctypes

    if name == "custom":  # needs a linear-solver object from C++ code
        return False
    key = (name, _catalog_route(route))
    if key not in _LINEAR_SOLVERS:
        cat = ipopt_option_catalog(route)
        spec = cat.get("linear_solver")
        desc = spec.descriptions.get(name, "") if spec else ""
        if "at runtime" not in desc:
            _LINEAR_SOLVERS[key] = spec is not None and name in spec.values
        else:
            lib_opt = "pardisolib" if name.startswith("pardiso") else "hsllib"
            lib = cat.get(lib_opt)
            try:
                ctypes.CDLL(lib.default if lib else "libhsl.so")
                _LINEAR_SOLVERS[key] = True
            except OSError:
                _LINEAR_SOLVERS[key] = False
    return _LINEAR_SOLVERS[key]


def option_catalog_available(route: str | None = "cyipopt") -> bool:
    """Can options be checked before a solve on ``route`` (None/"auto": the route
    ``pick_route`` would take)?"""
    if _catalog_route(route) == "ipopt":
        return _exe_catalog() is not None
    return _cyipopt_available()


def check_option(name: str, value, route: str | None = "cyipopt") -> str | None:
    """None if Ipopt accepts ``name = value``, else what is allowed (one phrase).

    Raises nothing; call only when ``option_catalog_available()``."""
    import difflib

    cat = ipopt_option_catalog(route)
    spec = cat.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(cat), n=3)
        return ("a known Ipopt option name (this Ipopt has no option " + repr(name)
                + (f"; did you mean {', '.join(close)}?" if close else "") + ")")
    if spec.kind == "string":
        if not isinstance(value, str):
            return spec.allowed()
        if not spec.any_string and value.lower() not in {v.lower() for v in spec.values}:
            return spec.allowed()
        if name == "linear_solver" and not linear_solver_available(value.lower(), route):
            ok = [v for v in spec.values if v != "custom" and linear_solver_available(v, route)]
            return (f"a linear solver this Ipopt can load: {', '.join(repr(v) for v in ok)} "
                    f"({value!r} is known to Ipopt but its library is not installed)")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return spec.allowed()
    if spec.kind == "integer" and (not isinstance(value, int) or abs(value) > _INT_MAX):
        return spec.allowed()
    v = float(value)
    if not math.isfinite(v) or v < spec.lo or v > spec.hi or (spec.lo_open and v == spec.lo) \
            or (spec.hi_open and v == spec.hi):
        return spec.allowed()
    return None
