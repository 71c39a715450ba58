"""Run a scenario end to end: every regime, its checks, and all outputs.

``run_scenario`` is what ``solve.py`` calls; it is usable from Python too::

    from models import scenario, run
    summary = run.run_scenario(scenario.load("data/default.toml"), "out/default")
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import models
from models import regimes, solver
from models.export import Writer
from models.results import RegimeResult, VERIFICATION_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
_log = logging.getLogger("models.run")

# A solve that runs longer than PROGRESS_AFTER seconds says so every
# PROGRESS_EVERY seconds (its Ipopt iteration and objective), on the cyipopt
# route from Ipopt's intermediate callback, on the executable route from its
# iteration table (solver.FOLLOW_PERIOD).  With --verbose (logging.DEBUG) every
# iteration is logged, at most one line per VERBOSE_EVERY seconds.
PROGRESS_AFTER = 5.0
PROGRESS_EVERY = 5.0
VERBOSE_EVERY = 0.25


def _info(msg: str) -> None:
    _log.info(msg)


class _Heartbeat:
    """Iteration callback of one solve: progress lines for a long solve."""

    def __init__(self, label: str, progress, chained=None):
        self.label, self.progress, self.chained = label, progress, chained
        self.t0 = time.perf_counter()
        self.last = self.last_debug = -1e300
        self.verbose = _log.isEnabledFor(logging.DEBUG)

    def __call__(self, k: int, obj: float) -> None:
        if self.chained is not None:
            self.chained(k, obj)
        now = time.perf_counter()
        t = now - self.t0
        if self.verbose and now - self.last_debug >= VERBOSE_EVERY:
            self.last_debug = now
            _log.debug(f"      {self.label}: Ipopt iteration {k}, objective {obj:.10g} ({t:.1f}s)")
        if t >= PROGRESS_AFTER and now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.progress(f"    {self.label}: still solving: Ipopt iteration {k}, objective {obj:.10g}, "
                          f"{t:.0f}s so far")


@dataclass
class Context:
    """What a regime needs from the outside: solver settings and progress."""

    route: str
    options: dict  # all Ipopt options of the scenario (with its defaults)
    user_options: dict = field(default_factory=dict)  # only those the scenario file sets
    progress: callable = _info  # one line per solve/regime; default: logger "models.run" at INFO
    figures: bool = True  # regimes skip drawing when False (sweeps draw their own)
    warm_starts: dict = field(default_factory=dict)
    tightened: set = field(default_factory=set)  # (scenario tol, regime floor) pairs applied

    def solve(self, model, label: str, build_seconds: float = 0.0, defaults: dict | None = None,
              **kw) -> solver.SolveResult:
        """Solve with the scenario's options on top of the regime's ``defaults``."""
        t0 = time.perf_counter()
        beat = _Heartbeat(label, self.progress, kw.pop("iteration_callback", None))
        r = solver.solve(model, route=self.route, options=self._options(defaults), allow_nonoptimal=True,
                         build_seconds=build_seconds, iteration_callback=beat, label=label, **kw)
        self._report(label, r, t0)
        return r

    def solve_structured(self, problem, label: str, build_seconds: float = 0.0,
                         defaults: dict | None = None) -> solver.SolveResult:
        """Same, for a structured problem (``solver.structured_base()``)."""
        t0 = time.perf_counter()
        r = solver.solve_structured(problem, options=self._options(defaults), allow_nonoptimal=True,
                                    build_seconds=build_seconds,
                                    iteration_callback=_Heartbeat(label, self.progress))
        self._report(label, r, t0)
        return r

    def _options(self, defaults):
        """Scenario options on top of the regime's ``defaults``, except ``tol``:
        a regime that is verified against closed forms passes its precise
        ``tol`` (solver.PRECISE_OPTIONS) as a *floor*.  Its checks' tolerances
        (1e-6 to 1e-8) are derived from that solver accuracy; at the README's
        old example tol = 1e-10 the competition checks failed on a correct
        solve (issue 16), and a check that fails on a correct answer is a
        defect.  A tighter scenario tol is honoured; a looser one is tightened
        and the regime's notes say so (``run_regime``)."""
        d = defaults or {}
        opts = {**self.options, **d, **self.user_options}
        floor, want = d.get("tol"), self.user_options.get("tol")
        if floor is not None and want is not None and float(want) > float(floor):
            opts["tol"] = floor
            self.tightened.add((float(want), float(floor)))
        return opts

    def _report(self, label, r, t0):
        self.progress(f"    {label}: {r.status.value}, objective {r.objective:.10g}, {r.iterations} it, "
                      f"build {r.build_seconds:.2f}s + translate {r.translate_seconds:.2f}s + "
                      f"solve {r.solve_seconds:.2f}s ({time.perf_counter() - t0:.1f}s, {r.route})"
                      + ("" if r.ok else f" -- {r.message}"))


