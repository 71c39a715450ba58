"""models.export: round trips, LaTeX/Markdown rendering, atomic writes, the manifest hashes."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compile_latex

from models import export
from models.export import Writer, atomic_path, atomic_write_bytes, latex_escape, to_latex, to_markdown

SPEED = "unit"  # default speed marker (conftest); tests marked otherwise override it


def tricky_frame() -> pd.DataFrame:
    """Floats that only survive a text round trip with 17 significant digits."""
    return pd.DataFrame({
        "regime": ["cost", "cost", "budgets", "a|b", "x_input"],
        "x": [0.1, 1 / 3, -1e-300, 2.0**-1074, 1.7976931348623157e308],  # incl. min subnormal, max double
        "y": [np.nan, np.inf, -np.inf, 123456789.12345679, -2.5],
        "k": np.array([1, -2, 3, 0, 2**53], dtype="int64"),
        "passed": [True, False, True, True, False],
    })


def tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


# ------------------------------------------------------------- round trips
def test_csv_round_trip_is_exact(tmp_path):
    df = tricky_frame()
    w = Writer(tmp_path, formats=("csv",))
    (p,) = w.table(df, "table")
    back = pd.read_csv(p)
    # check_exact: %.17g round-trips every double bit for bit
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    # and bit for bit really: compare the float64 patterns (NaN included)
    assert np.array_equal(back["x"].to_numpy().view("u8"), df["x"].to_numpy().view("u8"))


def test_parquet_round_trip_is_exact(tmp_path):
    df = tricky_frame()
    w = Writer(tmp_path, formats=("parquet",))
    paths = w.table(df, "table")
    assert [p.suffix for p in paths] == [".csv", ".parquet"]  # csv is always written
    back = pd.read_parquet(tmp_path / "table.parquet")
    pd.testing.assert_frame_equal(back, df, check_exact=True)


def test_round_trip_in_subdir(tmp_path):
    df = tricky_frame()
    Writer(tmp_path, formats=("csv", "parquet")).table(df, "t", subdir="cost")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cost" / "t.csv"), df, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cost" / "t.parquet"), df, check_exact=True)


# ------------------------------------------------------------------ LaTeX
@pytest.mark.parametrize("raw, escaped", [
    ("x_input", r"x\_input"),
    ("50%", r"50\%"),
    ("$", r"\$"),
    ("&", r"\&"),
    ("#", r"\#"),
    ("{a}", r"\{a\}"),
    ("a~b^c", r"a\textasciitilde{}b\textasciicircum{}c"),
    ("back\\slash", r"back\textbackslash{}slash"),
    ("plain text 1.5", "plain text 1.5"),
    ("[U] x", "{[}U] x"),  # never read as the optional argument of a line break
    ("θ∈Π", r"$\theta$$\in$$\Pi$"),
    ("a☃b", "a{[}U+2603]b"),  # unknown non-ASCII: its code point, still compiles
])
def test_latex_escape(raw, escaped):
    assert latex_escape(raw) == escaped


def _unescaped(text: str, ch: str) -> int:
    """Number of occurrences of ch not preceded by a backslash."""
    return sum(1 for i, c in enumerate(text) if c == ch and (i == 0 or text[i - 1] != "\\"))


def test_latex_table_structure_and_escaping():
    df = pd.DataFrame({"x_input": [1.5, -2.0], "50%": [0.25, 3.0], "$": ["a&b", "c#d"], "&": [1, 2],
                       "#": [True, False]})
    tex = to_latex(df, "cost_of_quality", caption="Cost of quality: 50% & more")
    lines = tex.splitlines()
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert lines.count(cmd) == 1, cmd
    assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
    assert r"\caption{Cost of quality: 50\% \& more}" in lines
    assert r"\label{tab:cost-of-quality}" in lines
    assert lines[0] == r"\begin{table}[htbp]" and r"\end{table}" in lines
    assert r"\begin{tabular}{rrlrl}" in lines  # numbers right, text and yes/no left
    header = lines[lines.index(r"\toprule") + 1]
    assert header == r"x input & 50\% & \$ & \& & \# \\"  # display header (no unit suffix here)
    body = lines[lines.index(r"\midrule") + 1: lines.index(r"\bottomrule")]
    assert len(body) == len(df)
    assert body[0] == r"1.500 & 0.2500 & a\&b & 1 & yes \\"  # 4 significant digits
    assert body[1] == r"$-2.000$ & 3.000 & c\#d & 2 & no \\"  # minus sign in math mode
    for row in [header] + body:  # exactly ncol - 1 column separators per row, no stray specials
        assert _unescaped(row, "&") == df.shape[1] - 1
        assert _unescaped(row, "#") == 0 and _unescaped(row, "%") == 0 and _unescaped(row, "_") == 0


def test_latex_default_caption_from_name():
    tex = to_latex(pd.DataFrame({"a": [1.0]}), "menu_table")
    assert r"\caption{menu table}" in tex
    assert r"\label{tab:menu-table}" in tex


@pytest.mark.parametrize("x, text", [
    (0.0, "0"), (1.5, "1.5"), (1 / 3, "0.333333"), (123456.0, "123456"), (1e7, "1.000e+07"),
    (1e-4, "1.000e-04"), (float("nan"), ""), (float("inf"), "inf"), (3, "3"), (True, "yes"),
])
def test_format_number(x, text):
    assert export.format_number(x) == text


# --------------------------------------------------------------- Markdown
def test_markdown_shape():
    df = pd.DataFrame({"name": ["a", "b|c", "d"], "x": [1.0, 2.5, -3.0], "n": [1, 2, 3]})
    md = to_markdown(df)
    lines = md.rstrip("\n").splitlines()
    assert len(lines) == 2 + len(df)  # header, separator, one line per row
    assert lines[0] == "| Name | x | n |"
    assert lines[1] == "|---|---:|---:|"  # text left, numbers right
    assert lines[2] == "| a | 1.000 | 1 |"
    assert lines[3] == r"| b\|c | 2.500 | 2 |"  # a '|' inside a cell is escaped
    for ln in lines:
        assert ln.replace(r"\|", "").count("|") == df.shape[1] + 1


def test_markdown_truncation_note():
    df = pd.DataFrame({"x": np.arange(10.0)})
    md = to_markdown(df, max_rows=3)
    assert sum(1 for ln in md.splitlines() if ln.startswith("| ")) == 1 + 3
    assert "(7 more rows in the CSV)" in md


# ------------------------------------------- display rules (issue 14, item 6)
@pytest.mark.parametrize("col, head", [
    ("fixed_fee_usd", "Fixed fee ($)"), ("input_usd_per_Mtok", "Input ($/Mtok)"), ("X_input_Mtok", "X input (Mtok)"),
    ("theta", "θ"), ("profit_pct_of_full_menu", "Profit (% of full menu)"), ("Price ($)", "Price ($)"),
    ("t_usd", "t ($)"), ("t_usd_closed_form", "t closed form ($)"), ("budget_usd", "Budget ($)"),
    ("ft_usd_per_Mtok", "ft ($/Mtok)"), ("share_served", "Share served"), ("Q", "Q"),
])
def test_display_headers_carry_units(col, head):
    assert export.display_header(col) == head


def test_markdown_and_latex_show_units_not_machine_names():
    df = pd.DataFrame({"plan": [1, 2], "fixed_fee_usd": [0.5, 1.25], "input_usd_per_Mtok": [2.0, 1.5]})
    md = to_markdown(df).splitlines()[0]
    assert md == "| Plan | Fixed fee ($) | Input ($/Mtok) |"
    tex = to_latex(df, "sheet")
    assert r"Fixed fee (\$)" in tex and r"Input (\$/Mtok)" in tex and "fixed\\_fee" not in tex


def test_noise_rule_zeroes_values_below_solver_accuracy_only(tmp_path):
    # the excluded type: Q ~ 1e-15, t = -6.6e-17 next to served plans of order 1
    df = pd.DataFrame({"Q": [1.3e-15, 2e-9, 0.8], "t_usd": [-6.6e-17, 4e-10, 0.5],
                       "abs_err": [1e-15, 2e-16, 0.1], "x": [1e-12, -1e-12, 1.0]})
    df.attrs["display_exact"] = ["x"]
    cells = export.display_cells(df)
    assert [r[0] for r in cells] == ["0", "2.000e-09", "0.8000"]  # 2e-9 > NOISE_RTOL * 0.8 is kept
    assert [r[1] for r in cells] == ["0", "0", "0.5000"]  # 4e-10 <= 1e-9 * 0.5
    assert [r[2] for r in cells] == ["1.000e-15", "2.000e-16", "0.1000"]  # an error column keeps its values
    assert [r[3] for r in cells] == ["1.000e-12", "-1.000e-12", "1.000"]  # opted out by the table
    # the CSV keeps the exact doubles, the Markdown shows the display rule
    Writer(tmp_path, formats=("csv", "md")).table(df, "t")
    assert pd.read_csv(tmp_path / "t.csv")["t_usd"].iloc[0] == -6.6e-17
    assert "| 0 | 0 | 1.000e-15 | 1.000e-12 |" in (tmp_path / "t.md").read_text()


def test_noise_rule_threshold_is_relative_to_the_column():
    df = pd.DataFrame({"Q": [0.999e-9, 1.001e-9, 1.0]})
    assert [r[0] for r in export.display_cells(df)] == ["0", "1.001e-09", "1.000"]
    neg = pd.DataFrame({"t": [-0.0, -1e-20, -3.0]})
    assert [r[0] for r in export.display_cells(neg)] == ["0", "0", "-3.000"]  # no "-0"


@pytest.mark.parametrize("x, text", [(1.5, "1.500"), (33.666666, "33.67"), (1234.5678, "1235"), (1.238821e-07, "1.239e-07"),
                                     (1e6, "1.000e+06"), (100.0, "100.0"), (0.0, "0"), (float("nan"), ""), (7, "7")])
def test_display_significant_figures(x, text):
    assert export.format_display(x) == text


def test_preview_starts_at_first_served_row():
    df = pd.DataFrame({"theta": np.linspace(0, 1, 60), "Q": np.r_[np.full(50, 1e-16), np.linspace(0.1, 1, 10)]})
    md = to_markdown(df, max_rows=5)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert "rows 1–50: excluded types (Q = 0)" in rows[1]
    assert rows[2].startswith("| 0.8475 | 0.1000 |")  # the first served type
    assert "(5 more rows in the CSV)" in md
    full = to_markdown(df)  # the full table keeps every row
    assert sum(1 for ln in full.splitlines() if ln.startswith("| ")) == 61


def _wide_frame(ncol=19, nrow=5):
    rng = np.random.default_rng(3)
    data = {"theta": np.linspace(0.1, 1, nrow)}
    for j in range(ncol - 1):
        data[f"quantity_number_{j}_usd_per_Mtok"] = -rng.uniform(1e3, 9e3, nrow)
    return pd.DataFrame(data)


def test_text_width_uses_computer_modern_metrics():
    assert export.text_width_pt("0123456789", font_pt=10) == pytest.approx(50.0 * export.LATEX_MARGIN)  # 1/2 em
    assert export.text_width_pt("-1", font_pt=10) == pytest.approx((7.778 + 5.0) * export.LATEX_MARGIN)  # math minus


@pytest.mark.parametrize("ncol, nrow", [(19, 5), (40, 3), (3, 60)])
def test_latex_every_column_group_fits_the_text_width(ncol, nrow):
    df = _wide_frame(ncol, nrow)
    heads, body, align, numeric, widths, groups = export.latex_layout(df)
    assert sum(widths) > export.LATEX_TEXTWIDTH or ncol <= 3  # the wide cases need splitting
    assert sorted({j for g in groups for j in g}) == list(range(ncol))  # every column once (plus the key)
    for g in groups:
        assert g[0] == 0  # each part repeats the first column
        assert sum(widths[j] for j in g) <= export.LATEX_TEXTWIDTH
    tex = to_latex(df, "wide")
    long = r"\begin{longtable}" in tex
    assert long == (nrow > 40 or ncol == 40)  # 60 rows, or 40 columns stacked in ~10 groups: taller than a page
    assert tex.count(r"\begin{tabular}{") == (0 if long else len(groups))  # nested header cells are [b]


def test_latex_long_text_cells_wrap():
    df = pd.DataFrame({"scheme": ["two-part tariff (fee 0.001077 $, m = 1.157) with a long explanation " * 2],
                       "profit_usd": [1.0]})
    heads, body, *_, widths, groups = export.latex_layout(df)
    assert len(body[0][0]) > 1  # broken into lines
    assert max(export.text_width_pt(s) for s in body[0][0]) <= export.LATEX_CELL_MAX
    assert sum(widths) <= export.LATEX_TEXTWIDTH


def test_latex_tables_compile_without_overfull_boxes(tmp_path):
    """The real check of the width estimate: pdflatex, article class at 10 pt
    (345 pt text width), booktabs + longtable; no Overfull \\hbox."""
    frames = {"wide": _wide_frame(19, 5), "very_wide": _wide_frame(40, 3), "long": _wide_frame(4, 90),
              "wide_and_tall": _wide_frame(30, 35),
              "text": pd.DataFrame({"scheme": ["two-part tariff (fee 0.001077 $, m = 1.157) " * 4], "x_usd": [1.0]})}
    for nm, df in frames.items():
        (tmp_path / f"{nm}.tex").write_text(to_latex(df, nm))
    log = compile_latex(tmp_path, [f"{nm}.tex" for nm in frames])
    assert "Overfull \\hbox" not in log, [ln for ln in log.splitlines() if "Overfull" in ln]
    assert "Float too large" not in log  # a table taller than a page is a longtable


# ---------------------------------------------------------- atomic writes
OLD = b"old contents\n" * 1000


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "deep" / "er" / "file.bin"
    atomic_write_bytes(target, OLD)
    assert target.read_bytes() == OLD
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert tmp_files(tmp_path) == []


def test_atomic_path_body_raising_keeps_old_file(tmp_path):
    target = tmp_path / "table.csv"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"garbage that must never be seen" * 100)
            raise RuntimeError("midway")
    assert target.read_bytes() == OLD
    assert tmp_files(tmp_path) == []


def test_keyboard_interrupt_midway_keeps_old_file(tmp_path):
    # BaseException too (Ctrl-C during a long export)
    target = tmp_path / "table.csv"
    target.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert target.read_bytes() == OLD
    assert tmp_files(tmp_path) == []


def test_writer_parquet_failing_midway_keeps_old_file(tmp_path, monkeypatch):
    df = tricky_frame()
    w = Writer(tmp_path, formats=("parquet",))
    w.table(df, "t")
    old = (tmp_path / "t.parquet").read_bytes()

    def half_then_raise(self, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(old[: len(old) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_raise)
    with pytest.raises(OSError, match="disk full"):
        w.table(df.assign(x=0.0), "t")
    assert (tmp_path / "t.parquet").read_bytes() == old
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df, check_exact=True)
    assert tmp_files(tmp_path) == []


def test_replace_failing_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_bytes(OLD)

    def boom(src, dst):
        raise OSError("cross-device (simulated)")

    monkeypatch.setattr(export.os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, b"{}")
    assert target.read_bytes() == OLD
    assert tmp_files(tmp_path) == []


def test_written_files_follow_umask(tmp_path):
    old_mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.csv", b"x")
        (tmp_path / "b.csv").write_bytes(b"x")  # what a plain open() gives
    finally:
        os.umask(old_mask)
    assert (tmp_path / "a.csv").stat().st_mode & 0o777 == (tmp_path / "b.csv").stat().st_mode & 0o777


# -------------------------------------------------------- killed writes
CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from models import export
mode, target, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytes(range(256)) * (size // 256)
if mode == "fsync":  # block between the data write and os.replace
    def stuck(fd):
        print("in-fsync", flush=True)
        time.sleep(600)
    export.os.fsync = stuck
print("ready", flush=True)
export.atomic_write_bytes(target, data)
print("done", flush=True)
"""


