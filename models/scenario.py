"""Scenario files: TOML, read with the standard library, validated field by field.

A bad file raises ``ScenarioError`` whose message names the file, the field
(dotted path), the value and what is allowed.  ``solve.py`` turns it into one
line on stderr and exit code 2.  The format is documented in README.md.
"""
from __future__ import annotations

import copy
import csv
from decimal import Decimal
import errno
import math
import numbers
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.closed_form.cost import Technology
from models.type_space import TypeDistribution

SOLVER_ROUTES = ("auto", "ipopt", "cyipopt")

# The scenario name becomes a folder below --out: a safe slug, so that a
# scenario file never chooses where files land (no "/", "..", NUL, hidden
# names -- the run's staging folders start with "."), and short enough for
# any file system (255-byte names) with room for staging suffixes.
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
NAME_RULE = ("1-100 characters from A-Z a-z 0-9 . _ - , not starting with '.' or '-' "
             "(it names the output folder)")
# Descriptions are echoed in report.md/report.html; beyond this they are a
# mistake (a pasted file), not a description.
MAX_DESCRIPTION = 10_000
# Scenario files nest at most ~5 levels (solver.options, technology.tokens[i]);
# deeper trees are rejected before validation walks them (Python recursion).
MAX_DEPTH = 32
# A scenario file is a few kB; this bounds what is parsed (a 1e6-type CSV is a separate file).
MAX_SCENARIO_BYTES = 10_000_000


class ScenarioError(ValueError):
    """A user mistake in a scenario: one clear message, no traceback."""


@dataclass
class Scenario:
    name: str
    path: Path | None
    raw: dict  # the validated TOML tree (defaults filled in)
    technology: Technology
    types: TypeDistribution
    n_types: int
    grid: str
    regimes: dict[str, dict]  # regime instance name -> validated options
    solver: dict  # route, options (Ipopt pass-through), allow_nonoptimal
    description: str = ""
    regime_kinds: dict = field(default_factory=dict)  # instance name -> regime (when they differ)

    def discrete_types(self, n: int | None = None):
        """The types on the scenario's grid; ``n`` (API callers) replaces the scenario's number of types and is
        checked as the scenario's own ``types.n`` is (stranger18: n = 0 silently meant the default, n = 1 solved a
        one-type menu, n = -5 and 2.5 raised numpy errors)."""
        if n is not None:
            if self.types.kind == "discrete":
                raise ScenarioError(f"n = {_show(n)} is invalid; allowed: no n for discrete types (the file or "
                                    "list gives the types)")
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 2 <= n <= MAX_TYPES:
                raise ScenarioError(f"n = {_show(n)} is invalid; allowed: an integer with 2 <= n <= {MAX_TYPES}")
        return self.types.discretise(self.n_types if n is None else int(n), self.grid)