@dataclass
class RunSummary:
    scenario: str
    out_dir: Path
    results: dict[str, RegimeResult]
    verification: pd.DataFrame

    @property
    def converged(self) -> bool:
        return all(r.converged for r in self.results.values())

    @property
    def verified(self) -> bool:
        return self.converged and all(r.verified for r in self.results.values())

    @property
    def exit_code(self) -> int:
        return 0 if self.verified else 1


INTERNAL_ERROR = "internal error"  # bench/valid_scenarios.py counts a regime error starting so as a crash


def run_regime(scn, name: str, ctx: Context) -> RegimeResult:
    ctx.tightened = set()
    try:
        res = regimes.module(regimes.kind(scn, name)).run(scn, scn.regimes[name], ctx)
    except (OverflowError, FloatingPointError) as exc:
        # a valid scenario whose numbers leave double precision inside a regime (competition_92_9:
        # σ = 0.05 against γ_L = 0.897, the fringe's token unit (leader quality)^(1/σ) ~ 1e700):
        # not a user mistake and not a verdict -- the regime reports an error (exit 1, never
        # verified) naming the cause and where, instead of a traceback
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        # a regime's own message may already say what helps (budgets.check_double_range: θ on the technology's
        # scale); the generic lever is then not added (a narrower range cannot lift types that are all too small)
        lever = "" if "docs/model.md §6" in str(exc) else \
            "; θ on the technology's scale (docs/model.md §6), a narrower type range or σ + γ further from 1 keeps them in range"
        res = RegimeResult(name, error=f"numbers out of double-precision range ({type(exc).__name__}: {exc}) "
                                       f"at {Path(where.filename).name}:{where.lineno} ({where.name}){lever}")
    except Exception as exc:
        # defence in depth (stranger18 F0b/F0c: σ = 0.999 reached Pyomo/closed-form ValueErrors through inf/nan):
        # an unexpected exception in one regime is that regime's error (exit 1, never verified; the other
        # regimes' results are still written), named as a defect of the toolkit with its place, and the
        # traceback goes to the run's report.md -- not a traceback that loses the whole run.  A user mistake is
        # a ScenarioError raised before any regime runs; SolverUnavailable and an interrupt are not caught.
        from models.scenario import ScenarioError

        if isinstance(exc, (solver.SolverUnavailable, ScenarioError)):
            raise
        import traceback

        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(ROOT)
                and "site-packages" not in f.filename] or frames  # the project's innermost frame
        where = ours[-1]
        res = RegimeResult(name, error=f"{INTERNAL_ERROR} ({type(exc).__name__}: {exc}) at "
                                       f"{Path(where.filename).name}:{where.lineno} ({where.name}); a defect of the "
                                       "toolkit, not of the scenario: please report the scenario file (the "
                                       "traceback is in report.md); where σ + γ is near 1 or θ spans many decades, "
                                       "a narrower type range or σ + γ further from 1 may avoid it")
        res.notes.append("traceback of the internal error: " + "".join(traceback.format_exception(exc)).strip())
    if res.name != name:  # an instance of a regime ([regimes.<name>] with regime = "..."): its own name
        res.name = name
        for c in res.checks:
            c["regime"] = name
    for want, floor in sorted(ctx.tightened):
        res.notes.append(f"solver tol = {want:g} from the scenario is looser than this regime's verified "
                         f"accuracy; its solves used tol = {floor:g} (the checks' tolerances assume it)")
    if not res.converged:
        # never report a non-converged solve as verified
        for c in res.checks:
            c["passed"] = False
    return res


# ------------------------------------------------- a run folder as a whole
# A run writes into a staging folder beside its target (``.<name>.staging-<pid>``),
# and only when every file (manifest last) is on disk is the staging folder
# swapped with the target: ``renameat2(RENAME_EXCHANGE)`` exchanges the two
# folders atomically (Linux >= 3.15 on ext4/xfs/btrfs/tmpfs), so the target is
# at every instant the complete previous run or the complete new one; the old
# run, now in the staging path, is then deleted.  Where the exchange is not
# supported: rename the old run to ``.<name>.old-<pid>``, rename the new one in,
# delete the old -- a crash between the two renames leaves no target but the
# intact old run, which the next run (or ``recover``) renames back.
# A lock (``flock`` on ``.<name>.lock`` beside the target, released by the
# kernel when the process dies, even by kill -9) refuses a second writer.
STAGING = ".{name}.staging-"
OLD = ".{name}.old-"
LOCK = ".{name}.lock"


