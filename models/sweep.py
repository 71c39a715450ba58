"""Parameter sweeps: a grid over scenario fields, each point a full solve, on Dask.

    python solve.py sweep SCENARIO --param PATH=START:STOP:COUNT [--param ...]
                          [--out DIR] [--workers N | --scheduler ADDRESS] [--regime NAME]

``PATH`` is the dotted path of any numeric field of the scenario file
(``technology.sigma``, ``technology.tokens[0].cost``,
``regimes.competition.c_F``); the values are ``numpy.linspace(START, STOP,
COUNT)`` rounded to 12 significant digits; several ``--param`` make the
Cartesian product (the last one varies fastest).  The same information may sit in the scenario file::

    [sweep]
    regimes = ["budgets"]            # optional (default: every regime of the file)
    [[sweep.param]]
    path = "technology.sigma"
    start = 0.2
    stop = 0.6
    count = 200

Each point is a full solve of the chosen regimes with their verification
(``models.run.run_regime``, in a worker process), returned as a small tidy
table (``point_frame``).  Every point of the grid is validated before anything
runs or is written: a bad path, a non-numeric field, ``COUNT < 1`` or a point
whose scenario is invalid is one ``error:`` line and exit code 2.

Output folder ``DIR`` (default ``out/sweeps/<scenario name>``)
-------------------------------------------------------------
``points/<point_id>.parquet``
    one file per finished point, written atomically as the point completes.
    ``point_id`` hashes the scenario (``scenario_hash``: the file's tree
    without ``[sweep]``), the regimes and the point's resolved values, so a
    re-run of the same sweep skips the points already there: an interrupted
    sweep (even ``kill -9``) loses at most the points in flight.
``sweep.parquet``, ``sweep.csv``
    the points of this grid merged (atomically): one row per point and
    quantity; columns ``point``, ``point_id``, one per swept path, then
    ``RECORD_DTYPES`` (kinds of rows: see there).  ``VOLATILE_COLUMNS``
    (timings, worker) are the only ones that differ between two runs.
``sweep.json``
    grid, counts, timings, versions.
``figures/<regime>/*.png``
    every output quantity against every swept parameter, closed form (the
    verification's reference) as a line over the NLP's markers; heat maps for
    two parameters.

A point that does not converge is recorded with its status; a regime that
raises is recorded with status ``error``; neither stops the sweep.  Exit code
0 when every point verified, 1 otherwise, 2 for bad input.

Warm starts: none.  Ipopt is an interior-point method; a primal start from
the neighbouring point's menu took as many iterations as a cold start
(budget menu, N = 100: 55 vs 53), and carrying multipliers needs the
regime's cooperation.  Points are independent tasks, which keeps the
resume granularity at one point.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import logging
import math
import os
import re
import socket
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models import regimes as regime_registry
from models import scenario as scenario_mod
from models.export import Writer, atomic_path
from models.scenario import ScenarioError

# --------------------------------------------------------------- schema
# Columns after the point columns (``point``, ``point_id``, one per swept path).
#   kind "regime":    quantity "checks" / "checks_failed" (value = count),
#                     status verified | check_failed | not_converged | error,
#                     passed = regime verified, message = status text or error
#   kind "solve":     name = solve label, quantity "objective", value, iterations,
#                     status = Ipopt status, passed = optimal, message, times
#   kind "check":     one row per scalar verification row: name = check,
#                     value = numeric, reference, rel_err, tolerance, passed
#   kind "check_max": a vector check summarised: rel_err and tolerance = max,
#                     passed = all rows passed, message = rows and worst index
RECORD_DTYPES = {
    "regime": "string", "kind": "string", "name": "string", "quantity": "string",
    "value": "float64", "reference": "float64", "rel_err": "float64", "tolerance": "float64",
    "passed": "boolean", "status": "string", "iterations": "Int64", "message": "string",
    "build_seconds": "float64", "translate_seconds": "float64", "solve_seconds": "float64",
    "wall_seconds": "float64", "cpu_seconds": "float64", "worker": "string",
}
# Columns that differ between two runs of the same point (timing, provenance).
# wall_seconds / cpu_seconds (regime rows) > 1 means the worker shared its core.
VOLATILE_COLUMNS = ("build_seconds", "translate_seconds", "solve_seconds", "wall_seconds", "cpu_seconds", "worker")
REGIME_STATUSES = ("verified", "check_failed", "not_converged", "error")

_PATH_RE = re.compile(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*")
_PARAM_RE = re.compile(r"^(?P<path>[^=]+)=(?P<start>[^:]+):(?P<stop>[^:]+):(?P<count>[^:]+)$")
PARAM_SYNTAX = "PATH=START:STOP:COUNT, e.g. technology.sigma=0.2:0.6:50"
# Grid bounds.  Validation keeps every point's scenario in memory and the
# sweep writes a file per point, so a grid is bounded in its total number of
# points; one axis may use all of it.  Measured (data/default.toml, 100 x 100
# grid): 17 kB of resident memory and 1.1 ms of validation per point, so the
# bound means at most ~1.7 GB and ~2 minutes before the first point runs.
# (A COUNT of 10^12 tried to allocate 7 TiB; 10^7 points passed 10 GiB.)
MAX_POINTS = 100_000
# Grid values are rounded to this many significant digits: the value a user
# would type, and the same float whichever grid it is part of (resume, hashes).
DIGITS = 12


# ----------------------------------------------------------------- grid
@dataclass(frozen=True)
class Param:
    """One swept field: ``numpy.linspace(start, stop, count)``."""

    path: str
    start: float
    stop: float
    count: int

    def values(self) -> list[float]:
        """``linspace`` rounded to ``DIGITS`` significant digits (0.34, not 0.33999999999999997)."""
        return [float(f"{x:.{DIGITS}g}") for x in np.linspace(self.start, self.stop, self.count)]

    def __str__(self) -> str:
        return f"{self.path}={self.start:g}:{self.stop:g}:{self.count}"


@dataclass
class Point:
    index: int  # position in the grid (row-major, last parameter fastest)
    values: dict  # path -> value as set in the scenario (int for integer fields)
    point_id: str
    scenario: scenario_mod.Scenario


@dataclass
class Plan:
    """A validated sweep: every point's scenario, ready to run."""

    source: Path
    base: scenario_mod.Scenario
    scenario_hash: str
    params: list[Param]
    regimes: list[str]
    points: list[Point] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.params]