# --------------------------------------------------------------- helpers
class _V:
    """Validator bound to one file: every check names the dotted field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, value: Any, allowed: str) -> None:
        shown = _show(value)
        raise ScenarioError(f"{self.source}: field '{path}' = {shown} is invalid; allowed: {allowed}")

    def missing(self, path: str, allowed: str) -> None:
        raise ScenarioError(f"{self.source}: required field '{path}' is missing; allowed: {allowed}")

    def table(self, d: dict, path: str, key: str, required: bool = False) -> dict:
        full = f"{path}.{key}" if path else key
        if key not in d:
            if required:
                self.missing(full, "a table [" + full + "]")
            return {}
        v = d[key]
        if not isinstance(v, dict):
            self.fail(full, v, "a table [" + full + "]")
        return v

    def keys(self, d: dict, path: str, allowed: set[str]) -> None:
        for k in d:
            if k not in allowed:
                where = f"{path}.{k}" if path else k
                raise ScenarioError(
                    f"{self.source}: unknown field '{where}'; allowed fields here: {', '.join(sorted(allowed))}"
                )

    def number(self, d, path, key, *, lo=None, hi=None, lo_open=False, hi_open=False,
               default=None, required=False, integer=False):
        full = f"{path}.{key}" if path else key
        desc = _range_text(key, lo, hi, lo_open, hi_open, integer)
        if key not in d:
            if required:
                self.missing(full, desc)
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            self.fail(full, v, desc)
        if not math.isfinite(v):
            self.fail(full, v, desc)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            self.fail(full, v, desc)
        if hi is not None and (v > hi or (hi_open and v == hi)):
            self.fail(full, v, desc)
        return int(v) if integer else float(v)

    def choice(self, d, path, key, options, default=None, required=False):
        full = f"{path}.{key}" if path else key
        desc = "one of " + ", ".join(repr(o) for o in options)
        if key not in d:
            if required:
                self.missing(full, desc)
            return default
        v = d[key]
        if v not in options:
            self.fail(full, v, desc)
        return v

    def string(self, d, path, key, default=""):
        full = f"{path}.{key}" if path else key
        v = d.get(key, default)
        if not isinstance(v, str):
            self.fail(full, v, "a string")
        return v

    def boolean(self, d, path, key, default=False):
        full = f"{path}.{key}" if path else key
        v = d.get(key, default)
        if not isinstance(v, bool):
            self.fail(full, v, "true or false")
        return v

    def numbers(self, d, path, key, *, lo=None, hi=None, lo_open=False, min_len=1,
                required=False, default=None, increasing=False, max_len=None):
        full = f"{path}.{key}" if path else key
        desc = ("a list of numbers (may be empty)" if min_len == 0 else "a non-empty list of numbers" if min_len == 1
                else f"a list of at least {min_len} numbers") + (
            f" (at most {max_len:,})" if max_len is not None else "") + (
            f" each {'>' if lo_open else '>='} {_num(lo)}" if lo is not None else "") + (
            f" and <= {_num(hi)}" if hi is not None else "") + (", strictly increasing" if increasing else "")
        if key not in d:
            if required:
                self.missing(full, desc)
            return default
        v = d[key]
        if not isinstance(v, list) or len(v) < min_len:
            self.fail(full, v, desc)
        if max_len is not None and len(v) > max_len:
            self.fail(full, f"a list of {len(v):,} numbers", desc)
        for i, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                self.fail(f"{full}[{i}]", x, desc)
            if lo is not None and (x < lo or (lo_open and x == lo)):
                self.fail(f"{full}[{i}]", x, desc)
            if hi is not None and x > hi:
                self.fail(f"{full}[{i}]", x, desc)
        if increasing and any(b <= a for a, b in zip(v[:-1], v[1:])):
            self.fail(full, v, desc)
        return [float(x) for x in v]


def _num(x) -> str:
    """A number as typed: shortest repr that round-trips (0.49999999999999994, not 0.5)."""
    if isinstance(x, bool):
        return repr(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isfinite(x) and x == int(x) and abs(x) < 1e16:
            return str(int(x))
        return repr(x)
    return str(x)


def _show(value, limit: int = 200) -> str:
    """A value as the user typed it: 60.0 stays 60.0 (so "an integer" is understood),
    13.333333333333334 keeps every digit (stranger S8 D8)."""
    if isinstance(value, bool):  # echoed as TOML spells it (stranger11 F5: `n = true` came back as True)
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return _num(value)
    try:
        text = repr(value)
    except RecursionError:
        text = "<deeply nested value>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _range_text(key, lo, hi, lo_open, hi_open, integer):
    kind = "an integer" if integer else "a number"
    # an open end is written as -inf < / < inf: infinities and NaN are refused too
    # (a user reading "rho <= 1" may take -inf for allowed; stranger S7-7)
    left = f"{_num(lo)} {'<' if lo_open else '<='} " if lo is not None else "-inf < "
    right = f" {'<' if hi_open else '<='} {_num(hi)}" if hi is not None else " < inf"
    return f"{kind} with {left}{key}{right}"


# --------------------------------------------------------------- sections
def _classes(v: _V, d: dict, path: str, key: str, required: bool):
    full = f"{path}.{key}"
    if key not in d:
        if required:
            v.missing(full, "an array of tables [[" + full + "]] with name, weight, cost")
        return [], [], []
    arr = d[key]
    if not isinstance(arr, list) or not arr or not all(isinstance(x, dict) for x in arr):
        v.fail(full, arr, "a non-empty array of tables [[" + full + "]] with name, weight, cost")
    names, w, c = [], [], []
    for i, item in enumerate(arr):
        p = f"{full}[{i}]"
        v.keys(item, p, {"name", "weight", "cost"})
        names.append(v.string(item, p, "name", default=f"{key}{i + 1}"))
        w.append(v.number(item, p, "weight", lo=0, lo_open=True, required=True))
        c.append(v.number(item, p, "cost", lo=0, lo_open=True, required=True))
    if abs(sum(w) - 1.0) > 1e-9:
        v.fail(f"{full}[*].weight", sum(w), "weights that sum to 1 (they are CES shares)")
    if len(set(names)) != len(names):
        v.fail(f"{full}[*].name", names, "distinct names")
    return names, w, c


# The most negative CES exponent accepted (tokens and fine-tuning classes).
# Measured (session 7, repro /tmp/rhob): every regime verifies at rho = -50 on
# both CES levels (J = 2, K = 2, Beta types, ic = "both"; 34 s), while at -100
# the Lemma-1 NLP stops with an error and at -700 the menu and cost NLPs do
# (x^rho leaves double precision once an input is e^(709/|rho|) off its
# ray); below -50 the CES is within ln(1/alpha_min)/50 of its Leontief limit
# min_j x_j, so nothing a user can model is lost.
RHO_MIN = -50.0


def _technology(v: _V, d: dict) -> Technology:
    t = v.table(d, "", "technology", required=True)
    v.keys(t, "technology", {"sigma", "rho", "tokens", "fine_tuning"})
    sigma = v.number(t, "technology", "sigma", lo=0, hi=1, lo_open=True, hi_open=True, required=True)
    rho = v.number(t, "technology", "rho", lo=RHO_MIN, hi=1, default=0.0)
    names, alpha, cost = _classes(v, t, "technology", "tokens", required=True)
    ft = v.table(t, "technology", "fine_tuning")
    gamma, rho_hat, fnames, ah, ch, b = 0.0, 0.0, [], [], [], None
    if ft:
        p = "technology.fine_tuning"
        v.keys(ft, p, {"gamma", "rho", "baseline", "classes"})
        gamma = v.number(ft, p, "gamma", lo=0, hi=1, hi_open=True, required=True)
        rho_hat = v.number(ft, p, "rho", lo=RHO_MIN, hi=1, default=0.0)
        b = v.number(ft, p, "baseline", lo=0, lo_open=True, default=None)
        if gamma > 0:
            fnames, ah, ch = _classes(v, ft, p, "classes", required=True)
            if b is not None and len(ah) != 1:
                v.fail(p + ".classes", f"{len(ah)} classes", "exactly one class with the baseline form (b + z)^gamma")
        if sigma + gamma >= 1:
            # "in floating point" only where it is the doubles, not the decimals as typed, that reach 1
            # (0.5 + 0.49999999999999994 is 1.0 in double precision; stranger11 F5 found the phrase
            # odd on a plain 0.5 + 0.6)
            typed = Decimal(repr(sigma)) + Decimal(repr(gamma))
            where = " in floating point (the decimals as typed sum to less than 1)" if typed < 1 else ""
            v.fail(p + ".gamma", gamma, f"0 <= gamma < 1 - sigma = {_num(1 - sigma)} (sigma + gamma < 1; here "
                   f"sigma + gamma = {_num(sigma + gamma)}{where})")
    return Technology(
        sigma=sigma, rho=rho, alpha=tuple(alpha), cost=tuple(cost), gamma=gamma,
        rho_hat=rho_hat, alpha_hat=tuple(ah), cost_hat=tuple(ch), baseline=b,
        token_names=tuple(names), ft_names=tuple(fnames),
    )


DISTRIBUTIONS = ("uniform", "beta", "piecewise", "discrete")
GRIDS = ("equal-spacing", "equal-mass")
# The largest N that runs, measured with bench/largest_budgets.py (budgets,
# the costliest regime per type; /usr/bin/time -v, 2 cores): at N = 2e6 the
# linear solver fails at the first iteration (issue 16's log: MUMPS INFO(1) =
# -13, out of memory; the solve is now stopped at once, solver._ErrorWatch),
# 14.3 GiB peak; N = 1e6 verifies (1230 s, 5.3 GiB) (README, "Scenario files").
MAX_TYPES = 1_000_000


def _types(v: _V, d: dict, base: Path | None):
    t = v.table(d, "", "types", required=True)
    p = "types"
    kind = v.choice(t, p, "distribution", DISTRIBUTIONS, required=True)
    allowed = {"distribution", "n", "grid"}
    allowed |= {"uniform": {"low", "high"}, "beta": {"low", "high", "p", "q"},
                "piecewise": {"breakpoints", "masses"}, "discrete": {"file"}}[kind]
    v.keys(t, p, allowed)
    if kind == "discrete":
        # a discrete distribution's types are its CSV rows: no grid is built,
        # so n and grid would be ignored silently (stranger17 F6: n = 1000 gave
        # the file's 6 types without a word)
        for k in ("n", "grid"):
            if k in t:
                v.fail(f"{p}.{k}", t[k], "no value: a discrete distribution's types are the rows of its CSV "
                       "file (no grid is built); remove the field, or use uniform / beta / piecewise types "
                       "for a grid of n types")
    grid = v.choice(t, p, "grid", GRIDS, default="equal-spacing")
    n = 0
    if kind != "discrete":
        n = v.number(t, p, "n", lo=2, hi=MAX_TYPES, integer=True, required=True)
    if kind in ("uniform", "beta"):
        lo = v.number(t, p, "low", lo=0, default=0.0)
        hi = v.number(t, p, "high", lo=0, lo_open=True, default=1.0)
        if hi <= lo:
            v.fail(p + ".high", hi, f"a number > types.low = {_num(lo)}")
        if kind == "uniform":
            return TypeDistribution("uniform", low=lo, high=hi), n, grid
        a = v.number(t, p, "p", lo=0, lo_open=True, required=True)
        b = v.number(t, p, "q", lo=0, lo_open=True, required=True)
        return TypeDistribution("beta", low=lo, high=hi, p=a, q=b), n, grid
    if kind == "piecewise":
        bp = v.numbers(t, p, "breakpoints", lo=0, min_len=2, required=True, increasing=True)
        ms = v.numbers(t, p, "masses", lo=0, lo_open=True, min_len=1, required=True)
        if len(ms) != len(bp) - 1:
            v.fail(p + ".masses", ms, f"{len(bp) - 1} positive masses (one per interval between breakpoints)")
        if abs(sum(ms) - 1) > 1e-9:
            v.fail(p + ".masses", ms, "positive masses that sum to 1")
        return TypeDistribution("piecewise", breakpoints=tuple(bp), masses=tuple(ms)), n, grid
    # discrete: CSV with columns theta, mass
    fname = v.string(t, p, "file")
    if not fname:
        v.missing(p + ".file", "a CSV file (columns theta, mass) relative to the scenario file")
    fpath = (base / fname) if base else Path(fname)
    problem = file_problem(fpath)
    if problem:
        v.fail(p + ".file", fname, f"an existing CSV file (columns theta, mass) relative to the scenario file "
               f"({problem})")
    thetas, masses = [], []
    rows = []
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the header
        with open(fpath, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            for r in reader:
                rows.append(r)
                if len(rows) > MAX_TYPES:
                    v.fail(p + ".file", fname, f"a CSV file of at most {MAX_TYPES} types (rows); it has more")
            header = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        v.fail(p + ".file", fname, f"a readable UTF-8 CSV file ({exc})")
    if not header or [h.strip() for h in header] != header or set(header) != {"theta", "mass"} \
            or len(header) != 2:
        v.fail(p + ".file", fname, f"a CSV file whose header names exactly the two columns theta and mass, in either order "
                                        f"(found: {_show(header)})")
    for i, r in enumerate(rows):
        if None in r:  # DictReader's restkey: more fields than the header
            v.fail(f"{p}.file[{fname} row {i + 2}]", list(r.values())[:2] + r[None],
                   "exactly 2 fields per row (theta and mass, as the header); this row has "
                   f"{2 + len(r[None])}")
        if any(val is None for val in r.values()):
            v.fail(f"{p}.file[{fname} row {i + 2}]", [x for x in r.values() if x is not None],
                   "exactly 2 fields per row (theta and mass, as the header); this row has fewer")
        try:
            th, m = float(r["theta"]), float(r["mass"])
        except (TypeError, ValueError):
            v.fail(f"{p}.file[{fname} row {i + 2}]", r, "numeric theta >= 0 and mass > 0")
        if not (math.isfinite(th) and th >= 0 and math.isfinite(m) and m > 0):
            v.fail(f"{p}.file[{fname} row {i + 2}]", r, "numeric theta >= 0 and mass > 0")
        thetas.append(th)
        masses.append(m)
    if len(thetas) < 2:  # (header-only file: 0 rows)
        v.fail(p + ".file", fname, f"at least 2 rows (theta,mass); it has {len(thetas)}")
    first = {}
    for i, th in enumerate(thetas):
        if th in first:  # one type per theta: the user adds the masses (we don't guess which row is right)
            v.fail(f"{p}.file[{fname} rows {first[th] + 2} and {i + 2}]", th,
                   "one row per theta value (each theta distinct); these rows repeat theta = "
                   f"{th:g}: put the type in one row with the sum of their masses")
        first[th] = i
    # normalised here (README: weights normalised to sum 1), by the largest first: a plain sum of finite masses
    # can overflow (two rows of 1e308: inf, then a ZeroDivisionError deep in the budgets' scales; stranger15 F1)
    # or lose subnormal ones; the ratios -- all that the model reads -- are kept to round-off
    mx = max(masses)
    w = [m / mx for m in masses]
    tot = math.fsum(w)
    dist = TypeDistribution("discrete", points=tuple(thetas), weights=tuple(x / tot for x in w))
    return dist, len(thetas), grid


_FILE_OPTIONS = frozenset({"output_file"})
"""Ipopt options that name a file Ipopt writes."""


def _solver(v: _V, d: dict) -> dict:
    s = v.table(d, "", "solver")
    p = "solver"
    v.keys(s, p, {"route", "tol", "max_iter", "linear_solver", "print_level", "allow_nonoptimal", "options"})
    opts = {}
    extra = v.table(s, p, "options")
    for k, val in extra.items():
        if not isinstance(val, (int, float, str)) or isinstance(val, bool):
            hint = (f'; Ipopt spells a yes/no option as a string: {k} = "{"yes" if val else "no"}"'
                    if isinstance(val, bool) else "")
            v.fail(f"{p}.options.{k}", val, "a number or a string (passed to Ipopt unchanged)" + hint)
        if k in _OWN_FIELDS:
            v.fail(f"{p}.options.{k}", val, f"set it as [solver] {k} = ..., not in [solver.options]")
        if k in _FILE_OPTIONS:  # Ipopt opens the path for writing: a scenario would choose where files land and
            # could overwrite any file the user can write (stranger15 F0c)
            v.fail(f"{p}.options.{k}", val, "not set by a scenario file (a scenario never chooses where files "
                   "land: Ipopt would overwrite that path); remove it")
        if k == "option_file_name":  # Ipopt would read options from that file, past every check here (an
            # output_file in it); the run itself reads no options file (models.solver)
            v.fail(f"{p}.options.{k}", val, "not set by a scenario file (options go in [solver.options], "
                   "where each is checked against this Ipopt's option list); remove it")
        opts[k] = val
    user = dict(opts)
    tol = v.number(s, p, "tol", lo=0, lo_open=True, hi=1, default=None)
    if tol is not None:
        user["tol"] = tol
    mi = v.number(s, p, "max_iter", lo=0, hi=IPOPT_INT_MAX, integer=True, default=None)
    if mi is not None:
        user["max_iter"] = mi
    opts = {"tol": 1e-10, "max_iter": 3000, **user}
    ls = v.string(s, p, "linear_solver", default="") or None
    if ls:
        opts["linear_solver"] = user["linear_solver"] = ls
    pl = v.number(s, p, "print_level", lo=0, hi=12, integer=True, default=None)
    if pl is not None:
        opts["print_level"] = user["print_level"] = pl
    route = v.choice(s, p, "route", SOLVER_ROUTES, default="auto")
    _check_ipopt_options(v, user, set(extra), route)
    return {
        "route": route,
        "options": opts,
        "user_options": user,
        "option_fields": sorted(set(extra)),  # which user options came from [solver.options]
        "allow_nonoptimal": v.boolean(s, p, "allow_nonoptimal", default=False),
    }


_OWN_FIELDS = ("tol", "max_iter", "linear_solver", "print_level")


def _check_ipopt_options(v: _V, user: dict, in_options: set, route: str = "auto") -> None:
    """Every Ipopt option against the option list of the Ipopt that ``route`` will run
    (cyipopt's, or the ``ipopt`` executable's own ``--print-options``), before any solve."""
    from models import solver as solver_mod

    if route != "auto" and route not in solver_mod.available_routes():
        return  # the run stops with "route not available" (solver.pick_route)
    if not solver_mod.option_catalog_available(route):  # e.g. an old executable: Ipopt itself will judge
        return
    for k, val in user.items():
        allowed = solver_mod.check_option(k, val, route)
        if allowed:
            v.fail(f"solver.options.{k}" if k in in_options else f"solver.{k}", val, allowed)


def check_solver_route(scn: "Scenario", route: str) -> None:
    """Set ``scn``'s solver route (``solve.py --route``) and check its Ipopt options against
    that route's Ipopt (``ScenarioError``, as at load time)."""
    scn.solver["route"] = route
    v = _V(scn.path)
    _check_ipopt_options(v, scn.solver["user_options"], set(scn.solver.get("option_fields", ())), route)


