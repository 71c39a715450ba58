"""Console command ``llm-pricing`` (``pip install .``): the same as ``python solve.py``.

``solve.py`` stays the one command-line implementation; this entry point only
imports it (it ships as a top-level module, see ``pyproject.toml``), adds
``--version``, and, after a non-editable install where ``data/`` is not next to
``solve.py``, points its default scenario at the installed copy
(:func:`models.data_dir`).
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        from models import __version__

        print(f"llm-pricing {__version__}")
        return 0
    import solve

    if not solve.DEFAULT_SCENARIO.is_file():  # non-editable install: data/ lives under <prefix>/share
        from models import data_dir

        solve.ROOT, solve.DEFAULT_SCENARIO = data_dir().parent, data_dir() / "default.toml"
    return solve.main(argv)


if __name__ == "__main__":
    sys.exit(main())
