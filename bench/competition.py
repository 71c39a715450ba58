"""Benchmark of the competition regime: per program time and iterations, new vs previous schedule.

    .venv/bin/python bench/competition.py                       # N = 100, 200, 400, 1000; baseline up to 200
    .venv/bin/python bench/competition.py --sizes 100,200 --baseline-max-n 200 --no-end-to-end
    .venv/bin/python bench/competition.py --end-to-end-only     # the two scenarios at N = 400 and 1000

Programs (docs/model.md §2.7), both measured in the same run on the same grid:

* ``task_assignment`` — one concave program per weight profile (unchanged; new = old).
* ``efficient`` — new: one convex program per model (types weighed equally), per-type best,
  unrestricted final; previous: blind starts of the unrestricted program (each model, half of
  each) with the non-convex start options, per-type best, final.
* ``monopolist`` — new: cut-off search over convex assigned programs (coarse-to-fine above
  ``COARSE_MAX_N`` types); previous: ``_monopolist(schedule="multistart")`` (unrestricted
  program from one-model, both-model and switch starts).
* ``leader`` — new: the regime's start schedule (coarse-to-fine above ``COARSE_MAX_N``);
  previous: the full start schedule (``leader_multistart``) on the grid itself.  Both use the
  vectorised dual-variable start (the previous code spent ~80 % of its leader build time in a
  per-row bisection: that fix is in both columns).

The previous schedules are slow (the monopolist ~20 min at N = 400 on the empty-middle
scenario, issue 13), so they run only up to ``--baseline-max-n``.  ``--end-to-end`` runs the
whole regime (``models.run.run_regime``) on both shipped scenarios at N with convergence
N/4, N/2, N and prints wall time, the largest single-solve iteration count and the verdict.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import competition as comp  # noqa: E402
from models import run as runmod  # noqa: E402
from models import scenario  # noqa: E402
from models.results import RegimeResult  # noqa: E402
from models.solver import Timer  # noqa: E402

SCENARIOS = ("competition.toml", "competition_empty_middle.toml")


class Recorder(runmod.Context):
    """Context that records every solve's iterations."""

    def __init__(self):
        super().__init__(route="auto", options={}, user_options={}, progress=lambda *a: None)
        self.iters: list[int] = []

    def solve(self, model, label, build_seconds=0.0, defaults=None, **kw):
        r = super().solve(model, label, build_seconds, defaults, **kw)
        self.iters.append(r.iterations)
        return r


def _scenario(fname, n, conv=None):
    with open(ROOT / "data" / fname, "rb") as fh:
        raw = tomllib.load(fh)
    raw = copy.deepcopy(raw)
    raw["types"]["n"] = n
    if conv:
        raw["regimes"]["competition"]["convergence"] = list(conv)
    else:
        raw["regimes"]["competition"].pop("convergence", None)
    return scenario.from_dict(raw, source=str(ROOT / "data" / fname))


def _efficient_previous(res, models, theta, mass, ctx):
    """The previous efficient schedule: blind starts of the unrestricted program."""
    qfb = comp._fb_tokens(models, theta)
    starts = {"model1_only": qfb * [1.0, 0.0], "model2_only": qfb * [0.0, 1.0], "both_models": 0.5 * qfb}
    qs = []
    for label, q0 in starts.items():
        m = comp.build_efficient(models, theta, mass, q0)
        r = comp._solve_start(ctx, m, f"efficient[{label}]")
        if r.ok:
            qs.append(comp._read_q(m))
    S = np.stack([comp._type_surplus(models, theta, q) for q in qs])
    best = np.argmax(S, axis=0)
    qc = np.stack([qs[b][k] for k, b in enumerate(best)])
    m = comp.build_efficient(models, theta, mass, qc)
    comp._solve_start(ctx, m, "efficient[best per type]")


def _measure(fn):
    ctx = Recorder()
    with Timer() as t:
        fn(ctx)
    return t.seconds, len(ctx.iters), max(ctx.iters, default=0), sum(ctx.iters)


