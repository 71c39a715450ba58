"""models.sweep: grid validation, tidy point records, resume after kill -9, Dask clusters.

The sweeps here are tiny: the ``cost`` regime, one small NLP per point (~50 ms).
Subprocess tests pay ~2-4 s of start-up each (imports, a LocalCluster, or a
scheduler and a worker); the kill-and-resume test runs two sweep commands and
is marked ``slow`` (``pytest -m slow tests/test_sweep.py``).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, SUBPROCESS_TIMEOUT, run_solve_cli, solve_command
from models import scenario, sweep
from models.export import Writer
from models.scenario import ScenarioError

SPEED = "unit"  # default speed marker (conftest); tests marked otherwise override it

TECH = """\
[technology]
sigma = 0.5
rho = 0.5

[[technology.tokens]]
name = "input"
weight = 0.6
cost = 1.0

[[technology.tokens]]
name = "output"
weight = 0.4
cost = 4.0
"""
# one NLP per point (4 quality levels), ~50 ms
COST = f'''name = "tiny"
{TECH}
[types]
distribution = "uniform"
n = 10

[regimes.cost]
quantities = [0.25, 0.5, 1.0]

[solver]
route = "auto"
'''

SWEEP_TABLE = """
[sweep]
regimes = ["cost"]
[[sweep.param]]
path = "technology.sigma"
start = 0.3
stop = 0.5
count = 3
"""


def write(tmp_path: Path, text: str, name: str = "scn.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def stable(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the columns that differ between runs (timings, worker)."""
    return table.drop(columns=list(sweep.VOLATILE_COLUMNS)).reset_index(drop=True)


# ------------------------------------------------------------ --param
@pytest.mark.parametrize("text, where", [
    ("technology.sigma", "expected PATH=START:STOP:COUNT"),
    ("technology.sigma=0.2:0.5", "expected PATH=START:STOP:COUNT"),
    ("technology.sigma=a:0.5:3", "START and STOP must be numbers"),
    ("technology.sigma=0.2:0.5:0", "COUNT must be an integer with 1 <= COUNT <= 100000"),
    ("technology.sigma=0.2:0.5:2.5", "COUNT must be an integer with 1 <= COUNT <= 100000"),
    ("technology.sigma=0.2:inf:3", "finite"),
    ("technology..sigma=0.2:0.5:3", "not a dotted field path"),
])
def test_bad_param_text(text, where):
    with pytest.raises(ScenarioError, match=where):
        sweep.parse_param(text)


def test_param_values_are_rounded_linspace():
    p = sweep.parse_param(" technology.tokens[1].cost = 0.3:0.5:6 ")
    assert p.path == "technology.tokens[1].cost"
    # linspace gives 0.33999999999999997: rounded to 12 digits, the value a user types
    assert p.values() == [0.3, 0.34, 0.38, 0.42, 0.46, 0.5]
    assert sweep.parse_param("technology.sigma=0.4:0.9:1").values() == [0.4]


# -------------------------------------------------------------- plan
def test_plan_grid_is_cartesian_last_fastest(tmp_path):
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.3:0.5:3"),
                                            sweep.parse_param("technology.tokens[0].cost=1:2:2")])
    assert [pt.values for pt in pl.points] == [
        {"technology.sigma": s, "technology.tokens[0].cost": c} for s in (0.3, 0.4, 0.5) for c in (1, 2)]
    assert [pt.index for pt in pl.points] == list(range(6))
    assert pl.points[5].scenario.technology.sigma == 0.5 and pl.points[5].scenario.technology.cost[0] == 2.0
    assert len({pt.point_id for pt in pl.points}) == 6
    assert pl.regimes == ["cost"]


