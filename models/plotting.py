"""One style for every figure: closed form as a line, numeric as markers.

Figures are plain :class:`matplotlib.figure.Figure` objects made without
``pyplot``: importing this module selects no backend and registers nothing
globally, so it works the same in a notebook (``%matplotlib inline``: a figure
shows when it is the cell's value or passed to ``display``), in a script, on a
headless server and in Dask workers.  Saving (``fig.savefig``) needs no
backend either: matplotlib picks the Agg/PDF canvas from the file format.
Since pyplot never tracks these figures there is no "more than 20 figures"
warning; :func:`close` releases a figure's drawing memory after it was written.
"""
from __future__ import annotations

from matplotlib.figure import Figure


def new(ncols: int = 1, nrows: int = 1, size=(6.0, 4.0)):
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    ax = fig.subplots(nrows, ncols, squeeze=True)
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


def close(fig) -> None:
    """Release a figure once it has been written.  A figure made by pyplot
    (e.g. a user's ``plt.subplots()``) is closed through pyplot; one made by
    :func:`new` is cleared (pyplot does not know it, so nothing else holds it)."""
    manager = getattr(fig.canvas, "manager", None)
    if manager is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    else:
        fig.clear()