def parse_param(text: str) -> Param:
    """``PATH=START:STOP:COUNT`` -> ``Param`` (``ScenarioError`` naming the problem)."""
    m = _PARAM_RE.match(text.strip())
    if not m:
        raise ScenarioError(f"--param {text!r}: expected {PARAM_SYNTAX}")
    path = m["path"].strip()
    try:
        start, stop = float(m["start"]), float(m["stop"])
    except ValueError:
        raise ScenarioError(f"--param {text!r}: START and STOP must be numbers ({PARAM_SYNTAX})") from None
    try:
        count = int(m["count"])
    except ValueError:
        count = None
    return _param(path, start, stop, count, f"--param {text!r}")


def _param(path, start, stop, count, where: str) -> Param:
    if not _PATH_RE.fullmatch(path):
        raise ScenarioError(f"{where}: '{path}' is not a dotted field path like technology.tokens[0].cost")
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise ScenarioError(f"{where}: START and STOP must be finite numbers")
    if count is None or count < 1 or count > MAX_POINTS:
        raise ScenarioError(f"{where}: COUNT must be an integer with 1 <= COUNT <= {MAX_POINTS}")
    return Param(path, float(start), float(stop), int(count))


def params_from_table(table, source: str) -> tuple[list[Param], list[str] | None]:
    """Validate a scenario's ``[sweep]`` table: (params, regimes or None)."""
    v = scenario_mod._V(source)
    if not isinstance(table, dict):
        v.fail("sweep", table, "a table [sweep] with [[sweep.param]] entries")
    v.keys(table, "sweep", {"param", "regimes"})
    regs = None
    if "regimes" in table:
        regs = table["regimes"]
        if not isinstance(regs, list) or not regs or not all(isinstance(r, str) for r in regs):
            v.fail("sweep.regimes", regs, "a non-empty list of regime names")
    arr = table.get("param", [])
    if not isinstance(arr, list) or not all(isinstance(x, dict) for x in arr):
        v.fail("sweep.param", arr, "an array of tables [[sweep.param]] with path, start, stop, count")
    params = []
    for i, item in enumerate(arr):
        p = f"sweep.param[{i}]"
        v.keys(item, p, {"path", "start", "stop", "count"})
        path = v.string(item, p, "path")
        if not path:
            v.missing(p + ".path", "a dotted field path like technology.sigma")
        start = v.number(item, p, "start", required=True)
        stop = v.number(item, p, "stop", required=True)
        count = v.number(item, p, "count", lo=1, integer=True, required=True)
        params.append(_param(path, start, stop, count, f"{source}: field '{p}'"))
    return params, regs


def check_table_ends(raw: dict, params: list[Param], source: str, base: Path | None) -> None:
    """A plain run of a scenario with a ``[sweep]`` table: every swept path exists and its
    start and stop give a valid scenario, so a typo in the table (``regimes.competition.cF``)
    is an error in every run, not an exit 0 that ignores it (stranger S8).  The points in
    between are validated by ``solve.py sweep`` (``plan``)."""
    for i, p in enumerate(params):
        cur = _check_path(raw, p.path, source)
        vals = _typed_values(p, cur)
        for val in dict.fromkeys((vals[0], vals[-1])):
            tree = copy.deepcopy(raw)
            tree.pop("sweep", None)
            scenario_mod.set_path(tree, p.path, val)
            try:
                scenario_mod.from_dict(tree, source=source, base=base)
            except ScenarioError as exc:
                raise ScenarioError(f"sweep.param[{i}] ({p.path} = {scenario_mod._show(val)}): {exc}") from None


def scenario_hash(raw: dict, base_dir: Path | None) -> str:
    """SHA-256 of a scenario tree without its ``[sweep]`` table (and of a discrete types file)."""
    tree = {k: v for k, v in raw.items() if k != "sweep"}
    h = hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode())
    fname = (tree.get("types") or {}).get("file") if isinstance(tree.get("types"), dict) else None
    if isinstance(fname, str) and base_dir is not None and (base_dir / fname).is_file():
        h.update((base_dir / fname).read_bytes())
    return h.hexdigest()