def check_route_available(scn: "Scenario", cli_route: str | None = None) -> None:
    """A route the user asked for (``--route`` or ``solver.route``) that this machine lacks,
    while another one works, is a choice to correct: ``ScenarioError`` naming it and the routes
    that work here (stranger S8 D5: `--route ipopt` without an executable said "No Ipopt route
    works on this machine" although cyipopt does).  No route at all is left to the solver's
    set-up hint (exit 1: the installation, not the input)."""
    from models import solver

    route = cli_route or scn.solver.get("route", "auto")
    if route == "auto":
        return
    avail = solver.available_routes()
    if avail and route not in avail:
        what = "--route" if cli_route else f"{scn.path}: field 'solver.route'"
        why = "no `ipopt` executable on PATH" if route == "ipopt" else "the cyipopt module does not load"
        raise ScenarioError(f"{what} = {route!r} is not available on this machine ({why}); "
                            f"allowed here: {', '.join(['auto'] + avail)}")


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file, or None.  (Directories, FIFOs, devices,
    symlink loops and missing files each get their own words.)"""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic-link loop"
        if exc.errno == errno.ENOENT:
            return "not found"
        if exc.errno == errno.ENOTDIR:
            return "not found: a part of the path is not a folder"
        if exc.errno == errno.EACCES:
            return "permission denied"
        return f"cannot be opened: {exc.strerror}"
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(st.st_mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(st.st_mode):
        return "a socket, not a regular file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _depth(tree) -> tuple[int, str]:
    """Deepest nesting of tables/arrays (iterative: no recursion) and a path to it."""
    best, where = 0, ""
    stack = [(tree, 0, "")]
    while stack:
        node, d, path = stack.pop()
        if d > best:
            best, where = d, path
        if d > MAX_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((val, d + 1, f"{path}.{k}" if path else str(k)) for k, val in node.items())
        elif isinstance(node, list):
            stack.extend((val, d + 1, f"{path}[{i}]") for i, val in enumerate(node))
    return best, where


# Ipopt's integer options are C ints (the same bound models/solver.py checks for [solver.options])
IPOPT_INT_MAX = 2 ** 31 - 1


def _shipped_hint(path: Path) -> str:
    """'; did you mean data/x.toml?' when a bare name is one of the shipped scenarios (stranger11 F5)."""
    from models import data_dir

    p = Path(path)
    if p.parent != Path(".") or p.suffix not in ("", ".toml"):
        return ""
    shipped = data_dir() / (p.stem + ".toml")
    return f"; did you mean {shipped}?" if shipped.is_file() else ""


def parse_toml(path: Path) -> dict:
    """Read a TOML file: clear messages for every way the file can be unusable."""
    src = str(path)
    problem = file_problem(path)
    if problem == "not found":
        raise ScenarioError(f"{src}: scenario file not found{_shipped_hint(path)}")
    if problem:
        raise ScenarioError(f"{src}: cannot be used as a scenario file: {problem}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{src}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{src}: larger than {MAX_SCENARIO_BYTES} bytes; a scenario file is a few kB "
                            "(put many types into a [types] file = \"....csv\")")
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark (Windows editors)
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{src}: not UTF-8 text ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{src}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ScenarioError(f"{src}: arrays or tables nested too deeply to parse; allowed: at most "
                            f"{MAX_DEPTH} levels (scenario files use ~5)") from None
    d, where = _depth(raw)
    if d > MAX_DEPTH:
        raise ScenarioError(f"{src}: field '{where.split('[')[0]}' nests arrays/tables more than {MAX_DEPTH} "
                            f"levels deep; allowed: at most {MAX_DEPTH} levels (scenario files use ~5)")
    return raw


def load(path: str | Path, overrides: dict | None = None) -> Scenario:
    """Read and validate a scenario file (``overrides``: dotted path -> value)."""
    path = Path(path)
    src = str(path)
    raw = parse_toml(path)
    for k, val in (overrides or {}).items():
        set_path(raw, k, val)
    return from_dict(raw, source=src, base=path.parent)


def set_path(raw: dict, dotted: str, value) -> None:
    """Set ``a.b[2].c`` in a nested dict/list tree (used by overrides and sweeps)."""
    import re

    node = raw
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", dotted)
    if not re.fullmatch(r"[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*", dotted):  # '', '.', 'a..b' (stranger18)
        raise ScenarioError(f"parameter path {dotted!r}: allowed: a dotted path of fields and [index]es, "
                            "e.g. 'types.n' or 'technology.tokens[0].cost'")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(node, list) or idx >= len(node):
                raise ScenarioError(f"parameter path '{dotted}': no element {part}")
            if last:
                node[idx] = value
            else:
                node = node[idx]
        else:
            if not isinstance(node, dict):
                raise ScenarioError(f"parameter path '{dotted}': '{part}' is not a table field")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})


def get_path(raw: dict, dotted: str):
    import re

    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        if part.startswith("["):
            node = node[int(part[1:-1])]
        else:
            node = node[part]
    return node


def _check_all_pairs_cap(v, regimes, kinds, dist, n, grid) -> None:
    """A budgets regime that asks for the all-pairs IC form (ic = "all-pairs" or "both") on more types than its
    all_pairs_max is an error, not a silent fall-back to the local form: the run would report a menu the user
    did not ask for (stranger12, N = 1000 with ic = "all-pairs": before, a note only and exit 0)."""
    for rname, ropts in regimes.items():
        if kinds.get(rname, rname) != "budgets" or ropts.get("ic") not in ("all-pairs", "both"):
            continue
        N = len(dist.discretise(n, grid)[0])
        cap = ropts["all_pairs_max"]
        if N > cap:
            v.fail(f"regimes.{rname}.ic", ropts["ic"], f'"local" for {N} types, or all_pairs_max >= {N} '
                   f"(regimes.{rname}.all_pairs_max = {cap}, at most 5000; the all-pairs form has N(N-1) IC rows)")


def from_dict(raw: dict, source: str = "<scenario>", base: Path | None = None) -> Scenario:
    from models import regimes as regime_registry  # late: regimes import this module

    raw = copy.deepcopy(raw)
    v = _V(source)
    v.keys(raw, "", {"name", "description", "technology", "types", "regimes", "solver", "sweep"})
    name = v.string(raw, "", "name", default=Path(source).stem)
    if not NAME_RE.fullmatch(name) or name in (".", ".."):
        if "name" in raw:
            v.fail("name", name, NAME_RULE)
        v.fail("name", name, NAME_RULE + "; the default is the file name: set name = \"...\" in the file")
    desc = v.string(raw, "", "description", default="")
    if len(desc) > MAX_DESCRIPTION:
        v.fail("description", f"<{len(desc)} characters>", f"a string of at most {MAX_DESCRIPTION} characters "
               "(it is echoed in the report)")
    tech = _technology(v, raw)
    dist, n, grid = _types(v, raw, base)
    reg = v.table(raw, "", "regimes", required=True)
    if not reg:
        v.fail("regimes", reg, "at least one regime table, e.g. [regimes.cost]; known regimes: "
               + ", ".join(regime_registry.NAMES))
    regimes, kinds = {}, {}
    for rname, ropts in reg.items():
        if not isinstance(ropts, dict):
            v.fail(f"regimes.{rname}", ropts, f"a table [regimes.{rname}]")
        if "regime" in ropts:  # an instance of a regime under its own name
            k = ropts["regime"]
            if not isinstance(k, str) or k not in regime_registry.NAMES:
                v.fail(f"regimes.{rname}.regime", k, "a known regime: " + ", ".join(regime_registry.NAMES))
            if rname in regime_registry.NAMES and k != rname:
                v.fail(f"regimes.{rname}.regime", k, f"{rname!r} (a table named after a regime is that regime; "
                       "give an instance another name)")
            if not NAME_RE.fullmatch(rname) or rname in (".", ".."):
                v.fail(f"regimes.{rname}", rname, "an instance name of " + NAME_RULE + " (it names a folder)")
            ropts = {key: val for key, val in ropts.items() if key != "regime"}
        else:
            k = rname
            if rname not in regime_registry.NAMES:
                v.fail(f"regimes.{rname}", rname, "a known regime: " + ", ".join(regime_registry.NAMES)
                       + f" (or an instance of one: [regimes.{rname}] with regime = \"...\")")
        if k != rname:
            kinds[rname] = k
        regimes[rname] = regime_registry.validate(k, v, ropts, f"regimes.{rname}", tech)
    _check_all_pairs_cap(v, regimes, kinds, dist, n, grid)
    solver = _solver(v, raw)
    if "sweep" in raw:  # a [sweep] table is validated in every run, not only by `solve.py sweep`
        from models import sweep as sweep_mod

        params, sregs = sweep_mod.params_from_table(raw["sweep"], source)
        for r in sregs or []:
            if r not in regimes:
                raise ScenarioError(f"{source}: field 'sweep.regimes' {r!r}: not in scenario {name}; "
                                    f"allowed: {', '.join(regimes)}")
        sweep_mod.check_table_ends(raw, params, source, base)
    return Scenario(name=name, path=Path(source) if base else None, raw=raw, technology=tech,
                    types=dist, n_types=n, grid=grid, regimes=regimes, solver=solver, description=desc,
                    regime_kinds=kinds)
