"""Packaging, licence/citation files, the public Python API (``models.api``)
and the shipped default scenario (issue 12).

The API tests solve real NLPs; their expected values come from the theory
(the discrete Mussa–Rosen closed form, the multipliers of the downward IC
chain), never from the code under test.
"""
from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import models
from models import api, plotting, regimes, scenario

ROOT = Path(__file__).resolve().parent.parent
SPEED = "component"


# ---------------------------------------------------------------- packaging
@pytest.mark.unit
def test_one_version_number_everywhere():
    pp = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pp["project"]["dynamic"] == ["version"]
    assert pp["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "models.__version__"}
    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^version: (\S+)$", cff, re.M).group(1) == models.__version__
    assert models.__version__ in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.unit
def test_pyproject_ranges_admit_the_pinned_requirements():
    """Every runtime pin of requirements.txt satisfies the pyproject range of the
    same package, and every pyproject dependency is pinned there (CI tests the pins)."""
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            r = Requirement(line)
            pins[r.name.lower()] = next(iter(r.specifier)).version
    pp = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [Requirement(d) for d in pp["dependencies"]]
    deps += [Requirement(d) for extra in pp["optional-dependencies"].values() for d in extra]
    for r in deps:
        assert r.name.lower() in pins, f"{r.name} is not pinned in requirements.txt"
        assert r.specifier.contains(pins[r.name.lower()]), f"{r.name}: pin {pins[r.name.lower()]} not in {r.specifier}"


@pytest.mark.unit
def test_licence_and_citation():
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in lic
    cff = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in cff and "license: BSD-3-Clause" in cff
    assert "arXiv:2502.07736" in cff and "Bergemann" in cff and "Bonatti" in cff and "Smolin" in cff
    ch = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in ch and "## [Unreleased]" in ch and "## [0.1.0]" in ch


def _copy_source(dst: Path) -> Path:
    """What an sdist carries (building in the clone would leave build/ and *.egg-info)."""
    for f in ("pyproject.toml", "README.md", "LICENSE", "solve.py"):
        shutil.copy2(ROOT / f, dst / f)
    shutil.copytree(ROOT / "models", dst / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", dst / "data")
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = _copy_source(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("*.whl")
    return whl


@pytest.mark.integration
def test_wheel_has_package_command_and_scenarios(wheel):
    assert wheel.name.startswith(f"llm_pricing-{models.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    mods = {n for n in names if n.startswith("models/") and n.endswith(".py")}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "models").rglob("*.py")}
    assert mods == on_disk
    assert "solve.py" in names
    data = {Path(n).name for n in names if "/share/llm-pricing/data/" in n}
    assert data == {p.name for p in (ROOT / "data").iterdir() if p.suffix in (".toml", ".csv")}
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    assert "llm-pricing = models.cli:main" in zipfile.ZipFile(wheel).read(ep).decode()


def _fresh_venv(tmp: Path) -> Path:
    """A new virtual environment whose third-party packages are the project's
    (a .pth file: nothing is downloaded), without the project itself."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    Path(site, "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


@pytest.mark.slow
@pytest.mark.integration
def test_fresh_venv_install_version_and_default_run(wheel, tmp_path):
    """pip install of the wheel into a fresh venv: ``llm-pricing --version``,
    ``import models`` from another folder, and the default run (exit 0)."""
    py = _fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYOMO_CONFIG_DIR")}
    env["PYOMO_CONFIG_DIR"] = str(ROOT / ".pyomo")  # PyNumero's library (README "Install as a package")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300, env=env)
    cmd = py.parent / "llm-pricing"
    work = tmp_path / "elsewhere"
    work.mkdir()
    v = subprocess.run([str(cmd), "--version"], capture_output=True, text=True, cwd=work, env=env, timeout=60)
    assert v.returncode == 0 and v.stdout.strip() == f"llm-pricing {models.__version__}"
    imp = subprocess.run([str(py), "-c", "import models; print(models.__file__); print(models.data_dir())"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=60)
    assert imp.returncode == 0, imp.stderr
    assert str(tmp_path / "venv") in imp.stdout and str(ROOT) not in imp.stdout
    run = subprocess.run([str(cmd), "--out", str(work / "out"), "--quiet"], capture_output=True, text=True,
                         cwd=work, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    import pandas as pd

    ver = pd.read_csv(work / "out" / "default" / "verification.csv")
    assert set(ver["regime"]) == set(regimes.NAMES) | {"two_types"} and ver["passed"].all()


@pytest.mark.integration
def test_console_entry_point_version():
    proc = subprocess.run([sys.executable, "-m", "models.cli", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"llm-pricing {models.__version__}"


# ---------------------------------------------------------- default scenario
@pytest.mark.unit
def test_default_scenario_runs_every_regime():
    scn = scenario.load(ROOT / "data" / "default.toml")
    # every regime, and the distributions regime twice: value-scale grid and two types
    assert {regimes.kind(scn, n) for n in scn.regimes} == set(regimes.NAMES)
    assert regimes.kind(scn, "two_types") == "distributions"
    assert scn.regimes["distributions"]["family"] == "value-scale" and scn.regimes["two_types"]["family"] == "two-types"
    assert regimes.ordered(scn) == ["cost", "budgets", "multidim", "distributions", "two_types", "competition",
                                    "versions", "plans"]
    assert models.data_dir() == ROOT / "data"
    assert ROOT / "data" / "default.toml" in api.shipped_scenarios()


@pytest.mark.slow
@pytest.mark.integration
def test_default_run_verifies_all_four_regimes(run_solve, out_dir):
    code, out, err = run_solve("--out", out_dir, "--quiet", timeout=600)
    assert code == 0, out[-2000:] + err[-2000:]
    import pandas as pd

    ver = pd.read_csv(Path(out_dir) / "default" / "verification.csv")
    assert set(ver["regime"]) == set(regimes.NAMES) | {"two_types"} and ver["passed"].all()


# ------------------------------------------------------------ the Python API
@pytest.mark.integration
def test_import_selects_no_backend():
    """Importing the package and drawing a figure selects no matplotlib backend
    (a notebook keeps its inline backend).  pyplot itself may get imported:
    Pyomo's deferred-import hook (pyomo.common.dependencies) imports it as soon
    as matplotlib is imported after Pyomo, which is outside this project."""
    code = ("import sys, matplotlib; import models.api, models.plotting; "
            "fig, ax = models.plotting.new(); ax.plot([0, 1]); fig.canvas.draw(); "
            "assert matplotlib.rcParams._get_backend_or_none() is None, 'backend selected'")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.unit
def test_many_figures_no_warning_and_close_releases(recwarn):
    figs = [plotting.new()[0] for _ in range(30)]  # pyplot warns above 20 open figures
    for f in figs:
        f.axes[0].plot([0, 1], [0, 1])
        plotting.close(f)
        assert not f.axes
    assert not [w for w in recwarn if "More than 20 figures" in str(w.message)]


@pytest.fixture(scope="module")
def small():
    return api.load_scenario(overrides={"types.n": 20, "regimes.budgets.convergence": [],
                                        "regimes.budgets.lemma_cells": 0})


def test_solve_regime_in_memory_writes_nothing(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = api.solve_regime(small, "budgets")
    assert res.verified and not any(tmp_path.iterdir())
    from matplotlib.figure import Figure

    assert res.figures and all(isinstance(f, Figure) for f in res.figures.values())
    assert {"menu", "tariff_two_part", "tariff_cost_based", "audit"} <= set(res.tables)
    assert list(api.verification({"budgets": res}).columns) == list(res.verification.columns)


def test_budget_menu_matches_closed_form_and_ic_multipliers(small):
    """Q against the exact discrete Mussa–Rosen solution; the multiplier of the
    downward IC row of type k is ∂profit/∂rhs = −(mass of types ≥ k): raising
    t_{k−1}'s floor... i.e. the rhs of IC_k by ε lowers t_k, …, t_N by ε each."""
    from models.closed_form import budgets as cb

    bm = api.solve_budget_menu(small)
    assert bm.converged
    theta, mass = small.discrete_types()
    ref = cb.discrete_menu(small.technology, theta, mass)
    # solver accuracy: tol = 1e-12 on a scaled program (budgets.TOL_DISCRETE is the bar)
    assert np.max(np.abs(bm.menu.Q - ref.Q)) <= 1e-6 * ref.Q.max()
    assert bm.profit == pytest.approx(ref.profit(small.technology), rel=1e-6)
    c = bm.constraints()
    assert len(c) == 1 + 2 * (len(theta) - 1)  # IR of the lowest type, N-1 downward IC, N-1 monotone
    ic = c[c["kind"] == "IC down"]
    above = 1.0 - np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    # multipliers from Ipopt at tol 1e-12: agree to ~1e-9 of their scale (1)
    assert np.allclose(ic["dual"], -above[ic["type"].to_numpy()], atol=1e-7)
    assert (c["slack"] >= -1e-9).all()
    assert set(bm.binding_ic()["kind"]) <= {"IR", "IC down"}
    sheet = bm.price_sheet()
    served = ref.Q > 1e-9 * ref.Q.max()
    assert np.allclose(sheet["theta"], theta[served])
    # two-part price multiplier θ/φ̄ (closed form, docs/model.md tariffs), times marginal cost
    mult = theta[served] / ref.virtual[served]
    # the sheet is built from the NLP menu: equal to the closed form's prices to the
    # menu's accuracy (TOL_DISCRETE = 1e-6 relative)
    assert np.allclose(sheet["output_usd_per_Mtok"], mult * small.technology.cost[1], rtol=1e-6)
    cost_based = bm.price_sheet("cost-based")
    assert np.allclose(cost_based["total_price_usd"], bm.menu.t[served])


def test_with_changes_revalidates_and_resolves(small):
    cheaper = api.with_changes(small, {"technology.tokens[1].cost": 2.0})
    assert cheaper.technology.cost[1] == 2.0 and small.technology.cost[1] == 4.0
    assert api.solve_budget_menu(cheaper).profit > api.solve_budget_menu(small).profit  # cheaper inputs
    with pytest.raises(api.ScenarioError, match="sigma"):
        api.with_changes(small, {"technology.sigma": 1.5})
    with pytest.raises(api.ScenarioError, match="regime 'nope'"):
        api.solve_regime(small, "nope")


@pytest.mark.integration
def test_all_pairs_menu_lists_ir_as_bounds(small):
    """All-pairs form (in rents U = θQ − t, IR as the bound U ≥ 0): constraints() lists
    every IR with slack U_k = θ_k Q_k − t_k (recomputed here from the menu) and every
    ordered IC pair (row generation: a pair never added has multiplier 0 and its slack
    from the menu)."""
    bm = api.solve_budget_menu(small, ic="all-pairs")
    assert bm.converged
    c = bm.constraints()
    n = len(bm.menu.theta)
    ir = c[c["kind"] == "IR"].sort_values("type")
    assert len(ir) == n and len(c[c["kind"] == "IC"]) == n * (n - 1)
    rent = bm.menu.theta * bm.menu.Q - bm.menu.t
    # the rows hold the NLP's own U; the menu's t is read back from the rent rows (tol 1e-12 scaled)
    assert np.allclose(ir["slack"], rent, atol=1e-9 * max(1.0, float(np.max(np.abs(bm.menu.t)))))
    assert ir["dual"].isna().all() and (c["slack"] >= -1e-9).all()
    ic = c[c["kind"] == "IC"]
    assert len(set(zip(ic["type"], ic["versus"]))) == n * (n - 1)  # each ordered pair once
    gen = ic[~ic["row"].str.contains("not generated")]
    assert 0 < len(gen) < n * (n - 1)  # the case this is about: only some pairs are model rows
    assert (ic.loc[ic["row"].str.contains("not generated"), "dual"] == 0.0).all()


def test_scenario_from_dict_matches_file():
    import tomllib as tl

    raw = tl.loads((ROOT / "data" / "default.toml").read_text())
    scn = api.scenario_from_dict(raw, name="copy")
    ref = api.load_scenario()
    assert scn.name == "copy" and scn.technology == ref.technology and scn.regimes == ref.regimes


def test_readme_python_usage_runs(tmp_path, monkeypatch):
    """The README's "Python usage" block, executed as written."""
    text = (ROOT / "README.md").read_text()
    sec = text.split("## Python usage", 1)[1]
    block = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert not any(tmp_path.iterdir())


def test_api_doctest():
    from models import api as mod

    failed, tried = doctest.testmod(mod, verbose=False)
    assert tried > 0 and failed == 0


# ------------------------------------------------------------------- docs
DOCS = ROOT / "docs"


def _anchor(title: str) -> str:
    """Slug of a Markdown heading as MkDocs makes it (Python-Markdown's toc.slugify)."""
    import unicodedata

    s = unicodedata.normalize("NFKD", title.replace("`", "")).encode("ascii", "ignore").decode()
    s = re.sub(r"[^\w\s-]", "", s).strip().lower()
    return re.sub(r"[-\s]+", "-", s)


@pytest.mark.unit
def test_docs_relative_links_and_anchors_resolve():
    """Every relative link in docs/*.md and README.md points at an existing
    file, and every #anchor at a heading of its target (what `mkdocs --strict`
    checks, without needing mkdocs)."""
    pages = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
    assert {"index.md", "model.md", "solver.md", "api.md"} <= {p.name for p in pages}
    bad = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.name}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                heads = {_anchor(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                if anchor not in heads:
                    bad.append(f"{page.name}: {target} (no such heading)")
    assert not bad, bad


@pytest.mark.unit
def test_model_doc_has_every_section_the_code_cites():
    text = (DOCS / "model.md").read_text()
    heads = re.findall(r"^##+ (\S+)", text, re.M)
    for sec in ("1.", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "3.", "4.", "5.", "6."):
        assert sec in heads, sec
    cited = set()
    for p in list((ROOT / "models").rglob("*.py")) + [ROOT / "README.md"]:
        cited |= set(re.findall(r"docs/model\.md §(\d(?:\.\d)?)", p.read_text()))
    assert all(c in heads or c + "." in heads for c in cited), cited
    for unit in ("Mtok", "$ per Mtok", "θ", "Q = Ψ(X)Φ(Z)"):
        assert unit in text


@pytest.mark.unit
def test_no_reference_outside_the_repository_in_package_files():
    """The files of this feature cite docs/, never the spec outside the repository."""
    mine = [ROOT / "README.md", ROOT / "models" / "__init__.py", ROOT / "models" / "api.py",
            ROOT / "models" / "cli.py", ROOT / "models" / "plotting.py", ROOT / "data" / "default.toml",
            *DOCS.glob("*.md"), *(ROOT / "examples").glob("*.py")]
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in mine for i, line in enumerate(p.read_text().splitlines(), 1)
            if "MODEL.md" in line or "shared/spec" in line]
    assert not hits, hits


@pytest.mark.integration
def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs not installed (requirements.txt)")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr


# ------------------------------------------------------- logging and progress
def _tiny(tmp_path):
    from conftest import TINY_SCENARIO

    f = tmp_path / "case.toml"
    f.write_text(TINY_SCENARIO)
    return f


@pytest.mark.component
@pytest.mark.parametrize("flag", ["", "--quiet", "--verbose"])
def test_cli_progress_goes_through_logging_at_the_chosen_level(tmp_path, capsys, flag):
    """Progress lines are log records of logger ``models`` on stderr: one per regime and per
    solve by default, none with --quiet, Ipopt's iterations too with --verbose; the
    verification table and RESULT line are stdout in every case."""
    from models import cli

    rc = cli.main([str(_tiny(tmp_path)), "--out", str(tmp_path / "o")] + ([flag] if flag else []))
    out, err = capsys.readouterr()
    assert rc == 0 and "RESULT: all converged and verified" in out
    assert "regime 'cost'" not in out  # progress is never on stdout
    regime_line = "[1/1] case: regime 'cost'" in err
    solve_lines = re.findall(r"^    \S.*: optimal, objective .* it, ", err, re.M)
    iteration_lines = re.findall(r"^      \S.*: Ipopt iteration \d+, objective ", err, re.M)
    if flag == "--quiet":
        assert err == ""
    else:
        assert regime_line and solve_lines
        assert bool(iteration_lines) == (flag == "--verbose")
    logging_root = __import__("logging").getLogger("models")
    cli.set_verbosity("normal")  # leave the default for other in-process tests
    assert logging_root.level == __import__("logging").INFO


@pytest.mark.component
def test_api_progress_through_logging(small):
    """The Python API logs the same lines (logger ``models.run``); silent by default
    (no handler at INFO), shown by api.set_verbosity."""
    import io

    buf = io.StringIO()
    api.set_verbosity("normal", stream=buf)
    try:
        res = api.solve_regime(small, "cost", figures=False)
        assert res.verified
        assert re.search(r": optimal, objective .* it, ", buf.getvalue())
        quiet = io.StringIO()
        api.set_verbosity("quiet", stream=quiet)
        api.solve_regime(small, "cost", figures=False)
        assert quiet.getvalue() == ""
        with pytest.raises(ValueError, match="verbosity must be one of"):
            api.set_verbosity("loud")
    finally:
        api.set_verbosity("normal")


@pytest.mark.slow
@pytest.mark.integration
def test_default_run_verifies_on_the_executable_route(ipopt_executable, tmp_path):
    """The whole main job on route "ipopt" (conda's executable, else the project's AMPL
    driver): every regime verified, every solve of summary.json through the executable
    (measured 52 solves, 66 s at load 6)."""
    import json

    env = {**os.environ, "PATH": f"{ipopt_executable.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    p = subprocess.run([sys.executable, str(ROOT / "solve.py"), "--route", "ipopt", "--out", str(tmp_path), "-q"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    s = json.loads((tmp_path / "default" / "summary.json").read_text())
    assert s["route"] == "ipopt" and set(s["regimes"]) == set(regimes.NAMES) | {"two_types"}
    routes = {v["route"] for reg in s["regimes"].values() for v in reg["solves"].values()}
    assert routes == {"ipopt"}


@pytest.mark.unit
@pytest.mark.parametrize("table, message", [
    ('[regimes.extra]\nregime = "nonsense"\n', "field 'regimes.extra.regime' = 'nonsense' is invalid; allowed: a known regime"),
    ('[regimes.budgets]\nregime = "cost"\n', "field 'regimes.budgets.regime' = 'cost' is invalid; allowed: 'budgets'"),
    ('[regimes.extra]\nquantities = [0.5]\n', "field 'regimes.extra' = 'extra' is invalid; allowed: a known regime"),
    ('[regimes.extra]\nregime = "cost"\nquantities = [-1.0]\n', "regimes.extra.quantities"),
])
def test_regime_instances_are_validated(tmp_path, table, message):
    """[regimes.<name>] with regime = "...": an instance of a known regime, validated by its
    module under its own field names; anything else one error line."""
    from conftest import TINY_SCENARIO

    f = tmp_path / "s.toml"
    f.write_text(TINY_SCENARIO + "\n" + table)
    with pytest.raises(scenario.ScenarioError, match=re.escape(message)):
        scenario.load(f)


@pytest.mark.component
def test_regime_instance_runs_under_its_own_name(tmp_path):
    """Two instances of the cost regime in one scenario: each solved, its rows, tables and
    figures under its own name."""
    from conftest import TINY_SCENARIO
    from models import run

    f = tmp_path / "s.toml"
    f.write_text(TINY_SCENARIO + '\n[regimes.cost_fine]\nregime = "cost"\nquantities = [0.1, 0.2, 0.3]\n')
    scn = scenario.load(f)
    assert regimes.ordered(scn) == ["cost", "cost_fine"]
    summary = run.run_scenario(scn, tmp_path / "o", progress=lambda *a: None)
    assert summary.exit_code == 0
    ver = summary.verification
    assert set(ver["regime"]) == {"cost", "cost_fine"}
    assert len(ver[ver["regime"] == "cost_fine"]) > len(ver[ver["regime"] == "cost"])  # 3 quantities vs 2
    assert (tmp_path / "o" / "cost_fine").is_dir() and (tmp_path / "o" / "figures" / "cost_fine").is_dir()
    res = api.solve_regime(scn, "cost_fine", figures=False)
    assert res.name == "cost_fine" and res.verified
