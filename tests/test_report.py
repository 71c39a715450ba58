"""Run report, manifest and the LaTeX tables of a whole run (issue 7)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import compile_latex

from models import run, scenario

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"types.n": 20, "regimes.budgets.convergence": [], "regimes.budgets.lemma_cells": 0}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "default"
    scn = scenario.load(ROOT / "data" / "default.toml", overrides=SMALL)
    summary = run.run_scenario(scn, out, formats=("csv", "parquet", "latex", "md"), progress=lambda *a: None)
    return out, summary


def test_manifest_lists_every_file_with_its_checksum(good_run):
    out, summary = good_run
    assert summary.exit_code == 0
    man = json.loads((out / "manifest.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(man["files"]) == on_disk
    for rel, info in man["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == info["sha256"]
    assert man["scenario"]["sha256"] == hashlib.sha256((ROOT / "data" / "default.toml").read_bytes()).hexdigest()
    assert man["git_revision"] and "pyomo" in man["packages"]


def test_report_states_success_and_embeds_figures(good_run):
    out, _ = good_run
    md = (out / "report.md").read_text()
    assert "All regimes converged and every check passed" in md and "ATTENTION" not in md
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html  # self-contained
    assert "<table>" in html


def test_report_flags_non_convergence(tmp_path):
    scn = scenario.load(ROOT / "data" / "default.toml", overrides={**SMALL, "solver.max_iter": 2})
    summary = run.run_scenario(scn, tmp_path / "bad", progress=lambda *a: None, only=["cost", "budgets"])
    assert summary.exit_code == 1
    md = (tmp_path / "bad" / "report.md").read_text()
    assert "ATTENTION" in md and "not converged" in md


def test_latex_tables_compile(good_run, tmp_path):
    """Every .tex table of the main job compiles with pdflatex in a plain article
    (conftest.compile_latex)."""
    out, _ = good_run
    tex = sorted(out.rglob("*.tex"))
    assert tex
    compile_latex(tmp_path, tex)


def test_report_first_screen_one_line_per_regime(good_run):
    """The report opens with one line per regime: verdict, counts, where to look."""
    out, summary = good_run
    md = (out / "report.md").read_text().splitlines()
    first = md[:4 + len(summary.results)]
    for name, res in summary.results.items():
        line = [ln for ln in first if ln.startswith(f"- **{name}**: ")]
        assert len(line) == 1, (name, first)
        assert "verified --" in line[0] and "0 failed" in line[0] and f"[section](#{name})" in line[0]
        if res.tables:
            assert f"`{name}/`" in line[0]
    html = (out / "report.html").read_text()
    for name in summary.results:  # the section links resolve in the HTML report
        assert f'href="#{name}"' in html and f'id="{name}"' in html


def test_report_first_screen_names_the_failure(tmp_path):
    scn = scenario.load(ROOT / "data" / "default.toml", overrides={**SMALL, "solver.max_iter": 2})
    run.run_scenario(scn, tmp_path / "bad", progress=lambda *a: None, only=["cost"])
    md = (tmp_path / "bad" / "report.md").read_text().splitlines()
    line = [ln for ln in md[:6] if ln.startswith("- **cost**: ")][0]
    assert "**not converged (cost: max_iterations)**" in line and "failing: `nlp_vs_closed_form`" in line
