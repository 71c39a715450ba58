"""Hostile and careless input (issue 16): every case class through ``solve.py``.

Contract (README "What `python solve.py` does"): bad input exits 2, prints
exactly one line ``error: ...`` naming the field and what is allowed, prints
no traceback, and creates no file anywhere -- not in ``--out``, not beside it,
not in the working folder.

Most cases call ``solve.main()`` in this process (a subprocess costs ~1.5 s of
imports each); ``test_subprocess_representatives`` runs one case of every
class through a real ``python solve.py`` subprocess, all started together.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import SUBPROCESS_TIMEOUT, TINY_SCENARIO, solve_command

SPEED = "component"

BASE = TINY_SCENARIO

SWEEP_BASE = BASE.replace('name = "case"', 'name = "sweepcase"')


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"edit target {old!r} must occur once"
    return text.replace(old, new)


def add_solver(lines: str) -> str:
    return BASE + "\n[solver]\n" + lines + "\n"


def add_options(lines: str) -> str:
    return BASE + "\n[solver.options]\n" + lines + "\n"


@dataclass
class Case:
    id: str
    klass: str  # case class (issue 16), for the subprocess representatives
    files: dict = field(default_factory=dict)  # name -> str | bytes | callable(dir)
    must_name: list = field(default_factory=list)  # substrings of the error line
    args: list = field(default_factory=list)  # {dir}: the case folder
    scenario: str | None = "scenario.toml"
    sweep: bool = False


DEEP = 5000
CASES = [
    # -- the scenario name chooses no place outside --out
    Case("name-dotdot-escape", "name", {"scenario.toml": edit('name = "case"', 'name = "../escaped"')},
         ["field 'name'", "A-Z a-z 0-9 . _ -"]),
    Case("name-absolute", "name", {"scenario.toml": edit('name = "case"', 'name = "/tmp/abs_escape"')},
         ["field 'name'", "1-100 characters"]),
    Case("name-empty", "name", {"scenario.toml": edit('name = "case"', 'name = ""')}, ["field 'name'"]),
    Case("name-dot", "name", {"scenario.toml": edit('name = "case"', 'name = "."')}, ["field 'name'"]),
    Case("name-dotdot", "name", {"scenario.toml": edit('name = "case"', 'name = ".."')}, ["field 'name'"]),
    Case("name-nested", "name", {"scenario.toml": edit('name = "case"', 'name = "a/b"')}, ["field 'name'"]),
    Case("name-nul", "name", {"scenario.toml": edit('name = "case"', 'name = "a\\u0000b"')}, ["field 'name'"]),
    Case("name-300-chars", "name", {"scenario.toml": edit('name = "case"', 'name = "' + "x" * 300 + '"')},
         ["field 'name'", "1-100 characters", "(302 characters)"]),
    Case("name-default-from-file-stem", "name", {"bad name.toml": BASE.replace('name = "case"\n', "")},
         ["field 'name'", "the default is the file name"], scenario="bad name.toml"),
    # -- --out unusable
    Case("out-regular-file", "out", {"afile": "x", "scenario.toml": BASE}, ["--out", "is a file"],
         args=["--out", "{dir}/afile"]),
    Case("out-below-file", "out", {"afile": "x", "scenario.toml": BASE}, ["--out", "which is a file"],
         args=["--out", "{dir}/afile/sub"]),
    Case("out-empty", "out", {"scenario.toml": BASE}, ["--out ''", "folder path"], args=["--out", ""]),
    Case("out-root", "out", {"scenario.toml": BASE}, ["--out '/'", "not the root"], args=["--out", "/"]),
    Case("out-dash", "out", {"scenario.toml": BASE}, ["--out '-'", "not a stream"], args=["--out", "-"]),
    # stranger18 F1: paths the OS rejects (os.path.lexists says False for them, so the walk up accepted them and
    # mkdir or Path.resolve raised a traceback)
    Case("out-name-too-long", "out", {"scenario.toml": BASE}, ["--out", "File name too long"],
         args=["--out", "{dir}/" + "a" * 300]),
    Case("out-path-too-long", "out", {"scenario.toml": BASE}, ["--out", "File name too long"],
         args=["--out", "{dir}/" + "abcdefghi/" * 450]),
    Case("out-symlink-loop", "out", {"scenario.toml": BASE,
                                     "loopa": lambda d: (os.symlink(d / "loopb", d / "loopa"),
                                                         os.symlink(d / "loopa", d / "loopb"))},
         ["--out", "symbolic-link loop"], args=["--out", "{dir}/loopa"]),
    Case("out-below-symlink-loop", "out", {"scenario.toml": BASE,
                                           "loopa": lambda d: (os.symlink(d / "loopb", d / "loopa"),
                                                               os.symlink(d / "loopa", d / "loopb"))},
         ["--out", "symbolic-link loop"], args=["--out", "{dir}/loopa/x"]),
    Case("out-dangling-symlink", "out", {"scenario.toml": BASE,
                                         "dangling": lambda d: os.symlink(d / "nowhere" / "dir", d / "dangling")},
         ["--out", "symbolic link to a missing"], args=["--out", "{dir}/dangling"]),
    Case("sweep-out-name-too-long", "sweep", {"scenario.toml": SWEEP_BASE}, ["--out", "File name too long"],
         args=["--param", "technology.sigma=0.2:0.6:2", "--out", "{dir}/" + "a" * 300], sweep=True),
    Case("out-unwritable", "out", {"scenario.toml": BASE}, ["--out", "writable folder"],
         args=["--out", "/proc/llm_pricing_out"]),
    Case("out-target-is-file", "out", {"out/case": "x", "scenario.toml": BASE}, ["exists and is not a folder"],
         args=["--out", "{dir}/out"]),
    Case("out-target-foreign-files", "out", {"out/case/mine.txt": "keep me", "scenario.toml": BASE},
         ["not a run (no manifest.json)"], args=["--out", "{dir}/out"]),
    # stranger15 F0b: a web app's manifest.json made its folder "a run folder", replaced with index.html and src/
    Case("out-target-foreign-manifest", "out", {"out/case/manifest.json": '{"name": "my-webapp"}',
                                                "out/case/index.html": "<html>precious</html>",
                                                "out/case/src/app.js": "code", "scenario.toml": BASE},
         ["files that are not a run", "index.html", "manifest.json"], args=["--out", "{dir}/out"]),
    Case("out-target-run-folder-with-a-user-file", "out", {
        "out/case/manifest.json": '{"version": "0", "scenario": {}, "files": {"summary.json": {}}}',
        "out/case/summary.json": "{}", "out/case/my_notes.txt": "keep me", "scenario.toml": BASE},
         ["files that are not a run", "my_notes.txt"], args=["--out", "{dir}/out"]),
    # -- Ipopt options against the installed Ipopt's option list
    Case("opt-unknown", "ipopt-options", {"scenario.toml": add_options("mu_strateg = 'adaptive'")},
         ["'solver.options.mu_strateg'", "known Ipopt option", "did you mean mu_strategy"]),
    Case("opt-output-file", "ipopt-options", {"scenario.toml": add_options("output_file = 'victim.txt'"),
                                              "victim.txt": "precious"},  # stranger15 F0c: Ipopt overwrote it
         ["'solver.options.output_file'", "never chooses where files land", "remove it"]),
    # session 16: a scenario naming an options file would bypass these checks (an output_file in it), and a
    # missing one was accepted without a word
    Case("opt-option-file-name", "ipopt-options", {"scenario.toml": add_options("option_file_name = 'nowhere.opt'")},
         ["'solver.options.option_file_name'", "[solver.options]", "remove it"]),
    Case("opt-bad-enum", "ipopt-options", {"scenario.toml": add_options("mu_strategy = 'bogus'")},
         ["'solver.options.mu_strategy'", "'monotone', 'adaptive'"]),
    Case("opt-string-for-real", "ipopt-options", {"scenario.toml": add_options("acceptable_tol = 'small'")},
         ["'solver.options.acceptable_tol'", "0.0 < acceptable_tol < +inf"]),
    Case("opt-max-iter-float", "ipopt-options", {"scenario.toml": add_solver("max_iter = 2.5")},
         ["'solver.max_iter'", "an integer"]),
    Case("opt-max-iter-negative", "ipopt-options", {"scenario.toml": add_solver("max_iter = -1")},
         ["'solver.max_iter'", "0 <= max_iter"]),
    Case("opt-max-iter-beyond-int", "ipopt-options", {"scenario.toml": add_solver("max_iter = 3000000000")},
         ["'solver.max_iter'", "2147483647"]),
    Case("opt-int-beyond-int-in-options", "ipopt-options",
         {"scenario.toml": add_options("acceptable_iter = 99999999999")},
         ["'solver.options.acceptable_iter'", "2147483647"]),
    Case("opt-tol-negative", "ipopt-options", {"scenario.toml": add_solver("tol = -1e-8")},
         ["'solver.tol'", "0 < tol <= 1"]),
    Case("opt-tol-nan", "ipopt-options", {"scenario.toml": add_solver("tol = nan")}, ["'solver.tol'", "= nan"]),
    Case("opt-tol-nan-in-options", "ipopt-options", {"scenario.toml": add_options("acceptable_tol = nan")},
         ["'solver.options.acceptable_tol'"]),
    Case("opt-tol-negative-in-options", "ipopt-options", {"scenario.toml": add_options("bound_push = -1.0")},
         ["'solver.options.bound_push'", "0.0 < bound_push"]),
    Case("opt-linear-solver-not-installed", "ipopt-options", {"scenario.toml": add_solver('linear_solver = "ma57"')},
         ["'solver.linear_solver'", "'mumps'", "library is not installed"]),
    Case("opt-linear-solver-pardiso", "ipopt-options", {"scenario.toml": add_solver('linear_solver = "pardiso"')},
         ["'solver.linear_solver'", "library is not installed"]),
    Case("opt-linear-solver-unknown", "ipopt-options", {"scenario.toml": add_solver('linear_solver = "magic"')},
         ["'solver.linear_solver'", "'mumps'"]),
    Case("opt-own-field-in-options", "ipopt-options", {"scenario.toml": add_options("tol = 1e-9")},
         ["'solver.options.tol'", "[solver] tol"]),
    # -- pathological TOML
    Case("toml-deep-arrays", "deep-toml", {"scenario.toml": BASE + "x = " + "[" * DEEP + "]" * DEEP + "\n"},
         ["nested too deeply", "at most"]),
    Case("toml-deep-inline-tables", "deep-toml",
         {"scenario.toml": BASE + "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"}, ["nested too deeply"]),
    Case("toml-deep-dotted-keys", "deep-toml", {"scenario.toml": BASE + ".".join(["k"] * DEEP) + " = 1\n"},
         ["levels"]),
    Case("toml-deep-but-parsable", "deep-toml", {"scenario.toml": BASE + "x = " + "[" * 200 + "]" * 200 + "\n"},
         ["field 'regimes.cost.x'", "at most 32 levels"]),
    # -- documented limits enforced
    Case("csv-too-many-types", "limits",
         {"scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "t.csv"'),
          "t.csv": lambda: "theta,mass\n" + "".join(f"{i},1\n" for i in range(1_000_001))},
         ["'types.file'", "at most 1000000 types"]),
    Case("n-too-many-types", "limits", {"scenario.toml": edit("n = 10", "n = 1000001")},
         ["'types.n'", "2 <= n <= 1000000"]),
    Case("cost-quantities-too-many", "limits",
         {"scenario.toml": edit("quantities = [0.5, 1.0]", "quantities = [" + ", ".join(["1.0"] * 10_001) + "]")},
         ["regimes.cost.quantities", "at most 10,000", "10,001 numbers"]),
    Case("description-huge", "limits", {"scenario.toml": edit('name = "case"', 'name = "case"\ndescription = "'
                                                             + "d" * 20_000 + '"')},
         ["field 'description'", "at most 10000 characters"]),
    # -- sweeps
    Case("sweep-count-huge", "sweep", {"scenario.toml": SWEEP_BASE},
         ["COUNT", "100000"], args=["--param", "technology.sigma=0.2:0.6:1000000000000"], sweep=True),
    Case("sweep-total-points", "sweep", {"scenario.toml": SWEEP_BASE},
         ["1000 x 1000 = 1000000 points", "at most 100000"],
         args=["--param", "technology.sigma=0.2:0.6:1000", "--param", "technology.rho=0.1:0.5:1000"], sweep=True),
    Case("sweep-scheduler-not-address", "sweep", {"scenario.toml": SWEEP_BASE},
         ["--scheduler 'not an address'", "tcp://host:8786"],
         args=["--param", "technology.sigma=0.2:0.6:2", "--scheduler", "not an address"], sweep=True),
    Case("sweep-out-file", "sweep", {"scenario.toml": SWEEP_BASE, "afile": "x"}, ["--out", "is a file"],
         args=["--param", "technology.sigma=0.2:0.6:2", "--out", "{dir}/afile"], sweep=True),
    Case("sweep-out-root", "sweep", {"scenario.toml": SWEEP_BASE}, ["--out '/'"],
         args=["--param", "technology.sigma=0.2:0.6:2", "--out", "/"], sweep=True),
    # -- misleading messages
    Case("scenario-is-directory", "scenario-path", {"adir/x": "x"}, ["adir", "a directory, not a file"],
         scenario="adir"),
    Case("scenario-is-fifo", "scenario-path", {"fifo": lambda d: os.mkfifo(d / "fifo")},
         ["FIFO (named pipe)"], scenario="fifo"),
    Case("scenario-symlink-loop", "scenario-path", {"loop": lambda d: os.symlink(d / "loop", d / "loop")},
         ["symbolic-link loop"], scenario="loop"),
    Case("scenario-dev-null", "scenario-path", {}, ["/dev/null", "a device, not a regular file"],
         scenario="/dev/null"),
    Case("scenario-missing", "scenario-path", {}, ["scenario file not found"], scenario="nope.toml"),
    Case("csv-extra-field", "messages",
         {"scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "t.csv"'),
          "t.csv": "theta,mass\n0.1,0.5\n0.2,0.3,9\n0.3,0.2\n"},
         ["row 3", "exactly 2 fields per row", "this row has 3"]),
    Case("csv-missing-field", "messages",
         {"scenario.toml": edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "t.csv"'),
          "t.csv": "theta,mass\n0.1,0.5\n0.2\n0.3,0.2\n"},
         ["row 3", "this row has fewer"]),
    Case("gamma-digits", "messages", {"scenario.toml": edit("gamma = 0.2", "gamma = 0.49999999999999994")},
         ["gamma' = 0.49999999999999994", "sigma + gamma = 1 in floating point"]),
    # stranger11 F5: values echoed as TOML spells them, one range text per field, plain words where plain
    Case("bool-echoed-as-toml", "messages", {"scenario.toml": edit("n = 10", "n = true")},
         ["'types.n' = true is invalid"]),
    Case("gamma-plainly-above", "messages", {"scenario.toml": edit("gamma = 0.2", "gamma = 0.6")},
         ["here sigma + gamma = 1.1)"]),
    Case("max-iter-negative-range", "ipopt-options", {"scenario.toml": add_solver("max_iter = -5")},
         ["'solver.max_iter' = -5", "0 <= max_iter <= 2147483647"]),
    Case("scenario-bare-shipped-name", "scenario-path", {}, ["scenario file not found; did you mean",
                                                            "data/budgets_beta.toml"], scenario="bare:budgets_beta"),
    Case("bool-option-spelled-yes-no", "ipopt-options", {"scenario.toml": add_options("warm_start_init_point = true")},
         ["'solver.options.warm_start_init_point' = true", 'warm_start_init_point = "yes"']),
    # stranger12 s30: an explicit all-pairs request above all_pairs_max fell back to local IC with a note only
    Case("all-pairs-above-cap", "messages",
         {"scenario.toml": BASE + '\n[regimes.budgets]\nic = "all-pairs"\nall_pairs_max = 5\nlemma_cells = 0\n'},
         ["'regimes.budgets.ic' = 'all-pairs'", "for 10 types, or all_pairs_max >= 10"]),
    Case("both-above-cap-instance", "messages",
         {"scenario.toml": BASE + '\n[regimes.menu_b]\nregime = "budgets"\nic = "both"\nall_pairs_max = 9\n'},
         ["'regimes.menu_b.ic' = 'both'", "all_pairs_max = 9"]),
]

# classes that are not bad input but must stay clean failures (exit 1): tested below
FLOAT_EDGE = [("rho", "rho = 0.5", "rho = -1e308"), ("cost", "cost = 4.0", "cost = 1e308"),
              ("quantity", "quantities = [0.5, 1.0]", "quantities = [0.5, 1e308]")]


def materialise(case: Case, d: Path) -> list:
    d.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        p = d / name
        if callable(content):
            import inspect

            if len(inspect.signature(content).parameters) == 1:
                content(d)
                continue
            content = content()
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    args = ["sweep"] if case.sweep else []
    if case.scenario is not None:
        if case.scenario.startswith("bare:"):  # as typed, relative to the working folder
            args.append(case.scenario[len("bare:"):])
        else:
            args.append(case.scenario if case.scenario.startswith("/") else str(d / case.scenario))
    extra = [a.replace("{dir}", str(d)) for a in case.args]
    if "--out" not in extra:
        extra += ["--out", str(d / "out")]
    return args + extra + ([] if case.sweep else ["--quiet"])


def tree(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            # a folder's mtime moves when the output check probes it (mkdtemp + rmdir): not a file
            out[str(p)] = (stat.S_IFMT(st.st_mode), st.st_size,
                           None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns)
    return out


def check(case: Case, rc: int, stderr: str, before: dict, after: dict, d: Path) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr: {stderr[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-2000:]
    assert "Traceback" not in stderr
    for text in case.must_name:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert before == after, f"files created or changed: {set(after) ^ set(before)}"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Case folder inside an otherwise empty tree; the working folder is that tree, and so is
    the temporary-file folder (a temporary file left behind is a file created)."""
    import tempfile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exit_2_one_line_nothing_written(case, sandbox, capsys):
    import solve

    d = sandbox / "case"
    argv = materialise(case, d)
    before = tree(sandbox)
    rc = solve.main(argv)
    cap = capsys.readouterr()
    check(case, rc, cap.err, before, tree(sandbox), d)