class OutputError(RuntimeError):
    """The output folder cannot be used (solve.py: one ``error:`` line, exit 2)."""


class RunLocked(OutputError):
    """Another process is writing the same run folder."""


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (True), or False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD = -100
    r = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if r == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(e, os.strerror(e), str(b))


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def out_root(text: str, what: str = "--out") -> Path:
    """An output root given on the command line, checked (``OutputError``; nothing is created)."""
    if not str(text).strip():
        raise OutputError(f"{what} '': allowed: a folder path (an empty path would write into the working folder)")
    if "\x00" in str(text):
        raise OutputError(f"{what} {str(text)!r}: allowed: a folder path without NUL characters")
    if str(text).strip() == "-":  # many tools read '-' as stdout; a run is a folder of files (stranger15 F8)
        raise OutputError(f"{what} '-': allowed: a folder path (a run is a folder of files, not a stream; "
                          "write ./- to mean a folder named '-')")
    p = Path(text)
    _walk_up(p, what)  # names the OS refuses (too long, a link loop) before resolve() meets them
    try:
        r = p.resolve()
    except (OSError, RuntimeError) as exc:  # a loop that lexists cannot see from here
        raise OutputError(f"{what} {str(text)!r}: allowed: a folder path; {_os_reason(exc)}") from None
    if r == Path(r.anchor):
        raise OutputError(f"{what} {str(text)!r}: allowed: a folder below the file-system root, not the root itself")
    _usable_folder(p, what, probe=False)  # the write probe comes last (check_output_target)
    return p


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symbolic-link loop"
    return getattr(exc, "strerror", None) or str(exc)


def _walk_up(p: Path, what: str) -> Path:
    """The nearest existing ancestor of ``p`` (or ``p``), by ``os.lstat`` of each prefix: only 'no such file'
    moves up (and 'not a directory', which the caller names).  ``os.path.lexists`` says False for every other error too (a name longer than NAME_MAX, a path
    longer than PATH_MAX, a symbolic-link loop), and the walk then accepted a path no mkdir can create
    (stranger18 F1); those errors are an ``OutputError`` here."""
    q = p
    while True:
        try:
            os.lstat(q)
            return q
        except (FileNotFoundError, NotADirectoryError):  # below a file: the file is named by the caller
            if q.parent == q:
                return q
            q = q.parent
        except OSError as exc:
            raise OutputError(f"{what} {str(p)!r}: allowed: a folder path the system accepts; "
                              f"{_os_reason(exc)}") from None


def _usable_folder(p: Path, what: str = "--out", probe: bool = True) -> None:
    """``p`` is or can become a writable folder: the nearest existing ancestor is a writable folder."""
    q = _walk_up(p, what)
    if os.path.lexists(q) and not q.is_dir():
        if q.is_symlink() and not os.path.exists(q):
            kind = "a symbolic link to a missing target"
        else:
            kind = "a file"
        where = f"is {kind}" if q == p else f"lies below {q}, which is {kind}"
        raise OutputError(f"{what} {str(p)!r}: allowed: a folder path; {where}")
    where = "" if q == p else f" (its nearest existing folder {q} is not writable)"
    if not os.access(q, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(p)!r}: allowed: a writable folder{where}; permission denied")
    if not probe:
        return
    try:  # root passes os.access everywhere; read-only file systems and /proc do not pass this
        os.rmdir(tempfile.mkdtemp(prefix=".write-probe-", dir=q))
    except OSError as exc:
        raise OutputError(f"{what} {str(p)!r}: allowed: a writable folder{where}; {exc.strerror}") from None


def check_output_target(out: Path) -> None:
    """``OutputError`` unless a run can be written to folder ``out`` (nothing is left behind)."""
    out = Path(out)
    _usable_folder(out.parent, "--out")
    if os.path.lexists(out):
        if out.is_symlink() or not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder; move it away or choose another --out")
        if os.listdir(out) and not (out / "manifest.json").is_file():
            raise OutputError(f"{out} exists and holds files that are not a run (no manifest.json); a run "
                              "replaces its folder as a whole, so move them away or choose another --out")
        if os.listdir(out):
            foreign = _foreign_files(out)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise OutputError(f"{out} exists and holds files that are not a run: {shown} (not written by a "
                                  "run: not listed in its manifest.json); a run replaces its folder as a whole, so "
                                  "move them away or choose another --out")