@pytest.mark.parametrize("param, message", [
    # bad path: the leaf's table exists, the field does not -> the scenario validator names it
    ("technology.sgima=0.2:0.5:3", "unknown field 'technology.sgima'; allowed fields here: fine_tuning, rho, sigma"),
    ("technology.tokens[2].cost=1:2:2", "'technology.tokens[2]' does not exist (a list of 2 element(s))"),
    ("regimes.competition.c_F=0.1:0.2:2", "there is no 'regimes.competition' in the scenario (fields there: cost)"),
    ("types.distribution=1:2:2", "'types.distribution' = \"uniform\" is not numeric"),
    ("technology.tokens[0].name=1:2:2", "is not numeric"),
    # a point outside the field's range: validated before anything runs
    ("technology.sigma=0.5:1.0:6", "sweep point 6 of 6 (technology.sigma = 1.0): "
                                   ".*field 'technology.sigma' = 1.0 is invalid; allowed: a number with 0 < sigma < 1"),
    # an integer field: integral values are set as integers, others are refused by its validator
    # (the value shown is the one set, every digit: grid values are rounded to sweep.DIGITS)
    ("types.n=10:20:4", "types.n = 13.3333333333).*field 'types.n' = 13.3333333333 is invalid; allowed: an integer with 2 <= n"),
])
def test_plan_errors_name_the_field(tmp_path, param, message):
    with pytest.raises(ScenarioError, match=re.escape(message).replace(r"\.\*", ".*")):
        sweep.plan(write(tmp_path, COST), [sweep.parse_param(param)])


def test_integer_field_gets_integers(tmp_path):
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("types.n=10:30:3")])
    assert [pt.values["types.n"] for pt in pl.points] == [10, 20, 30]
    assert all(type(pt.values["types.n"]) is int for pt in pl.points)
    assert [pt.scenario.n_types for pt in pl.points] == [10, 20, 30]


def test_unset_field_with_a_default_can_be_swept(tmp_path):
    # solver.tol is not in the file: its table exists and the validator accepts it
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("solver.tol=1e-8:1e-6:2")])
    assert [pt.scenario.solver["options"]["tol"] for pt in pl.points] == [1e-8, 1e-6]


def test_duplicate_param_and_unknown_regime(tmp_path):
    scn = write(tmp_path, COST)
    p = sweep.parse_param("technology.sigma=0.3:0.5:3")
    with pytest.raises(ScenarioError, match="given twice"):
        sweep.plan(scn, [p, p])
    with pytest.raises(ScenarioError, match="--regime 'budgets': not in scenario tiny; allowed: cost"):
        sweep.plan(scn, [p], ["budgets"])
    with pytest.raises(ScenarioError, match="no sweep parameters"):
        sweep.plan(scn, None)
    with pytest.raises(ScenarioError, match="the .sweep. table itself cannot be swept"):
        sweep.plan(scn, [sweep.parse_param("sweep.param[0].count=1:2:2")])
    table = SWEEP_TABLE.replace('["cost"]', '["nope"]')
    with pytest.raises(ScenarioError, match="field 'sweep.regimes' 'nope': not in scenario tiny; allowed: cost"):
        sweep.plan(write(tmp_path, COST + table, "t.toml"))


def test_sweep_table_in_the_scenario(tmp_path):
    table = SWEEP_TABLE
    pl = sweep.plan(write(tmp_path, COST + table))
    assert [pt.values["technology.sigma"] for pt in pl.points] == [0.3, 0.4, 0.5]
    # --param replaces the table's grid; the scenario hash ignores [sweep], so the points are the same
    bare = sweep.plan(write(tmp_path, COST, "bare.toml"), [sweep.parse_param("technology.sigma=0.3:0.5:3")])
    assert [pt.point_id for pt in pl.points] == [pt.point_id for pt in bare.points]
    bad = COST + table.replace("count = 3", "count = 0")
    with pytest.raises(ScenarioError, match=r"field 'sweep.param\[0\].count' = 0 is invalid; allowed: an integer"):
        sweep.plan(write(tmp_path, bad, "bad.toml"))
    with pytest.raises(ScenarioError, match="unknown field 'sweep.params'"):
        sweep.plan(write(tmp_path, COST + "\n[sweep]\nparams = 1\n", "bad2.toml"))