def programs(fname, N, baseline: bool):
    s = _scenario(fname, N)
    opts = s.regimes["competition"]
    models = comp._two_models(s.technology.sigma, opts)
    theta, mass = s.discrete_types()
    from models.closed_form import competition as cc

    lf = cc.LeaderFringe(sigma=s.technology.sigma, gamma_L=opts["gamma_L"], c_L=opts["c_L"], c_F=opts["c_F"])
    new = {
        "task_assignment": lambda ctx: comp._assignment_checks(RegimeResult("c"), s.technology, ctx, opts,
                                                               (opts["gamma_F"], opts["gamma_L"])),
        "efficient": lambda ctx: comp._efficient(RegimeResult("c"), models, theta, mass, ctx),
        "monopolist": lambda ctx: comp._monopolist_ladder(RegimeResult("c"), models, s, theta, mass, ctx),
        "leader": lambda ctx: comp.leader_solve(RegimeResult("c"), lf, s, ctx, theta, mass),
    }
    old = {
        "task_assignment": new["task_assignment"],
        "efficient": lambda ctx: _efficient_previous(RegimeResult("c"), models, theta, mass, ctx),
        "monopolist": lambda ctx: comp._monopolist(RegimeResult("c"), models, theta, mass, ctx,
                                                   schedule="multistart"),
        "leader": lambda ctx: _leader_previous(lf, s, opts, ctx, theta, mass),
    }
    rows = []
    for prog in new:
        n = _measure(new[prog])
        o = _measure(old[prog]) if baseline else None
        rows.append((prog, n, o))
    return rows


def _leader_previous(lf, s, opts, ctx, theta, mass):
    """The previous leader schedule: every start on the grid itself, then the lazy final."""
    att = comp.leader_multistart(lf, theta, mass, ctx)
    best = comp._best_attempt(att).values["menu"]
    comp.solve_leader(lf, theta, mass, ctx, "leader_fringe[final]", best.q, best.T, best.f, best.pairs,
                      best.ir_types, lazy=True)


def end_to_end(fname, N):
    s = _scenario(fname, N, conv=(N // 4, N // 2, N))
    ctx = Recorder()
    with Timer() as t:
        res = runmod.run_regime(s, "competition", ctx)
    for f in res.figures.values():
        from models import plotting

        plotting.close(f)
    bad = int((~res.verification["passed"].astype(bool)).sum())
    return t.seconds, len(ctx.iters), max(ctx.iters), res.status(), bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,200,400,1000")
    ap.add_argument("--baseline-max-n", type=int, default=200)
    ap.add_argument("--scenario", action="append", help="data file name (default: both shipped)")
    ap.add_argument("--end-to-end", default="400,1000", help="N list for whole-regime runs ('' = none)")
    ap.add_argument("--no-end-to-end", action="store_true")
    ap.add_argument("--end-to-end-only", action="store_true")
    a = ap.parse_args(argv)
    scen = a.scenario or list(SCENARIOS)
    if not a.end_to_end_only:
        print(f"{'scenario':32s} {'N':>5s} {'program':16s} {'new s':>8s} {'solves':>6s} {'max it':>6s} "
              f"{'old s':>8s} {'solves':>6s} {'max it':>6s} {'old/new':>8s}")
        for fname in scen:
            for N in [int(x) for x in a.sizes.split(",") if x]:
                for prog, n, o in programs(fname, N, N <= a.baseline_max_n):
                    os_ = (f"{o[0]:8.2f} {o[1]:6d} {o[2]:6d} {o[0] / max(n[0], 1e-9):8.1f}" if o else
                           f"{'-':>8s} {'-':>6s} {'-':>6s} {'-':>8s}")
                    print(f"{fname.removesuffix('.toml'):32s} {N:5d} {prog:16s} {n[0]:8.2f} {n[1]:6d} {n[2]:6d} "
                          f"{os_}", flush=True)
    if not a.no_end_to_end and a.end_to_end:
        print(f"\nend to end (run_regime, convergence N/4, N/2, N)\n{'scenario':32s} {'N':>5s} {'wall s':>8s} "
              f"{'solves':>6s} {'max it':>6s}  status (failed rows)")
        for fname in scen:
            for N in [int(x) for x in a.end_to_end.split(",") if x]:
                sec, ns, mx, st, bad = end_to_end(fname, N)
                print(f"{fname.removesuffix('.toml'):32s} {N:5d} {sec:8.1f} {ns:6d} {mx:6d}  {st} ({bad})", flush=True)


if __name__ == "__main__":
    main()
