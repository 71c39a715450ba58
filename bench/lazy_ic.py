#!/usr/bin/env python
"""Lazy incentive constraints vs all pairs: rounds, active pairs and time.

    .venv/bin/python bench/lazy_ic.py [--sizes 5,6,8,10,20,40] [--all-pairs-max 8] [--cold] [--tech j1|default]

Value–scale types w, s ~ U[0,1] independent on N×N grids with N task cells
(docs/model.md §2.6(b)).  For each N the menu of token distributions is solved
with lazily generated IC rows (models.lazy_ic: 8 nearest grid neighbours to
start, every pair audited in numpy each round, violated pairs added most
violated first, warm re-solves) and, for N <= --all-pairs-max, with all
M(M−1) pairs; both from the same start (the budget menu).  Printed per N:
rounds, IC rows in the final model vs M(M−1), wall-clock seconds of each
part (Pyomo build, NL translation, Ipopt, numpy audit), the worst violation
over all pairs, the relative objective gaps NLP vs the discrete closed form
and lazy vs all pairs, and the profit ratio distribution menu / budget menu
(both NLPs; 9/8 in the continuum at σ = ½).  Timings are wall clock on
whatever else the machine is running; Ipopt is single-threaded here (2
cores: do not run two benches at once).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from models import budgets  # noqa: E402
from models import distributions as DM  # noqa: E402
from models import run  # noqa: E402
from models.closed_form import cost as cf  # noqa: E402
from models.closed_form import distributions as D  # noqa: E402

TECHS = {
    # one token class, one fine-tuning class: sigma = 1/2, sigma + gamma = 0.7
    "j1": cf.Technology(sigma=0.5, rho=0.0, alpha=(1.0,), cost=(1.0,), gamma=0.2, alpha_hat=(1.0,),
                        cost_hat=(1.0,), token_names=("tokens",), ft_names=("ft",)),
    # data/default.toml: two token classes (CES rho = 0.5), one fine-tuning class
    "default": cf.Technology(sigma=0.5, rho=0.5, alpha=(0.6, 0.4), cost=(1.0, 4.0), gamma=0.2, alpha_hat=(1.0,),
                             cost_hat=(2.0,), token_names=("input", "output"), ft_names=("ft",)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="5,6,8,10,20,40", help="grid sizes N (N×N types, N cells)")
    ap.add_argument("--all-pairs-max", type=int, default=8, help="largest N also solved with all pairs")
    ap.add_argument("--cold", action="store_true", help="re-solve lazily without multipliers (primal start only)")
    ap.add_argument("--tech", choices=sorted(TECHS), default="j1")
    ap.add_argument("--max-add", type=int, default=0, help="rows added per round (0: the default)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    tech = TECHS[args.tech]
    ctx = run.Context(route="auto", options={}, user_options={},
                      progress=print if args.verbose else (lambda *a: None))
    lazy_opts = {"warm": not args.cold, "max_add": args.max_add}
    print(f"technology {args.tech}: sigma {tech.sigma}, gamma {tech.gamma}, J {tech.J}, K {tech.K}; "
          f"warm re-solves: {not args.cold}")
    hdr = (f"{'N':>3} {'types':>5} {'pairs M(M-1)':>12} {'form':>9} {'rounds':>6} {'IC rows':>8} {'added':>6} "
           f"{'build s':>8} {'transl s':>8} {'ipopt s':>8} {'audit s':>8} {'total s':>8} {'worst viol':>10} "
           f"{'iters':>9} {'vs closed form':>14} {'lazy vs all':>11} {'ratio D/B':>9}")
    print(hdr)
    for N in [int(x) for x in args.sizes.split(",") if x]:
        types = DM.value_scale_uniform(N)
        u = DM.TypeDistribution("uniform", 0.0, 1.0)
        wg, wm = u.discretise(N)
        sg, sm = DM.s_points(u, N)
        ref = D.value_scale_distribution_menu(wg, wm, sg, sm, N, tech, audit=False)
        bm = D.value_scale_budget_menu(wg, wm, sg, sm, N, tech)
        start = {"budget": DM.menu_start(bm)}
        g = bm.info["groups"]  # the budget menu as an NLP, over the distinct θ
        budget_profit = budgets.solve_menu(tech, g["theta"], g["mass"], ctx, "budget", "local")[1].profit(tech)
        out = {}
        for form in (["lazy", "all-pairs"] if N <= args.all_pairs_max else ["lazy"]):
            t0 = time.perf_counter()
            with DM.Timer() as tb:
                mp = DM.build_menu(tech, types)
            s = DM.solve_menu(tech, types, ctx, f"N={N}", ic=form, starts=start, lazy_opts=lazy_opts, model=mp)
            total = time.perf_counter() - t0
            if form == "lazy":
                lr = s.lazy["budget"]
                rounds = lr.rounds
                row = dict(rounds=len(rounds), rows=lr.active_pairs, added=lr.pairs_added,
                           build=tb.seconds + sum(r.build_seconds for r in rounds),
                           transl=sum(r.translate_seconds for r in rounds),
                           ipopt=sum(r.solve_seconds for r in rounds), audit=sum(r.audit_seconds for r in rounds),
                           worst=lr.worst_ic, iters="+".join(str(r.iterations) for r in rounds))
            else:
                r = s.result
                ta = time.perf_counter()
                worst = D.audit_menu(types.W, s.menu.x, s.menu.z, s.menu.t, tech)["max_ic_violation"]
                ta = time.perf_counter() - ta
                row = dict(rounds=1, rows=s.problem.n_pairs(), added=0, build=total - r.translate_seconds
                           - r.solve_seconds, transl=r.translate_seconds, ipopt=r.solve_seconds,
                           audit=ta, worst=worst / s.problem.money_scale, iters=str(r.iterations))
            out[form] = s.result.objective
            gap_cf = s.menu.profit / ref.profit - 1
            gap_all = (out["lazy"] / out["all-pairs"] - 1) if form == "all-pairs" else float("nan")
            print(f"{N:>3} {types.M:>5} {types.M * (types.M - 1):>12} {form:>9} {row['rounds']:>6} {row['rows']:>8} "
                  f"{row['added']:>6} {row['build']:>8.2f} {row['transl']:>8.2f} {row['ipopt']:>8.2f} "
                  f"{row['audit']:>8.3f} {total:>8.2f} {row['worst']:>10.2e} {row['iters']:>9} {gap_cf:>14.2e} "
                  f"{gap_all:>11.2e} {s.menu.profit / budget_profit:>9.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