def _representatives() -> list[Case]:
    seen, out = set(), []
    for c in CASES:
        if c.klass not in seen and c.id != "csv-too-many-types":
            seen.add(c.klass)
            out.append(c)
    return out


@pytest.mark.integration
def test_subprocess_representatives(tmp_path):
    """One case of each class through a real ``python solve.py`` (all started together)."""
    reps = _representatives()
    jobs = []
    for c in reps:
        d = tmp_path / c.id
        jobs.append((c, d, materialise(c, d)))
    before = tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(job):
        c, d, argv = job
        p = subprocess.run(solve_command(*argv), cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=SUBPROCESS_TIMEOUT)
        return p.returncode, p.stderr

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(run, jobs))
    after = tree(tmp_path)
    assert before == after, f"files created or changed: {set(after) ^ set(before)}"
    for (c, d, _), (rc, err) in zip(jobs, results):
        check(c, rc, err, {}, {}, d)


@pytest.mark.parametrize("what, old, new", FLOAT_EDGE, ids=[f[0] for f in FLOAT_EDGE])
def test_float_edge_numbers_fail_cleanly(what, old, new, sandbox, capsys):
    """Numbers at the edge of float range are valid input by the documented rules
    but overflow inside the NLP: a clean failure (exit 1 or a clean exit 2), never a traceback."""
    import solve

    d = sandbox / "case"
    d.mkdir()
    (d / "s.toml").write_text(edit(old, new))
    rc = solve.main([str(d / "s.toml"), "--out", str(d / "out"), "--quiet"])
    cap = capsys.readouterr()
    assert rc in (1, 2), cap
    assert "Traceback" not in cap.err + cap.out
    if rc == 2:
        assert len(cap.err.strip().splitlines()) == 1 and cap.err.startswith("error: ")
        assert not (d / "out").exists()


