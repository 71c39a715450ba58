"""The command line: ``python solve.py`` and the console command ``llm-pricing`` (same arguments).

``solve.py`` is a thin shim around :func:`main`.  Progress goes through the
standard :mod:`logging` module (logger ``models`` and its children, on
stderr): ``--quiet`` shows warnings and errors only, ``--verbose`` adds every
Ipopt iteration (rate-limited) and other detail; the verification table and
the final ``RESULT`` line are the program's output (stdout).  From Python,
:func:`set_verbosity` (also ``models.api.set_verbosity``) does the same.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path

_USAGE = """Solve LLM-pricing scenarios and verify every result against its closed form.

    python solve.py [SCENARIO ...] [--out DIR] [--format csv,latex,md,parquet] [--quiet | --verbose]
    python solve.py sweep SCENARIO --param PATH=START:STOP:COUNT [...]   (see: solve.py sweep --help)

Exit codes: 0 every regime solved and every check passed; 1 something did not
converge or did not verify (verification.csv says which); 2 bad input.
"""

_log = logging.getLogger("models.cli")
_HANDLER: logging.Handler | None = None
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (pytest and notebooks swap it)."""

    def write(self, text):
        sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()


def set_verbosity(level: str = "normal", stream=None) -> None:
    """Show the toolkit's progress lines (logger ``models``) on ``stream`` (default: stderr):
    ``"quiet"`` warnings and errors only, ``"normal"`` one line per regime and per solve plus a
    line every few seconds of a long solve, ``"verbose"`` also Ipopt's iterations."""
    global _HANDLER
    if level not in LEVELS:
        raise ValueError(f"verbosity must be one of {', '.join(LEVELS)}; got {level!r}")
    root = logging.getLogger("models")
    if _HANDLER is not None:
        root.removeHandler(_HANDLER)
    _HANDLER = logging.StreamHandler(stream if stream is not None else _Stderr())
    _HANDLER.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(_HANDLER)
    root.setLevel(LEVELS[level])
    root.propagate = False  # shown once, by this handler


def _pyomo_log_to_stderr() -> None:
    """Pyomo's own log handler writes to stdout; on the command line stdout is the verification
    table and the RESULT line, warnings go to stderr (README), so point it there."""
    for h in logging.getLogger("pyomo").handlers:
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stdout:
            h.setStream(_Stderr())


def default_scenario() -> Path:
    """data/default.toml of the clone, or of the installed copy (``models.data_dir``)."""
    from models import data_dir

    return data_dir() / "default.toml"


def _formats(text: str, allowed, what: str):
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of {', '.join(allowed)}; got {text!r}")
    return items


def _terminate(signum, frame):  # SIGTERM/SIGHUP: unwind, so that staging files are removed
    raise SystemExit(128 + signum)


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes get the same one-line 'error:' contract as scenarios."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None, prog: str | None = None) -> int:
    """``python solve.py ARGS`` / ``llm-pricing ARGS``; returns the exit code."""
    if argv is None:
        argv, prog = sys.argv[1:], prog or Path(sys.argv[0]).name  # solve.py or llm-pricing
    argv = list(argv)
    if argv and argv[0] == "sweep":  # python solve.py sweep SCENARIO --param PATH=START:STOP:COUNT ...
        from models import sweep

        return sweep.main(argv[1:])
    from models.formats import FIGURE_FORMATS, FORMATS

    ap = _Parser(prog=prog or "solve.py", description=_USAGE.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Exit codes: 0 all converged and verified, 1 a solve did not converge "
                                        "or a check failed, 2 bad input.")
    from models import __version__

    ap.add_argument("--version", action="version", version=f"llm-pricing {__version__}")
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                    help="scenario TOML files (default: data/default.toml)")
    ap.add_argument("--out", default="out", metavar="DIR",
                    help="output folder; each scenario writes into DIR/<scenario name>/ (default: out)")
    ap.add_argument("--format", default="csv", type=lambda s: _formats(s, FORMATS, "--format"),
                    help="table formats, comma separated: csv (always), parquet, latex, md")
    ap.add_argument("--figure-format", default="png", type=lambda s: _formats(s, FIGURE_FORMATS, "--figure-format"),
                    help="figure formats: png, pdf")
    ap.add_argument("--route", choices=("auto", "ipopt", "cyipopt"), default=None,
                    help="Ipopt route (overrides the scenario's solver.route)")
    ap.add_argument("--regime", action="append", default=None, metavar="NAME",
                    help="run only this regime (repeatable)")
    noise = ap.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true",
                       help="no progress lines (warnings, errors and the verification table only)")
    noise.add_argument("--verbose", "-v", action="store_true",
                       help="more progress: every Ipopt iteration (at most a few lines a second), lazy-IC rounds")
    args = ap.parse_intermixed_args(argv)  # scenarios before and after options (stranger17 F7)

    from models import scenario

    set_verbosity("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    paths = [Path(p) for p in args.scenarios] or [default_scenario()]
    try:  # validate everything before writing anything; the scenarios first, before Pyomo loads
        scns = [scenario.load(p) for p in paths]
    except scenario.ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from models import run, solver

    _pyomo_log_to_stderr()
    try:
        out_root = run.out_root(args.out)
        for s in scns:
            if args.route:  # its Ipopt options checked against that route's Ipopt
                scenario.check_solver_route(s, args.route)
            scenario.check_route_available(s, args.route)
            for r in args.regime or []:
                if r not in s.regimes:
                    raise scenario.ScenarioError(
                        f"--regime {r!r}: not in scenario {s.name}; allowed: {', '.join(s.regimes)}")
        names = [s.name for s in scns]
        if len(set(names)) != len(names):
            raise scenario.ScenarioError(f"scenario names must be distinct (they name output folders): {names}")
        for s in scns:  # the folder a run replaces: inside --out, usable
            out = out_root / s.name
            if out.resolve().parent != out_root.resolve():
                raise scenario.ScenarioError(f"scenario {s.name!r}: its output folder {out} is not inside --out")
            run.check_output_target(out)
    except (scenario.ScenarioError, run.OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _terminate)
    progress = _log.info  # shown unless --quiet (set_verbosity)
    code = 0
    try:
        for s in scns:
            out = out_root / s.name
            summary = run.run_scenario(s, out, formats=args.format, figure_formats=args.figure_format,
                                       progress=progress, only=args.regime)
            print_table(summary)
            print(f"wrote {out}/ (verification.csv, summary.json, report.md, manifest.json)")
            code = max(code, summary.exit_code)
    except run.OutputError as exc:  # e.g. another run is writing the same folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except solver.SolverUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in _WRITE_ERRNOS:
            raise
        # the machine, not the input (stranger15 F7: a file-size limit, or a full disk, mid-write was a
        # traceback); the run is staged and swapped in whole, so the folder still holds the previous run
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: could not write the run to {out}: {exc.strerror}{where}; nothing of this run was kept "
              "(the folder holds the previous run, if any): free space or raise the limit and run again",
              file=sys.stderr)
        return 1
    return code


