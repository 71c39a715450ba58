"""Build examples/quickstart.ipynb (no outputs) from examples/quickstart.py.

    python examples/build_notebook.py

``quickstart.py`` is the one source: cells start at ``# %%`` lines
(``# %% [markdown]`` cells are Markdown, each line's leading ``# `` removed);
``# %matplotlib inline`` becomes the magic in the notebook.  The test suite
checks that the stored notebook is what this builds and executes it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCE, NOTEBOOK = HERE / "quickstart.py", HERE / "quickstart.ipynb"


def cells(text: str) -> list[tuple[str, str]]:
    out, kind, buf = [], None, []
    for line in text.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                out.append((kind, "\n".join(buf).strip("\n")))
            kind, buf = ("markdown" if "[markdown]" in line else "code"), []
            continue
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        elif line.strip() == "# %matplotlib inline":
            line = "%matplotlib inline"
        buf.append(line)
    if kind is not None:
        out.append((kind, "\n".join(buf).strip("\n")))
    return out


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, src) in enumerate(cells(SOURCE.read_text())):
        cell = nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        cell["id"] = f"cell-{i:02d}"  # stable ids: the stored notebook is reproducible
        nb.cells.append(cell)
    return nb


def render(nb) -> str:
    return nbformat.writes(nb) + "\n"


if __name__ == "__main__":
    NOTEBOOK.write_text(render(build()))
    print(f"wrote {NOTEBOOK}", file=sys.stderr)