@pytest.mark.unit
def test_bom_in_toml_and_csv_is_accepted(tmp_path):
    from models import scenario

    csv_text = "\ufefftheta,mass\n0.1,0.5\n0.2,0.5\n"
    (tmp_path / "t.csv").write_text(csv_text, encoding="utf-8")
    text = edit('distribution = "uniform"\nn = 10', 'distribution = "discrete"\nfile = "t.csv"')
    (tmp_path / "s.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    s = scenario.load(tmp_path / "s.toml")
    assert s.name == "case" and s.n_types == 2


@pytest.mark.unit
def test_ipopt_option_catalog_matches_ipopt(tmp_path):
    """The parsed option list agrees with what Ipopt itself accepts (its own add_option)."""
    from models import solver

    if not solver.option_catalog_available():
        pytest.skip("no cyipopt")
    cat = solver.ipopt_option_catalog()
    assert len(cat) > 200
    assert cat["max_iter"].kind == "integer" and cat["tol"].kind == "real"
    assert cat["bound_mult_init_val"].kind == "real"  # integral default, real option
    assert set(cat["mu_strategy"].values) == {"monotone", "adaptive"}
    assert solver.check_option("tol", 1) is None  # TOML int for a real option is fine
    assert solver.check_option("mu_strategy", "ADAPTIVE") is None  # Ipopt is case-insensitive
    assert solver.linear_solver_available("mumps")


@pytest.mark.unit
def test_precise_tol_is_a_floor_for_verified_regimes():
    """README: a scenario tol looser than the regime's precise tol is tightened (and noted);
    a tighter one is used as given; regimes without a precise default take the scenario's."""
    from models import run, solver

    floor = solver.PRECISE_OPTIONS["tol"]
    ctx = run.Context(route="auto", options={"tol": 1e-10, "max_iter": 3000}, user_options={"tol": 1e-10},
                      progress=lambda *a: None)
    assert ctx._options(solver.PRECISE_OPTIONS)["tol"] == floor
    assert ctx.tightened == {(1e-10, floor)}
    assert ctx._options(None)["tol"] == 1e-10  # no floor asked for
    tight = run.Context(route="auto", options={}, user_options={"tol": 1e-14}, progress=lambda *a: None)
    assert tight._options(solver.PRECISE_OPTIONS)["tol"] == 1e-14 and not tight.tightened


@pytest.mark.component
def test_tightened_tol_is_noted_in_the_regime(tmp_path):
    from models import run, scenario

    (tmp_path / "s.toml").write_text(add_solver("tol = 1e-6"))
    scn = scenario.load(tmp_path / "s.toml")
    res = run.run_regime(scn, "cost", run.Context(route="auto", options=scn.solver["options"],
                                                  user_options=scn.solver["user_options"],
                                                  progress=lambda *a: None, figures=False))
    from models import plotting

    for fig in res.figures.values():
        plotting.close(fig)
    assert any("solver tol = 1e-06 from the scenario is looser" in n for n in res.notes), res.notes
    assert res.verified and res.solves["cost"].ok


def _console_lines(capsys, ver, checks):
    """print_table on a one-regime summary holding ``ver``: (console text, its line per check name)."""
    import solve
    from models.results import RegimeResult

    class S:  # the part of run.Summary that print_table reads
        scenario, verification, verified = "x", ver, False
        results = {"r": RegimeResult("r", checks=[ver])}

    solve.print_table(S)
    out = capsys.readouterr().out
    return out, {c: [ln for ln in out.splitlines() if ln.startswith("r ") and f" {c} " in ln][0] for c in checks}


@pytest.mark.unit
def test_console_prints_the_signed_value_of_one_sided_checks(capsys):
    """Issue 11 defect 8: every console row shows exactly what is compared: a bound row
    (kind "bound") its signed value against the limit, a relative row its max rel_err
    against the tolerance; '>' and FAILED where it fails.  The last line names what failed."""
    import pandas as pd

    from models.results import bound_check, compare

    ver = pd.concat([bound_check("r", "audit", "worst IC violation", -1.0, 0.0),
                     bound_check("r", "audit2", "worst IR violation", 2.5e-9, 1e-8),
                     bound_check("r", "audit3", "worst IR violation", 2.5e-8, 1e-8),
                     compare("r", "values", "Q", [1.0, 2.0], [1.0, 2.0 + 1e-9], 1e-6),
                     compare("r", "values2", "Q", [1.0, 2.0], [1.0, 2.1], 1e-6)], ignore_index=True)
    assert list(ver["kind"]) == ["bound"] * 3 + ["relative"] * 4

    out, line = _console_lines(capsys, ver, ("audit", "audit2", "audit3", "values", "values2"))
    assert "value  -1.00e+00 <= 0e+00" in line["audit"] and line["audit"].endswith("ok")
    assert "value   2.50e-09 <= 1e-08" in line["audit2"]
    assert "value   2.50e-08 >  1e-08" in line["audit3"] and line["audit3"].endswith("FAILED")
    assert "rel     5.00e-10 <= 1e-06" in line["values"]  # two-sided: max rel_err
    assert "rel" in line["values2"] and ">  1e-06" in line["values2"] and line["values2"].endswith("FAILED")
    assert out.strip().splitlines()[-1].startswith("RESULT: NOT VERIFIED -- r: verification failed")


@pytest.mark.unit
def test_console_tells_a_value_from_a_nearby_limit(capsys):
    """A bound row just over a limit near 1 printed as '1.00e+00 >  1e+00' and, in the list of
    failed checks, 'value 1 vs 1 = 1x' (measured on budget_90_13's upper_bound_slack, 1.000134
    against 1.000001): both must show digits enough to see the miss and its side."""
    import pandas as pd

    from models.results import bound_check, failure_lines

    ver = pd.concat([bound_check("r", "slack", "top / bound", 1.0001343725364247, 1.0000009999999999),
                     bound_check("r", "slack2", "top / bound", 0.9999995, 1.0000009999999999)],
                    ignore_index=True)
    _, line = _console_lines(capsys, ver, ("slack", "slack2"))
    assert "1.0001e+00 >  1.000001e+00" in line["slack"] and line["slack"].endswith("FAILED")
    assert "<= 1.000001e+00" in line["slack2"] and line["slack2"].endswith("ok")
    (fail,) = failure_lines(ver)
    assert "value 1.0001 vs 1.000001 = 1.0001x" in fail


@pytest.mark.unit
def test_console_does_not_call_a_row_of_a_non_converged_solve_over_its_limit(capsys):
    """A row within its limit is marked failed when its regime did not converge (run.run_regime):
    the console must print '<=' and say why it failed, not '> limit' (measured: a Hypothesis
    value-scale draw printed '6.69e-14 >  1e-07 FAILED')."""
    import pandas as pd

    from models.results import bound_check, compare

    ver = pd.concat([bound_check("r", "audit", "worst IC violation", 6.7e-14, 1e-7),
                     compare("r", "values", "Q", [1.0], [1.0 + 1e-12], 1e-6),
                     compare("r", "values2", "Q", [1.0], [1.1], 1e-6)], ignore_index=True)
    ver["passed"] = False  # what run.run_regime does to every row of a non-converged regime

    _, line = _console_lines(capsys, ver, ("audit", "values", "values2"))
    assert "6.70e-14 <= 1e-07" in line["audit"] and line["audit"].endswith("FAILED (solve not converged)")
    assert "<= 1e-06" in line["values"] and line["values"].endswith("FAILED (solve not converged)")
    assert ">  1e-06" in line["values2"] and line["values2"].endswith("FAILED")
    assert not line["values2"].endswith("converged)")


@pytest.mark.unit
def test_large_checks_are_summarised_with_detail_in_parquet(tmp_path):
    """verification.csv keeps the README's columns; a check with > DETAIL_ROWS rows is one
    row (worst, maxima, all passed?), and verification_detail.parquet holds every row."""
    import numpy as np
    import pandas as pd

    from models import run
    from models.export import Writer
    from models.results import VERIFICATION_COLUMNS, bound_check, compare

    n = run.DETAIL_ROWS + 5
    ref = np.linspace(1, 2, n)
    num = ref.copy()
    num[7] += 3e-6  # the one failing row (rel err 1.5e-6 > 1e-6)
    ver = pd.concat([bound_check("r", "audit", "worst", -1.0, 0.0),
                     compare("r", "big", "Q", num, ref, 1e-6),
                     compare("r", "small", "t", [1.0], [1.0], 1e-6)], ignore_index=True)
    w = Writer(tmp_path)
    run.write_verification(w, ver)
    csv = pd.read_csv(tmp_path / "verification.csv")
    assert list(csv.columns) == VERIFICATION_COLUMNS
    assert list(csv["check"]) == ["audit", "big", "small"]
    big = csv[csv["check"] == "big"].iloc[0]
    assert not big["passed"] and big["index"].startswith("7 (worst of") and np.isclose(big["rel_err"], 1.5e-6)
    detail = pd.read_parquet(tmp_path / "verification_detail.parquet")
    assert len(detail) == len(ver) and set(w.files) == {"verification.csv", "verification_detail.parquet"}
    small = Writer(tmp_path / "s")
    run.write_verification(small, ver[ver["check"] != "big"])
    assert not (tmp_path / "s" / "verification_detail.parquet").exists()


def test_failed_rows_are_actionable():
    """Issue 11: a failed check is listed with its worst row (the type), the miss against
    its limit and what to change; a check's own advice wins over the generic one, a
    check without advice gets the generic text of its kind, passed checks are not listed."""
    import pandas as pd

    from models.results import bound_check, compare, default_advice, failure_lines

    ver = pd.concat([
        compare("budgets", "nlp_vs_cf", "Q", [1.0, 2.0, 3.3], [1.0, 2.0, 3.0], 1e-6,
                index=["0.25", "0.5", "0.75"], advice="use an equal-mass grid"),
        bound_check("budgets", "audit", "worst IC", 4e-7, 1e-7),
        compare("budgets", "fine", "t", [1.0], [1.0], 1e-6, advice="never shown"),
    ], ignore_index=True)
    assert list(ver["advice"]) == ["use an equal-mass grid"] * 3 + [default_advice("bound"), "never shown"]
    lines = failure_lines(ver)
    assert len(lines) == 2
    assert lines[0].startswith("budgets / nlp_vs_cf: Q (1/3 rows; worst at 0.75: rel_err 0.1 vs 1e-06 = 1e+05x)")
    assert lines[0].endswith("What to do: use an equal-mass grid")
    assert "worst IC (1/1 rows; worst: value 4e-07 vs 1e-07 = 4x)" in lines[1] and default_advice("bound") in lines[1]
    assert failure_lines(ver[ver["check"] == "fine"]) == []
    # a regime that did not converge marks every row failed (run.run_regime): rows within
    # their limit are one summary line, not listed as discrepancies
    nc = ver.copy()
    nc["passed"] = False
    lines = failure_lines(nc)
    assert len(lines) == 3 and lines[0].startswith("budgets: 3 rows are within their limits")
    # its advice names only what a user can set (stranger18 F2: 'tighter or looser starts' are no scenario field)
    assert "starts" not in lines[0] and "[solver] max_iter" in lines[0] and "notes" in lines[0]


def test_console_lists_failed_checks(monkeypatch, capsys):
    """The console prints the failure lines after the table (what a user sees first)."""
    import pandas as pd

    from models import cli
    from models.results import RegimeResult, compare

    res = RegimeResult("budgets", checks=[compare("budgets", "c", "Q", [2.0], [1.0], 1e-6, advice="do X")])

    class S:  # the part of run.Summary that print_table reads
        scenario = "s"
        verification = res.verification
        results = {"budgets": res}
        verified = False

    cli.print_table(S())
    out = capsys.readouterr().out
    assert "Failed checks" in out and "What to do: do X" in out and "NOT VERIFIED" in out


ROUTE_CASES = [  # (sweep command?, argv extra, scenario text, what the error line must name)
    (False, ["--route", "ipopt"], BASE, "--route = 'ipopt'"),
    (False, [], add_solver('route = "ipopt"'), "field 'solver.route' = 'ipopt'"),
    (True, [], add_solver('route = "ipopt"'), "field 'solver.route' = 'ipopt'"),  # sweeps have no --route
]


@pytest.mark.parametrize("sweep, extra, text, named", ROUTE_CASES, ids=["cli", "scenario", "sweep"])
def test_a_route_this_machine_lacks_is_a_choice_to_correct(sweep, extra, text, named, sandbox, capsys, monkeypatch):
    """Stranger S8 D5: `--route ipopt` on a machine without the executable exited 1 with
    "No Ipopt route works on this machine" although cyipopt works.  With another route
    working, the choice is the user's: exit 2, the field and the routes that work here."""
    import solve
    from models import solver

    if "cyipopt" not in solver.available_routes():
        pytest.skip("needs the cyipopt route (the one left when the executable is missing)")
    monkeypatch.setattr(solver, "_exe_available", lambda: False)
    d = sandbox / "case"
    text = text.replace('name = "case"', 'name = "sweepcase"') if sweep else text
    case = Case("route", "route", {"scenario.toml": text}, [named, "allowed here: auto, cyipopt"],
                args=extra + (["--param", "technology.sigma=0.2:0.6:2"] if sweep else []), sweep=sweep)
    argv = materialise(case, d)
    before = tree(sandbox)
    rc = solve.main(argv)
    check(case, rc, capsys.readouterr().err, before, tree(sandbox), d)


SCN_92_9 = """
name = "competition_92_9"

[technology]
sigma = 0.05
rho = -32.61

[[technology.tokens]]
name = "tok1"
weight = 0.674589
cost = 1.1327

[[technology.tokens]]
name = "tok2"
weight = 0.136233
cost = 1.59638

[[technology.tokens]]
name = "tok3"
weight = 0.18917800000000007
cost = 6.314

[types]
distribution = "piecewise"
breakpoints = [0.0, 8.7283, 22.806, 33.442, 36.3749]
masses = [0.16576, 0.22244, 0.388039, 0.223761]
n = 55
grid = "equal-mass"

[regimes]

[regimes.competition]
gamma_L = 0.8971
gamma_F = 0.0
c_L = 0.354912
c_F = 0.15215
task_cells = 0
task_profiles = 1
"""


@pytest.mark.component
def test_numbers_out_of_double_range_in_a_regime_are_solved_not_a_traceback(sandbox, capsys):
    """Regression (competition_92_9 as drawn in session 13, fresh seed 92): σ = 0.05 against γ_L = 0.897
    put the fringe's token unit (leader quality)^(1/σ) at ~1e700 and the run ended in an OverflowError
    traceback; session 16 made it a failed regime ('numbers out of double-precision range').  Since
    564d7d3 (comp17: fringe tokens in units of the top type's stand-alone purchase, q^r = inf read as no
    top-up) it solves and verifies.  (The failed-regime path for overflow stays covered by
    test_budgets_with_values_out_of_double_range_is_a_failed_regime_not_a_traceback.)"""
    import solve

    f = sandbox / "s.toml"
    f.write_text(SCN_92_9)
    rc = solve.main([str(f), "--out", str(sandbox / "out"), "--quiet"])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out and "numbers out of double-precision range" not in cap.out
    assert rc == 0 and "all converged and verified" in cap.out, cap.out[-3000:]


@pytest.mark.integration
def test_a_write_failure_is_one_error_line_and_keeps_the_previous_run(tmp_path):
    """stranger15 F7: a file-size limit (as a full disk) during the write phase was an OSError traceback.  Now
    one 'error:' line, exit 1, and the folder still holds the previous run, byte for byte."""
    import resource

    (tmp_path / "s.toml").write_text(BASE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    first = subprocess.run(solve_command("s.toml", "--out", "out", "-q"), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert first.returncode == 0, first.stderr
    before = tree(tmp_path / "out")

    def limit():  # 40 blocks of 512 bytes: the run's figures do not fit
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_480, 20_480))

    p = subprocess.run(solve_command("s.toml", "--out", "out", "-q"), cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=SUBPROCESS_TIMEOUT, preexec_fn=limit)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "File too large" in errs[0], p.stderr
    assert tree(tmp_path / "out") == before


def test_budgets_with_values_out_of_double_range_is_a_failed_regime_not_a_traceback(sandbox, capsys):
    """stranger15 F10: CSV types θ = 1e100 … 1e101 (η = 0.7: Q^FB ~ 1e235, θ·Q^FB = inf) were a
    ZeroDivisionError traceback in the budgets menu's unit tolerances (a scale 1/inf = 0)."""
    import solve

    (sandbox / "t.csv").write_text("theta,mass\n1e100,1\n3e100,1\n1e101,1\n")
    (sandbox / "s.toml").write_text(BASE.replace('distribution = "uniform"\nn = 10',
                                                 'distribution = "discrete"\nfile = "t.csv"')
                                    .replace("[regimes.cost]\nquantities = [0.5, 1.0]", "[regimes.budgets]"))
    rc = solve.main([str(sandbox / "s.toml"), "--out", str(sandbox / "out"), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err + cap.out, cap.err
    assert "numbers out of double-precision range" in cap.out and "NOT VERIFIED" in cap.out
    # each console line says the cause once (session 15: the regime line and the RESULT line repeated it)
    for line in cap.out.splitlines():
        assert line.count("numbers out of double-precision range") <= 1, line


def test_scenarios_after_options_are_scenarios(sandbox, capsys):
    """stranger17 F7: the synopsis is `solve.py [SCENARIO ...] [--out DIR] ...`, yet a scenario after an
    option (`solve.py a.toml --out D b.toml`) was 'unrecognized arguments: b.toml'.  Here b.toml is
    invalid, so the run must stop on *its* error (proof that it was read as a scenario), exit 2,
    nothing written."""
    import solve

    (sandbox / "a.toml").write_text(BASE)
    (sandbox / "b.toml").write_text(BASE.replace("n = 10", "n = 1"))
    rc = solve.main([str(sandbox / "a.toml"), "--out", str(sandbox / "out"), str(sandbox / "b.toml")])
    err = capsys.readouterr().err
    assert rc == 2 and "b.toml" in err and "'types.n'" in err and "unrecognized" not in err, err
    assert not (sandbox / "out").exists()


@pytest.mark.parametrize("path", ["", ".", "..", "types..n", "types.n]"])
def test_an_override_path_that_names_no_field_is_refused(path, sandbox):
    """stranger18: api.load_scenario(overrides={"": 1}) was accepted and changed nothing."""
    from models import api
    from models.scenario import ScenarioError

    (sandbox / "s.toml").write_text(BASE)
    with pytest.raises(ScenarioError, match="parameter path .*allowed: a dotted path"):
        api.load_scenario(sandbox / "s.toml", overrides={path: 1})
    assert api.load_scenario(sandbox / "s.toml", overrides={"types.n": 7}).n_types == 7


@pytest.mark.parametrize("n", [0, 1, -5, 2.5, True, 10**7])
def test_api_n_is_checked_as_the_scenarios_own_n(n, sandbox):
    """stranger18: solve_budget_menu(scn, n=0) silently used the scenario's n, n = 1 solved a one-type menu,
    n = -5 and 2.5 ended in numpy errors; docs/api.md promises a ScenarioError with the one-line message."""
    from models import api
    from models.scenario import ScenarioError

    (sandbox / "s.toml").write_text(BASE)
    scn = api.load_scenario(sandbox / "s.toml")
    with pytest.raises(ScenarioError, match="allowed: an integer with 2 <= n <= 1000000"):
        api.solve_budget_menu(scn, n=n)
    with pytest.raises(ScenarioError, match="ic = 'bogus' is invalid; allowed: 'local' or 'all-pairs'"):
        api.solve_budget_menu(scn, ic="bogus")
    assert len(scn.discrete_types(3)[0]) == 3


def test_an_unexpected_exception_in_a_regime_is_that_regimes_error_not_a_traceback(sandbox, capsys, monkeypatch):
    """stranger18 F0b/F0c: σ = 0.999 reached ValueErrors (Pyomo's non-finite bound, a closed form's c = nan) and
    the whole run ended in a traceback with nothing written.  run.run_regime now turns an unexpected exception
    into the regime's error: exit 1, never verified, named as an internal error with its place, the traceback in
    report.md, and the other regimes still solved and written.  (The injected exception stands for any such
    defect; the regimes' own σ -> 1 fixes have their own tests.)"""
    import json

    import solve
    from models import regimes, run

    real = regimes.module

    import types

    def broken_run(scn, opts, ctx):
        x = float("nan")
        raise ValueError(f"need c > 0, got c={x}")

    broken = types.SimpleNamespace(**{**vars(real("budgets")), "run": broken_run})
    monkeypatch.setattr(regimes, "module", lambda kind: broken if kind == "budgets" else real(kind))
    d = sandbox / "case"
    d.mkdir()
    (d / "s.toml").write_text(BASE + "\n[regimes.budgets]\nlemma_cells = 0\n")
    rc = solve.main([str(d / "s.toml"), "--out", str(d / "out"), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err + cap.out
    summ = json.loads((d / "out" / "case" / "summary.json").read_text())
    err = summ["regimes"]["budgets"]["error"]
    assert err.startswith(run.INTERNAL_ERROR) and "ValueError: need c > 0, got c=nan" in err and "test_hardening.py" in err
    assert not summ["regimes"]["budgets"]["verified"] and summ["regimes"]["cost"]["verified"]
    assert "Traceback (most recent call last)" in (d / "out" / "case" / "report.md").read_text()
    # bench/valid_scenarios.py counts it as a crash, not as an explained exit 1
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("valid_scenarios",
                                                  Path(__file__).resolve().parent.parent / "bench" / "valid_scenarios.py")
    V = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(V)
    assert V._internal_error(d / "out" / "case").startswith(run.INTERNAL_ERROR)
    assert V._internal_error(d / "nowhere") == ""
