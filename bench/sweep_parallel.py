#!/usr/bin/env python
"""Wall time of one sweep on 1 worker vs the local Dask cluster, measured in one run.

Runs the same command twice (fresh output folders, figures off), once per
worker count, one after the other::

    solve.py sweep data/sweep_budgets.toml --workers N --out bench/out/sweep_parallel/wN --no-figures --quiet

``data/sweep_budgets.toml`` is a light budget-menu scenario (local IC,
N = 100 types, no convergence study, a 10-cell Lemma 1 check) whose
``[sweep]`` table asks for 200 values of technology.sigma in [0.2, 0.6].
Prints, per run, the command's wall time and its split (cluster start-up incl.
worker imports, compute = first submission to last result), checks that both
runs produced the same table (timings aside), and the ratios 1 worker / N.
The machine's load average is printed too: other processes on the same cores
change the ratio.

    .venv/bin/python bench/sweep_parallel.py [--workers 1,2] [--repeat 2] [--param technology.sigma=0.2:0.6:200]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out" / "sweep_parallel"


def run_once(scenario: Path, workers: int, params: list[str], tag: str = "") -> dict:
    out = OUT / f"w{workers}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "solve.py"), "sweep", str(scenario), "--workers", str(workers),
           "--out", str(out), "--no-figures", "--quiet"]
    for p in params:
        cmd += ["--param", p]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1) or not (out / "sweep.json").is_file():
        sys.exit(f"sweep failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    man = json.loads((out / "sweep.json").read_text())
    import pandas as pd

    t = pd.read_parquet(out / "sweep.parquet")
    reg = t[(t["kind"] == "regime") & (t["quantity"] == "checks")]
    busy, cpu = float(reg["wall_seconds"].sum()), float(reg["cpu_seconds"].sum())
    return {"workers": workers, "wall": wall, "busy": busy, "cpu": cpu, "startup": man["seconds"]["startup"],
            "compute": man["seconds"]["compute"], "points": man["points"], "computed": man["computed"],
            "failed": man["failed"], "errors": man["errors"], "exit": proc.returncode, "out": out,
            "load": (load0, os.getloadavg()[0]), "execution": man["execution"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default=str(ROOT / "data" / "sweep_budgets.toml"))
    ap.add_argument("--workers", default="1,2", help="comma list of worker counts (default 1,2)")
    ap.add_argument("--param", action="append", default=[], metavar="PATH=START:STOP:COUNT",
                    help="override the scenario's [sweep] grid")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds; round r runs the worker counts forwards (r even) or backwards (r odd), "
                         "so a load that drifts during the benchmark hits both alike (default 1)")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    import pandas as pd

    from models import sweep

    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable); "
          f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = []
    for r in range(args.repeat):
        for n in (counts if r % 2 == 0 else counts[::-1]):
            runs.append(run_once(Path(args.scenario), n, args.param, tag=f"_r{r}"))
    print(f"\nscenario {args.scenario}, {runs[0]['points']} points, figures off\n")
    # busy: the points' own wall times summed (in the workers); cpu: their CPU times.
    # busy / cpu > 1: a worker waited for its core (other processes on the machine, see load average).
    print(f"{'workers':>7} {'wall s':>8} {'start s':>8} {'compute s':>10} {'s/point':>8} {'cpu s/point':>11} "
          f"{'busy/cpu':>8} {'failed':>7}  {'load avg (start, end)':>22}")
    for r in runs:
        n = max(r["computed"], 1)
        print(f"{r['workers']:>7} {r['wall']:>8.1f} {r['startup']:>8.1f} {r['compute']:>10.1f} "
              f"{r['busy'] / n:>8.3f} {r['cpu'] / n:>11.3f} {r['busy'] / max(r['cpu'], 1e-9):>8.2f} {r['failed']:>7}  "
              f"{r['load'][0]:>10.2f}, {r['load'][1]:>9.2f}")
    tables = [pd.read_parquet(r["out"] / "sweep.parquet").drop(columns=list(sweep.VOLATILE_COLUMNS)) for r in runs]
    for r, t in zip(runs[1:], tables[1:]):
        try:
            pd.testing.assert_frame_equal(t, tables[0], check_exact=True)
        except AssertionError as exc:
            print(f"\nRESULTS DIFFER between {runs[0]['workers']} and {r['workers']} workers (was the code edited "
                  f"during the benchmark?):\n{str(exc)[:600]}")
            return 1
    print("\nresults: identical tables in every run (timing columns aside)")
    med = {n: {k: float(np.median([r[k] for r in runs if r["workers"] == n])) for k in ("wall", "compute")}
           for n in counts}
    base = counts[0]
    for n in counts[1:]:
        wall, comp = med[base]["wall"] / med[n]["wall"], med[base]["compute"] / med[n]["compute"]
        print(f"ratio {base} worker(s) / {n} workers (median of {args.repeat}): wall {wall:.2f}x, compute {comp:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
