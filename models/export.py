"""One export layer: every table, figure and JSON file goes to disk through here.

* Atomic writes: each file is written to a temporary file in the same folder,
  flushed and fsync'ed, then ``os.replace``d over the target, so a crash
  leaves either the old file or the new one, never a partial file.
* Tables are pandas DataFrames written as CSV (always) and, on request,
  Parquet, LaTeX (booktabs + longtable, escaped, caption and label from the
  table name, split to fit a page) and Markdown; the CSV/Parquet keep every
  double, Markdown/LaTeX follow the display rules below (unit headers, 4
  significant digits, solver noise shown as 0).
* ``Writer`` records every file it wrote with its SHA-256 for the manifest.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from models.formats import FIGURE_FORMATS, FORMATS  # noqa: F401 (re-exported)

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path next to ``target``; on success replace target with it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)  # make the rename itself durable
        finally:
            os.close(dfd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


# ------------------------------------------------------------------ LaTeX
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "[": "{[}",  # after a row end or line break, \\[ would read an optional length
}


# Unicode that appears in the project's names (Greek letters, math signs),
# written so that pdflatex compiles the tables; other non-ASCII characters are
# left for XeLaTeX/LuaLaTeX.
_LATEX_UNICODE = {
    "θ": r"$\theta$", "Ψ": r"$\Psi$", "Φ": r"$\Phi$", "φ": r"$\varphi$", "σ": r"$\sigma$",
    "γ": r"$\gamma$", "η": r"$\eta$", "ρ": r"$\rho$", "α": r"$\alpha$", "Δ": r"$\Delta$",
    "π": r"$\pi$", "\u0304": "", "≤": r"$\le$", "≥": r"$\ge$", "−": "-", "–": "--", "—": "---",
    "×": r"$\times$", "²": r"$^2$", "≈": r"$\approx$", "∫": r"$\int$", "′": "'", "…": r"\ldots{}",
    "→": r"$\to$", "·": r"$\cdot$", "∈": r"$\in$", "∉": r"$\notin$", "∞": r"$\infty$", "±": r"$\pm$",
    "≠": r"$\ne$", "Σ": r"$\Sigma$", "∑": r"$\sum$", "β": r"$\beta$", "κ": r"$\kappa$", "λ": r"$\lambda$",
    "μ": r"$\mu$", "ψ": r"$\psi$", "τ": r"$\tau$", "ε": r"$\varepsilon$", "δ": r"$\delta$", "ω": r"$\omega$",
    "√": r"$\surd$", "∂": r"$\partial$", "½": r"$\frac12$", "³": r"$^3$", "¹": r"$^1$", "⁻": r"$^-$",
    "″": "''", "‘": "`", "’": "'", "“": "``", "”": "''", "✓": "yes", "✗": "no", "⩽": r"$\le$", "⩾": r"$\ge$",
    "Π": r"$\Pi$", "Ω": r"$\Omega$", "Λ": r"$\Lambda$", "Γ": r"$\Gamma$", "Θ": r"$\Theta$",
}


def _latex_char(ch: str) -> str:
    """One character for pdflatex: specials escaped, known Unicode as math,
    any other non-ASCII character as its code point (the table still compiles)."""
    if ch in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[ch]
    if ch in _LATEX_UNICODE:
        return _LATEX_UNICODE[ch]
    return ch if ord(ch) < 128 else f"{{[}}U+{ord(ch):04X}]"


def latex_escape(text) -> str:
    return "".join(_latex_char(ch) for ch in str(text))


def format_number(x, digits: int = 6) -> str:
    """Sensible fixed/scientific formatting: 6 significant digits (trailing zeros trimmed)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == 0:
            return "0"
        ax = abs(x)
        if 1e-3 <= ax < 1e6:
            return f"{x:.{digits}g}"
        return f"{x:.{max(digits - 3, 2)}e}"
    return str(x)


