#!/usr/bin/env python
"""Scale of the menu of token distributions on value–scale grids (issue 15 item 2).

    nice -n 5 .venv/bin/python bench/distributions_scale.py [--sizes 10,20,40,80] [--compare REV]
        [--compare-max 40] [--compare-form pyomo|structured] [--pyomo] [--timeout S]
    nice -n 5 .venv/bin/python bench/distributions_scale.py --all-pairs 10,16,20

Technology: data/default.toml's (J = 2 token classes, CES ρ = 0.5; K = 1
fine-tuning class, σ = ½, γ = 0.2).  Types: w, s ~ U[0,1] independent on an
N×N grid of the design whose distribution profit converges at O(1/N²)
(docs/model.md §2.6, measured −2.59/N²): w at the *left* ends k/N of N equal
cells (then the discrete virtual value φ_k = 2(w_k + 1/(2N)) − 1 is exactly
h_w at the cell midpoint, so the Riemann sum over w is a midpoint rule) and s
at the cell midpoints (j − ½)/N (a midpoint rule in s).  s must be a multiple
of 1/n (docs/model.md §1), so n = 2N task cells.

Each size and formulation runs in its own process (peak memory = that
process's max RSS) with the regime's lazy IC (8 nearest grid neighbours,
every pair audited in numpy each round) from the budget-menu start, and
prints per round: active IC rows, rows added, Ipopt status/iterations,
seconds of build (Pyomo rows added, or the structured NLP's numpy build),
NL translation, Ipopt and the all-pairs audit; then the NLP vs the discrete
closed form (profit, max |ΔQ|/max Q), wall and CPU seconds (after the
imports, including the closed forms) and the process's peak memory.

``--all-pairs 10,16,20`` (issue 15 item 4) solves each grid twice with the
structured NLP, lazily and with every ordered pair of served types as a row,
both end-polished, and prints their agreement (Q, t, tokens, profit), rows,
iterations and times.

Formulations: ``structured`` = models/distribution_nlp.py (current code
only), ``pyomo`` = models.distributions.solve_menu.  ``--compare REV`` runs
the Pyomo form of ``git archive REV`` (e.g. 1d4f978, the code at the start of
session 5) in the same invocation for N ≤ ``--compare-max``, so old and new
are measured under the same machine load, and prints wall and CPU ratios;
``--pyomo`` adds the current Pyomo form; ``--compare-form structured`` runs
REV's structured NLP instead (e.g. 2346b3a, before the active-set polish of
session 6).  A structured run prints the end polish of each round (status,
iterations, seconds, profit change; models/distribution_nlp.py).  The machine load (1-minute
average) is printed before and after every run: on a shared 2-core machine
wall times depend on it, CPU seconds much less.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, resource, sys, time
import numpy as np
from models import distributions as DM, lazy_ic, run
from models.closed_form import cost as cf, distributions as D
N, FORM = int(sys.argv[1]), sys.argv[2]
TECH = cf.Technology(sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 4.0), gamma=0.2, rho_hat=0.0,
                     alpha_hat=(1.0,), cost_hat=(2.0,), token_names=("input", "output"), ft_names=("ft",))
wg, wm = np.arange(N) / N, np.full(N, 1.0 / N)
sg, sm = (np.arange(N) + 0.5) / N, np.full(N, 1.0 / N)
n = 2 * N
t0, c0 = time.perf_counter(), time.process_time()
types = DM.value_scale_space(wg, wm, sg, sm, n, name=f"{N}x{N}")
ref = D.value_scale_distribution_menu(wg, wm, sg, sm, n, TECH, audit=False)
bm = D.value_scale_budget_menu(wg, wm, sg, sm, n, TECH)
ctx = run.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)
if FORM == "allpairs":
    # lazy (8 neighbours, every pair audited) vs the all-pairs program (every
    # ordered pair of served types a row), both structured, both end-polished
    from models import distribution_nlp as DN
    M, res = types.M, {}
    for kind in ("lazy", "all"):
        prob = DN.ReducedLazy(TECH, types, ctx, f"{kind}{N}", DM.DIST_SOLVER_DEFAULTS, start=DM.menu_start(bm))
        t1, c1 = time.perf_counter(), time.process_time()
        if kind == "all":
            prob.add_pairs(np.array([(m, l) for m in range(M) for l in range(M) if m != l]))
            r = prob.solve()
            ok, its = r.ok, r.iterations
        else:
            lr = lazy_ic.solve_lazy(prob, prob.solve, initial_pairs=lazy_ic.nearest_pairs(types.coords, 8))
            ok, its = lr.converged, sum(x.iterations for x in lr.rounds)
        mu = prob.menu()
        res[kind] = {"ok": bool(ok), "iterations": its, "rows": int(prob.nlp.nrow), "ic_rows": int(len(prob.nlp.pairs)),
                     "seconds": time.perf_counter() - t1, "cpu": time.process_time() - c1,
                     "polish": prob.polish_log, "Q_err": float(np.max(np.abs(mu.Q - ref.Q)) / np.max(ref.Q)), "menu": mu}
    a, b = res["lazy"].pop("menu"), res["all"].pop("menu")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {"N": N, "types": M, "lazy": res["lazy"], "all": res["all"],
           "Q": float(np.max(np.abs(a.Q - b.Q)) / np.max(b.Q)), "t": float(np.max(np.abs(a.t - b.t)) / np.max(np.abs(b.t))),
           "x": float(np.max(np.abs(a.x - b.x)) / np.max(b.x)), "profit": float((a.profit - b.profit) / abs(b.profit)),
           "peak_MB": ru.ru_maxrss / 1024}
    print("RESULT " + json.dumps(out))
    sys.exit(0)
if FORM == "structured":
    from models import distribution_nlp as DN
    prob = DN.ReducedLazy(TECH, types, ctx, f"vs{N}", DM.DIST_SOLVER_DEFAULTS, start=DM.menu_start(bm))
    lr = lazy_ic.solve_lazy(prob, prob.solve, initial_pairs=lazy_ic.nearest_pairs(types.coords, 8),
                            max_rounds=40)
    menu = prob.menu()
    tab = lr.table()
    tab["build_seconds"] = tab["build_seconds"] + prob.build_log[:len(tab)]
    pol = getattr(prob, "polish_log", [])
else:
    pol = []
    s = DM.solve_menu(TECH, types, ctx, f"vs{N}", ic="lazy", starts={"budget": DM.menu_start(bm)})
    lr, menu = s.lazy["budget"], s.menu
    tab = lr.table()
rounds = tab[["round", "active_pairs", "added", "status", "iterations", "worst_ic", "build_seconds",
              "translate_seconds", "solve_seconds", "audit_seconds"]].to_dict("records")
ru = resource.getrusage(resource.RUSAGE_SELF)
out = {"N": N, "types": types.M, "cells": n, "pairs_audited": types.M * (types.M - 1), "rounds": rounds,
       "converged": bool(lr.converged), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0,
       "profit_nlp": menu.profit, "profit_cf": ref.profit,
       "profit_rel": (menu.profit - ref.profit) / abs(ref.profit),
       "Q_err": float(np.max(np.abs(menu.Q - ref.Q)) / np.max(ref.Q)),
       "peak_MB": ru.ru_maxrss / 1024, "polish": pol}
print("RESULT " + json.dumps(out))
"""