_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}
"""Write failures of the machine (full disk, file-size limit, quota, I/O error, read-only file system)."""


def one_sided(df) -> bool:
    """Rows of one check and quantity from ``results.bound_check`` (``kind`` = "bound"):
    judged by ``numeric <= tolerance``, not by a relative error."""
    if "kind" in df.columns:
        return bool(len(df)) and bool((df["kind"] == "bound").all())
    return False


def _within(df) -> bool:
    """Every row within its limit (a failed one then failed only because its solve did not converge)."""
    col = "numeric" if one_sided(df) else "rel_err"
    return bool((df[col].astype(float) <= df["tolerance"].astype(float)).all())


def compared(df) -> str:
    """What a check compares, as it is compared: ``value <= limit`` for a bound (signed),
    ``max rel_err <= tolerance`` for a relative check (``>`` where it fails)."""
    tol = float(df["tolerance"].max())
    if one_sided(df):
        v = float(df["numeric"].max())  # the worst (largest) value against its limit
    else:
        v = float(df["rel_err"].max())
    # a row can be failed while within its limit: its regime did not converge (never verified)
    from models.results import distinct
    sv, st = distinct(v, tol, "e", 3)
    return f"{sv:>10} {'<=' if _within(df) else '> '} {st:<8}"


def print_table(summary) -> None:
    ver = summary.verification
    print(f"\nVerification for scenario '{summary.scenario}':")
    w = max([14] + [len(str(r)) + 1 for r in (ver["regime"].unique() if len(ver) else [])])  # e.g. assumption1_full
    print(f"{'regime':<{w}}{'check':<40}{'quantity':<22}{'rows':>5}  {'compared (rel_err or value <= limit)':<36} "
          f"result")
    if len(ver):
        g = ver.groupby(["regime", "check", "quantity"], sort=False)
        for (reg, chk, q), df in g:
            ok = bool(df["passed"].all())
            kind = "value" if one_sided(df) else "rel"
            verdict = "ok" if ok else ("FAILED (solve not converged)" if _within(df) else "FAILED")
            print(f"{reg:<{w}}{chk[:39]:<40}{q[:21]:<22}{len(df):>5}  {kind:<6}{compared(df):<30} "
                  f"{verdict}")
    print()
    from models import results
    fails = results.failure_lines(ver) if len(ver) else []
    if fails:
        print("Failed checks (worst row, miss against the limit, what to do):")
        for line in fails:
            print(f"  - {line}")
        print()
    def said(r):  # the status, and the regime's error unless the status already is that error
        s = r.status()
        return s + (f" -- {r.error}" if r.error and r.error not in s else "")

    for name, r in summary.results.items():
        print(f"  {name}: {said(r)}")
        for c in getattr(r, "cautions", []):
            print(f"    caution: {c}")
    if summary.verified:
        print("RESULT: all converged and verified")
    else:
        bad = [f"{n}: {said(r)}" for n, r in summary.results.items() if not r.verified]
        print("RESULT: NOT VERIFIED -- " + "; ".join(bad) + " (see verification.csv)")

if __name__ == "__main__":
    sys.exit(main())
