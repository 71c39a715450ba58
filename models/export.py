"""One export layer: every table, figure and JSON file goes to disk through here.

* Atomic writes: each file is written to a temporary file in the same folder,
  flushed and fsync'ed, then ``os.replace``d over the target, so a crash
  leaves either the old file or the new one, never a partial file.
* Tables are pandas DataFrames written as CSV (always) and, on request,
  Parquet, LaTeX (booktabs, escaped, caption and label from the table name)
  and Markdown.
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

FORMATS = ("csv", "parquet", "latex", "md")
_UMASK = os.umask(0)
os.umask(_UMASK)
FIGURE_FORMATS = ("png", "pdf")


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
}


# Unicode that appears in the project's names (Greek letters, math signs),
# written so that pdflatex compiles the tables; other non-ASCII characters are
# left for XeLaTeX/LuaLaTeX.
_LATEX_UNICODE = {
    "θ": r"$\theta$", "Ψ": r"$\Psi$", "Φ": r"$\Phi$", "φ": r"$\varphi$", "σ": r"$\sigma$",
    "γ": r"$\gamma$", "η": r"$\eta$", "ρ": r"$\rho$", "α": r"$\alpha$", "Δ": r"$\Delta$",
    "π": r"$\pi$", "\u0304": "", "≤": r"$\le$", "≥": r"$\ge$", "−": "-", "–": "--", "—": "---",
    "×": r"$\times$", "²": r"$^2$", "≈": r"$\approx$", "∫": r"$\int$", "′": "'", "…": r"\ldots{}",
    "→": r"$\to$", "·": r"$\cdot$",
}


def latex_escape(text) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, _LATEX_UNICODE.get(ch, ch)) for ch in str(text))


def format_number(x, digits: int = 6) -> str:
    """Sensible fixed/scientific formatting: 6 significant digits."""
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


def to_latex(df: pd.DataFrame, name: str, caption: str | None = None) -> str:
    cols = list(df.columns)
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
                    else "l" for c in cols)
    lines = [
        r"\begin{table}[htbp]", r"\centering",
        r"\caption{" + latex_escape(caption or name.replace("_", " ")) + "}",
        r"\label{tab:" + "".join(ch if ch.isalnum() or ch in "-:" else "-" for ch in name) + "}",
        r"\begin{tabular}{" + align + "}", r"\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule",
    ]
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            cells.append(format_number(v) if not isinstance(v, str) else latex_escape(v))
        cells = [c if not c.startswith("-") or c == "-" else "$" + c + "$" for c in cells]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def to_markdown(df: pd.DataFrame, max_rows: int | None = None) -> str:
    cols = [str(c) for c in df.columns]
    esc = lambda s: str(s).replace("|", r"\|")  # noqa: E731
    out = ["| " + " | ".join(esc(c) for c in cols) + " |",
           "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"]
    rows = df if max_rows is None else df.head(max_rows)
    for row in rows.itertuples(index=False):
        out.append("| " + " | ".join(esc(format_number(v)) if not isinstance(v, str) else esc(v) for v in row) + " |")
    if max_rows is not None and len(df) > max_rows:
        out.append(f"\n*({len(df) - max_rows} more rows in the CSV)*")
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
