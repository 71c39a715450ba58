"""Public Python API: the jobs a user does from Python, nothing written to disk.

    >>> from models import api
    >>> scn = api.load_scenario(overrides={"types.n": 20})   # data/default.toml, 20 types
    >>> res = api.solve_regime(scn, "budgets")              # solve + verify in memory
    >>> res.verified, sorted(res.tables)[:2]
    (True, ['audit', 'convergence'])

What is here (the model and its units: ``docs/model.md``):

- **Scenarios**: :func:`load_scenario` (a TOML file, or the shipped default),
  :func:`scenario_from_dict` (build one in Python), :func:`with_changes`
  (change parameters by dotted path, re-validated: the same paths as sweeps).
- **Solve a regime in memory**: :func:`solve_regime` returns the regime's
  :class:`~models.results.RegimeResult`: ``.tables`` (DataFrames: menus,
  price sheets, audits ...), ``.verification`` (one row per compared quantity),
  ``.figures`` (matplotlib ``Figure`` objects), ``.solves`` (Ipopt results),
  ``.verified``.  :func:`solve` does several regimes.
- **The budget menu as an object**: :func:`solve_budget_menu` returns a
  :class:`BudgetMenu` with the Pyomo model, the solve result (duals), the menu
  table against the closed form, the price sheets and the IC/IR rows with
  their multipliers (which incentive constraints bind).
- **Price sheets**: :func:`price_sheet` turns any menu of token budgets into
  the two tariffs the project exports (cost-based; fixed fee + $/Mtok per token
  class).

No global side effects: importing this module does not select a matplotlib
backend or touch files; figures are plain ``Figure`` objects (see
``models/plotting.py``).  Writing everything to disk is ``models.run.run_scenario``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models import data_dir
from models import scenario as _scenario
from models.results import VERIFICATION_COLUMNS, RegimeResult
from models.cli import set_verbosity  # noqa: F401  (progress lines through logging, as solve.py)
from models.scenario import Scenario, ScenarioError

__all__ = ["Scenario", "ScenarioError", "RegimeResult", "BudgetMenu", "load_scenario", "shipped_scenarios",
           "set_verbosity",
           "scenario_from_dict", "with_changes", "solve_regime", "solve", "verification", "solve_budget_menu",
           "price_sheet", "DEFAULT_SCENARIO"]

DEFAULT_SCENARIO = "default.toml"


# ---------------------------------------------------------------- scenarios
def shipped_scenarios() -> list[Path]:
    """The scenario files that come with the project (``data/*.toml``)."""
    return sorted(data_dir().glob("*.toml"))


def load_scenario(path: str | Path | None = None, overrides: dict | None = None) -> Scenario:
    """Read and validate a scenario file; ``None`` = the shipped ``data/default.toml``.

    ``overrides`` maps dotted paths to values, e.g. ``{"types.n": 50,
    "technology.tokens[1].cost": 3.0}``.  Invalid input raises
    :class:`ScenarioError` naming the field and the allowed range."""
    return _scenario.load(data_dir() / DEFAULT_SCENARIO if path is None else Path(path), overrides)


def scenario_from_dict(raw: dict, name: str | None = None, base: str | Path | None = None) -> Scenario:
    """Build a scenario from a nested dict with the TOML file's structure
    (``base``: folder against which a discrete type file is resolved)."""
    raw = dict(raw)
    if name is not None:
        raw["name"] = name
    return _scenario.from_dict(raw, source=raw.get("name", "<scenario>"),
                               base=Path(base) if base is not None else None)


def with_changes(scn: Scenario, changes: dict) -> Scenario:
    """A new, re-validated scenario with parameters changed by dotted path
    (``{"technology.sigma": 0.4, "regimes.competition.c_F": 0.12}``)."""
    import copy

    raw = copy.deepcopy(scn.raw)
    for k, v in changes.items():
        _scenario.set_path(raw, k, v)
    base = Path(scn.path).parent if scn.path else None
    return _scenario.from_dict(raw, source=str(scn.path) if scn.path else scn.name, base=base)


# ------------------------------------------------------------ solve in memory
def _context(scn: Scenario, route: str | None, progress, figures: bool):
    from models import run, solver

    return run.Context(route=solver.pick_route(route or scn.solver["route"]), options=scn.solver["options"],
                       user_options=scn.solver["user_options"],
                       progress=progress if progress is not None else run._info, figures=figures)


def solve_regime(scn: Scenario, name: str, *, route: str | None = None, progress=None,
                 figures: bool = True) -> RegimeResult:
    """Solve and verify one regime of ``scn`` in memory (no file is written).

    ``progress``: a callable receiving one line per solve (default: the standard
    :mod:`logging` logger ``models.run`` at INFO, silent unless logging is
    configured -- ``api.set_verbosity("normal")`` shows what ``solve.py`` shows,
    ``"verbose"`` adds Ipopt's iterations).  ``figures=False`` skips drawing.
    A solve that does not converge never yields passed verification rows."""
    from models import run, solver

    if name not in scn.regimes:
        raise ScenarioError(f"regime {name!r}: not in scenario {scn.name}; allowed: {', '.join(scn.regimes)}")
    ctx = _context(scn, route, progress, figures)
    try:
        return run.run_regime(scn, name, ctx)
    except solver.NotConverged as exc:  # the same record run_scenario keeps
        return RegimeResult(name, solves={"failed": exc.result}, error=str(exc))


def solve(scn: Scenario, regimes: list[str] | None = None, **kw) -> dict[str, RegimeResult]:
    """Every regime of ``scn`` (or those named), in the project's order."""
    from models import regimes as registry

    names = registry.ordered(scn, regimes)
    return {n: solve_regime(scn, n, **kw) for n in names}


def verification(results: dict[str, RegimeResult] | RegimeResult) -> pd.DataFrame:
    """All verification rows (columns as in ``verification.csv``)."""
    if isinstance(results, RegimeResult):
        return results.verification
    frames = [r.verification for r in results.values()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=VERIFICATION_COLUMNS)


# ------------------------------------------------------------ price sheets
def price_sheet(tech, menu, kind: str = "two-part") -> pd.DataFrame:
    """The price sheet of a menu of token budgets (a ``closed_form.budgets.Menu``,
    e.g. ``BudgetMenu.menu`` or ``closed_form.budgets.discrete_menu(...)``), one
    row per served plan.

    ``kind="two-part"``: a fixed fee (``fixed_fee_usd``) plus every token class
    at ``price_multiplier`` × marginal cost (columns ``<class>_usd_per_Mtok``);
    exact only where θ/φ̄ is non-increasing, and on a discrete grid up to a small
    regret (see docs/model.md, tariffs).  ``kind="cost-based"``: pay
    ``total_price_usd`` for a dollar budget ``budget_usd`` spent at marginal cost
    (always exact)."""
    # One place decides who is served and prices the plans: the regime's own
    # builder (models.budgets.tariffs, closed_form.budgets.served), so a sheet
    # from Python is the sheet the CLI exports and checks.
    from models.budgets import tariffs

    if kind not in ("two-part", "cost-based"):
        raise ValueError(f"kind must be 'two-part' or 'cost-based', got {kind!r}")
    sheets = tariffs(tech, menu)
    return sheets["tariff_two_part" if kind == "two-part" else "tariff_cost_based"]


# --------------------------------------------------------- the budget menu
@dataclass
class BudgetMenu:
    """One solved menu of token budgets, with the Pyomo model kept for inspection."""

    technology: object
    model: object  # the Pyomo ConcreteModel (models.budgets.build_menu), at Ipopt's point
    result: object  # models.solver.SolveResult: status, objective, iterations, duals
    menu: object  # closed_form.budgets.Menu: Ipopt's menu polished as the budgets regime does (what it exports)
    reference: object  # the exact discrete closed form (closed_form.budgets.discrete_menu)
    ic: str
    ipopt_menu: object = None  # the menu read back from the model before the polish (the point of .model's rows)

    @property
    def converged(self) -> bool:
        return bool(self.result.ok)

    @property
    def profit(self) -> float:
        return self.menu.profit(self.technology)

    def table(self) -> pd.DataFrame:
        """Per type: θ, mass, Q (and its closed form), tokens X_j, Z_k in Mtok,
        transfer t, cost, U, markup, fee, ironed virtual value -- the table the
        budgets regime exports (``menu.csv``): the polished menu, with exact zeros
        on excluded types (Ipopt's raw point, ``ipopt_menu``, leaves them at
        ~1e-15 with t slightly negative)."""
        from models.budgets import menu_table

        return menu_table(self.technology, self.menu, self.reference)

    def price_sheet(self, kind: str = "two-part") -> pd.DataFrame:
        return price_sheet(self.technology, self.menu, kind)

    def constraints(self) -> pd.DataFrame:
        """Every IR/IC/monotonicity row of the model (with ``ic="all-pairs"`` every
        ordered IC pair: those row generation never added have multiplier 0): the
        types it links, its slack (≥ 0 when satisfied) and its multiplier ``dual`` =
        ∂profit/∂rhs (the project's dual convention: raising the right-hand side
        of a ``≥`` row tightens it, so a binding row has ``dual ≤ 0``)."""
        import pyomo.environ as pyo

        duals = self.result.duals
        rows = []
        m = self.model
        th = self.menu.theta
        for cname, kind in (("ir", "IR"), ("ic_down", "IC down"), ("ic", "IC"), ("mono", "monotone Q")):
            comp = getattr(m, cname, None)
            if comp is None:
                continue
            for idx, con in comp.items():
                k, l = (idx if isinstance(idx, tuple) else
                        (idx, idx if kind == "IR" else idx - 1))
                body = pyo.value(con.body)
                lo = pyo.value(con.lower) if con.has_lb() else -np.inf
                rows.append({"row": f"{cname}[{idx}]", "kind": kind, "type": int(k), "theta": float(th[k]),
                             "versus": int(l), "theta_versus": float(th[l]),
                             "slack": float(body - lo), "dual": float(duals.get(con, np.nan))})
        if getattr(m, "ir", None) is None and getattr(m, "U", None) is not None:
            # all-pairs form in rents (models.budgets): IR is the bound U_k >= 0, not a row; its
            # slack is U_k, its multiplier (a bound multiplier) is not imported: dual = NaN
            for k, var in m.U.items():
                rows.append({"row": f"U[{k}] >= 0", "kind": "IR", "type": int(k), "theta": float(th[k]),
                             "versus": int(k), "theta_versus": float(th[k]),
                             "slack": float(var.value), "dual": np.nan})
        if self.ic == "all-pairs":
            # the all-pairs program is solved by row generation (models.budgets.solve_all_pairs):
            # a pair never added was satisfied at every round's optimum, so the final optimum is
            # the full program's with multiplier exactly 0 on it; listed with its slack from the menu
            have = {(r["type"], r["versus"]) for r in rows if r["kind"].startswith("IC")}
            raw = self.ipopt_menu if self.ipopt_menu is not None else self.menu  # the model rows' point
            Q, t = raw.Q, raw.t
            for k in range(len(th)):
                for l in range(len(th)):
                    if k != l and (k, l) not in have:
                        rows.append({"row": f"ic[{k},{l}] (not generated)", "kind": "IC", "type": k,
                                     "theta": float(th[k]), "versus": l, "theta_versus": float(th[l]),
                                     "slack": float((th[k] * Q[k] - t[k]) - (th[k] * Q[l] - t[l])), "dual": 0.0})
        return pd.DataFrame(rows)

    def binding_ic(self, tol: float = 1e-7) -> pd.DataFrame:
        """IC/IR rows with a non-zero multiplier: ``|dual| > tol × max|dual|``
        (an active row with a zero multiplier is degenerate, not binding).
        With ``ic="all-pairs"`` the multipliers among excluded or pooled types
        are not unique (LICQ fails there: every row between them is active), so
        Ipopt's split of them is one of many; the local form has unique ones.
        In the all-pairs form IR is a bound (U_k >= 0) whose multiplier is not
        imported (dual NaN): its IR rows are never listed here; read their slack
        in ``constraints()``."""
        c = self.constraints()
        scale = float(np.nanmax(np.abs(c["dual"]))) if len(c) else 0.0
        return c[(c["kind"] != "monotone Q") & (np.abs(c["dual"]) > tol * max(scale, 1e-300))].reset_index(drop=True)


def solve_budget_menu(scn: Scenario, ic: str = "local", *, n: int | None = None, route: str | None = None,
                      progress=None) -> BudgetMenu:
    """Solve the optimal menu of token budgets for ``scn``'s technology and
    types (``n`` types, default the scenario's) as the Pyomo model, keeping the
    model: ``ic`` = ``"local"`` (adjacent downward IC + monotone Q + lowest IR)
    or ``"all-pairs"`` (every IC pair and every IR)."""
    from models import budgets
    from models.closed_form import budgets as cb

    if ic not in ("local", "all-pairs"):
        raise _scenario.ScenarioError(f"ic = {ic!r} is invalid; allowed: 'local' or 'all-pairs'")
    theta, mass = scn.discrete_types(n)
    budgets.check_double_range(scn.technology, theta, mass)  # as the regime: FloatingPointError saying what helps
    ctx = _context(scn, route, progress, figures=False)
    model, raw, r = budgets.solve_menu(scn.technology, theta, mass, ctx, f"menu[{ic}]", ic, formulation="pyomo")
    ref = cb.discrete_menu(scn.technology, theta, mass)
    # the same menu the budgets regime verifies and exports (stranger17 F13): Ipopt's point polished by
    # budgets.polish_menu as budgets.solve_menu(polish=True) does (exact zeros on excluded types, per-type
    # Newton on the served ones); the note says what was done, or that Ipopt's menu was kept
    menu = raw
    if r.ok:
        menu, menu.note = budgets.polish_menu(scn.technology, theta, mass, raw)
    raw.virtual = ref.virtual
    menu.virtual = ref.virtual
    return BudgetMenu(scn.technology, model, r, menu, ref, ic, ipopt_menu=raw)
