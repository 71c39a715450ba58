"""Worst-type accuracy of the budget-menu NLP when some types carry tiny mass.

Beta tails on an equal-spacing grid put masses ~1e-7 .. 1e-15 on the top
types.  For N = 60 ... 2000 this solves the local-IC menu in each formulation
(pyomo, structured, presolved) and prints, per run, the smallest mass, the
worst-type error max_k |Q_k - Q_k^cf| / max Q (the verification's measure),
the type where it occurs and its mass, the same for t, and the worst per-type
KKT residual (budgets.kkt_residual) -- for Ipopt's menu and after
budgets.polish_menu (per-type Newton).

    .venv/bin/python bench/low_mass.py [--sizes 60,250,1000,2000] [--forms presolved,structured,pyomo]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import budgets, run  # noqa: E402
from models.closed_form import budgets as cb  # noqa: E402
from models.closed_form import cost as cf  # noqa: E402
from models.type_space import TypeDistribution  # noqa: E402

TECH = cf.Technology(sigma=0.5, rho=-0.5, alpha=(0.5, 0.5), cost=(1.0, 3.0), gamma=0.2, rho_hat=0.0,
                     alpha_hat=(1.0,), cost_hat=(2.0,), token_names=("input", "output"), ft_names=("ft",))
CASES = {"beta(2;5)[0,100]": TypeDistribution("beta", low=0.0, high=100.0, p=2.0, q=5.0),
         "beta(1;2)[0,1]": TypeDistribution("beta", low=0.0, high=1.0, p=1.0, q=2.0),
         "beta(2;8)[.2,1.2]": TypeDistribution("beta", low=0.2, high=1.2, p=2.0, q=8.0)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="60,120,250,500,1000,2000")
    ap.add_argument("--forms", default="pyomo,structured,presolved")
    ap.add_argument("--cases", default="|".join(CASES))
    a = ap.parse_args(argv)
    ctx = run.Context(route="cyipopt", options={"max_iter": 3000}, progress=lambda *x, **k: None)
    print(f"{'case':18s} {'N':>5s} {'form':18s} {'min mass':>9s} {'Q err':>9s} {'at k':>5s} {'mass_k':>9s} "
          f"{'t err':>9s} {'KKT res':>9s} {'status':10s} {'it':>4s} {'sec':>6s}")
    for case in a.cases.split("|"):
        dist = CASES[case]
        for N in map(int, a.sizes.split(",")):
            th, ms = dist.discretise(N, "equal-spacing")
            ref = cb.discrete_menu(TECH, th, ms)
            for form in a.forms.split(","):
                t0 = time.perf_counter()
                _, raw, r = budgets.solve_menu(TECH, th, ms, ctx, "m", "local", formulation=form)
                t1 = time.perf_counter() - t0
                menu, note = budgets.polish_menu(TECH, th, ms, raw)
                t2 = time.perf_counter() - t0 - t1
                for lab, mn, sec in (("ipopt", raw, t1), ("+polish", menu, t2)):
                    e = np.abs(mn.Q - ref.Q) / ref.Q.max()
                    k = int(np.argmax(e))
                    et = np.max(np.abs(mn.t - ref.t)) / np.max(np.abs(ref.t))
                    kkt = budgets.kkt_residual(TECH, th, ms, mn)[0]
                    print(f"{case:18s} {N:5d} {form + ' ' + lab:18s} {ms.min():9.2e} {e[k]:9.2e} {k:5d} {ms[k]:9.2e} "
                          f"{et:9.2e} {kkt:9.2e} {r.status.value:10s} {r.iterations:4d} {sec:6.2f}", flush=True)
                if "rejected" in note or "skipped" in note:
                    print("   ", note)


if __name__ == "__main__":
    main()
