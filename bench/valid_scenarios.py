#!/usr/bin/env python
"""Random *valid* scenarios through the real product path: ``solve.py FILE --out DIR``.

    .venv/bin/python bench/valid_scenarios.py [--seed 0] [--count-scale 1.0]
        [--regimes budget,competition,two-type,value-scale,versions,plans] [--only FAMILY:I[,FAMILY:I]]
        [--failures /tmp/valid_failures] [--results bench/valid_scenarios_results.txt]
        [--timeout 900]

Base counts (×``--count-scale``): 200 budget/cost, 50 competition, 50 two-type,
20 small value–scale, 30 model-versions (L = 2–4), 30 pricing-plans scenarios, drawn from the
documented ranges by the generators in ``tests/scenario_strategies.py`` (the same ones the
Hypothesis tests use; the ``plans`` family is composed here from their helpers, see
``plans_scenario``).  Scenario *i* of a family under a seed is always the same file,
so ``--only budget:17`` re-runs one.

Every scenario is written as a TOML file (plus its CSV for discrete types) in a
temporary folder and run as a subprocess with the project's interpreter.  The
outcome is one of: ``exit 0`` (verified), ``exit 1`` (not verified),
``exit 2`` (validation rejected a scenario that the documented ranges allow),
``crash`` (a Python traceback on stderr, any other exit code, or a *silent* exit 1 — no
failed row and no non-optimal solve to show the user), ``timeout``.  ``--jobs 2``
runs two scenarios at once (one per core).
For every non-zero outcome the scenario, its stderr and the failing rows of
``verification.csv`` (and non-optimal solves from ``summary.json``) are kept
under ``--failures`` and summarised at the end, grouped by failing check.

This is a benchmark of the verdict, not a test: it prints counts, it does not
assert.  The property tests (tests/test_properties.py) assert the same thing
on a few draws.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenario_strategies as S  # noqa: E402

BASE_COUNTS = {"budget": 200, "competition": 50, "two-type": 50, "value-scale": 20, "versions": 30, "plans": 30, "multidim": 30}
OUTCOMES = ("exit 0", "exit 1", "exit 2", "crash", "timeout")


# ------------------------------------------------------------- plans family
# K_MAX of models/plans.py (validate_options: K a strictly increasing list of integers 1..64);
# refine 1..1000 and full_nlp_max 0..400 are the ranges the same function validates.
PLANS_K_MAX = 64
PLANS_REFINE_MAX = 1000
PLANS_FULL_NLP_MAX = 400
# refine × N finer-grid types choose freely from every menu (numpy, K plans each): kept
# <= 1e5 so a scenario takes seconds; refine = 1000 itself is drawn on the few-type grids.
PLANS_FINE_TYPES_MAX = 100_000


def _n_types(types: dict, files: dict) -> int:
    """Number of discrete types N of a drawn [types] table (a CSV: its data rows)."""
    if types["distribution"] == "discrete":
        return len(files[types["file"]].strip().splitlines()) - 1
    return int(types["n"])


def _k_list(d, feats: list, N: int):
    """regimes.plans.K: a strictly increasing list of integers in 1..PLANS_K_MAX, or None (the
    default [1, ..., 8]).  Edges: one plan, K = N (one plan per type), many plans (up to 64)
    and a K above N (documented as skipped with a note)."""
    kind = d.choice(["default", "few", "few", "single", "many", "many", "K=N", "above-N"])
    top = min(PLANS_K_MAX, N)
    if kind == "default":
        feats.append("plans:K=default")
        return None
    if kind == "single":
        k = d.choice([1, 1, d.integer(1, min(8, top))])
        feats.append("plans:K=1" if k == 1 else "plans:K<=15")
        return [k]
    if kind == "few":
        ks = sorted({d.integer(1, min(8, top)) for _ in range(d.integer(1, 4))})
    elif kind == "many":  # up to 64 tariffs: at most 6 sizes, the largest of them near min(64, N)
        hi = max(1, top - d.integer(0, max(0, top // 4)))
        ks = sorted({d.integer(1, hi) for _ in range(d.integer(1, 5))} | {hi})
    elif kind == "K=N":
        ks = sorted({d.integer(1, top) for _ in range(d.integer(0, 2))} | {top})
    else:  # above N: K > N is valid and skipped with a note (for N >= 64 the largest K is then 64)
        ks = sorted({d.integer(1, top) for _ in range(d.integer(1, 2))} | {d.integer(top, PLANS_K_MAX)})
    feats.append("plans:K=N" if ks[-1] == N else "plans:K>N" if ks[-1] > N
                 else "plans:K>=16" if ks[-1] >= 16 else "plans:K<=15")
    return ks


def plans_scenario(d, name="plans") -> S.ScenarioSpec:
    """Pricing plans (README "Pricing plans", docs/model.md §2.8, models/plans.validate_options):
    the technology of the other families without the baseline form (the plans NLPs write
    C(Q) = cQ^(1/η); the regime rejects a baseline, so that draw becomes a one-class CES
    fine-tuning); any type distribution and both grids, from two types up; half of the Beta draws
    with integer shapes (the continuous-cut NLP needs uniform or integer-parameter Beta types);
    K (see _k_list), refine 1..1000, full_nlp_max 0..400; 40 % of the CSV types with customer
    counts as masses (_as_counts)."""
    feats: list = []
    tech = S.draw_technology(d, feats)
    ft = tech.get("fine_tuning")
    if ft is not None and "baseline" in ft:
        del ft["baseline"]
        feats[feats.index("ft=baseline")] = "ft=one-class"
    size = d.choice(["few", "mid", "mid", "large"])
    n_lo, n_hi = {"few": (2, 6), "mid": (7, 60), "large": (61, 120)}[size]
    types, files = S.draw_types(d, feats, n_lo=n_lo, n_hi=n_hi)
    if types["distribution"] == "beta" and d.chance(0.5):
        types["p"], types["q"] = float(max(1, round(types["p"]))), float(max(1, round(types["q"])))
        feats.append("beta(integer)")
    N = _n_types(types, files)
    if types["distribution"] != "discrete":  # a CSV's rows are tagged csv[N] already
        feats.append(f"N<={n_hi}")
    opts: dict = {}
    ks = _k_list(d, feats, N)
    if ks is not None:
        opts["K"] = ks
    rk = d.choice(["default", "default", "one", "some", "max"])
    if rk == "one":
        opts["refine"] = 1
    elif rk == "some":
        opts["refine"] = d.integer(2, 50)
    elif rk == "max":
        opts["refine"] = min(PLANS_REFINE_MAX, PLANS_FINE_TYPES_MAX // N)
    if "refine" in opts:
        feats.append(f"refine={'max' if rk == 'max' else opts['refine'] if rk == 'one' else '2-50'}")
    fk = d.choice(["default", "default", "zero", "N", "max"])
    if fk != "default":
        opts["full_nlp_max"] = {"zero": 0, "N": min(N, PLANS_FULL_NLP_MAX), "max": PLANS_FULL_NLP_MAX}[fk]
        feats.append(f"full_nlp_max={fk}")
    # drawn last, so the other draws of a scenario do not depend on it
    if types["distribution"] == "discrete" and d.chance(0.4):
        files[types["file"]] = _as_counts(d, files[types["file"]], feats)
    tree = {"name": name, "technology": tech, "types": types, "regimes": {"plans": opts}}
    return S.ScenarioSpec("plans", name, tree, files, feats)


def _as_counts(d, text: str, feats: list) -> str:
    """The same CSV types with customer counts as masses (README: "mass is a positive weight --
    shares or customer counts"; stranger11's CRM segments): integers log-uniform on 1..5000, and
    half the time a whale, the top type with 1-3 customers (its money sets the plans NLPs' scales)."""
    head, *rows = text.strip().splitlines()
    pts = [(float(r.split(",")[0]), r.split(",")[0]) for r in rows]
    top = max(p[0] for p in pts)
    whale = d.chance(0.5)
    out = [head]
    for th, raw in pts:
        n = d.integer(1, 3) if whale and th == top else int(round(math.exp(d.uniform(0.0, math.log(5000.0)))))
        out.append(f"{raw},{max(n, 1)}")
    feats.append("csv(counts, whale)" if whale else "csv(counts)")
    return "\n".join(out) + "\n"


FAMILIES = tuple(S.FAMILIES) + ("plans",)
GENERATORS = {**S.GENERATORS, "plans": plans_scenario}


def draw_scenario(family: str, seed: int, index: int) -> S.ScenarioSpec:
    """Scenario ``index`` of ``family`` under ``seed``: the same seeding and names as
    ``scenario_strategies.draw_scenario``, over its families and ``plans``."""
    if family in S.GENERATORS:
        return S.draw_scenario(family, seed, index)
    d = S.RandomDraw(f"{seed}:{family}:{index}")
    return GENERATORS[family](d, name=f"{family.replace('-', '_')}_{seed}_{index}")


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _internal_error(run_dir: Path) -> str:
    """The first regime error of run folder ``run_dir`` that run.run_regime made from an unexpected exception
    (``INTERNAL_ERROR``), or ''."""
    try:
        summ = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return ""
    regs = summ.get("regimes", {}) if isinstance(summ, dict) else {}
    for r in (regs.values() if isinstance(regs, dict) else regs):
        err = str((r or {}).get("error") or "") if isinstance(r, dict) else ""
        if err.startswith("internal error"):
            return err
    return ""


def failing_rows(out: Path) -> list[dict]:
    """Failed verification rows and non-optimal solves of one finished run."""
    rows = []
    ver = out / "verification.csv"
    if ver.is_file():
        with open(ver, newline="") as fh:
            for r in csv.DictReader(fh):
                if r["passed"] not in ("True", "true", "1"):
                    rows.append(r)
    return rows


def non_optimal(out: Path) -> tuple[list[str], set]:
    """Non-optimal solves ("regime/label: status: message") and the regimes that did not converge."""
    p = out / "summary.json"
    if not p.is_file():
        return [], set()
    try:
        summ = json.loads(p.read_text())
    except json.JSONDecodeError:
        return ["summary.json unreadable"], set()
    bad, regs = [], set()
    for reg, info in summ.get("regimes", {}).items():
        if info.get("converged") is False:
            regs.add(reg)
        if info.get("error"):
            bad.append(f"{reg}: error {info['error'][:200]}")
        for label, s in (info.get("solves") or {}).items():
            st = s.get("status") if isinstance(s, dict) else None
            if st and st != "optimal":
                bad.append(f"{reg}/{label}: {st} ({s.get('message', '')[:80]}, {s.get('iterations')} it)")
    return bad, regs


def group_rows(rows: list[dict]) -> list[dict]:
    """One line per (regime, check, quantity): failing rows, worst rel_err or numeric, tolerance."""
    g = defaultdict(list)
    for r in rows:
        g[(r["regime"], r["check"], r["quantity"])].append(r)
    out = []
    for (reg, chk, q), rs in g.items():
        def f(x):
            try:
                return float(x)
            except (TypeError, ValueError):
                return float("nan")
        worst = max(rs, key=lambda r: f(r["rel_err"]) if f(r["rel_err"]) == f(r["rel_err"]) else f(r["numeric"]))
        out.append({"regime": reg, "check": chk, "quantity": q, "rows": len(rs), "index": worst["index"],
                    "numeric": worst["numeric"], "reference": worst["reference"], "rel_err": worst["rel_err"],
                    "tolerance": worst["tolerance"]})
    return out


TREE = ROOT  # the checkout whose solve.py runs (--snapshot: an exported commit)


def snapshot(rev: str) -> Path:
    """Export commit ``rev`` (``git archive``) into a temporary folder: other
    people's uncommitted edits in the working tree do not leak into the run."""
    dest = Path(tempfile.mkdtemp(prefix="valid_snapshot_"))
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    if (ROOT / ".build").is_dir():  # built helpers (the ASL exit guard, the AMPL driver) are not in git
        (dest / ".build").symlink_to(ROOT / ".build")
    return dest


def run_one(spec: S.ScenarioSpec, timeout: float, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="valid_scn_") as td:
        td = Path(td)
        path = spec.write(td / "scn")
        out = td / "out"
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.setdefault("MPLBACKEND", "Agg")
        if TREE != ROOT and (ROOT / ".pyomo" / "lib").is_dir():
            env.setdefault("PYOMO_CONFIG_DIR", str(ROOT / ".pyomo"))  # the snapshot has no built library
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([python(), str(TREE / "solve.py"), str(path), "--out", str(out), "--quiet"],
                                  cwd=td, env=env, capture_output=True, text=True, timeout=timeout)
            rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, stdout, stderr = None, (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
                else (exc.stdout or ""), "timeout"
        secs = time.perf_counter() - t0
        if rc is None:
            outcome = "timeout"
        elif "Traceback (most recent call last)" in stderr or rc not in (0, 1, 2):
            outcome = "crash"
        elif rc == 1 and _internal_error(out / spec.name):
            outcome = "crash"  # run.run_regime caught an unexpected exception: a defect, counted as a crash
        else:
            outcome = f"exit {rc}"
        run_dir = out / spec.name
        rows = failing_rows(run_dir) if outcome == "exit 1" else []
        solves, unconverged = non_optimal(run_dir) if outcome == "exit 1" else ([], set())
        # a regime that did not converge has every row failed by rule: report the solve, not its rows
        rows_all = rows
        rows = [r for r in rows if r["regime"] not in unconverged]
        if outcome == "exit 1" and not rows_all and not solves and not unconverged:
            # exit 1 with no failed row and no non-optimal solve: the user is told nothing -> a defect
            outcome = "crash"
        rec = {"family": spec.family, "name": spec.name, "outcome": outcome, "seconds": secs,
               "features": spec.features, "groups": group_rows(rows), "solves": solves,
               "stderr_tail": stderr.strip().splitlines()[-1] if stderr.strip() else "",
               "error_line": next((ln for ln in stderr.splitlines() if ln.startswith("error:")), "")}
        if outcome == "crash" and _internal_error(run_dir):
            rec["exception"], rec["where"] = _internal_error(run_dir), ""
        elif outcome == "crash":
            tb = stderr.strip().splitlines()
            rec["exception"] = tb[-1] if tb else f"exit code {rc}"
            if rc == 1 and "Traceback (most recent call last)" not in stderr:
                rec["exception"] = "silent exit 1 (no failed row, no non-optimal solve): " + (tb[-1] if tb else "")
            frames = [ln.strip() for ln in tb if ln.strip().startswith('File "') and "/models/" in ln]
            rec["where"] = frames[-1] if frames else ""
        if keep is not None and outcome != "exit 0":
            dest = keep / spec.name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(td / "scn", dest)
            (dest / "stderr.txt").write_text(stderr)
            (dest / "stdout.txt").write_text(stdout)
            if rows_all:
                with open(dest / "failing_rows.csv", "w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=list(rows_all[0].keys()))
                    w.writeheader()
                    w.writerows(rows_all)
            if run_dir.exists():
                for f in ("verification.csv", "summary.json"):
                    if (run_dir / f).is_file():
                        shutil.copy(run_dir / f, dest / f)
            rec["kept"] = str(dest)
        return rec


def summarise(records: list[dict], families, args, wall: float) -> str:
    lines = []
    lines.append(f"command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    lines.append(f"seed {args.seed}, count-scale {args.count_scale}, wall {wall:.0f} s, "
                 f"git {args.snapshot or 'working tree at ' + git_rev()}, date {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    lines.append("")
    lines.append(f"| family | scenarios | {' | '.join(OUTCOMES)} | median s | max s |")
    lines.append("|---|---|" + "---|" * len(OUTCOMES) + "---|---|")
    for fam in families:
        rs = [r for r in records if r["family"] == fam]
        if not rs:
            continue
        c = Counter(r["outcome"] for r in rs)
        secs = sorted(r["seconds"] for r in rs)
        lines.append(f"| {fam} | {len(rs)} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES)
                     + f" | {secs[len(secs) // 2]:.1f} | {secs[-1]:.1f} |")
    c = Counter(r["outcome"] for r in records)
    lines.append(f"| all | {len(records)} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES) + " | | |")
    lines.append("")
    # crashes grouped by exception
    crashes = defaultdict(list)
    for r in records:
        if r["outcome"] == "crash":
            crashes[(r.get("exception", ""), r.get("where", ""))].append(r)
    if crashes:
        lines.append("## crashes (traceback or silent exit 1), by exception")
        for (exc, where), rs in sorted(crashes.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"- {len(rs)}× `{exc}` at `{where}`")
            for r in rs[:6]:
                lines.append(f"    - {r['name']} [{', '.join(r['features'])}]")
        lines.append("")
    e2 = [r for r in records if r["outcome"] == "exit 2"]
    if e2:
        lines.append("## exit 2 on scenarios inside the documented ranges")
        for r in e2:
            lines.append(f"- {r['name']}: {r['error_line'][:300]}")
        lines.append("")
    to = [r for r in records if r["outcome"] == "timeout"]
    if to:
        lines.append("## timeouts")
        for r in to:
            lines.append(f"- {r['name']} [{', '.join(r['features'])}]")
        lines.append("")
    # exit 1 grouped by failing check
    by_check = defaultdict(list)
    for r in records:
        if r["outcome"] != "exit 1":
            continue
        if r["solves"]:
            by_check[("(solve)", "not converged", "")].append((r, None))
        for g in r["groups"]:
            by_check[(g["regime"], g["check"], g["quantity"])].append((r, g))
    if by_check:
        lines.append("## exit 1, by failing check (regime / check / quantity)")
        for key, items in sorted(by_check.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"- {len(items)}× {' / '.join(key)}")
            for r, g in items[:8]:
                if g is None:
                    lines.append(f"    - {r['name']}: {'; '.join(r['solves'])[:200]} [{', '.join(r['features'])}]")
                else:
                    lines.append(f"    - {r['name']}: {g['rows']} rows, worst at index {g['index'][:40]}: numeric "
                                 f"{_fmt(g['numeric'])} ref {_fmt(g['reference'])} rel_err {_fmt(g['rel_err'])} "
                                 f"tol {_fmt(g['tolerance'])} [{', '.join(r['features'])}]")
            if len(items) > 8:
                lines.append(f"    - ... and {len(items) - 8} more")
        lines.append("")
    nonopt = [r for r in records if r["solves"]]
    if nonopt:
        lines.append("## runs with a non-optimal solve or a regime error")
        for r in nonopt:
            lines.append(f"- {r['name']}: {'; '.join(r['solves'])[:300]}")
        lines.append("")
    if args.failures:
        lines.append(f"failing scenarios kept under {args.failures}/<name>/ (scenario TOML, stderr, failing rows)")
    return "\n".join(lines) + "\n"


def _fmt(x):
    try:
        return f"{float(x):.3g}"
    except (TypeError, ValueError):
        return str(x)


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        return rev or "unknown"
    except Exception:
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count-scale", type=float, default=1.0, help="multiplies the base counts (" + ", ".join(f"{f} {BASE_COUNTS[f]}" for f in FAMILIES) + ")")
    ap.add_argument("--regimes", default=",".join(FAMILIES),
                    help="comma list of families: " + ", ".join(FAMILIES))
    ap.add_argument("--only", default="", help="comma list FAMILY:INDEX (re-run single scenarios)")
    ap.add_argument("--start", type=int, default=0, help="first scenario index of each family")
    ap.add_argument("--failures", default="/tmp/valid_failures", help="folder for non-zero runs ('' = keep none)")
    ap.add_argument("--results", default="", help="also write the summary to this file")
    ap.add_argument("--jsonl", default="", help="append one JSON record per scenario to this file")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per scenario")
    ap.add_argument("--jobs", type=int, default=1,
                    help="scenarios run at once (each solve.py is one process; use at most the number of cores)")
    ap.add_argument("--summarise", default="", metavar="JSONL",
                    help="only print the summary of the records in this --jsonl file (e.g. of a run in progress)")
    ap.add_argument("--snapshot", default="", metavar="REV",
                    help="run solve.py of commit REV (git archive into a temp folder) instead of the working tree")
    args = ap.parse_args(argv)
    global TREE
    if args.summarise:
        recs = [json.loads(ln) for ln in Path(args.summarise).read_text().splitlines() if ln.strip()]
        text = summarise(recs, list(FAMILIES), args, float("nan"))
        print(text)
        if args.results:
            Path(args.results).write_text(text)
        return 0
    fams = [f.strip() for f in args.regimes.split(",") if f.strip()]
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        print(f"error: --regimes: unknown {bad}; allowed: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    counts = {f: max(1, round(BASE_COUNTS[f] * args.count_scale)) for f in FAMILIES}
    if args.only:
        todo = []
        for item in args.only.split(","):
            fam, _, idx = item.strip().partition(":")
            top = args.start + counts.get(fam, 0)
            if fam not in FAMILIES or not idx.strip().isdigit() or not int(idx) < top:
                print(f"error: --only: {item!r}; allowed: FAMILY:INDEX, FAMILY one of {', '.join(FAMILIES)}, INDEX "
                      f"an integer from 0 to {top - 1 if fam in FAMILIES else 'count - 1'} (the scenarios of a run "
                      f"at --count-scale {args.count_scale:g}, --start {args.start})", file=sys.stderr)
                return 2
            if (fam, int(idx)) not in todo:
                todo.append((fam, int(idx)))
    else:
        todo = [(f, i) for f in fams for i in range(args.start, args.start + counts[f])]
        # interleave the families (by fraction done), so a partial run is a sample of every family
        todo.sort(key=lambda fi: ((fi[1] - args.start + 0.5) / counts[fi[0]], fams.index(fi[0])))
    if args.snapshot:
        args.snapshot = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.snapshot],
                                       capture_output=True, text=True, check=True).stdout.strip()
        TREE = snapshot(args.snapshot)
        print(f"running solve.py of {args.snapshot} exported to {TREE}", flush=True)
    keep = Path(args.failures) if args.failures else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    records = []
    t0 = time.perf_counter()

    def report(k, spec, rec):
        extra = ""
        if rec["outcome"] == "exit 1":
            extra = "; ".join(rec["solves"][:2] + [
                f"{g['check']}/{g['quantity']} ({_fmt(g['rel_err'])} vs {_fmt(g['tolerance'])})" for g in rec["groups"][:3]])
        elif rec["outcome"] == "crash":
            extra = rec.get("exception", "")[:150]
        elif rec["outcome"] == "exit 2":
            extra = rec["error_line"][:150]
        print(f"[{k}/{len(todo)} {time.perf_counter() - t0:6.0f}s] {spec.name:<24} {rec['outcome']:<7} "
              f"{rec['seconds']:5.1f}s {extra}", flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    specs = [draw_scenario(fam, args.seed, i) for fam, i in todo]
    if args.jobs <= 1:
        for k, spec in enumerate(specs, 1):
            rec = run_one(spec, args.timeout, keep)
            records.append(rec)
            report(k, spec, rec)
    else:
        from concurrent.futures import ThreadPoolExecutor, as_completed  # subprocesses: threads suffice
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futs = {pool.submit(run_one, spec, args.timeout, keep): spec for spec in specs}
            for k, fut in enumerate(as_completed(futs), 1):
                rec = fut.result()
                records.append(rec)
                report(k, futs[fut], rec)
        order = {spec.name: n for n, spec in enumerate(specs)}
        records.sort(key=lambda r: order[r["name"]])
    text = summarise(records, fams if not args.only else list(FAMILIES), args, time.perf_counter() - t0)
    print()
    print(text)
    if args.results:
        Path(args.results).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