def test_point_id_depends_on_scenario_values_and_regimes(tmp_path):
    a = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.3:0.5:3")])
    b = sweep.plan(write(tmp_path, COST.replace("cost = 4.0", "cost = 5.0"), "b.toml"),
                   [sweep.parse_param("technology.sigma=0.3:0.5:3")])
    c = sweep.plan(write(tmp_path, COST, "c.toml"), [sweep.parse_param("technology.sigma=0.4:0.6:3")])
    assert a.points[0].point_id != b.points[0].point_id  # other scenario
    assert a.points[1].point_id == c.points[0].point_id  # sigma = 0.4 in both grids
    assert a.points[1].point_id != sweep.point_id(a.scenario_hash, ["cost", "budgets"], a.points[1].values)


@pytest.mark.parametrize("args, message", [
    (["--param", "technology.sigma=0.5:1.0:6"],
     "field 'technology.sigma' = 1.0 is invalid; allowed: a number with 0 < sigma < 1"),
    (["--param", "technology.sigma=0.2:0.5:0"], "COUNT must be an integer with 1 <= COUNT <= 100000"),
    (["--param", "types.distribution=1:2:2"], "is not numeric"),
    (["--param", "technology.sigma=0.2:0.5:3", "--regime", "nope"], "--regime 'nope': not in scenario"),
    (["--param", "technology.sigma=0.2:0.5:3", "--workers", "-1"], "--workers must be >= 0"),
    (["--param", "technology.sigma=0.2:0.5:3", "--workers", "2", "--scheduler", "tcp://x:1"], "exclude each other"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    try:
        rc = sweep.main([str(write(tmp_path, COST)), "--out", str(out), *args])
    except SystemExit as exc:  # argparse's own errors (solve.py's exit code is the same)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not out.exists()


# ----------------------------------------------------- points, in process
@pytest.mark.component
def test_in_process_sweep_records_and_resume(tmp_path):
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.3:0.5:3")])
    out = tmp_path / "out"
    res = sweep.run_sweep(pl, out, workers=0, figures=False, quiet=True, log=lambda m: None)
    assert (res.total, res.finished, res.computed, res.reused, res.failed) == (3, 3, 3, 0, 0)
    assert res.exit_code == 0
    t = pd.read_parquet(out / "sweep.parquet")
    assert list(t.columns) == ["point", "point_id", "technology.sigma", *sweep.RECORD_DTYPES]
    assert sorted(f.stem for f in (out / "points").glob("*.parquet")) == sorted(pt.point_id for pt in pl.points)
    # per point: 2 regime rows, 1 solve, one summary row per vector check (3 levels each)
    p0 = t[t["point"] == 0]
    assert p0["kind"].tolist() == ["regime", "regime", "solve"] + ["check_max"] * 4
    assert p0[p0["kind"] == "regime"]["status"].tolist() == ["verified"] * 2
    solve = p0[p0["kind"] == "solve"].iloc[0]
    assert solve["status"] == "optimal" and solve["iterations"] > 0 and solve["solve_seconds"] > 0
    n_checks = p0[p0["quantity"] == "checks"]["value"].item()
    assert n_checks == 4 * 3 and p0[p0["quantity"] == "checks_failed"]["value"].item() == 0
    # the objective is C(Q) summed over the levels, whose closed form is a check
    cf = p0[(p0["kind"] == "check_max") & (p0["quantity"] == "C(Q)")].iloc[0]
    assert cf["passed"] and cf["rel_err"] <= cf["tolerance"] and cf["message"].startswith("3 rows; worst at index")
    csv = pd.read_csv(out / "sweep.csv")
    assert len(csv) == len(t) and np.array_equal(csv["value"].to_numpy(), t["value"].to_numpy(float), equal_nan=True)
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["complete"] and manifest["computed"] == 3 and manifest["execution"] == "in-process"
    # the same sweep again: nothing recomputed, the same table
    mtimes = {f: f.stat().st_mtime_ns for f in (out / "points").iterdir()}
    again = sweep.run_sweep(pl, out, workers=0, figures=False, quiet=True, log=lambda m: None)
    assert (again.reused, again.computed) == (3, 0)
    assert {f: f.stat().st_mtime_ns for f in (out / "points").iterdir()} == mtimes
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), t, check_exact=True)
    # a wider grid reuses the points it shares (sigma 0.4 and 0.5)
    wider = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.4:0.7:4")])
    res = sweep.run_sweep(wider, out, workers=0, figures=False, quiet=True, log=lambda m: None)
    assert (res.reused, res.computed, res.finished) == (2, 2, 4)
    assert pd.read_parquet(out / "sweep.parquet")["technology.sigma"].unique().tolist() == [0.4, 0.5, 0.6, 0.7]


@pytest.mark.component
def test_non_converged_and_raising_points_are_recorded(tmp_path, monkeypatch):
    from models import run

    real = run.run_regime

    def flaky(scn, name, ctx):
        if scn.technology.sigma == 0.4:
            raise ZeroDivisionError("boom at sigma 0.4")
        return real(scn, name, ctx)

    monkeypatch.setattr(run, "run_regime", flaky)
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.3:0.5:3"),
                                            sweep.parse_param("solver.max_iter=2:3000:2")])
    res = sweep.run_sweep(pl, tmp_path / "out", workers=0, figures=False, quiet=True, log=lambda m: None)
    assert res.finished == 6 and res.exit_code == 1
    t = res.table
    reg = t[(t["kind"] == "regime") & (t["quantity"] == "checks_failed")].set_index("point")
    # max_iter = 2: not converged (Ipopt's status kept, every check failed); sigma 0.4 raised
    assert reg["status"].tolist() == ["not_converged", "verified", "error", "error", "not_converged", "verified"]
    assert reg.loc[2, "message"] == "ZeroDivisionError: boom at sigma 0.4"
    assert reg.loc[0, "value"] == t[(t["point"] == 0) & (t["quantity"] == "checks")]["value"].item() > 0
    solve0 = t[(t["point"] == 0) & (t["kind"] == "solve")].iloc[0]
    assert solve0["status"] == "max_iterations" and solve0["iterations"] == 2 and not solve0["passed"]
    assert (res.failed, res.errors) == (4, 2)