# ------------------------------------------------- display (Markdown, LaTeX)
# The CSV and Parquet files keep every double exactly (17 digits, machine
# column names).  Markdown and LaTeX are for reading, with three rules:
#
# * Headers with units: a column name's unit suffix becomes a unit in
#   parentheses (``fixed_fee_usd`` -> "Fixed fee ($)", ``input_usd_per_Mtok``
#   -> "Input ($/Mtok)", ``X_input_Mtok`` -> "X input (Mtok)",
#   ``profit_pct_of_full_menu`` -> "Profit (% of full menu)"), Greek names
#   become symbols (``theta`` -> θ); a name that already reads (has a space or
#   a parenthesis) is kept.
# * Significant figures: every float with DISPLAY_DIGITS significant digits,
#   trailing zeros kept (1.500, 33.67, 1.239e-07): one precision for a whole
#   table; scientific outside [1e-3, 1e6).  Integers as integers.
# * Solver noise: in a quantity column a value with |x| <= NOISE_RTOL x the
#   column's largest |x| is shown as 0 (and -0 as 0).  Why 1e-9: the project
#   judges every numeric quantity on the ∞-norm scale of its column
#   (verification rule, README) and its NLPs are verified to 1e-6 there, with
#   <= 1e-9 measured (budgets, plans, distributions); a value below 1e-9 of the
#   column's scale is below what any solve here resolves (an excluded type's
#   Q ~ 1e-15, t = -6.6e-17).  Not applied to columns whose name says they are
#   errors, tolerances, violations or raw check values (NOISE_EXEMPT words),
#   nor to the columns a table lists in ``df.attrs["display_exact"]`` (a
#   column whose values legitimately span more than 1e9).
DISPLAY_DIGITS = 4
NOISE_RTOL = 1e-9
NOISE_EXEMPT = ("err", "tol", "violation", "regret", "residual", "spread", "bound", "gap", "numeric", "reference",
                "order", "seconds", "kkt", "dev", "rate_", "diff", "change", "iter")

_GREEK = {"theta": "θ", "phi": "φ", "psi": "ψ", "sigma": "σ", "gamma": "γ", "eta": "η", "rho": "ρ",
          "alpha": "α", "Phi": "Φ", "Psi": "Ψ", "mu": "μ"}
_UNIT_SUFFIXES = (("_usd_per_Mtok", "$/Mtok"), ("_usd", "$"), ("_Mtok", "Mtok"), ("_pct", "%"))


# Money columns named without a unit suffix (the regimes' t, U, profit, … and their closed-form
# twins): transfers, utilities, costs and surpluses are in $ throughout (README "Model
# documentation": tokens in Mtok, costs in $/Mtok, transfers in $), so their headers say "$" too
# (stranger S9 D4: "U" next to "t ($)").  A qualifier after the name keeps the unit.
# "distribution" and "budget" are the distributions regime's profit columns (distribution_nlp, budget_closed_form;
# stranger17 F10); alone or with a qualifier only, so budget_usd, budget_Q, budget_Mtok keep their own reading.
_MONEY = ("t", "T", "U", "u_0", "C", "profit", "consumer_surplus", "total_surplus", "surplus", "rent",
          "distribution", "budget")
# Columns in $ per quality unit (docs/model.md "Units": θ and w are a buyer's value of one unit of Q;
# a marginal cost dC/dQ and a virtual value are in the same unit; stranger17 F10).  θ itself keeps
# its bare symbol in every table (its unit is stated once in the model document).
_PER_QUALITY = ("marginal_cost_dual", "marginal_cost_closed_form", "virtual_value", "virtual_value_ironed")
_MONEY_QUALIFIERS = ("closed_form", "continuous_cf", "discrete_cf", "continuous_closed_form",
                     "discrete_closed_form_menu", "numeric", "nlp", "over_fringe_only")


