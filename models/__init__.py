"""LLM-pricing screening models (Bergemann, Bonatti & Smolin) as Pyomo NLPs.

Layout
------
- ``models.solver``       -- the only module that knows about Ipopt routes.
- ``models.scenario``     -- scenario files (TOML): loading and validation.
- ``models.closed_form``  -- closed forms; never imports Pyomo.
- ``models.cost``, ``models.budgets``, ... -- one module per regime.
- ``models.export``       -- every table and figure goes to disk through here.
"""
import os as _os
from pathlib import Path as _Path

# PyNumero looks for libpynumero_ASL.so under $PYOMO_CONFIG_DIR/lib.  The
# set-up script builds it into the project-local .pyomo folder; point Pyomo
# there unless the user chose another folder.  Must happen before Pyomo is
# imported anywhere.
_LOCAL_PYOMO = _Path(__file__).resolve().parent.parent / ".pyomo"
if "PYOMO_CONFIG_DIR" not in _os.environ and (_LOCAL_PYOMO / "lib").is_dir():
    _os.environ["PYOMO_CONFIG_DIR"] = str(_LOCAL_PYOMO)

__version__ = "0.1.0"