def point_id(scen_hash: str, regimes: list[str], values: dict) -> str:
    key = {"scenario": scen_hash, "regimes": list(regimes),
           "values": {k: repr(v) for k, v in sorted(values.items())}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def _check_path(raw: dict, path: str, source: str) -> object:
    """The current value at ``path`` (``None`` if only the leaf is missing); errors name the path."""
    node, here = raw, ""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("["):
            here += part
            idx = int(part[1:-1])
            n = len(node) if isinstance(node, list) else 0
            if not isinstance(node, list) or idx >= n:
                what = f"a list of {n} element(s)" if isinstance(node, list) else "not a list"
                raise ScenarioError(f"{source}: sweep parameter '{path}': '{here}' does not exist ({what})")
            node = node[idx]
            continue
        here = f"{here}.{part}" if here else part
        if not isinstance(node, dict):
            raise ScenarioError(f"{source}: sweep parameter '{path}': '{here}' is not a table field")
        if part not in node:
            if last:
                return None  # a field left at its default: validating the points decides
            known = ", ".join(sorted(node)) or "(none)"
            raise ScenarioError(f"{source}: sweep parameter '{path}': there is no '{here}' in the scenario "
                                f"(fields there: {known})")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        shown = json.dumps(node, default=str, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ScenarioError(f"{source}: sweep parameter '{path}' = {shown} is not numeric; "
                            "a swept field must hold a number")
    return node


def _typed_values(param: Param, current) -> list:
    """Values to set: integral values become ints unless the field holds a float (TOML ``n = 100``
    is an int, and integer fields refuse ``100.0``); float fields accept ints as well."""
    return [int(x) if not isinstance(current, float) and x.is_integer() else x for x in param.values()]


def plan(scenario_path, params: list[Param] | None = None, regimes: list[str] | None = None) -> Plan:
    """Load the scenario and validate every point of the grid (``ScenarioError`` on the first bad one).

    ``params``/``regimes`` default to the file's ``[sweep]`` table.
    """
    source = Path(scenario_path)
    base = scenario_mod.load(source)
    src = str(source)
    raw = base.raw
    t_params, t_regimes = params_from_table(raw["sweep"], src) if "sweep" in raw else ([], None)
    params = list(params) if params else t_params
    if not params:
        raise ScenarioError(f"{src}: no sweep parameters: give --param {PARAM_SYNTAX} "
                            "or a [[sweep.param]] table in the scenario")
    seen = set()
    for p in params:
        if p.path == "sweep" or p.path.startswith(("sweep.", "sweep[")):
            raise ScenarioError(f"sweep parameter '{p.path}': the [sweep] table itself cannot be swept")
        if p.path in seen:
            raise ScenarioError(f"sweep parameter '{p.path}' is given twice")
        seen.add(p.path)
    where = "--regime" if regimes else f"{src}: field 'sweep.regimes'"
    regimes = list(regimes or t_regimes or [])
    for r in regimes:
        if r not in base.regimes:
            raise ScenarioError(f"{where} {r!r}: not in scenario {base.name}; allowed: {', '.join(base.regimes)}")
    regimes = regime_registry.ordered(base, regimes)
    total = math.prod(p.count for p in params)
    if total > MAX_POINTS:
        raise ScenarioError(f"sweep grid: {' x '.join(str(p.count) for p in params)} = {total} points; "
                            f"allowed: at most {MAX_POINTS} points in all")
    shash = scenario_hash(raw, source.parent)
    axes = [_typed_values(p, _check_path(raw, p.path, src)) for p in params]
    out = Plan(source, base, shash, params, regimes)
    total = math.prod(len(a) for a in axes)
    for i, combo in enumerate(itertools.product(*axes)):
        values = dict(zip(out.paths, combo))
        tree = copy.deepcopy(raw)
        tree.pop("sweep", None)
        for path, val in values.items():
            scenario_mod.set_path(tree, path, val)
        try:
            scn = scenario_mod.from_dict(tree, source=src, base=source.parent)
        except ScenarioError as exc:
            shown = ", ".join(f"{k} = {scenario_mod._show(v)}" for k, v in values.items())  # every digit
            raise ScenarioError(f"sweep point {i + 1} of {total} ({shown}): {exc}") from None
        out.points.append(Point(i, values, point_id(shash, regimes, values), scn))
    return out


# ------------------------------------------------------ one point (worker)
def run_point(scn, regimes: list[str], values: dict, pid: str) -> pd.DataFrame:
    """Solve one point's regimes and return its tidy records (runs in a worker process).

    Never raises for a regime's failure: a solve that does not converge keeps
    its status, a regime that raises is recorded with status ``error``.
    """
    from models import run, solver
    from models.results import RegimeResult

    worker = f"{socket.gethostname()}:{os.getpid()}"
    rows: list[dict] = []
    try:
        ctx = run.Context(route=solver.pick_route(scn.solver["route"]), options=scn.solver["options"],
                          user_options=scn.solver["user_options"], progress=_silent, figures=False)
    except Exception as exc:  # e.g. no Ipopt route on this worker
        for name in regimes:
            rows.append(_error_row(name, exc, 0.0))
        return point_frame(rows, values, pid, worker)
    for name in regimes:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            res = run.run_regime(scn, name, ctx)
        except solver.NotConverged as exc:  # as run_scenario: a regime that needs an optimum to go on
            res = RegimeResult(name, solves={"failed": exc.result}, error=str(exc))
        except Exception as exc:
            rows.append(_error_row(name, exc, time.perf_counter() - t0))
            continue
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if res.figures:  # regimes draw per-solve figures; a sweep draws its own
            from models import plotting

            for fig in res.figures.values():
                plotting.close(fig)
        rows.extend(regime_rows(res, wall, cpu))
    return point_frame(rows, values, pid, worker)


def _silent(*_a, **_k) -> None:
    pass


def warm_up(regimes: list[str]) -> str:
    """Import the solver stack and the regimes in a worker (start-up cost, not a point's)."""
    from models import plotting, run, solver  # noqa: F401

    for name in regimes:
        if name in regime_registry.NAMES:  # (instances of a regime import the same module)
            regime_registry.module(name)
    solver.available_routes()
    return f"{socket.gethostname()}:{os.getpid()}"


def regime_status(res) -> str:
    if res.error is not None and not res.solves:
        return "error"
    if not res.converged:
        return "not_converged"
    return "verified" if res.verified else "check_failed"


def regime_rows(res, wall: float, cpu: float = float("nan")) -> list[dict]:
    """Records of one ``RegimeResult``: its status, every solve, every check (vectors summarised)."""
    ver = res.verification
    passed = ver["passed"].astype(bool) if len(ver) else pd.Series([], dtype=bool)
    status, text = regime_status(res), res.status()
    rows = [
        {"regime": res.name, "kind": "regime", "name": "", "quantity": "checks", "value": float(len(ver)),
         "passed": res.verified, "status": status, "message": text, "wall_seconds": wall, "cpu_seconds": cpu},
        {"regime": res.name, "kind": "regime", "name": "", "quantity": "checks_failed",
         "value": float((~passed).sum()), "passed": res.verified, "status": status, "message": text,
         "wall_seconds": wall, "cpu_seconds": cpu},
    ]
    for label, r in res.solves.items():
        rows.append({"regime": res.name, "kind": "solve", "name": label, "quantity": "objective",
                     "value": float(r.objective), "passed": r.ok, "status": r.status.value,
                     "iterations": int(r.iterations), "message": str(r.message),
                     "build_seconds": r.build_seconds, "translate_seconds": r.translate_seconds,
                     "solve_seconds": r.solve_seconds})
    if len(ver):
        for (chk, q), g in ver.groupby(["check", "quantity"], sort=False):
            ok = bool(g["passed"].astype(bool).all())
            row = {"regime": res.name, "name": chk, "quantity": q, "passed": ok,
                   "status": "passed" if ok else "failed"}
            if len(g) == 1:
                r = g.iloc[0]
                row.update(kind="check", value=float(r["numeric"]), reference=float(r["reference"]),
                           rel_err=float(r["rel_err"]), tolerance=float(r["tolerance"]))
            else:
                rel = g["rel_err"].astype(float).to_numpy()
                worst = int(np.nanargmax(np.where(np.isnan(rel), np.inf, rel)))
                row.update(kind="check_max", rel_err=float(np.max(rel)), tolerance=float(g["tolerance"].max()),
                           message=f"{len(g)} rows; worst at index {g['index'].iloc[worst]}")
            rows.append(row)
    return rows


def _error_row(name: str, exc: BaseException, wall: float) -> dict:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    return {"regime": name, "kind": "regime", "name": "", "quantity": "checks_failed", "value": np.nan,
            "passed": False, "status": "error", "message": text, "wall_seconds": wall}


def point_frame(rows: list[dict], values: dict, pid: str, worker: str = "") -> pd.DataFrame:
    """Rows -> the point's table: ``point_id``, one column per swept path, ``RECORD_DTYPES``."""
    df = pd.DataFrame(rows, columns=list(RECORD_DTYPES))
    df["worker"] = worker
    df = df.astype(RECORD_DTYPES)
    head = pd.DataFrame({"point_id": pd.Series([pid] * len(df), dtype="string")})
    for path, val in values.items():
        head[path] = float(val)
    return pd.concat([head, df], axis=1)


# ------------------------------------------------------------ the driver
@dataclass
class SweepResult:
    out: Path
    table: pd.DataFrame  # the merged table (points of this grid that are done)
    total: int  # points in the grid
    finished: int  # of them on disk now
    reused: int
    computed: int
    failed: int  # points with a regime not verified (errors included)
    errors: int  # points with a regime that raised
    seconds: dict

    @property
    def complete(self) -> bool:
        return self.finished == self.total

    @property
    def exit_code(self) -> int:
        return 0 if self.complete and self.failed == 0 else 1


def points_dir(out: Path) -> Path:
    return Path(out) / "points"


def _point_file(out: Path, pid: str) -> Path:
    return points_dir(out) / f"{pid}.parquet"


def finished(out: Path, pl: Plan) -> set[str]:
    """Ids of this grid's points already on disk (stale temporary files are removed)."""
    d = points_dir(out)
    if not d.is_dir():
        return set()
    for tmp in d.glob(".*.tmp"):  # left by a write that was killed: never a finished point
        tmp.unlink(missing_ok=True)
    ids = {p.point_id for p in pl.points}
    return {f.stem for f in d.glob("*.parquet") if f.stem in ids}


def _warn_other_revision(out: Path, log) -> None:
    """Point ids hash the scenario, not the code: say so when the finished points may be older code's."""
    from models import run

    try:
        before = json.loads((Path(out) / "sweep.json").read_text()).get("git_revision")
    except (OSError, ValueError):
        return
    now = run._git_revision()
    if before and before != now:
        log(f"note: points already in {points_dir(out)}/ were computed at git revision {before}, this is {now}; "
            "remove that folder to recompute them with this code")


def _write_point(out: Path, df: pd.DataFrame, pid: str) -> None:
    with atomic_path(_point_file(out, pid)) as tmp:
        df.to_parquet(tmp, index=False)


def _point_failed(df: pd.DataFrame) -> tuple[bool, bool]:
    reg = df[df["kind"] == "regime"]
    return bool((reg["status"] != "verified").any()), bool((reg["status"] == "error").any())


def merge(out: Path, pl: Plan) -> pd.DataFrame:
    """This grid's finished points, in grid order, with their ``point`` index."""
    frames = []
    for pt in pl.points:
        f = _point_file(out, pt.point_id)
        if f.is_file():
            df = pd.read_parquet(f)
            df.insert(0, "point", pt.index)
            frames.append(df)
    if not frames:
        cols = ["point", "point_id", *pl.paths, *RECORD_DTYPES]
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Progress:
    """tqdm bar on stderr: points done (of the grid), failed, ETA."""

    def __init__(self, total: int, done: int, quiet: bool):
        from tqdm import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=done, desc="sweep", unit="pt", file=sys.stderr,
                        disable=quiet, dynamic_ncols=True, smoothing=0.1)
        self.bar.set_postfix(failed=0)

    def step(self, failed: bool) -> None:
        self.failed += failed
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_sweep(pl: Plan, out, workers: int | None = None, scheduler: str | None = None,
              figures: bool = True, quiet: bool = False, log=print) -> SweepResult:
    """Run the points of ``pl`` not yet in ``out`` and merge; see the module docstring.

    ``workers``: size of the LocalCluster (default: the CPUs this process may
    use); ``0`` runs the points in this process without Dask.  ``scheduler``:
    address (or scheduler-file path) of an existing Dask cluster instead.
    """
    out = Path(out)
    t_start = time.perf_counter()
    done = finished(out, pl)
    todo = [p for p in pl.points if p.point_id not in done]
    log(f"sweep {pl.base.name}: {len(pl.points)} points ({' x '.join(str(p) for p in pl.params)}), "
        f"regimes {', '.join(pl.regimes)}; {len(done)} already done, {len(todo)} to run -> {out}")
    if done and todo:
        _warn_other_revision(out, log)
    seconds = {"startup": 0.0, "compute": 0.0}
    mode = "in-process" if (workers == 0 and not scheduler) else None
    bars: list[_Progress] = []

    def start() -> None:  # the bar starts when the points do (not during cluster start-up)
        bars.append(_Progress(len(pl.points), len(done), quiet))

    def record(pt: Point, df: pd.DataFrame) -> None:
        _write_point(out, df, pt.point_id)
        bars[0].step(_point_failed(df)[0])

    stopped = True  # interrupted or failed: merge what is done, skip the figures
    try:
        if todo and mode == "in-process":
            start()
            t0 = time.perf_counter()
            for pt in todo:
                record(pt, run_point(pt.scenario, pl.regimes, pt.values, pt.point_id))
            seconds["compute"] = time.perf_counter() - t0
        elif todo:
            mode = _run_dask(pl, todo, workers, scheduler, start, record, seconds)
        stopped = False
    finally:
        for bar in bars:
            bar.close()
        table = merge(out, pl)
        failed = errors = 0
        for _, df in table.groupby("point_id", sort=False):
            f, e = _point_failed(df)
            failed, errors = failed + f, errors + e
        n_done = table["point_id"].nunique() if len(table) else 0
        res = SweepResult(out, table, len(pl.points), n_done, len(done), n_done - len(done), failed, errors,
                          seconds)
        if n_done:  # nothing finished (e.g. no cluster): write nothing
            w = Writer(out, formats=("csv", "parquet"))
            w.table(table, "sweep", caption=f"Sweep of {pl.base.name}")
            if figures and not stopped:
                t0 = time.perf_counter()
                plot(table, pl, w)
                seconds["figures"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - t_start
        if n_done:
            w.json(_manifest(pl, res, mode or "dask", workers, scheduler), "sweep.json")
    return res


def _run_dask(pl: Plan, todo: list[Point], workers, scheduler, start, record, seconds) -> str:
    from distributed import Client, LocalCluster, as_completed

    t0 = time.perf_counter()
    cluster = None
    if scheduler:
        kw = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        try:
            _probe(scheduler)
            client = Client(**kw, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(f"cannot connect to the Dask scheduler {scheduler!r}: {exc}") from None
        mode = f"dask scheduler {client.scheduler.address}"
    else:
        n = workers or default_workers()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        mode = f"dask LocalCluster, {n} worker process(es)"
    futures = []
    try:
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise ClusterError(f"no Dask worker joined the scheduler {scheduler or ''} within 60 s") from None
        try:
            client.run(warm_up, pl.regimes)
        except Exception as exc:  # Dask re-raises a worker's ImportError as a bare Exception
            hint = (f"; start the workers with PYTHONPATH={Path(__file__).resolve().parent.parent}"
                    if "No module named" in str(exc) else "")
            raise ClusterError(f"the Dask workers cannot run the project's code ({exc}){hint}") from None
        seconds["startup"] = time.perf_counter() - t0
        start()
        t1 = time.perf_counter()
        by_key = {}
        for pt in todo:  # grid order: Dask runs earlier submissions first
            fut = client.submit(run_point, pt.scenario, pl.regimes, pt.values, pt.point_id,
                                key=f"sweep-point-{pt.point_id}", pure=False)
            by_key[fut.key] = pt
            futures.append(fut)
        for fut in as_completed(futures):
            pt = by_key[fut.key]
            try:
                df = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the point crashed its worker repeatedly
                df = point_frame([_error_row(r, exc, 0.0) for r in pl.regimes], pt.values, pt.point_id)
            record(pt, df)
            fut.release()
        seconds["compute"] = time.perf_counter() - t1
    finally:
        if futures:
            client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()
    return mode


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached or has no workers."""


_ADDRESS_RE = re.compile(r"(?:(?:tcp|tls|ucx|ws|wss)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def check_scheduler(text: str) -> None:
    """``ScenarioError`` unless ``text`` is a scheduler file or an address like tcp://host:8786."""
    if Path(text).is_file():
        try:
            address = json.loads(Path(text).read_text()).get("address", "")
        except (OSError, ValueError, AttributeError) as exc:
            raise ScenarioError(f"--scheduler {text!r}: allowed: a Dask scheduler file (JSON with an "
                                f"'address') or an address like tcp://host:8786 ({exc})") from None
        if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
            raise ScenarioError(f"--scheduler {text!r}: the scheduler file's 'address' {address!r} is not an "
                                "address like tcp://host:8786")
        return
    m = _ADDRESS_RE.fullmatch(text)
    if not m or not 0 < int(m[2]) < 65536:
        raise ScenarioError(f"--scheduler {text!r}: allowed: an address like tcp://host:8786 (port 1-65535) "
                            "or an existing Dask scheduler file")


def _probe(scheduler: str) -> None:
    """Fail fast (``OSError``) when nothing listens at a tcp:// address (Dask would retry for 20 s)."""
    address = scheduler
    if Path(scheduler).is_file():
        address = json.loads(Path(scheduler).read_text()).get("address", "")
    m = re.fullmatch(r"(?:tcp://)?\[?([^\]]+?)\]?:(\d+)", address)
    if m:
        socket.create_connection((m[1], int(m[2])), timeout=10).close()


def _manifest(pl: Plan, res: SweepResult, mode: str, workers, scheduler) -> dict:
    from models import run

    return {
        "scenario": {"name": pl.base.name, "path": str(pl.source), "hash": pl.scenario_hash},
        "params": [{"path": p.path, "start": p.start, "stop": p.stop, "count": p.count} for p in pl.params],
        "regimes": pl.regimes,
        "points": res.total, "finished": res.finished,
        "complete": res.complete, "reused": res.reused, "computed": res.computed,
        "failed": res.failed, "errors": res.errors,
        "execution": mode, "workers": workers, "scheduler": scheduler,
        "seconds": res.seconds,
        "git_revision": run._git_revision(),
        "packages": run.package_versions(),
        "command": " ".join(sys.argv),
    }


# ----------------------------------------------------------------- plots
MAX_LINES = 6  # with several parameters: at most this many lines (values of the others) per plot


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")[:80] or "x"


def series(table: pd.DataFrame) -> list[tuple]:
    """(regime, kind, name, quantity) of every plotted output, in table order."""
    keys = table[["regime", "kind", "name", "quantity"]].drop_duplicates()
    keys = keys[~((keys["kind"] == "regime") & (keys["quantity"] == "checks"))]
    return [tuple(k) for k in keys.itertuples(index=False)]


MARGIN_FLOOR, MARGIN_CEIL = 1e-6, 1e3  # margins below 1e-6 of a tolerance are all "far inside" on the plot


def _is_margin(sel: pd.DataFrame, kind: str) -> bool:
    """A series shown only by its margin to its tolerance: a check summarised over rows
    (``check_max``) or a one-sided bound (reference 0: audits, counts), whose own value is
    no economic output."""
    return kind == "check_max" or (kind == "check" and bool((sel["reference"].fillna(0.0) == 0.0).all()))


def margins(sel: pd.DataFrame, kind: str) -> np.ndarray:
    """Error / tolerance of each point (> 1: failed), in [MARGIN_FLOOR, MARGIN_CEIL] for a log
    axis; an error of 0 against a tolerance of 0 (a count of violations) is the floor."""
    err = sel["rel_err" if kind == "check_max" else "value"].to_numpy(float)
    tol = sel["tolerance"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0.0))
    return np.clip(np.nan_to_num(m, nan=MARGIN_CEIL, posinf=MARGIN_CEIL), MARGIN_FLOOR, MARGIN_CEIL)


def plot(table: pd.DataFrame, pl: Plan, writer: Writer) -> list[Path]:
    """Every output (solve objectives, checks of a numeric value against its closed form,
    failed checks) against every swept parameter, a heat map for two parameters; checks
    that are bounds or summaries over rows go together into one figure per regime and
    parameter, ``verification_margins`` (error / tolerance; a heat map of the worst for two).
    (Stranger S8: one figure per audit row took ~90 % of a small sweep's time.)"""
    from models import plotting

    written = []
    paths = pl.paths
    margin_series = defaultdict(list)  # regime -> [(label, sel)]
    for reg, kind, name, q in series(table):
        sel = table[(table["regime"] == reg) & (table["kind"] == kind) & (table["name"] == name)
                    & (table["quantity"] == q)]
        sel = sel.drop_duplicates("point").sort_values("point")
        if not len(sel):
            continue
        if _is_margin(sel, kind):
            margin_series[reg].append((f"{name}: {q}", sel.assign(margin=margins(sel, kind))))
            continue
        base = _slug(f"{kind}_{name}_{q}" if name else f"{kind}_{q}")
        for x in paths:
            fig = _line_figure(sel, x, [p for p in paths if p != x], reg, kind, name, q)
            written += writer.figure(fig, f"{base}__vs__{_slug(x)}", subdir=f"figures/{reg}")
            plotting.close(fig)
        if len(paths) == 2 and kind in ("solve", "check", "regime"):
            fig = _heat_map(sel, paths, reg, kind, name, q)
            written += writer.figure(fig, f"{base}__map", subdir=f"figures/{reg}")
            plotting.close(fig)
    for reg, items in margin_series.items():
        for x in paths:
            fig = _margin_figure(items, x, reg)
            written += writer.figure(fig, f"verification_margins__vs__{_slug(x)}", subdir=f"figures/{reg}")
            plotting.close(fig)
        if len(paths) == 2:
            worst = pd.concat([sel for _, sel in items]).groupby("point", as_index=False).agg(
                {paths[0]: "first", paths[1]: "first", "margin": "max", "passed": "all"})
            fig = _heat_map(worst.rename(columns={"margin": "value"}), paths, reg, "margin", "", "")
            written += writer.figure(fig, "verification_margins__map", subdir=f"figures/{reg}")
            plotting.close(fig)
    return written


def _margin_figure(items, x, reg):
    """Error / tolerance of every bound and row-summary check against ``x`` (log axis, fails
    above 1): the MAX_LINES checks that come closest to their tolerance labelled, the rest grey."""
    from models import plotting

    fig, ax = plotting.new(size=(7.0, 4.5))
    order = sorted(items, key=lambda it: -float(it[1]["margin"].max()))
    for i, (label, sel) in enumerate(order):
        g = sel.groupby(x, as_index=False).agg({"margin": "max", "passed": "all"}).sort_values(x)
        xv, mv = g[x].to_numpy(float), g["margin"].to_numpy(float)
        if i < MAX_LINES:
            ax.plot(xv, mv, "o-", ms=3, lw=0.8, label=label[:60])
        else:
            ax.plot(xv, mv, "-", lw=0.5, color="0.75", label=f"{len(order) - MAX_LINES} more checks"
                    if i == MAX_LINES else None)
        bad = ~g["passed"].fillna(False).to_numpy(bool)
        if bad.any():
            ax.plot(xv[bad], mv[bad], "x", color="red", ms=7)
    ax.axhline(1.0, color="red", lw=1, ls="--", label="tolerance (fails above)")
    ax.set_yscale("log")
    ax.set_ylim(MARGIN_FLOOR / 2, MARGIN_CEIL * 2)
    plotting.labels(ax, x, "error / tolerance (worst over the other parameters)",
                    f"{reg}: verification margins ({len(order)} checks)")
    ax.legend(frameon=False, fontsize=7)
    return fig


def _title(reg, kind, name, q) -> str:
    what = {"solve": f"{name}: objective", "regime": "failed checks", "margin": "worst verification margin",
            "check": f"{name}: {q}", "check_max": f"{name}: {q} (max over rows)"}[kind]
    return f"{reg}: {what}"


def _groups(sel: pd.DataFrame, others: list[str]):
    """Split the points by the values of the other parameters (at most MAX_LINES lines)."""
    if not others:
        return [("", sel)]
    keys = sel[others].drop_duplicates().sort_values(others)
    if len(keys) > MAX_LINES:
        keys = keys.iloc[np.unique(np.linspace(0, len(keys) - 1, MAX_LINES).round().astype(int))]
    out = []
    for key in keys.itertuples(index=False):
        mask = np.logical_and.reduce([sel[c].to_numpy() == v for c, v in zip(others, key)])
        out.append((", ".join(f"{c} = {v:.4g}" for c, v in zip(others, key)), sel[mask]))
    return out


def _line_figure(sel, x, others, reg, kind, name, q):
    """Left: the output (closed form as a line where it exists); right: its error or iterations."""
    from models import plotting

    two = kind in ("check", "solve")
    fig, axes = plotting.new(ncols=2 if two else 1)
    axes = np.atleast_1d(axes)
    ax, ax2 = axes[0], (axes[1] if two else None)
    ycol = "rel_err" if kind == "check_max" else "value"
    for i, (label, g) in enumerate(_groups(sel, others)):
        g = g.sort_values(x)
        xv = g[x].to_numpy(float)
        yv = g[ycol].to_numpy(float)
        bad = ~g["passed"].fillna(False).to_numpy(bool)
        sfx = f" ({label})" if label else ""
        first = i == 0
        if kind == "check":
            plotting.closed_form_line(ax, xv, g["reference"].to_numpy(float), "reference" + sfx)
        join = {"ls": "-", "lw": 0.5} if label else {}  # several lines: join each one's markers
        plotting.numeric_markers(ax, xv, yv, {"check": "numeric", "check_max": "max rel. error",
                                              "solve": "objective", "regime": "failed checks"}[kind] + sfx, **join)
        if kind in ("check", "check_max"):
            tol_ax = ax2 if kind == "check" else ax
            tol_ax.plot(xv, g["tolerance"].to_numpy(float), "--", lw=1, color="gray",
                        label="tolerance" if first else None)
        if kind == "check":
            plotting.numeric_markers(ax2, xv, np.maximum(g["rel_err"].to_numpy(float), 1e-18), "rel. error" + sfx,
                                     **join)
        elif kind == "solve":
            plotting.numeric_markers(ax2, xv, g["iterations"].to_numpy(float), "iterations" + sfx, **join)
        if bad.any() and kind != "regime":
            ax.plot(xv[bad], yv[bad], "x", color="red", ms=7, label="failed / not optimal" if first else None)
    ylab = {"check": q, "check_max": "max relative error", "solve": "objective", "regime": "failed checks"}[kind]
    if kind == "check_max":
        ax.set_yscale("log")
    plotting.labels(ax, x, ylab, _title(reg, kind, name, q))
    if kind == "check":
        ax2.set_yscale("log")
        plotting.labels(ax2, x, "relative error", "numeric vs reference")
    elif kind == "solve":
        plotting.labels(ax2, x, "Ipopt iterations", "status: " + ", ".join(sorted(set(sel["status"].astype(str)))))
    return fig


def _heat_map(sel, paths, reg, kind, name, q):
    from models import plotting

    grid = sel.pivot_table(index=paths[1], columns=paths[0], values="value", aggfunc="first")
    fig, ax = plotting.new()
    norm = None
    if kind == "margin":  # error / tolerance spans decades
        from matplotlib.colors import LogNorm

        norm = LogNorm(MARGIN_FLOOR, MARGIN_CEIL)
    mesh = ax.pcolormesh(grid.columns.to_numpy(float), grid.index.to_numpy(float), grid.to_numpy(float),
                         shading="nearest", norm=norm)
    fig.colorbar(mesh, ax=ax, label={"regime": "failed checks", "check": "numeric",
                                     "margin": "max error / tolerance"}.get(kind, "objective"))
    bad = sel[~sel["passed"].fillna(False).to_numpy(bool)]
    if len(bad) and kind != "regime":
        ax.plot(bad[paths[0]], bad[paths[1]], "x", color="red", ms=5, label="failed / not optimal")
    plotting.labels(ax, paths[0], paths[1], _title(reg, kind, name, q))
    return fig


# ------------------------------------------------------------------- CLI
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ``error:`` line and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see: solve.py sweep --help)\n")


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="solve.py sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
                 description="Sweep scenario parameters over a grid; each point solves and verifies the regimes.",
                 epilog="Exit codes: 0 every point converged and verified, 1 some point did not (see sweep.csv), "
                        "2 bad input.\nRe-running the same command skips the points already in DIR/points/.")
    ap.add_argument("scenario", metavar="SCENARIO", help="scenario TOML file (may hold a [sweep] table)")
    ap.add_argument("--param", action="append", default=None, metavar="PATH=START:STOP:COUNT",
                    help="a swept field and linspace(START, STOP, COUNT), e.g. technology.sigma=0.2:0.6:50 "
                         "(repeatable: grid = Cartesian product; replaces the file's [[sweep.param]])")
    ap.add_argument("--out", default=None, metavar="DIR", help="output folder (default: out/sweeps/<scenario name>)")
    ap.add_argument("--workers", type=int, default=None, metavar="N",
                    help="worker processes of the local Dask cluster (default: the CPU count); "
                         "0 = run in this process, no Dask")
    ap.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="use this Dask scheduler (tcp://host:port, or a scheduler-file path) "
                         "instead of a local cluster")
    ap.add_argument("--regime", action="append", default=None, metavar="NAME",
                    help="solve only this regime at each point (repeatable)")
    ap.add_argument("--no-figures", action="store_true", help="do not draw DIR/figures/")
    noise = ap.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true",
                       help="no progress bar or progress lines (errors and the final RESULT only)")
    noise.add_argument("--verbose", "-v", action="store_true", help="more progress lines (logging DEBUG)")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.workers is not None and args.workers < 0:
        print("error: --workers must be >= 0 (0 = in this process, no Dask)", file=sys.stderr)
        return 2
    if args.workers is not None and args.scheduler:
        print("error: --workers and --scheduler exclude each other (the scheduler's workers are used)",
              file=sys.stderr)
        return 2
    try:
        params = [parse_param(t) for t in args.param] if args.param else None
        pl = plan(args.scenario, params, args.regime)
        if not args.scheduler:  # a route this machine lacks while another works: the user's choice
            scenario_mod.check_route_available(pl.base)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from models import solver

    if not args.scheduler:  # the local machine must have an Ipopt route (a remote cluster is its own business)
        try:
            solver.pick_route(pl.base.solver["route"])
        except solver.SolverUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    from models import run

    try:
        if args.scheduler:
            check_scheduler(args.scheduler)
        out = run.out_root(args.out, "--out") if args.out is not None else Path("out") / "sweeps" / pl.base.name
        if os.path.lexists(out) and not out.is_dir():
            raise run.OutputError(f"--out {str(out)!r}: allowed: a folder path; is a file")
        run._usable_folder(out, "--out")
    except (ScenarioError, run.OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import logging

    from models.cli import set_verbosity

    # progress through logging (logger models.sweep, stderr); the summary and RESULT are stdout
    set_verbosity("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    log = logging.getLogger("models.sweep").info
    try:
        res = run_sweep(pl, out, workers=args.workers, scheduler=args.scheduler,
                        figures=not args.no_figures, quiet=args.quiet, log=log)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished points are kept in {points_dir(out)}/; "
              "re-run the same command to finish the sweep", file=sys.stderr)
        return 130
    s = res.seconds
    log = (lambda msg: print(msg, flush=True))
    log(f"sweep: {res.total} points ({res.reused} reused, {res.computed} computed) in {s['total']:.1f} s "
        f"(cluster start {s['startup']:.1f} s, compute {s['compute']:.1f} s); "
        f"{res.finished - res.failed} verified, {res.failed} failed ({res.errors} with errors)"
        + ("" if res.complete else f"; {res.total - res.finished} NOT RUN"))
    log(f"wrote {out}/ (sweep.parquet, sweep.csv, sweep.json, points/"
        + (", figures/)" if not args.no_figures else ")"))
    if res.failed:
        log("RESULT: NOT ALL POINTS VERIFIED (rows with kind == 'regime' and status != 'verified' in sweep.csv)")
    else:
        log("RESULT: every point converged and verified")
    return res.exit_code
