#!/usr/bin/env python
"""The largest budgets run: wall time, peak memory and output size of ``solve.py``.

    .venv/bin/python bench/largest_budgets.py [--sizes 1000000,2000000] [--refine 10]
        [--ipopt KEY=VALUE ...] [--timeout 3600] [--keep DIR]

For each N it writes ``data/budgets_large.toml`` with ``types.n = N`` (and the
given ``refine`` and Ipopt options) into a temporary folder and runs

    /usr/bin/time -v .venv/bin/python solve.py SCENARIO --out TMP --quiet

then prints N, exit code, wall and CPU seconds, maximum resident set size (GiB), bytes
written, and the status line of each solve from summary.json (a linear-solver
failure shows there at once: models/solver.py ``_ErrorWatch``).  It takes
minutes per size; run it alone (2 cores), not next to the test suite.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"


def scenario_text(n: int, refine: int | None, ipopt: dict) -> str:
    text = (ROOT / "data" / "budgets_large.toml").read_text()
    text = re.sub(r"(?m)^n = \d+$", f"n = {n}", text)
    text = re.sub(r'(?m)^name = .*$', f'name = "budgets_n{n}"', text, count=1) if text.startswith("name =") \
        else f'name = "budgets_n{n}"\n' + text
    if refine is not None:
        text = text.replace('[regimes.budgets]\n', f'[regimes.budgets]\nrefine = {refine}\n')
    if ipopt:
        text += "\n[solver.options]\n" + "".join(
            f"{k} = {v if re.fullmatch(r'[-+0-9.eE]+', v) else json.dumps(v)}\n" for k, v in ipopt.items())
    return text


def run(n: int, refine, ipopt, timeout: float, keep: Path | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"largest_budgets_{n}_", dir=keep))
    scn = tmp / f"budgets_n{n}.toml"
    scn.write_text(scenario_text(n, refine, ipopt))
    out = tmp / "out"
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["/usr/bin/time", "-v", str(PY), str(ROOT / "solve.py"), str(scn), "--out", str(out),
                            "--quiet"], capture_output=True, text=True, timeout=timeout)
        rc, err, so = p.returncode, p.stderr, p.stdout
    except subprocess.TimeoutExpired as exc:
        rc, err, so = "timeout", (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else (exc.stderr or ""), ""
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    rss = int(m[1]) / 2 ** 20 if m else float("nan")
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", err))
    written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.exists() else 0
    solves = {}
    summ = out / f"budgets_n{n}" / "summary.json"
    if summ.is_file():
        for reg, r in json.loads(summ.read_text())["regimes"].items():
            for k, s in r["solves"].items():
                solves[f"{reg}/{k}"] = f"{s['status']}, {s['iterations']} it, solve {s['solve_seconds']:.0f} s" + (
                    f", {s['message'][:200]}" if s["status"] != "optimal" else "")
    row = {"n": n, "exit": rc, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "max_rss_GiB": round(rss, 2), "written_MB":
           round(written / 1e6, 1), "solves": solves, "stdout_tail": so.strip().splitlines()[-3:]}
    if keep is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,2000000")
    ap.add_argument("--refine", type=int, default=None, help="audit refinement (scenario default: 10)")
    ap.add_argument("--ipopt", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = ap.parse_args(argv)
    ipopt = dict(kv.split("=", 1) for kv in args.ipopt)
    for n in (int(float(s)) for s in args.sizes.split(",")):
        print(json.dumps(run(n, args.refine, ipopt, args.timeout, args.keep)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