def run_one(src: Path, N: int, form: str, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    try:
        p = subprocess.run([sys.executable, "-c", WORKER, str(N), form], cwd=src, env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"N": N, "error": f"timeout after {timeout:.0f} s", "load": (load0, os.getloadavg()[0])}
    load = (load0, os.getloadavg()[0])
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "load": load}
    return {"N": N, "error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}",
            "seconds": time.perf_counter() - t0, "load": load}


def show(tag: str, r: dict) -> None:
    ld = "load {:.1f} -> {:.1f}".format(*r["load"])
    if "error" in r:
        print(f"[{tag}] N = {r['N']}: {r['error']} ({ld})")
        return
    if "lazy" in r:  # --all-pairs
        print(f"[lazy vs all pairs] N = {r['N']}: {r['types']} types ({ld}); peak {r['peak_MB']:.0f} MB; "
              f"max|ΔQ|/max Q {r['Q']:.1e}, max|Δt|/max|t| {r['t']:.1e}, max|Δx|/max x {r['x']:.1e}, "
              f"profit {r['profit']:.1e}")
        for k in ("lazy", "all"):
            x = r[k]
            pol = "; ".join(f"polish {p['status']} {p['iterations']} it {p.get('seconds', 0):.1f} s"
                            f"{'' if p['accepted'] else ' (not accepted)'}" for p in x["polish"])
            print(f"    {k:5s}: ok {x['ok']}, {x['ic_rows']:,} IC rows ({x['rows']:,} rows), {x['iterations']} it, "
                  f"{x['seconds']:.1f} s wall, {x['cpu']:.1f} s CPU, Q vs closed form {x['Q_err']:.1e}; {pol}")
        return
    print(f"[{tag}] N = {r['N']}: {r['types']} types, n = {r['cells']} cells, {r['pairs_audited']:,} pairs audited "
          f"per round; converged {r['converged']}; {r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU ({ld}); "
          f"peak {r['peak_MB']:.0f} MB; profit NLP vs closed form {r['profit_rel']:.2e}, "
          f"max|ΔQ|/max Q {r['Q_err']:.2e}")
    print("    round  active  added  status      it  worst_ic   build  transl   ipopt   audit")
    for k, p in enumerate(r.get("polish") or []):
        print(f"    end polish of round {k + 1}: accepted {p['accepted']}, {p['status']}, {p['iterations']} it, "
              f"{p.get('seconds', 0):.2f} s (counted in ipopt), profit change {p.get('profit_change', float('nan')):.1e}"
              + (f", {p['why']}" if 'why' in p else ""))
    for x in r["rounds"]:
        print(f"    {x['round']:5d} {x['active_pairs']:7d} {x['added']:6d}  {x['status']:<10s} {x['iterations']:4d}"
              f"  {x['worst_ic']:.1e} {x['build_seconds']:7.2f} {x['translate_seconds']:7.2f}"
              f" {x['solve_seconds']:7.2f} {x['audit_seconds']:7.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,20,40")
    ap.add_argument("--compare", default="", help="also run the Pyomo form of git revision REV (git archive)")
    ap.add_argument("--compare-max", type=int, default=40, help="largest N run with --compare")
    ap.add_argument("--compare-form", default="pyomo", choices=("pyomo", "structured"),
                    help="formulation run at --compare REV (structured: REV's models/distribution_nlp.py)")
    ap.add_argument("--pyomo", action="store_true", help="also run the current Pyomo form")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per size and code version")
    ap.add_argument("--all-pairs", default="", help="sizes N for lazy vs all-pairs (issue 15 item 4), e.g. 10,16,20")
    a = ap.parse_args(argv)
    if a.all_pairs:
        print(f"distributions_scale --all-pairs: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for N in [int(x) for x in a.all_pairs.split(",") if x]:
            show("all pairs", run_one(ROOT, N, "allpairs", a.timeout))
            sys.stdout.flush()
        return 0
    sizes = [int(x) for x in a.sizes.split(",") if x]
    runs = [("current structured", ROOT, "structured", 10**9)]
    if a.pyomo:
        runs.append(("current pyomo", ROOT, "pyomo", 10**9))
    tmp = None
    if a.compare:
        tmp = tempfile.TemporaryDirectory()
        arch = subprocess.run(["git", "archive", a.compare], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp.name], input=arch, check=True)
        for built in (".pyomo", ".build"):  # untracked build products the solver routes need
            if (ROOT / built).exists():
                os.symlink(ROOT / built, Path(tmp.name) / built)
        runs.append((f"{a.compare} {a.compare_form}", Path(tmp.name), a.compare_form, a.compare_max))
    print(f"distributions_scale: sizes {sizes}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for N in sizes:
        res = {}
        for tag, src, form, nmax in runs:
            if N > nmax:
                print(f"[{tag}] N = {N}: not run (--compare-max {nmax})")
                continue
            res[tag] = r = run_one(src, N, form, a.timeout)
            show(tag, r)
            sys.stdout.flush()
        new = res.get(runs[0][0], {})
        for tag, r in res.items():
            if tag != runs[0][0] and "error" not in r and "error" not in new:
                print(f"    ratio {tag} / {runs[0][0]}: wall {r['seconds'] / new['seconds']:.1f}x, "
                      f"CPU {r['cpu'] / new['cpu']:.1f}x, peak memory {r['peak_MB'] / new['peak_MB']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
