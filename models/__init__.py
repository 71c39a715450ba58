"""LLM-pricing screening models (Bergemann, Bonatti & Smolin) as Pyomo NLPs.

The model, its units and every closed form: ``docs/model.md``.

Layout
------
- ``models.api``          -- the public Python API (load, solve in memory, tables, figures).
- ``models.solver``       -- the only module that knows about Ipopt routes.
- ``models.scenario``     -- scenario files (TOML): loading and validation.
- ``models.closed_form``  -- closed forms; never imports Pyomo.
- ``models.cost``, ``models.budgets``, ... -- one module per regime.
- ``models.export``       -- every table and figure goes to disk through here.

Importing ``models`` has one side effect: when the project-local PyNumero
library folder exists (``<clone>/.pyomo/lib``, built by ``tools/setup.sh``) and
``PYOMO_CONFIG_DIR`` is unset, it points ``PYOMO_CONFIG_DIR`` there.
"""
import os as _os
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.2.0.dev0"  # the one version number (pyproject.toml reads it from here)

# PyNumero looks for libpynumero_ASL.so under $PYOMO_CONFIG_DIR/lib.  The
# set-up script builds it into the project-local .pyomo folder; point Pyomo
# there unless the user chose another folder.  Must happen before Pyomo is
# imported anywhere.  Candidates: the clone this package lives in (a checkout
# or `pip install -e .`), then the environment's prefix (a copy placed there
# for a non-editable install, see README "Install as a package").
_CANDIDATES = (_Path(__file__).resolve().parent.parent / ".pyomo", _Path(_sys.prefix) / ".pyomo")
_LOCAL_PYOMO = next((c for c in _CANDIDATES if (c / "lib").is_dir()), _CANDIDATES[0])  # models.solver uses it
if "PYOMO_CONFIG_DIR" not in _os.environ and (_LOCAL_PYOMO / "lib").is_dir():
    _os.environ["PYOMO_CONFIG_DIR"] = str(_LOCAL_PYOMO)


def data_dir() -> _Path:
    """Folder of the shipped scenario files: ``<clone>/data`` in a checkout or an
    editable install, ``<prefix>/share/llm-pricing/data`` after ``pip install .``."""
    for cand in (_Path(__file__).resolve().parent.parent / "data",
                 _Path(_sys.prefix) / "share" / "llm-pricing" / "data"):
        if (cand / "default.toml").is_file():
            return cand
    raise FileNotFoundError("the shipped scenarios (data/default.toml) are neither next to the package "
                            f"nor in {_Path(_sys.prefix) / 'share' / 'llm-pricing' / 'data'}")
