"""Registry of regimes: name -> module with validate_options() and run()."""
from __future__ import annotations

import importlib

# order = order of execution and of tables in reports
_MODULES = {
    "cost": "models.cost",
    "budgets": "models.budgets",
    "distributions": "models.distributions",
    "competition": "models.competition",
    "plans": "models.plans",
}
NAMES = tuple(_MODULES)


def module(name: str):
    return importlib.import_module(_MODULES[name])


def validate(name, v, opts, path, tech):
    return module(name).validate_options(v, opts, path, tech)