@pytest.mark.component
def test_figures_lines_and_heat_maps(tmp_path):
    one_level = COST.replace("quantities = [0.25, 0.5, 1.0]", "quantities = [0.5]")
    pl = sweep.plan(write(tmp_path, one_level), [sweep.parse_param("technology.sigma=0.3:0.5:3"),
                                                 sweep.parse_param("technology.rho=0.25:0.5:2")])
    out = tmp_path / "out"
    t = sweep.run_sweep(pl, out, workers=0, figures=False, quiet=True, log=lambda m: None).table
    # one quantity level: every check is scalar (numeric vs closed form)
    assert set(t["kind"]) == {"regime", "solve", "check"}
    # figures take ~0.3 s each: draw three outputs (of 6) against both parameters
    some = t[(t["kind"] != "check") | (t["quantity"] == "C(Q)")]
    written = sweep.plot(some, pl, Writer(out))
    figs = sorted(p.name for p in (out / "figures" / "cost").glob("*.png"))
    assert len(written) == len(figs) == 3 * 3  # (objective, C(Q), failed checks) x (sigma, rho, heat map)
    assert {"check_nlp_vs_closed_form_C_Q__vs__technology_sigma.png",
            "check_nlp_vs_closed_form_C_Q__vs__technology_rho.png", "check_nlp_vs_closed_form_C_Q__map.png",
            "solve_cost_objective__map.png", "regime_checks_failed__map.png"} <= set(figs)
    assert len(sweep.series(t)) == 6  # what a full run draws per parameter: 4 checks, objective, failed checks


