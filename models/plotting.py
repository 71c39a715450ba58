"""One style for every figure: closed form as a line, numeric as markers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def new(ncols: int = 1, nrows: int = 1, size=(6.0, 4.0)):
    fig, ax = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=True)
    return fig, ax


def closed_form_line(ax, x, y, label="closed form", **kw):
    ax.plot(x, y, "-", lw=1.6, label=label, **kw)


def numeric_markers(ax, x, y, label="NLP", **kw):
    ax.plot(x, y, "o", ms=4, mfc="none", label=label, **kw)


def labels(ax, xlabel, ylabel, title=None, legend=True):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)


def close(fig):
    plt.close(fig)