def _money(name: str) -> bool:
    return any(name == b or any(name == f"{b}_{q}" for q in _MONEY_QUALIFIERS) for b in _MONEY)


def display_header(col) -> str:
    """Readable header with its unit (see the rules above)."""
    name = str(col)
    if " " in name or "(" in name:
        return name
    unit = ""
    m = name.find("_pct_of_")
    if _money(name):
        unit = "$"
    elif name in _PER_QUALITY:
        unit = "$ per quality unit"
    elif m > 0:
        unit, name = "% of " + name[m + len("_pct_of_"):].replace("_", " "), name[:m]
    else:
        for suf, u in _UNIT_SUFFIXES:
            if name.endswith(suf) and len(name) > len(suf):
                unit, name = u, name[: -len(suf)]
                break
        else:
            for suf, u in _UNIT_SUFFIXES:  # a unit in the middle: t_usd_closed_form
                k = name.find(suf + "_")
                if k > 0:
                    unit, name = u, name[:k] + name[k + len(suf):]
                    break
    words = [_GREEK.get(w, w) for w in name.split("_") if w]
    if words and len(words[0]) >= 3 and words[0].isalpha() and words[0].islower() and words[0] not in _GREEK.values():
        words[0] = words[0][0].upper() + words[0][1:]
    text = " ".join(words)
    return f"{text} ({unit})" if unit else text


def _noise_exempt(col, df) -> bool:
    low = str(col).lower()
    return any(w in low for w in NOISE_EXEMPT) or col in df.attrs.get("display_exact", ())


def format_display(x, digits: int = DISPLAY_DIGITS) -> str:
    """One cell for reading: ``digits`` significant digits, trailing zeros kept."""
    if isinstance(x, (float, np.floating)) and math.isfinite(x) and x != 0:
        ax = abs(x)
        if 1e-3 <= ax < 1e6:
            s = f"{x:#.{digits}g}"
            return s[:-1] if s.endswith(".") else s
        return f"{x:.{digits - 1}e}"
    if isinstance(x, (float, np.floating)) and x == 0:
        return "0"
    return format_number(x)


def display_cells(df: pd.DataFrame, max_rows: int | None = None) -> list[list[str]]:
    """The cells of ``df`` as text, column by column (noise rule, precision)."""
    rows = df if max_rows is None else df.head(max_rows)
    cols = []
    for c in df.columns:
        s = df[c]
        vals = rows[c].tolist()
        if pd.api.types.is_float_dtype(s) and not _noise_exempt(c, df):
            fin = s.to_numpy(float)
            fin = fin[np.isfinite(fin)]
            floor = NOISE_RTOL * float(np.max(np.abs(fin))) if fin.size else 0.0
            vals = [0.0 if isinstance(v, float) and math.isfinite(v) and abs(v) <= floor else v for v in vals]
        cols.append([v if isinstance(v, str) else format_display(v) for v in vals])
    return [list(r) for r in zip(*cols)] if cols else [[] for _ in range(len(rows))]


# LaTeX page fit.  Width of a table from Computer Modern Roman 10 pt glyph
# widths (cmr10.tfm, pt; math minus/plus/times 7.78) scaled to the table's
# font size, plus 2·\tabcolsep per column; tables are set in \small (9 pt)
# with \tabcolsep = 4 pt.  A table wider than LATEX_TEXTWIDTH (345 pt, the
# text width of LaTeX's article class at 10 pt -- narrower than most journal
# layouts) is split into column groups stacked in the same float, each
# repeating the first column; a header or text cell wider than
# LATEX_CELL_MAX is broken into lines at spaces (a nested tabular, no
# package).  Tables longer than LATEX_LONG_ROWS rows are longtables (page
# breaks, repeated headers; counting rows, header lines and rules of every
# stacked column group; a \small page holds ~50).  Packages: booktabs, longtable.
_CMR10 = dict(zip("0123456789", [5.0] * 10))
_CMR10.update({".": 2.778, ",": 2.778, ":": 2.778, ";": 2.778, "-": 3.333, "(": 3.889, ")": 3.889, "[": 2.778,
               "]": 2.778, "/": 5.0, "%": 8.333, "$": 5.0, "+": 7.778, "=": 7.778, " ": 3.333, "&": 7.778,
               "#": 8.333, "_": 5.0, "'": 2.778, "*": 5.0, "<": 7.778, ">": 7.778, "|": 2.778, "!": 2.778,
               "?": 4.722, "@": 7.778, "~": 5.0, "^": 5.0, "{": 5.0, "}": 5.0, "\\": 5.0, '"': 5.0})