@pytest.mark.component
def test_bounds_and_row_summaries_share_one_margin_figure(tmp_path):
    """Stranger S8: a figure per audit row (values ~1e-16 against a bound) took ~90 % of a
    small sweep's wall time and buried the outputs.  Bounds and summaries over rows are
    drawn together as error / tolerance (fails above 1), one figure per regime and
    parameter and a heat map of the worst; a failing point shows as > 1."""
    pl = sweep.plan(write(tmp_path, COST), [sweep.parse_param("technology.sigma=0.3:0.5:2"),
                                            sweep.parse_param("technology.rho=0.25:0.5:2")])
    rows = []
    for i, (sg, rh) in enumerate([(0.3, 0.25), (0.5, 0.25), (0.3, 0.5), (0.5, 0.5)]):
        base = {"point": i, "technology.sigma": sg, "technology.rho": rh, "regime": "cost"}
        rows.append(base | {"kind": "check_max", "name": "audit", "quantity": "IC", "rel_err": [1e-9, 2e-7, 3e-9, 4e-9][i],
                            "tolerance": 1e-7, "passed": i != 1})
        rows.append(base | {"kind": "check", "name": "count", "quantity": "violations", "value": 0.0, "reference": 0.0,
                            "rel_err": 0.0, "tolerance": 0.0, "passed": True})
        rows.append(base | {"kind": "check", "name": "profit", "quantity": "vs closed form", "value": 1.0 + sg,
                            "reference": 1.0 + sg, "rel_err": 1e-12, "tolerance": 1e-9, "passed": True})
    t = pd.DataFrame(rows)
    m = sweep.margins(t[t["kind"] == "check_max"], "check_max")
    assert np.allclose(m, [1e-2, 2.0, 3e-2, 4e-2])  # error / tolerance: the failing point is above 1
    assert np.all(sweep.margins(t[t["name"] == "count"], "check") == sweep.MARGIN_FLOOR)  # 0 of 0 allowed
    written = sweep.plot(t, pl, Writer(tmp_path / "out"))
    names = {p.name for p in written}
    assert {"verification_margins__vs__technology_sigma.png", "verification_margins__vs__technology_rho.png",
            "verification_margins__map.png"} <= names
    assert not any(n.startswith(("check_max_audit", "check_count")) for n in names), names
    assert "check_profit_vs_closed_form__vs__technology_sigma.png" in names  # an output keeps its own figure


