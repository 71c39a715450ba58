"""Registry of regimes: name -> module with validate_options() and run().

A scenario may hold a regime more than once: ``[regimes.two_types]`` with
``regime = "distributions"`` is an *instance* of the distributions regime under
its own name (the table name; ``regime`` names the module, default = the table
name).  Each instance is validated by its module, run, and written under its
own name (output folder, ``regime`` column of verification.csv, report line).
"""
from __future__ import annotations

import importlib

# order = order of execution and of tables in reports
_MODULES = {
    "cost": "models.cost",
    "budgets": "models.budgets",
    "multidim": "models.multidim",
    "distributions": "models.distributions",
    "competition": "models.competition",
    "versions": "models.competition.versions",
    "plans": "models.plans",
}
NAMES = tuple(_MODULES)


def module(name: str):
    return importlib.import_module(_MODULES[name])


def validate(name, v, opts, path, tech):
    return module(name).validate_options(v, opts, path, tech)


def kind(scn, name: str) -> str:
    """The regime (module name) of instance ``name`` of scenario ``scn``."""
    return getattr(scn, "regime_kinds", {}).get(name, name)


def ordered(scn, only=None) -> list[str]:
    """The scenario's regime instances in execution order: by regime (NAMES order),
    then as they appear in the file; ``only`` (instance names) filters."""
    names = list(scn.regimes)
    names = [n for n in names if not only or n in only]
    return sorted(names, key=lambda n: (NAMES.index(kind(scn, n)), names.index(n)))
