"""Run report, manifest and the LaTeX tables of a whole run (issue 7)."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine on this machine (optional)")
def test_latex_tables_compile(good_run, tmp_path):
    out, _ = good_run
    tex = sorted(out.rglob("*.tex"))
    assert tex
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=1cm,landscape]{geometry}"
                   "\\begin{document}\n" + "\n".join(f"\\input{{{p}}}\\clearpage" for p in tex) + "\n\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