# ---------------------------------------------------- kill -9, then resume
def _live_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are alive (not zombies), from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _popen(args, **kw) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _reap_group(p: subprocess.Popen) -> None:
    """End whatever is left of a process group this test started (by its id)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)


@pytest.mark.slow  # ~10 s (two sweep commands with a LocalCluster); ~25 s on a loaded machine
@pytest.mark.integration
def test_kill_9_midway_then_rerun_completes_only_missing_points(tmp_path):
    scn = write(tmp_path, COST)
    n = 20
    args = [str(scn), "--param", f"technology.sigma=0.3:0.5:{n}", "--workers", "1", "--no-figures"]
    out = tmp_path / "killed"
    p = _popen(solve_command("sweep", *args, "--out", out))
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while len(list((out / "points").glob("*.parquet"))) < 3:
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no points written"
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        # the LocalCluster's worker processes notice their parent is gone and exit
        deadline = time.monotonic() + 30
        while _live_in_group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _live_in_group(p.pid), "worker processes outlived the killed sweep"
    finally:
        _reap_group(p)
    before = {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in (out / "points").glob("*.parquet")}
    assert 3 <= len(before) < n, "the sweep was not killed midway"
    assert not (out / "sweep.parquet").exists()  # merged only at the end
    rc, so, se = run_solve_cli("sweep", *args, "--out", out, "--quiet")
    assert rc == 0, (so, se)
    manifest = json.loads((out / "sweep.json").read_text())
    assert (manifest["reused"], manifest["computed"], manifest["complete"]) == (len(before), n - len(before), True)
    after = {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in (out / "points").glob("*.parquet")}
    assert len(after) == n and all(after[k] == v for k, v in before.items())  # finished points untouched
    assert not list((out / "points").glob(".*.tmp"))
    # an uninterrupted run of the same sweep (in this process: same numbers, see the Dask test)
    pl = sweep.plan(scn, [sweep.parse_param(f"technology.sigma=0.3:0.5:{n}")])
    ref = sweep.run_sweep(pl, tmp_path / "whole", workers=0, figures=False, quiet=True, log=lambda m: None)
    resumed = pd.read_parquet(out / "sweep.parquet")
    assert resumed["point"].nunique() == n
    pd.testing.assert_frame_equal(stable(resumed), stable(ref.table), check_exact=True)


# ----------------------------------------- an existing Dask cluster (localhost)
@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and one worker (one process, one thread) as separate processes; yields the address."""
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # the worker imports `models`
    py = sys.executable
    common = dict(cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                  start_new_session=True)
    procs = [subprocess.Popen([py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)], **common)]
    try:
        procs.append(subprocess.Popen([py, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                                       "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                       "--local-directory", str(tmp_path / "worker")], **common))
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not sched_file.is_file() or not sched_file.read_text().strip():
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.05)
        yield json.loads(sched_file.read_text())["address"], sched_file
    finally:
        for p in reversed(procs):  # worker (and its nanny's child) first, then the scheduler
            _reap_group(p)
            if p.stderr:
                p.stderr.close()
        deadline = time.monotonic() + 15  # SIGKILL is delivered asynchronously
        while any(_live_in_group(p.pid) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_live_in_group(p.pid) for p in procs)


@pytest.mark.integration
def test_sweep_on_an_existing_dask_cluster(tmp_path, dask_cluster):
    address, sched_file = dask_cluster
    assert address.startswith("tcp://127.0.0.1:")
    scn = write(tmp_path, COST)
    out = tmp_path / "remote"
    rc, so, se = run_solve_cli("sweep", scn, "--param", "technology.sigma=0.3:0.5:4", "--scheduler", address,
                               "--out", out, "--no-figures")
    assert rc == 0, (so, se)
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["execution"] == f"dask scheduler {address}" and manifest["computed"] == 4
    t = pd.read_parquet(out / "sweep.parquet")
    # the points ran in the worker process, not in the command
    assert t["worker"].nunique() == 1 and not t["worker"].str.endswith(":" + str(os.getpid())).any()
    # same numbers as running the points here, one after another
    pl = sweep.plan(scn, [sweep.parse_param("technology.sigma=0.3:0.5:4")])
    ref = sweep.run_sweep(pl, tmp_path / "here", workers=0, figures=False, quiet=True, log=lambda m: None)
    pd.testing.assert_frame_equal(stable(t), stable(ref.table), check_exact=True)
    # a scheduler file works as the address too; everything is done already
    rc, so, se = run_solve_cli("sweep", scn, "--param", "technology.sigma=0.3:0.5:4", "--scheduler", sched_file,
                               "--out", out, "--no-figures")
    assert rc == 0 and "4 already done, 0 to run" in se, (so, se)  # progress: logging on stderr
    assert "RESULT: every point converged and verified" in so  # the result: stdout


@pytest.mark.integration
def test_unreachable_scheduler_is_an_error_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    rc, so, se = run_solve_cli("sweep", write(tmp_path, COST), "--param", "technology.sigma=0.3:0.5:2",
                               "--scheduler", "tcp://127.0.0.1:9", "--out", out, "--quiet", timeout=90)
    assert rc == 1 and "Traceback" not in se, (so, se)
    assert [ln for ln in se.splitlines() if ln.strip()][-1].startswith("error: cannot connect to the Dask scheduler")
    assert not out.exists()


@pytest.mark.parametrize("edit, message", [
    (("technology.sigma", "technology.sgima"),
     "sweep.param[0] (technology.sgima = 0.3): .*unknown field 'technology.sgima'"),
    (("stop = 0.5", "stop = 1.5"),
     "sweep.param[0] (technology.sigma = 1.5): .*field 'technology.sigma' = 1.5 is invalid; allowed: a number with 0 < sigma < 1"),
    (('["cost"]', '["nope"]'), "field 'sweep.regimes' 'nope': not in scenario tiny; allowed: cost"),
])
def test_a_plain_run_validates_the_sweep_table(tmp_path, edit, message):
    """Stranger S8: `solve.py scenario.toml` on a scenario whose [sweep] table has a typo'd
    path exited 0 and ignored it (only `solve.py sweep` built the points).  Every run
    now checks each swept path and the scenario at the start and stop of its range."""
    text = COST + SWEEP_TABLE.replace(*edit)
    with pytest.raises(ScenarioError, match=re.escape(message).replace(r"\.\*", ".*")):
        scenario.load(write(tmp_path, text))
