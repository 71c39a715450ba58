#!/usr/bin/env python
"""Scale of the menu of token distributions on value–scale grids (issue 15 item 2).

    nice -n 5 .venv/bin/python bench/distributions_scale.py [--sizes 10,20,40] [--compare REV] [--timeout S]

Technology: data/default.toml's (J = 2 token classes, CES ρ = 0.5; K = 1
fine-tuning class, σ = ½, γ = 0.2).  Types: w, s ~ U[0,1] independent on an
N×N grid of the design whose distribution profit converges at O(1/N²)
(docs/model.md §2.6, measured −2.59/N²): w at the *left* ends k/N of N equal
cells (then the discrete virtual value φ_k = 2(w_k + 1/(2N)) − 1 is exactly
h_w at the cell midpoint, so the Riemann sum over w is a midpoint rule) and s
at the cell midpoints (j − ½)/N (a midpoint rule in s).  s must be a multiple
of 1/n (docs/model.md §1), so n = 2N task cells.

Each size runs in its own process (peak memory = that process's max RSS) with
the regime's lazy IC (8 nearest grid neighbours, every pair audited in numpy
each round) from the budget-menu start, and prints per round: active IC rows,
rows added, Ipopt status/iterations, seconds of Pyomo build, NL translation,
Ipopt and the all-pairs audit; then the NLP vs the discrete closed form
(profit, max |ΔQ|/max Q) and the peak memory.  ``--compare REV`` runs the
same worker on ``git archive REV`` (e.g. the code before this session) in the
same invocation, so both are measured under the same machine load.
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
N = int(sys.argv[1])
TECH = cf.Technology(sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 4.0), gamma=0.2, rho_hat=0.0,
                     alpha_hat=(1.0,), cost_hat=(2.0,), token_names=("input", "output"), ft_names=("ft",))
wg, wm = np.arange(N) / N, np.full(N, 1.0 / N)
sg, sm = (np.arange(N) + 0.5) / N, np.full(N, 1.0 / N)
n = 2 * N
t0 = time.perf_counter()
types = DM.value_scale_space(wg, wm, sg, sm, n, name=f"{N}x{N}")
ref = D.value_scale_distribution_menu(wg, wm, sg, sm, n, TECH, audit=False)
bm = D.value_scale_budget_menu(wg, wm, sg, sm, n, TECH)
ctx = run.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)
s = DM.solve_menu(TECH, types, ctx, f"vs{N}", ic="lazy", starts={"budget": DM.menu_start(bm)})
lr = s.lazy["budget"]
rounds = lr.table()[["round", "active_pairs", "added", "status", "iterations", "worst_ic", "build_seconds",
                     "translate_seconds", "solve_seconds", "audit_seconds"]].to_dict("records")
out = {"N": N, "types": types.M, "cells": n, "pairs_audited": types.M * (types.M - 1), "rounds": rounds,
       "converged": bool(lr.converged), "seconds": time.perf_counter() - t0,
       "profit_nlp": s.menu.profit, "profit_cf": ref.profit,
       "profit_rel": (s.menu.profit - ref.profit) / abs(ref.profit),
       "Q_err": float(np.max(np.abs(s.menu.Q - ref.Q)) / np.max(ref.Q)),
       "peak_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
print("RESULT " + json.dumps(out))
"""


def run_one(src: Path, N: int, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", WORKER, str(N)], cwd=src, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"N": N, "error": f"timeout after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"N": N, "error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}",
            "seconds": time.perf_counter() - t0}


def show(tag: str, r: dict) -> None:
    if "error" in r:
        print(f"[{tag}] N = {r['N']}: {r['error']}")
        return
    print(f"[{tag}] N = {r['N']}: {r['types']} types, n = {r['cells']} cells, {r['pairs_audited']:,} pairs audited "
          f"per round; converged {r['converged']}; {r['seconds']:.1f} s; peak {r['peak_MB']:.0f} MB; "
          f"profit NLP vs closed form {r['profit_rel']:.2e}, max|ΔQ|/max Q {r['Q_err']:.2e}")
    print("    round  active  added  status      it  worst_ic   build  transl   ipopt   audit")
    for x in r["rounds"]:
        print(f"    {x['round']:5d} {x['active_pairs']:7d} {x['added']:6d}  {x['status']:<10s} {x['iterations']:4d}"
              f"  {x['worst_ic']:.1e} {x['build_seconds']:7.2f} {x['translate_seconds']:7.2f}"
              f" {x['solve_seconds']:7.2f} {x['audit_seconds']:7.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,20,40")
    ap.add_argument("--compare", default="", help="also run git revision REV (git archive) for comparison")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per size and code version")
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    srcs = [("current", ROOT)]
    tmp = None
    if a.compare:
        tmp = tempfile.TemporaryDirectory()
        arch = subprocess.run(["git", "archive", a.compare], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp.name], input=arch, check=True)
        for built in (".pyomo", ".build"):  # untracked build products the solver routes need
            if (ROOT / built).exists():
                os.symlink(ROOT / built, Path(tmp.name) / built)
        srcs.append((a.compare, Path(tmp.name)))
    print(f"distributions_scale: sizes {sizes}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for N in sizes:
        for tag, src in srcs:
            show(tag, run_one(src, N, a.timeout))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