_CMR10.update(dict(zip("abcdefghijklmnopqrstuvwxyz",
                       [5.0, 5.556, 4.444, 5.556, 4.444, 3.056, 5.0, 5.556, 2.778, 3.056, 5.278, 2.778, 8.333,
                        5.556, 5.0, 5.556, 5.278, 3.917, 3.944, 3.889, 5.556, 5.278, 7.222, 5.278, 5.278, 4.444])))
_CMR10.update(dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                       [7.5, 7.083, 7.222, 7.639, 6.806, 6.528, 7.847, 7.5, 3.611, 5.139, 7.778, 6.25, 9.167,
                        7.5, 7.778, 6.806, 7.778, 7.361, 5.556, 7.222, 7.5, 7.5, 10.278, 7.5, 7.5, 6.111])))
_WIDE_DEFAULT = 7.778  # anything else (Greek, ≤, ×, …): as wide as a math operator
LATEX_TEXTWIDTH = 345.0
LATEX_MARGIN = 1.10
LATEX_FONT_PT = 9.0  # \small in a 10 pt document
LATEX_TABCOLSEP = 4.0
LATEX_CELL_MAX = 110.0
LATEX_HEAD_MIN = 45.0  # a wrapped header line may be this wide even over narrow cells
LATEX_LONG_ROWS = 40


def text_width_pt(text: str, font_pt: float = LATEX_FONT_PT) -> float:
    """Estimated width of plain text (before escaping) in Computer Modern at ``font_pt``."""
    w = 0.0
    s = str(text)
    for i, ch in enumerate(s):
        if ch == "-" and i == 0 and len(s) > 1:
            w += 7.778  # leading minus of a number: math minus
        else:
            w += _CMR10.get(ch, _WIDE_DEFAULT)
    # cmr9 (\small) is relatively wider than cmr10 scaled (digits 4.6 pt, not
    # 4.5), and LATEX_MARGIN covers the rest of the estimate's error
    # (measured overfull boxes of 1-15 pt at 1.0 and 12.8 pt at 1.06 against
    # pdflatex, the latter on text-heavy verification index cells; 1.10 none)
    return w * font_pt / 10.0 * (1.0 + 0.1 * (10.0 - font_pt) / 4.5) * LATEX_MARGIN


def _wrap(text: str, max_pt: float) -> list[str]:
    """Break text at spaces into lines no wider than max_pt (a word longer stays whole)."""
    words = str(text).split(" ")
    lines, cur = [], ""
    for wd in words:
        cand = (cur + " " + wd) if cur else wd
        if cur and text_width_pt(cand) > max_pt:
            lines.append(cur)
            cur = wd
        else:
            cur = cand
    lines.append(cur)
    return lines


def _latex_cell(lines: list[str], align: str, number: bool, pos: str = "t") -> str:
    def one(s):
        e = latex_escape(s)
        return "$" + e + "$" if number and s.startswith("-") and s != "-" else e
    if len(lines) == 1:
        return one(lines[0])
    return r"\begin{tabular}[" + pos + "]{@{}" + align + "@{}}" + r"\\".join(one(s) for s in lines) + r"\end{tabular}"


