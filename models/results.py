"""Result containers shared by every regime, and the verification-row rule.

Verification rule (one for the whole project)
---------------------------------------------
A check compares a vector of numeric values with its reference (closed form
or independent computation).  ``abs_err = |numeric - reference|`` and

    rel_err = abs_err / max_i |reference_i|        (infinity-norm relative error)

so an excluded type (reference 0) is judged on the scale of the quantity, not
divided by zero; a scalar check is the plain relative error.  If every
reference is 0, ``rel_err = abs_err``.  ``passed = rel_err <= tolerance``.
Each check states its tolerance and why it is what it is.

Advice (issue 11: "a failed row is actionable")
-----------------------------------------------
Every row carries ``advice``: what a failure of this check means for the
exported tables and what to change (finer grid, equal-mass grid, tighter
solver tol, another start).  A check passes its own text (``advice=``); a
check that gives none gets the generic text of ``default_advice`` for its
kind.  The console and report.md print it under each failed check.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.solver import SolveResult

VERIFICATION_COLUMNS = ["regime", "check", "quantity", "index", "numeric", "reference",
                        "abs_err", "rel_err", "tolerance", "passed", "kind", "advice"]
# kind: "relative" (``compare``: passed = rel_err <= tolerance) or "bound"
# (``bound_check``: passed = numeric <= tolerance, a one-sided limit)
KINDS = ("relative", "bound")

_DEFAULT_ADVICE = {
    "relative": ("the numeric side misses its closed form/independent reference: the exported tables of this "
                 "regime are not verified; re-run with a tighter solver tol (e.g. solver.tol = 1e-14: a tol looser "
                 "than the regime's own, 1e-10 to 1e-12, is tightened back and changes nothing) or more starts; "
                 "if it persists it is a genuine discrepancy (report it with the scenario file)"),
    "bound": ("a limit is exceeded (e.g. an IC/IR violation): the exported menu is not incentive compatible as "
              "stated; re-run with a tighter solver tol (e.g. solver.tol = 1e-14), a finer or equal-mass grid; if "
              "it persists, report it"),
}


def default_advice(kind: str) -> str:
    """The generic advice of a check of ``kind`` that gives no advice of its own."""
    return _DEFAULT_ADVICE[kind]


def compare(regime: str, check: str, quantity: str, numeric, reference, tolerance: float,
            index=None, scale: float | None = None, advice: str = "") -> pd.DataFrame:
    """Rows of one check (see the module doc).  ``scale`` (optional) replaces
    max|reference| as the denominator of rel_err -- for a quantity whose own
    size is not its natural unit (an input priced out of the mix, ~1e-44,
    is judged on the scale of all inputs)."""
    num = np.atleast_1d(np.asarray(numeric, float))
    ref = np.atleast_1d(np.asarray(reference, float))
    if num.shape != ref.shape:
        raise ValueError(f"{check}/{quantity}: shapes {num.shape} vs {ref.shape}")
    if num.ndim > 1:  # one row per element, index "i,j"
        if index is None:
            index = [",".join(map(str, ix)) for ix in np.ndindex(num.shape)]
        num, ref = num.ravel(), ref.ravel()
    abs_err = np.abs(num - ref)
    if scale is None:
        scale = np.max(np.abs(ref)) if ref.size else 0.0
    rel = abs_err / scale if scale > 0 else abs_err
    rel = np.where(np.isfinite(num), rel, np.inf)
    if index is None:
        index = [""] if num.size == 1 else list(range(num.size))
    return pd.DataFrame({
        "regime": regime, "check": check, "quantity": quantity, "index": [str(i) for i in index],
        "numeric": num, "reference": ref, "abs_err": abs_err, "rel_err": rel,
        "tolerance": float(tolerance), "passed": rel <= tolerance, "kind": "relative",
        "advice": advice or default_advice("relative"),
    })


def bound_check(regime: str, check: str, quantity: str, value: float, limit: float,
                index="", advice: str = "") -> pd.DataFrame:
    """A one-sided check: ``value <= limit`` (e.g. worst IC violation)."""
    return pd.DataFrame({
        "regime": [regime], "check": [check], "quantity": [quantity], "index": [str(index)],
        "numeric": [float(value)], "reference": [0.0], "abs_err": [abs(float(value))],
        "rel_err": [abs(float(value))], "tolerance": [float(limit)],
        "passed": [bool(np.isfinite(value) and value <= limit)], "kind": ["bound"],
        "advice": [advice or default_advice("bound")],
    })


@dataclass
class RegimeResult:
    """What one regime hands to the export layer."""

    name: str
    solves: dict[str, SolveResult] = field(default_factory=dict)  # label -> result
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # table name -> DataFrame
    checks: list[pd.DataFrame] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # name -> matplotlib Figure
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # solver failure that stopped the regime
    # findings a user of an exported table must see although every row verified (e.g. a price sheet that does
    # not implement the menu): printed under the regime's status line and kept in notes/report.md
    cautions: list[str] = field(default_factory=list)

    @property
    def verification(self) -> pd.DataFrame:
        if not self.checks:
            return pd.DataFrame(columns=VERIFICATION_COLUMNS)
        v = pd.concat(self.checks, ignore_index=True).reindex(columns=VERIFICATION_COLUMNS)
        if v["advice"].isna().any():  # a check frame built without ``compare``/``bound_check``
            kinds = v["kind"].where(v["kind"].isin(KINDS), "relative")
            v["advice"] = v["advice"].fillna(kinds.map(_DEFAULT_ADVICE))
        return v

    @property
    def converged(self) -> bool:
        return self.error is None and all(r.ok for r in self.solves.values())

    @property
    def verified(self) -> bool:
        v = self.verification
        return self.converged and len(v) > 0 and bool(v["passed"].all())

    def status(self) -> str:
        if not self.converged:
            bad = [f"{k}: {r.status.value}" for k, r in self.solves.items() if not r.ok]
            return "not converged (" + "; ".join(bad or [self.error or "?"]) + ")"
        return "verified" if self.verified else "verification failed"


def distinct(value: float, limit: float, style: str = "e", digits: int = 2) -> tuple[str, str]:
    """``value`` and ``limit`` as text.  The limit gets the fewest significant digits that
    give it to 1e-9 (1e-06, 0.003, 1.000001), at most 3 when the value is more than 1 %
    away from it (a derived limit such as 1.892533897e-02 prints as 1.89e-02); the value gets at least ``digits`` and as many
    more (at most 12) as it takes to be told from the limit on the right side: a bound row
    at 1.000134 against 1.000001 prints as 1.00013 > 1.000001, not as 1.00e+00 > 1e+00.
    ``style`` "e" gives scientific notation, "g" the shorter of the two."""
    def f(x: float, d: int) -> str:
        return f"{x:.{d - 1}e}" if style == "e" else f"{x:.{d}g}"
    if not (np.isfinite(value) and np.isfinite(limit)):
        return f(value, digits), f(limit, 1)
    dl = next((d for d in range(1, 13) if abs(float(f(limit, d)) - limit) <= 1e-9 * abs(limit)), 12)
    if abs(value - limit) > 1e-2 * abs(limit):  # far apart: 3 digits of a derived limit are enough
        dl = min(dl, 3)
    sl = f(limit, dl)
    dv = digits
    while dv < 12 and value != limit:
        sv = f(value, dv)
        if sv != sl and (float(sv) > limit) == (value > limit):
            break
        dv += 1
    return f(value, dv), sl


def failure_lines(ver: pd.DataFrame, limit: int = 12) -> list[str]:
    """One line per failed check (regime, check): for each failed quantity the worst
    row's index (the type or point) and how far it misses (value vs limit, or rel_err vs
    tolerance, and the ratio), then the check's advice once.  At most ``limit`` checks;
    empty if every row passed."""
    if not len(ver):
        return []
    failed = ~ver["passed"].astype(bool)
    # a row is marked failed also when its regime did not converge (run.run_regime): those
    # within their limit are not discrepancies and are summed up in one line instead
    bound = ver["kind"].eq("bound") if "kind" in ver else pd.Series(False, index=ver.index)
    val = np.where(bound, ver["numeric"].astype(float), ver["rel_err"].astype(float))
    within = failed & (val <= ver["tolerance"].astype(float))
    bad = ver[failed & ~within]
    groups = list(bad.groupby(["regime", "check"], sort=False))
    out = []
    if within.any():
        regs = ", ".join(dict.fromkeys(ver.loc[within, "regime"]))
        out.append(f"{regs}: {int(within.sum())} rows are within their limits but count as failed because a solve "
                   f"did not converge (a non-converged solve is never verified; see the regime's status line). "
                   f"What to do: fix the solve first: the regime's notes name each solve that did not converge and "
                   f"what to change ([solver] max_iter or tol, the type grid or n, the scenario's range)")
    for (reg, chk), dfc in groups[:limit]:
        parts, advice = [], ""
        for q, df in dfc.groupby("quantity", sort=False):
            one_sided = bool((df["kind"] == "bound").all()) if "kind" in df else False
            col = "numeric" if one_sided else "rel_err"
            vals = df[col].astype(float)
            w = df.loc[vals.idxmax()] if vals.notna().any() else df.iloc[0]
            val, tol = float(w[col]), float(w["tolerance"])
            ratio = f" = {distinct(val / tol, 1.0, 'g')[0]}x" if tol > 0 and np.isfinite(val) else ""
            n_all = int(((ver["regime"] == reg) & (ver["check"] == chk) & (ver["quantity"] == q)).sum())
            idx = "" if pd.isna(w["index"]) else str(w["index"]).strip()
            sval, stol = distinct(val, tol, "g", 3)
            parts.append(f"{q} ({len(df)}/{n_all} rows; worst{' at ' + idx if idx else ''}: "
                         f"{'value' if one_sided else 'rel_err'} {sval} vs {stol}{ratio})")
            a = w.get("advice")
            advice = advice or (a if isinstance(a, str) and a else default_advice("bound" if one_sided else "relative"))
        out.append(f"{reg} / {chk}: " + "; ".join(parts) + f". What to do: {advice}")
    if len(groups) > limit:
        out.append(f"... and {len(groups) - limit} more failed checks (see verification.csv)")
    return out
