"""A killed or concurrent run never leaves a mixed output folder (issue 16).

* ``kill -9`` at random moments while a run writes into a folder holding a
  complete earlier run: afterwards the folder is exactly the old run or exactly
  the new one (every file listed in its ``manifest.json``, every checksum
  matching, nothing else), and no temporary file is inside it; what a killed
  run leaves *beside* it (its staging folder) is removed by the next run.
* Two runs started together into one folder: each either completes or is
  refused with one ``error:`` line (exit 2), and the folder is one complete run.

The runs are forked from this process (the solver stack is imported once), so a
kill costs ~0.3 s instead of a 1.5 s interpreter start; the concurrency test
uses real ``solve.py`` subprocesses.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import SUBPROCESS_TIMEOUT, solve_command

SPEED = "integration"

SCENARIO = """\
name = "case"

[technology]
sigma = 0.5
rho = 0.5

[[technology.tokens]]
name = "input"
weight = 1.0
cost = 1.0

[types]
distribution = "uniform"
n = 10

[regimes.cost]
quantities = {quantities}
"""
OLD_Q, NEW_Q = "[0.5, 1.0]", "[0.25, 0.75, 1.5]"
KILLS = 24


def complete_run(folder: Path) -> str:
    """The manifest's sha256 if ``folder`` is exactly one complete run (else AssertionError)."""
    man_path = folder / "manifest.json"
    assert man_path.is_file(), f"{folder}: no manifest.json ({sorted(os.listdir(folder))})"
    man = json.loads(man_path.read_text())
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(man["files"]), f"files not in the manifest: {on_disk ^ set(man['files'])}"
    for rel, meta in man["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == meta["sha256"], rel
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")], "temporary files inside the run"
    return hashlib.sha256(man_path.read_bytes()).hexdigest()


def _load(tmp: Path, quantities: str):
    from models import scenario

    f = tmp / f"s{abs(hash(quantities))}.toml"
    f.write_text(SCENARIO.format(quantities=quantities))
    return scenario.load(f)


LOCK_FREE_S = 10.0  # a grandchild between fork and exec lives milliseconds; 10 s is far above that under load


def _fork_run(scn, out: Path, no_exchange: bool) -> int:
    pid = os.fork()
    if pid == 0:  # child: one run, then leave without Python's clean-up (as a killed run would)
        code = 1
        try:
            from models import run

            if no_exchange:  # the fallback path: two renames
                run._exchange = lambda a, b: False
            run.run_scenario(scn, out, progress=lambda *a: None)
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_during_the_write_leaves_the_old_or_the_new_run(tmp_path):
    from models import run

    old_scn, new_scn = _load(tmp_path, OLD_Q), _load(tmp_path, NEW_Q)
    parent = tmp_path / "out"
    out = parent / "case"
    # reference runs (they also import everything before the forks)
    run.run_scenario(new_scn, tmp_path / "ref" / "case", progress=lambda *a: None)
    t0 = time.perf_counter()
    run.run_scenario(old_scn, out, progress=lambda *a: None)
    duration = time.perf_counter() - t0
    old_sha = complete_run(out)
    rng = random.Random(16)
    outcomes = {"old": 0, "new": 0}
    for k in range(KILLS):
        pid = _fork_run(new_scn, out, no_exchange=(k % 3 == 2))
        staging = parent / (run.STAGING.format(name="case") + str(pid))
        deadline = time.perf_counter() + 30
        while not staging.exists() and time.perf_counter() < deadline:  # the run has begun
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, duration * 1.1))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # killed between the fallback's two renames, no folder is there: the next run puts the old one back
        sha = complete_run(out) if os.path.lexists(out) else None
        # what the next run does first: recover, remove stale staging.  Probably a kill that lands while the run forks
        # its `git rev-parse` (manifest; not traced) leaves a child that holds a copy of the lock's descriptor until its
        # exec closes it (O_CLOEXEC): under load that took longer than waitpid (pre-merge suite, session 18,
        # RunLocked once in 1,176 tests).  The lock must be free within LOCK_FREE_S; a lock held for good fails.
        deadline = time.perf_counter() + LOCK_FREE_S
        while True:
            try:
                with run.run_lock(out):
                    break
            except run.RunLocked:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.05)
        assert complete_run(out) == sha or sha is None
        sha = complete_run(out)
        leftovers = [p.name for p in parent.iterdir() if p.name != "case"]
        assert not leftovers, f"left beside the run: {leftovers}"
        if sha == old_sha:
            outcomes["old"] += 1
        else:  # the complete new run: the same tables as the reference run of the new scenario
            man = json.loads((out / "manifest.json").read_text())
            ref = json.loads((tmp_path / "ref" / "case" / "manifest.json").read_text())
            assert man["files"]["cost/cost_of_quality.csv"]["sha256"] == ref["files"]["cost/cost_of_quality.csv"]["sha256"]
            outcomes["new"] += 1
            run.run_scenario(old_scn, out, progress=lambda *a: None)  # every kill hits old -> new
            old_sha = complete_run(out)
    # the kills landed inside the write phase (old kept) and some after the swap (new)
    print(outcomes)
    assert outcomes["old"] >= 3, outcomes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_failed_run_removes_its_staging_folder(tmp_path, monkeypatch):
    """An exception inside the run (any exit path this process controls) leaves the old run and no staging."""
    from models import run

    out = tmp_path / "out" / "case"
    run.run_scenario(_load(tmp_path, OLD_Q), out, progress=lambda *a: None)
    old = complete_run(out)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "write_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        run.run_scenario(_load(tmp_path, NEW_Q), out, progress=lambda *a: None)
    assert complete_run(out) == old
    assert sorted(p.name for p in out.parent.iterdir()) == ["case"]


@pytest.mark.unit
def test_second_writer_is_refused_while_the_lock_is_held(tmp_path):
    from models import run

    out = tmp_path / "out" / "case"
    with run.run_lock(out):
        with pytest.raises(run.RunLocked, match=r"another run \(pid \d+\) is writing"):
            with run.run_lock(out):
                pass
    with run.run_lock(out):  # released: taken again
        pass
    assert not list(out.parent.iterdir())


def test_two_concurrent_runs_into_one_folder(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(SCENARIO.format(quantities=OLD_Q))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for attempt in range(1):
        procs = [subprocess.Popen(solve_command(f, "--out", out, "--quiet"), env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        res = [(p.wait(timeout=SUBPROCESS_TIMEOUT), p.stdout.read(), p.stderr.read()) for p in procs]
        for rc, so, se in res:
            if rc == 2:
                lines = se.strip().splitlines()
                assert len(lines) == 1 and "another run (pid" in lines[0] and lines[0].startswith("error: "), se
            else:
                assert rc == 0, se
        assert any(rc == 0 for rc, _, _ in res)
        print("exit codes of the two runs:", [rc for rc, _, _ in res])
        complete_run(out / "case")
        assert sorted(p.name for p in out.iterdir()) == ["case"]