def _column_groups(widths: list[float], budget: float) -> list[list[int]]:
    """Split columns 1.. into groups that fit with column 0 repeated."""
    if sum(widths) <= budget or len(widths) <= 1:
        return [list(range(len(widths)))]
    groups, cur, used = [], [0], widths[0]
    for j in range(1, len(widths)):
        if len(cur) > 1 and used + widths[j] > budget:
            groups.append(cur)
            cur, used = [0], widths[0]
        cur.append(j)
        used += widths[j]
    groups.append(cur)
    return groups


def latex_layout(df: pd.DataFrame):
    """(header lines, cell lines, alignments, per-column widths in pt, column groups)."""
    cols = list(df.columns)
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols]
    align = ["r" if n else "l" for n in numeric]
    cells = display_cells(df)
    body = [[_wrap(v, LATEX_CELL_MAX) if not numeric[j] else [v] for j, v in enumerate(r)] for r in cells]
    cw = [max([text_width_pt(s) for r in body for s in r[j]] + [0.0]) for j in range(len(cols))]
    heads = [[display_header(c)] for c in cols]
    natural = sum(max(w, text_width_pt(h[0])) + 2 * LATEX_TABCOLSEP for w, h in zip(cw, heads))
    if natural > LATEX_TEXTWIDTH:  # too wide on one header line: headers wrap to their column's cells
        heads = [_wrap(h[0], max(w, LATEX_HEAD_MIN)) for w, h in zip(cw, heads)]
    widths = [max([w] + [text_width_pt(s) for s in h]) + 2 * LATEX_TABCOLSEP for w, h in zip(cw, heads)]
    return heads, body, align, numeric, widths, _column_groups(widths, LATEX_TEXTWIDTH)


def to_latex(df: pd.DataFrame, name: str, caption: str | None = None) -> str:
    """A booktabs table that fits a 345 pt text width (see the page-fit rules above)."""
    heads, body, align, numeric, widths, groups = latex_layout(df)
    label = "tab:" + "".join(ch if ch.isalnum() or ch in "-:" else "-" for ch in name)
    cap = latex_escape(caption or name.replace("_", " "))
    # stacked column groups add up: their rows, header lines and rules (~3 rows)
    height = sum(sum(max(len(r[j]) for j in g) for r in body) + max(len(heads[j]) for j in g) + 3
                 for g in groups)
    long = height > LATEX_LONG_ROWS
    lines = []
    if not long:
        lines += [r"\begin{table}[htbp]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
                  r"\caption{" + cap + "}", r"\label{" + label + "}"]
    else:
        lines += [r"\begingroup", r"\small", r"\setlength{\tabcolsep}{4pt}"]
    for g, cols in enumerate(groups):
        spec = "".join(align[j] for j in cols)
        header = " & ".join(_latex_cell(heads[j], "c", False, "b") for j in cols) + r" \\"
        part = f" (columns {g + 1} of {len(groups)})" if len(groups) > 1 else ""
        if long:
            lines += [r"\begin{longtable}{" + spec + "}",
                      r"\caption{" + cap + part + "}" + (r"\label{" + label + "}" if g == 0 else "") + r" \\",
                      r"\toprule", header, r"\midrule", r"\endfirsthead",
                      r"\toprule", header, r"\midrule", r"\endhead", r"\bottomrule", r"\endlastfoot"]
        else:
            if g > 0:
                lines.append(r"\par\medskip")
            lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", header, r"\midrule"]
        for r in body:
            lines.append(" & ".join(_latex_cell(r[j], align[j], numeric[j]) for j in cols) + r" \\")
        if long:
            lines.append(r"\end{longtable}")
        else:
            lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [r"\endgroup" if long else r"\end{table}", ""]
    return "\n".join(lines)


def latex_width_pt(df: pd.DataFrame) -> float:
    """Estimated width (pt) of the widest column group to_latex sets for df."""
    *_, widths, groups = latex_layout(df)
    return max(sum(widths[j] for j in g) for g in groups)