def _foreign_files(out: Path) -> list[str]:
    """Files under run folder ``out`` that its manifest.json does not list (all of them if that file is not
    this tool's manifest).  The name alone is not proof: web apps and browser extensions keep a manifest.json
    too, and replacing such a folder deleted index.html and src/ (stranger15 F0b)."""
    found = sorted(str(Path(d, f).relative_to(out)) for d, _, fs in os.walk(out) for f in fs)
    try:
        man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        listed = set(man["files"]) if isinstance(man, dict) and isinstance(man.get("files"), dict) \
            and {"version", "scenario"} <= set(man) else None
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        listed = None
    if listed is None:
        return [f for f in found if f != "manifest.json"] or ["manifest.json"]
    return [f for f in found if f != "manifest.json" and f not in listed]


@contextmanager
def run_lock(out: Path):
    """Hold the writer's lock of run folder ``out`` (``RunLocked`` if taken)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / LOCK.format(name=out.name)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise RunLocked(f"another run (pid {other}) is writing {out}; wait for it to finish "
                            "or choose another --out") from None
        try:  # the file we locked must still be the lock file (a finishing holder unlinks it)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        recover(out)
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


def recover(out: Path) -> None:
    """Under the lock: undo what a killed run left beside ``out``."""
    out = Path(out)
    parent = out.parent
    olds = sorted(parent.glob(OLD.format(name=out.name) + "*"))
    if olds and not os.path.lexists(out):  # killed between the two renames: put the old run back
        os.rename(olds[-1], out)
        olds = olds[:-1]
    for d in olds + sorted(parent.glob(STAGING.format(name=out.name) + "*")):
        shutil.rmtree(d, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    _fsync_dir(staging)
    if not os.path.lexists(out):
        os.rename(staging, out)
    elif _exchange(staging, out):
        shutil.rmtree(staging)  # now the previous run
    else:
        old = out.parent / (OLD.format(name=out.name) + str(os.getpid()))
        os.rename(out, old)
        os.rename(staging, out)
        shutil.rmtree(old)
    _fsync_dir(out.parent)


def run_scenario(scn, out_dir, formats=("csv",), figure_formats=("png",), progress=_info,
                 only: list[str] | None = None) -> RunSummary:
    """Solve, verify and write one scenario into ``out_dir`` (replaced as a whole, see above)."""
    out = Path(out_dir)
    check_output_target(out)
    route = solver.pick_route(scn.solver["route"])
    with run_lock(out):
        staging = out.parent / (STAGING.format(name=out.name) + str(os.getpid()))
        staging.mkdir()
        try:
            run = _run_into(scn, staging, route, formats, figure_formats, progress, only)
            _swap_in(staging, out)
        except BaseException:  # error, Ctrl-C, SIGTERM (solve.py turns it into SystemExit)
            shutil.rmtree(staging, ignore_errors=True)
            recover(out)  # interrupted inside the fallback's two renames: put the old run back
            raise
    run.out_dir = out
    return run


def _run_into(scn, out: Path, route, formats, figure_formats, progress, only) -> RunSummary:
    ctx = Context(route=route, options=scn.solver["options"], user_options=scn.solver["user_options"],
                  progress=progress)
    w = Writer(out, formats, figure_formats)
    results: dict[str, RegimeResult] = {}
    names = regimes.ordered(scn, only)
    for i, name in enumerate(names, 1):
        progress(f"[{i}/{len(names)}] {scn.name}: regime '{name}'")
        t0 = time.perf_counter()
        try:
            res = run_regime(scn, name, ctx)
        except solver.NotConverged as exc:  # a regime that needs an optimum to go on
            res = RegimeResult(name, solves={"failed": exc.result}, error=str(exc))
        results[name] = res
        progress(f"    -> {res.status()} in {time.perf_counter() - t0:.1f}s")
        for tname, df in res.tables.items():
            w.table(df, tname, caption=f"{name}: {tname.replace('_', ' ')}", subdir=name)
        from models import plotting

        for fname, fig in res.figures.items():
            w.figure(fig, fname, subdir=f"figures/{name}")
            plotting.close(fig)
    ver = pd.concat([r.verification for r in results.values()], ignore_index=True) if results else \
        pd.DataFrame(columns=VERIFICATION_COLUMNS)
    write_verification(w, ver)
    summary = {
        "version": models.__version__,
        "scenario": scn.name,
        "route": route,
        "ipopt_version": solver.ipopt_version(route),
        "regimes": {
            name: {
                "status": r.status(),
                "converged": r.converged,
                "verified": r.verified,
                "checks": int(len(r.verification)),
                "checks_failed": int((~r.verification["passed"].astype(bool)).sum()),
                "notes": r.notes,
                "error": r.error,
                "solves": {k: s.summary() for k, s in r.solves.items()},
            }
            for name, r in results.items()
        },
    }
    w.json(summary, "summary.json")
    run = RunSummary(scn.name, out, results, ver)
    from models import report

    report.write(w, scn, run, summary)
    write_manifest(w, scn)
    return run


# A check with more rows than this (one per type at large N: 10^6 types made a
# 993 MB verification.csv) is summarised in verification.csv by one row: its
# worst row (the largest rel_err among the failing rows, or among all rows when
# none fails), with abs_err / rel_err the maxima and passed = all rows passed;
# every row of the run then goes to verification_detail.parquet.
DETAIL_ROWS = 10_000


def summarise_verification(ver: pd.DataFrame, limit: int = DETAIL_ROWS) -> tuple[pd.DataFrame, bool]:
    """(rows for verification.csv, whether any check was summarised)."""
    if len(ver) <= limit:
        return ver, False
    keys = ["regime", "check", "quantity"]
    sizes = ver.groupby(keys, sort=False)["passed"].transform("size")
    big = sizes > limit
    if not big.any():
        return ver, False
    parts = []
    for key, df in ver[big].groupby(keys, sort=False):
        rel = df["rel_err"].astype(float).to_numpy()
        failing = ~df["passed"].astype(bool).to_numpy()
        # worst row: the largest rel_err among failing rows if any fail (NaN counts as worst)
        cand = np.where(failing)[0] if failing.any() else np.arange(len(df))
        r = np.where(np.isnan(rel[cand]), np.inf, rel[cand])
        i = cand[int(np.argmax(r))]
        row = df.iloc[[i]].copy()
        row["index"] = f"{df['index'].iloc[i]} (worst of {len(df)} rows; all in verification_detail.parquet)"
        row["abs_err"] = float(np.nanmax(df["abs_err"].astype(float))) if len(df) else np.nan
        row["rel_err"] = float(np.max(np.where(np.isnan(rel), np.inf, rel)))
        row["passed"] = bool(df["passed"].astype(bool).all())
        parts.append((df.index[0], row))
    small = ver[~big]
    out = pd.concat([small] + [r for _, r in parts])
    order = {**{i: i for i in small.index}, **{r.index[0]: first for first, r in parts}}
    out = out.assign(_o=[order[i] for i in out.index]).sort_values("_o", kind="stable").drop(columns="_o")
    return out.reset_index(drop=True), True


def write_verification(w: Writer, ver: pd.DataFrame) -> None:
    rows, summarised = summarise_verification(ver)
    if summarised:
        from models.export import atomic_path

        p = w.out / "verification_detail.parquet"
        with atomic_path(p) as tmp:
            ver.to_parquet(tmp, index=False)
        w._record(p, "table/parquet")
        w.table(rows, "verification", caption="Verification: numeric vs reference (large checks summarised)")
    else:
        w.table(ver, "verification", caption="Verification: numeric vs reference")


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "") if rev else "unknown"
    except Exception:
        return "unknown"


def package_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for p in ("pyomo", "numpy", "pandas", "scipy", "matplotlib", "pyarrow", "casadi", "cyipopt",
              "cyipopt-wheels", "dask", "distributed"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(w: Writer, scn) -> None:
    scen_sha = None
    if scn.path and Path(scn.path).is_file():
        scen_sha = hashlib.sha256(Path(scn.path).read_bytes()).hexdigest()
    manifest = {
        "version": models.__version__,
        "scenario": {"name": scn.name, "path": str(scn.path) if scn.path else None, "sha256": scen_sha,
                     "resolved_sha256": hashlib.sha256(json.dumps(scn.raw, sort_keys=True).encode()).hexdigest()},
        "git_revision": _git_revision(),
        "packages": package_versions(),
        "command": " ".join(sys.argv),
        "files": dict(sorted(w.files.items())),
    }
    w.json(manifest, "manifest.json")
