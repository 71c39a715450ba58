#!/usr/bin/env python
"""The task-assignment step alone, over generated competition scenarios.

    .venv/bin/python bench/task_assignment.py [--seeds 1-101] [--jsonl FILE]

For every scenario of ``tests/scenario_strategies.py``'s competition family (50 per seed, the same
files as ``bench/valid_scenarios.py --regimes competition``) that has task cells, run only
``models.competition.checks._assignment_checks`` (the regime's own profiles, solves and rows) and
count the scenarios with a failed row or a solve that did not end 'optimal'.  About 0.1 s per
scenario: it covers far more technologies than the whole-regime sweep can.  A benchmark of the
verdict, not a test: it prints, it does not assert.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pandas as pd  # noqa: E402

import scenario_strategies as S  # noqa: E402
from models import run as runmod, scenario  # noqa: E402
from models.competition import checks  # noqa: E402
from models.results import RegimeResult  # noqa: E402


def seed_list(arg: str) -> list[int]:
    out = []
    for part in arg.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1-101", help="comma list of seeds or ranges a-b (default 1-101)")
    ap.add_argument("--jsonl", help="one record per scenario with task cells")
    args = ap.parse_args(argv)
    ctx = runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)
    out = open(args.jsonl, "w") if args.jsonl else None
    n = n_bad = 0
    t0 = time.perf_counter()
    for seed in seed_list(args.seeds):
        for i in range(50):  # bench/valid_scenarios.py BASE_COUNTS["competition"]
            spec = S.draw_scenario("competition", seed, i)
            with tempfile.TemporaryDirectory() as td:
                scn = scenario.load(spec.write(Path(td) / "scn"))
            opts = scn.regimes["competition"]
            if not opts["task_cells"]:
                continue
            res = RegimeResult("competition")
            checks._assignment_checks(res, scn.technology, ctx, opts, (opts["gamma_F"], opts["gamma_L"]))
            df = pd.concat(res.checks, ignore_index=True)
            bad = df[~df["passed"].astype(bool)]
            status = {k: r.status.value for k, r in res.solves.items()}
            ok = bad.empty and all(v == "optimal" for v in status.values())
            n, n_bad = n + 1, n_bad + (not ok)
            rec = {"scenario": f"competition_{seed}_{i}", "ok": ok, "sigma": scn.technology.sigma,
                   "not_optimal": {k: v for k, v in status.items() if v != "optimal"},
                   "failed": [{"quantity": q, "rel_err": e, "tolerance": t}
                              for q, e, t in bad[["quantity", "rel_err", "tolerance"]].itertuples(index=False)]}
            if not ok:
                print(json.dumps(rec, ensure_ascii=False), flush=True)
            if out:
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"  seed {seed}: {n} scenarios with task cells so far, {n_bad} failing "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"scenarios with task cells: {n}, failing: {n_bad} ({time.perf_counter() - t0:.0f} s, "
          f"seeds {args.seeds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