# A preview (to_markdown with max_rows, the run report) of a menu whose
# lowest types are excluded would show only those rows.  Where the table has a
# quality column (the first of PREVIEW_QUALITY present), a leading block of
# rows whose quality displays as 0 (noise rule) is one line and the preview
# starts at the first served row.
PREVIEW_QUALITY = ("Q", "V")


def to_markdown(df: pd.DataFrame, max_rows: int | None = None) -> str:
    cols = [display_header(c) for c in df.columns]
    esc = lambda s: str(s).replace("|", r"\|")  # noqa: E731
    out = ["| " + " | ".join(esc(c) for c in cols) + " |",
           "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                          else "---" for c in df.columns) + "|"]
    skip = 0
    qcol = next((c for c in PREVIEW_QUALITY if c in df.columns and pd.api.types.is_float_dtype(df[c])), None)
    if max_rows is not None and len(df) > max_rows and qcol is not None:
        j = list(df.columns).index(qcol)
        shown = [r[j] for r in display_cells(df)]
        while skip < len(shown) and shown[skip] == "0":
            skip += 1
        if skip == len(shown):
            skip = 0
    for row in display_cells(df.iloc[skip:], max_rows):
        out.append("| " + " | ".join(esc(v) for v in row) + " |")
    if skip:
        out.insert(2, f"| *rows 1–{skip}: excluded types ({qcol} = 0), in the CSV* |" + " |" * (len(cols) - 1))
    if max_rows is not None and len(df) - skip > max_rows:
        out.append(f"\n*({len(df) - skip - max_rows} more rows in the CSV)*")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- writer
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Writer:
    """Writes into one output folder and remembers every file it wrote."""

    def __init__(self, out_dir: str | Path, formats=("csv",), figure_formats=("png",)):
        self.out = Path(out_dir)
        self.formats = tuple(dict.fromkeys(("csv",) + tuple(formats)))
        self.figure_formats = tuple(figure_formats)
        self.files: dict[str, dict] = {}

    def _record(self, path: Path, kind: str) -> Path:
        rel = str(path.relative_to(self.out))
        self.files[rel] = {"kind": kind, "sha256": sha256_file(path), "bytes": path.stat().st_size}
        return path

    def table(self, df: pd.DataFrame, name: str, caption: str | None = None, subdir: str = "") -> list[Path]:
        base = self.out / subdir if subdir else self.out
        written = []
        for fmt in self.formats:
            if fmt == "csv":
                p = base / f"{name}.csv"
                atomic_write_bytes(p, df.to_csv(index=False, float_format="%.17g").encode())
            elif fmt == "parquet":
                p = base / f"{name}.parquet"
                with atomic_path(p) as tmp:
                    df.to_parquet(tmp, index=False)
            elif fmt == "latex":
                p = base / f"{name}.tex"
                atomic_write_text(p, to_latex(df, name, caption))
            elif fmt == "md":
                p = base / f"{name}.md"
                atomic_write_text(p, (f"**{caption}**\n\n" if caption else "") + to_markdown(df))
            else:
                raise ValueError(fmt)
            written.append(self._record(p, f"table/{fmt}"))
        return written

    def json(self, obj, name: str) -> Path:
        p = self.out / name
        atomic_write_text(p, json.dumps(obj, indent=2, default=_json_default) + "\n")
        return self._record(p, "json")

    def text(self, text: str, name: str, kind: str = "text") -> Path:
        p = self.out / name
        atomic_write_text(p, text)
        return self._record(p, kind)

    def figure(self, fig, name: str, subdir: str = "figures") -> list[Path]:
        written = []
        for fmt in self.figure_formats:
            p = self.out / subdir / f"{name}.{fmt}"
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight")
            atomic_write_bytes(p, buf.getvalue())
            written.append(self._record(p, f"figure/{fmt}"))
        return written


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
