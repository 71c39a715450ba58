"""Run a scenario end to end: every regime, its checks, and all outputs.

``run_scenario`` is what ``solve.py`` calls; it is usable from Python too::

    from models import scenario, run
    summary = run.run_scenario(scenario.load("data/default.toml"), "out/default")
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from models import regimes, solver
from models.export import Writer
from models.results import RegimeResult, VERIFICATION_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Context:
    """What a regime needs from the outside: solver settings and progress."""

    route: str
    options: dict  # all Ipopt options of the scenario (with its defaults)
    user_options: dict = field(default_factory=dict)  # only those the scenario file sets
    progress: callable = print
    figures: bool = True  # regimes skip drawing when False (sweeps draw their own)
    warm_starts: dict = field(default_factory=dict)

    def solve(self, model, label: str, build_seconds: float = 0.0, defaults: dict | None = None,
              **kw) -> solver.SolveResult:
        """Solve with the scenario's options on top of the regime's ``defaults``."""
        t0 = time.perf_counter()
        r = solver.solve(model, route=self.route, options=self._options(defaults), allow_nonoptimal=True,
                         build_seconds=build_seconds, **kw)
        self._report(label, r, t0)
        return r

    def solve_structured(self, problem, label: str, build_seconds: float = 0.0,
                         defaults: dict | None = None) -> solver.SolveResult:
        """Same, for a structured problem (``solver.structured_base()``)."""
        t0 = time.perf_counter()
        r = solver.solve_structured(problem, options=self._options(defaults), allow_nonoptimal=True,
                                    build_seconds=build_seconds)
        self._report(label, r, t0)
        return r

    def _options(self, defaults):
        return {**self.options, **(defaults or {}), **self.user_options}

    def _report(self, label, r, t0):
        self.progress(f"    {label}: {r.status.value}, objective {r.objective:.10g}, {r.iterations} it, "
                      f"build {r.build_seconds:.2f}s + translate {r.translate_seconds:.2f}s + "
                      f"solve {r.solve_seconds:.2f}s ({time.perf_counter() - t0:.1f}s, {r.route})")


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


def run_regime(scn, name: str, ctx: Context) -> RegimeResult:
    res = regimes.module(name).run(scn, scn.regimes[name], ctx)
    if not res.converged:
        # never report a non-converged solve as verified
        for c in res.checks:
            c["passed"] = False
    return res


def run_scenario(scn, out_dir, formats=("csv",), figure_formats=("png",), progress=print,
                 only: list[str] | None = None) -> RunSummary:
    route = solver.pick_route(scn.solver["route"])
    ctx = Context(route=route, options=scn.solver["options"], user_options=scn.solver["user_options"],
                  progress=progress)
    out = Path(out_dir)
    w = Writer(out, formats, figure_formats)
    results: dict[str, RegimeResult] = {}
    names = [n for n in regimes.NAMES if n in scn.regimes and (not only or n in only)]
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
    w.table(ver, "verification", caption="Verification: numeric vs reference")
    summary = {
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
        "scenario": {"name": scn.name, "path": str(scn.path) if scn.path else None, "sha256": scen_sha,
                     "resolved_sha256": hashlib.sha256(json.dumps(scn.raw, sort_keys=True).encode()).hexdigest()},
        "git_revision": _git_revision(),
        "packages": package_versions(),
        "command": " ".join(sys.argv),
        "files": dict(sorted(w.files.items())),
    }
    w.json(manifest, "manifest.json")
