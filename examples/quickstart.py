# %% [markdown]
# # Quick start: an LLM price sheet from the screening model
#
# The walk a pricing analyst takes with `models.api` (the model, symbols and
# units: `docs/model.md`).  Everything runs in memory; nothing is written to disk.
# Tokens are in millions (Mtok), marginal costs in $ per Mtok, transfers in $.
# This file is the source of `quickstart.ipynb` (`python examples/build_notebook.py`);
# run it as a script or open the notebook.  About 10 s.

# %%
# %matplotlib inline
import sys
from pathlib import Path

try:
    import models  # installed (pip install -e .) or run from the clone's root
except ImportError:  # a clone without `pip install -e .`: its root is examples/..
    here = Path(__file__).parent if "__file__" in globals() else Path.cwd()  # script / notebook
    sys.path.insert(0, str(here.resolve().parent))
    import models

import numpy as np
from models import api, plotting
from models.closed_form import budgets as cb

print("llm-pricing", models.__version__)

# %% [markdown]
# ## 1. A technology with API-like prices, and a type distribution
#
# Two token classes with a CES gain (input, output) and one fine-tuning class.
# `cost` is the seller's marginal cost in $/Mtok (an API list price is what the
# model *computes*, not an input).  Buyers' aggregate type θ (their value of
# quality, in $ per unit of Q) is uniform on [0, 1], discretised into 40 types.

# %%
scn = api.scenario_from_dict({
    "name": "quickstart",
    "technology": {
        "sigma": 0.5, "rho": 0.5,
        "tokens": [{"name": "input", "weight": 0.5, "cost": 0.30},
                   {"name": "output", "weight": 0.5, "cost": 1.20}],
        "fine_tuning": {"gamma": 0.2, "rho": 0.0,
                        "classes": [{"name": "ft", "weight": 1.0, "cost": 3.00}]},
    },
    "types": {"distribution": "uniform", "low": 0.0, "high": 1.0, "n": 40},
    "regimes": {"budgets": {"ic": "local", "lemma_cells": 0}},
})
scn.technology.token_names, scn.n_types

# %% [markdown]
# ## 2. Solve and verify the regime
#
# `solve_regime` builds the menu NLP, solves it with Ipopt, audits it and
# compares it with the closed form.  Every verification row must pass.

# %%
res = api.solve_regime(scn, "budgets")
ver = res.verification
print(res.status(), "-", len(ver), "verification rows, all passed:", bool(ver["passed"].all()))
assert res.verified
# relative rows: rel_err against its tolerance; bound rows (one-sided limits, e.g. the
# worst IC gain) compare `numeric` with `tolerance`, so their rel_err is not an error
rel = ver[ver["kind"] == "relative"]
rel.groupby("check")[["rel_err", "tolerance"]].max().head(8)

# %% [markdown]
# ## 3. The optimal menu against its closed form
#
# `solve_budget_menu` keeps the Pyomo model.  The discrete closed form
# (Mussa–Rosen with ironing) gives Q exactly; the NLP matches it to solver
# accuracy.  Low types are excluded (Q = 0).

# %%
bm = api.solve_budget_menu(scn)
menu = bm.table()
err = np.max(np.abs(menu["Q"] - menu["Q_closed_form"])) / menu["Q_closed_form"].max()
print(f"profit per buyer ${bm.profit:.5f}; max relative error of Q vs closed form {err:.1e}")
assert err < 1e-6  # the discrete closed form is exact; Ipopt is asked for tol = 1e-12
menu[["theta", "mass", "Q", "Q_closed_form", "X_input_Mtok", "X_output_Mtok", "Z_ft_Mtok", "t_usd"]].tail(5)

# %% [markdown]
# ## 4. The price sheet
#
# The menu as tariffs: a fixed fee plus every token class at a multiple of
# marginal cost.  The per-token markup falls with the plan (quantity
# discounts) while the fee rises.

# %%
sheet = bm.price_sheet()
print("two-part tariffs valid (theta / virtual value non-increasing):", sheet.attrs["valid"])
sheet.iloc[:: max(len(sheet) // 6, 1)]

# %% [markdown]
# ## 5. A plot
#
# Regime figures are matplotlib `Figure` objects (`res.figures`); the same
# style is available for your own plots.

# %%
fig, ax = plotting.new()
plotting.closed_form_line(ax, menu["theta"], menu["Q_closed_form"], "closed form")
plotting.numeric_markers(ax, menu["theta"], menu["Q"], "NLP")
plotting.labels(ax, "type θ", "quality Q", "Optimal menu of token budgets")
fig

# %% [markdown]
# ## 6. Change a parameter and re-solve
#
# Output tokens become twice as expensive to serve.  Quality falls for every
# served type and so does profit; the $/Mtok prices rise.

# %%
scn2 = api.with_changes(scn, {"technology.tokens[1].cost": 2.40})
bm2 = api.solve_budget_menu(scn2)
print(f"profit ${bm.profit:.5f} -> ${bm2.profit:.5f}")
assert bm2.profit < bm.profit
both = sheet[["theta", "output_usd_per_Mtok"]].merge(
    bm2.price_sheet()[["theta", "output_usd_per_Mtok"]], on="theta", suffixes=("", "_after"))
both.tail(4)

# %% [markdown]
# ## 7. Which incentive constraints bind: the duals
#
# With local IC the program has one downward IC row per adjacent pair.  Its
# multiplier (∂profit/∂rhs) is minus the mass of all types at or above it:
# raising that type's transfer floor by $1 lowers the transfers of every
# type above it by $1.  The duals from Ipopt show exactly that.

# %%
ic = bm.binding_ic()
theta, mass = scn.discrete_types()
above = 1.0 - np.concatenate([[0.0], np.cumsum(mass)[:-1]])  # mass of types >= k
expected = -above[ic["type"].to_numpy()]
print(f"{len(ic)} binding rows; max |dual - (-mass above)| = {np.max(np.abs(ic['dual'] - expected)):.1e}")
assert np.allclose(ic["dual"], expected, atol=1e-6)
ic.head(6)