@contextmanager
def _spawned(root: Path, mode: str, target: Path, size: int):
    """A child that writes ``size`` bytes to ``target`` via atomic_write_bytes; always killed on exit."""
    code = CHILD.format(root=str(root))
    p = subprocess.Popen([sys.executable, "-c", code, mode, str(target), str(size)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p
    finally:
        _kill(p)


def _kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()


def _assert_old_or_complete(target: Path, old: bytes | None, size: int) -> None:
    new_digest = hashlib.sha256(bytes(range(256)) * (size // 256)).hexdigest()
    if not target.exists():
        assert old is None, "the old file vanished"
        return
    data = target.read_bytes()
    assert data == old or hashlib.sha256(data).hexdigest() == new_digest, \
        f"partial target: {len(data)} bytes"


@pytest.mark.integration
@pytest.mark.parametrize("with_old", [True, False], ids=["old-file", "no-file"])
def test_kill_9_during_data_write(tmp_path, with_old, root):
    target = tmp_path / "big.bin"
    old = OLD if with_old else None
    if old is not None:
        target.write_bytes(old)
    size = 64 << 20  # 64 MiB: writing it takes ~20 ms here; retried bigger if too fast
    for _ in range(3):
        with _spawned(root, "data", target, size) as p:
            caught = False
            deadline = time.monotonic() + 30
            while p.poll() is None and time.monotonic() < deadline:
                # "midway": some file (the temporary one, or -- in a non-atomic
                # implementation -- the target itself) holds part of the new data
                for t in tmp_files(tmp_path) + [target]:
                    try:
                        n = t.stat().st_size
                    except FileNotFoundError:
                        continue
                    if 0 < n < size and not (t == target and old is not None and n == len(old)):
                        caught = True
                if caught:
                    break
        # the child is dead here (SIGKILL if it was still writing)
        _assert_old_or_complete(target, old, size)
        if caught and p.returncode == -signal.SIGKILL:  # else it finished first: try a bigger file
            break
        size *= 4
    else:
        pytest.skip("the write finished before it could be interrupted (machine too fast)")
    # the interrupted temporary file is hidden (dot-prefixed) next to the target
    assert all(t.name.startswith(".big.bin.") for t in tmp_files(tmp_path))


@pytest.mark.integration
def test_kill_9_between_write_and_replace(tmp_path, root):
    target = tmp_path / "big.bin"
    target.write_bytes(OLD)
    size = 1 << 20
    with _spawned(root, "fsync", target, size) as p:
        assert p.stdout.readline().strip() == "in-fsync"
        (tmp,) = tmp_files(tmp_path)
        assert tmp.stat().st_size == size  # new data complete on disk, not yet in place
    assert p.returncode == -signal.SIGKILL
    assert target.read_bytes() == OLD


# --------------------------------------------------------------- Writer
def test_writer_records_sha256_of_every_file(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = Writer(tmp_path, formats=("csv", "parquet", "latex", "md"), figure_formats=("png", "pdf"))
    w.table(tricky_frame(), "t", caption="T", subdir="cost")
    w.json({"a": np.float64(1.5), "b": np.arange(3), "p": Path("x")}, "summary.json")
    w.text("# report\n", "report.md", kind="report")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    w.figure(fig, "line")
    plt.close(fig)
    expected = {"cost/t.csv", "cost/t.parquet", "cost/t.tex", "cost/t.md", "summary.json", "report.md",
                "figures/line.png", "figures/line.pdf"}
    assert set(w.files) == expected
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == expected
    for rel, info in w.files.items():
        data = (tmp_path / rel).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest(), rel
        assert info["bytes"] == len(data) > 0
    assert w.files["cost/t.tex"]["kind"] == "table/latex"
    assert w.files["figures/line.pdf"]["kind"] == "figure/pdf"
    assert w.files["report.md"]["kind"] == "report"


def test_writer_rewrite_updates_hash(tmp_path):
    w = Writer(tmp_path)
    w.text("one", "a.txt")
    first = w.files["a.txt"]["sha256"]
    w.text("two", "a.txt")
    assert w.files["a.txt"]["sha256"] != first
    assert w.files["a.txt"]["sha256"] == hashlib.sha256(b"two").hexdigest()


def test_writer_unknown_format_raises(tmp_path):
    w = Writer(tmp_path, formats=("xls",))
    with pytest.raises(ValueError):
        w.table(pd.DataFrame({"a": [1]}), "t")


def test_money_columns_named_without_a_unit_get_dollars():
    """stranger S9 D4: "U" stood next to "t ($)", and t, U, profit, C, surplus columns of the competition,
    cost, budgets, distributions and multidim tables had no unit although the README promises unit headers."""
    from models.export import display_header

    assert display_header("U") == "U ($)" and display_header("t") == "t ($)"
    assert display_header("C_closed_form") == "C closed form ($)"
    assert display_header("consumer_surplus") == "Consumer surplus ($)"
    assert display_header("t_discrete_cf") == "t discrete cf ($)"
    # not money, or with their own unit: unchanged
    assert display_header("V") == "V" and display_header("theta") == "θ"
    assert display_header("rel_err_profit") == "Rel err profit"
    assert display_header("profit_pct_of_full_menu") == "Profit (% of full menu)"


def test_profit_and_per_quality_columns_get_units():
    """stranger17 F10: the distributions profit table (distribution_nlp, budget_closed_form, ...) and the
    cost table's marginal cost and the budgets menu's virtual value had no unit in Markdown/LaTeX."""
    from models.export import display_header

    assert display_header("distribution_nlp") == "Distribution nlp ($)"
    assert display_header("budget_closed_form") == "Budget closed form ($)"
    assert display_header("marginal_cost_dual") == "Marginal cost dual ($ per quality unit)"
    assert display_header("virtual_value_ironed") == "Virtual value ironed ($ per quality unit)"
    # a budget with its own unit, or a budget's Q, keeps its reading
    assert display_header("budget_usd") == "Budget ($)" and display_header("budget_Q") == "Budget Q"
    assert display_header("budget_Mtok") == "Budget (Mtok)"
