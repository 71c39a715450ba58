"""Mutation tests: no check in verification.csv is vacuous.

For each closed form that a regime's verification uses, the closed-form
function is wrapped so that its output is off by a small relative factor,
the regime is run in-process on a small scenario (the same code path as
``solve.py``: ``models.run.run_regime``), and the verdict must turn to
*failed* -- at least one row ``passed = False``, and the row of the check
the closed form feeds.  Each scenario is also run unperturbed once and must
verify (otherwise a failing mutant proves nothing).

The factor.  ``EPS = 1e-4``: the discrete comparisons have tolerance 1e-6
(budgets/distributions/competition ``TOL_DISCRETE``) or 1e-7 (cost, audits);
the NLPs reach 1e-9..1e-11 on these scenarios (measured, see the baseline
rows).  A 1e-4 error is 100x the loosest of those tolerances -- a check that
misses it is not comparing at the level it claims -- and still small: a
0.01 % error in a price or a quantity is invisible in every figure and table.
Continuous-limit checks compare a discretised menu with the continuum and
are limited by the O(1/N) discretisation error; they get ``EPS_CONT = 1e-3``
(0.1 %, what a Richardson-extrapolated limit from N, 2N, 4N resolves at
these N, see README "continuous limit").

Where a mutant is NOT caught the test is ``xfail(strict=True)`` with the
finding id of /work/coord/findings.md, so it turns into an XPASS failure --
and must be un-marked -- the day the check is fixed.

The perturbation hits the name the regime module looks up at call time
(``models.budgets`` calls ``cb.discrete_menu``, i.e. the attribute of
``models.closed_form.budgets``), so ``monkeypatch.setattr`` on the
closed-form module reaches it; closed forms that call each other inside
the module see the mutant too (that is intended: a wrong virtual value must
show up in the menu built from it).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from models import run, scenario, solver
from models.closed_form import budgets as cb
from models.closed_form import competition as cc
from models.closed_form import cost as cf
from models.closed_form import distributions as D
from models.closed_form import plans as cp

SPEED = "component"

EPS = 1e-4
EPS_CONT = 1e-3
# The leader's order rows fit the slope of an error e_N = C/N: a reference off by ε against the error's sign
# turns the two-grid order log2((e_c − ε)/(e_c/2 − ε)) above 1.25 once ε ≳ 0.14·e_c (0.23·e_c with its sign),
# e_c the coarse grid's error -- an order row resolves a mutant relative to e_c, not absolutely.  In
# "competition_convergence" e_c = 0.148 (log error of q_L) and 0.146 (t) at N = 12, the discrete q above the
# continuous one (φ_k > φ(θ_k)), so ε = +0.03 (≥ 0.02 = 0.14·e_c) must fail them.
EPS_ORDER = 0.03

TECH = {  # data/default.toml's technology: two token classes (CES), one fine-tuning class
    "sigma": 0.5, "rho": 0.5,
    "tokens": [{"name": "input", "weight": 0.6, "cost": 1.0}, {"name": "output", "weight": 0.4, "cost": 4.0}],
    "fine_tuning": {"gamma": 0.2, "rho": 0.0, "classes": [{"name": "ft", "weight": 1.0, "cost": 2.0}]},
}
TECH_NO_FT = {k: v for k, v in TECH.items() if k != "fine_tuning"}

# n = 20 equal cells of [0, 1]: midpoints (k + 1/2)/20, none at the exclusion
# boundary θ = 1/2 of the uniform distribution (findings.md: budgets, round-off there)
SCENARIOS = {
    "budgets": {"technology": TECH, "types": {"distribution": "uniform", "n": 20},
                "regimes": {"cost": {"quantities": [0.1, 0.5, 1.0]},
                            "budgets": {"lemma_cells": 4, "lemma_profiles": 1}}},
    "ironing": {"technology": TECH_NO_FT,
                "types": {"distribution": "piecewise", "breakpoints": [0.0, 0.5, 0.6, 1.0],
                          "masses": [0.25, 0.6, 0.15], "n": 40},
                "regimes": {"budgets": {"lemma_cells": 0}}},
    # four sizes: the Richardson tolerance is the spread of the limits of the two
    # triples (20,40,80) and (40,80,160); with three sizes it is the raw finest error
    # (~3e-3 at N = 80), which cannot resolve the 1e-3 mutant (findings.md B7)
    "convergence": {"technology": TECH, "types": {"distribution": "uniform", "n": 20},
                    "regimes": {"budgets": {"lemma_cells": 0, "convergence": [20, 40, 80, 160]}}},
    "two_types": {"technology": TECH, "types": {"distribution": "uniform", "n": 2},
                  "regimes": {"distributions": {
                      "family": "two-types", "ic": "all-pairs", "starts": ["neutral"], "random_starts": 0,
                      "pairs": [{"name": "dominated", "high": [1.0, 0.9, 0.8, 0.7], "low": [0.6, 0.6, 0.5, 0.4],
                                 "mass_high": 0.4}]}}},
    # 3x3 value-scale grid: ~9 s, 7 of them in the continuum bounds of the
    # distribution/budget ratio (closed_form/distributions.value_scale_profit_bounds)
    "value_scale": {"technology": TECH, "types": {"distribution": "uniform", "n": 2},
                    "regimes": {"distributions": {
                        "family": "value-scale", "ic": "lazy", "starts": ["neutral"], "random_starts": 0,
                        "value_scale": {"cells": 3, "w": {"distribution": "uniform", "n": 3},
                                        "s": {"distribution": "uniform", "n": 3}, "convergence": [4]}}}},
    # data/competition.toml's costs (all three regions of Proposition 4 non-empty) on 12 types
    "competition": {"technology": TECH_NO_FT, "types": {"distribution": "uniform", "n": 12},
                    "regimes": {"competition": {"gamma_L": 0.2, "c_L": 0.2, "c_F": 0.16,
                                                "task_cells": 4, "task_profiles": 1}}},
    # the same costs with convergence grids 12, 24 (the leader's order rows); no task assignment
    "competition_convergence": {"technology": TECH_NO_FT, "types": {"distribution": "uniform", "n": 12},
                                "regimes": {"competition": {"gamma_L": 0.2, "c_L": 0.2, "c_F": 0.16,
                                                            "task_cells": 0, "convergence": [12, 24]}}},
    # pricing plans (data/pricing_plans.toml's checks) on 20 uniform types, K = 1..3: ~5 s
    "plans": {"technology": TECH, "types": {"distribution": "uniform", "n": 20},
              "regimes": {"plans": {"K": [1, 2, 3], "refine": 4, "full_nlp_max": 20}}},
}


def _load(key):
    return scenario.from_dict({"name": f"mutation_{key}", **SCENARIOS[key]}, source=f"<mutation {key}>")


def run_regimes(key):
    """Run every regime of scenario ``key`` in-process (no files, no figures);
    returns the verification table (all regimes)."""
    scn = _load(key)
    ctx = run.Context(route=solver.pick_route(scn.solver["route"]), options=scn.solver["options"],
                      user_options=scn.solver["user_options"], progress=lambda *a, **k: None, figures=False)
    import pandas as pd

    out = [run.run_regime(scn, name, ctx) for name in scn.regimes]
    ver = pd.concat([r.verification for r in out], ignore_index=True)
    converged = all(r.converged for r in out)
    return ver, converged


@functools.lru_cache(maxsize=None)
def baseline(key):
    return run_regimes(key)


def failing(ver):
    bad = ver[~ver["passed"].astype(bool)]
    return sorted(set(bad["check"] + " / " + bad["quantity"]))


# ----------------------------------------------------------- mutators
def scaled(x, eps):
    """x * (1 + eps), keeping the kind of result (Python/numpy scalar or array, incl. 0-d)."""
    if isinstance(x, (int, float, np.floating)):
        return type(x)(x * (1 + eps)) if not isinstance(x, int) else float(x) * (1 + eps)
    a = np.array(x, float)
    a *= 1 + eps  # in place: a 0-d array stays a 0-d array
    return a


def wrap(monkeypatch, module, name, mutate):
    orig = getattr(module, name)

    @functools.wraps(orig)
    def mutant(*a, **k):
        return mutate(orig(*a, **k))

    monkeypatch.setattr(module, name, mutant)


def dc_field(*fields, eps=EPS):
    """Mutate fields of a dataclass result (Menu, DistributionMenu, BudgetMenu)."""
    def m(out):
        return dataclasses.replace(out, **{f: scaled(getattr(out, f), eps) for f in fields})
    return m


def dict_keys(*keys, eps=EPS):
    def m(out):
        out = dict(out)
        for k in keys:
            out[k] = scaled(out[k], eps)
        return out
    return m


def tuple_item(i, eps=EPS):
    def m(out):
        out = list(out)
        out[i] = scaled(out[i], eps)
        return tuple(out)
    return m


def plain(eps=EPS):
    return lambda out: scaled(out, eps)


def iron_pools_only(eps=EPS):
    """Ironing: the pooled (averaged) values off by eps, everything else exact."""
    def m(out):
        vals, pools = out
        vals = np.array(vals, float)
        for a, b in pools:
            vals[a:b + 1] *= 1 + eps
        return vals, pools
    return m


def dp_value(eps=EPS):
    """A dynamic programme's reported optimum off by eps (its partition and menu exact)."""
    return lambda out: dataclasses.replace(out, value=out.value * (1 + eps))


def exclude_first_served(out):
    """Exclusion threshold one type too high: the lowest served type gets Q = 0."""
    Q = np.array(out.Q, float)
    k = int(np.argmax(Q > 0))
    Q[k] = 0.0
    X, Z = np.array(out.X, float), np.array(out.Z, float)
    X[k], Z[k] = 0.0, 0.0
    return dataclasses.replace(out, Q=Q, X=X, Z=Z, t=cb.transfers_from_quality(out.theta, Q))


# (id, scenario, module, function, mutate, check that must fail (substring), xfail reason or None)
MUTANTS = [
    # cost of quality (docs/model.md §2.1)
    ("cost:C(Q)", "budgets", cf, "cost", plain(), "nlp_vs_closed_form / C(Q)", None),
    ("cost:inputs", "budgets", cf, "inputs", tuple_item(0), "nlp_vs_closed_form / X[", None),
    ("cost:marginal_cost", "budgets", cf, "marginal_cost", plain(), "C'(Q) from dual", None),
    ("cost:coefficient", "budgets", cf, "cost_coefficient", plain(), "nlp_vs_closed_form", None),
    ("cost:unit_cost", "budgets", cf, "unit_cost", plain(), "nlp_vs_closed_form", None),
    # budgets, discrete types (Proposition 2)
    ("budgets:menu Q", "budgets", cb, "discrete_menu", dc_field("Q"), "nlp_vs_discrete_closed_form[local] / Q", None),
    ("budgets:menu t", "budgets", cb, "discrete_menu", dc_field("t"), "nlp_vs_discrete_closed_form[local] / t", None),
    ("budgets:menu X", "budgets", cb, "discrete_menu", dc_field("X"), "nlp_vs_discrete_closed_form[local] / X[", None),
    ("budgets:virtual value", "budgets", cb, "discrete_virtual_values", plain(), "nlp_vs_discrete_closed_form", None),
    ("budgets:inverse marginal cost", "budgets", cf, "inverse_marginal_cost", plain(),
     "nlp_vs_discrete_closed_form", None),
    # the polished menu's t is recomputed with this same function (findings.md B9), so
    # the t comparison moves with it; the independent numpy IC/IR audit must catch it
    ("budgets:transfers", "budgets", cb, "transfers_from_quality", plain(),
     ("nlp_vs_discrete_closed_form[local] / t", "numpy_audit_all_pairs"), None),
    ("budgets:ironing", "ironing", cb, "iron", iron_pools_only(), "nlp_vs_discrete_closed_form", None),
    ("budgets:exclusion threshold", "budgets", cb, "discrete_menu", exclude_first_served,
     "nlp_vs_discrete_closed_form[local] / Q", None),
    ("budgets:Lemma 1 split", "budgets", cb, "lemma1_split", plain(), "lemma1", None),
    ("budgets:Proposition 1", "budgets", cb, "efficient", dict_keys("X", "surplus"), "prop1_efficient", None),
    ("budgets:cost-based tariff", "budgets", cb, "cost_based_tariff", dict_keys("budget", "fee"),
     "tariff_cost_based_choice", None),  # findings.md B5 (fixed in the working tree at 11:40)
    ("budgets:two-part tariff", "budgets", cb, "two_part_tariff", dict_keys("multiplier"), "tariff_two_part",
     None),  # findings.md B6 (fixed in the working tree at 11:40)
    ("budgets:continuous solution", "convergence", cb, "continuous_solution", dc_field("Q", "t", "U", eps=EPS_CONT),
     "continuous", None),  # findings.md B7: needs four sizes (Richardson limits of two triples, see the scenario)
    # token distributions
    ("distributions:two-type menu", "two_types", D, "two_type_distribution_menu_general", dc_field("x", "t", "Q"),
     "nlp_vs_closed_form", None),
    ("distributions:budget menu (grouped Mussa-Rosen)", "two_types", D, "_mussa_rosen", dict_keys("Q", "t"),
     "budget_nlp_vs_closed_form", None),
    ("distributions:two-type budget menu profit", "two_types", D, "two_type_budget_menu", dc_field("profit"),
     "budget", None),  # findings.md D4 (fixed in the working tree at 12:35)
    ("distributions:value-scale menu", "value_scale", D, "value_scale_distribution_menu", dc_field("x", "t", "Q"),
     "nlp_vs_discrete_closed_form", None),
    ("distributions:value-scale budget menu", "value_scale", D, "value_scale_budget_menu", dc_field("profit"),
     "budget_nlp_vs_closed_form", None),
    # the regime recomputes the ratio from the two continuous profits, so the mutant
    # perturbs the distribution profit (perturbing the returned "ratio" was vacuous)
    ("distributions:value-scale continuous ratio", "value_scale", D, "value_scale_profits",
     dict_keys("distribution", eps=EPS_CONT), "ratio", None),
    # competing models
    ("competition:leader q_L", "competition", cc, "leader_discrete", dict_keys("q_L", "Q_L"),
     "leader_vs_discrete_closed_form / q_L", None),
    ("competition:leader transfers", "competition", cc, "leader_discrete", dict_keys("T"),
     "leader_vs_discrete_closed_form / T", None),
    ("competition:leader fringe top-up", "competition", cc, "leader_discrete", dict_keys("q_F"),
     "leader_vs_discrete_closed_form / q_F", None),
    ("competition:monopolist V", "competition", cc, "monopolist_discrete", dict_keys("V"),
     "monopolist_vs_discrete_closed_form / V", None),
    ("competition:monopolist t", "competition", cc, "monopolist_discrete", dict_keys("t"),
     "monopolist_vs_discrete_closed_form / t", None),
    ("competition:efficient quality", "competition", cc, "efficient_quality", plain(), "efficient_vs_closed_form",
     None),
    ("competition:screening transfers", "competition", cc, "screening_transfers", plain(),
     "monopolist_vs_discrete_closed_form / t", None),
    ("competition:thresholds", "competition", cc, "leader_thresholds",
     dict_keys("entry", "interior_from", "theta_lo", "theta_hi", eps=EPS_CONT), "leader_thresholds_vs_continuous",
     "findings.md K4: thresholds are checked to one grid step (~15 % at N = 12)"),
    ("competition:leader continuous q_L (orders)", "competition_convergence", cc, "leader_continuous",
     dict_keys("q_L", eps=EPS_ORDER), "leader_convergence_to_continuous / observed order of max_log_err_q_L", None),
    ("competition:leader continuous T (orders)", "competition_convergence", cc, "leader_continuous",
     dict_keys("T", eps=EPS_ORDER), "leader_convergence_to_continuous / observed order of max_log_err_t", None),
    ("competition:task shares", "competition", cc, "task_shares", tuple_item(0), "task_assignment", None),
    ("competition:indirect utility", "competition", cc, "indirect_utility", plain(), "task_assignment", None),
    # pricing plans (closed_form/plans.py)
    ("plans:linear optimum", "plans", cp, "linear_optimum", dict_keys("m", "profit"), "linear_vs_1d_search", None),
    ("plans:linear demand", "plans", cp, "linear_demand", plain(), "linear_demand", None),
    ("plans:linear multiplier formula", "plans", cp, "linear_multiplier_homogeneous", plain(), "linear_vs_derived",
     None),
    ("plans:two-part optimum", "plans", cp, "two_part_optimum", dict_keys("m", "fee"), "two_part_vs_1d_search", None),
    ("plans:two-part multiplier formula", "plans", cp, "two_part_multiplier_formula", plain(), "two_part_vs_derived",
     None),
    ("plans:block menu", "plans", cp, "block_menu", dc_field("Q", "t"), "k_plans_nlp_vs_closed_form", None),
    ("plans:K-plan DP value", "plans", cp, "best_k_plans_dp", dp_value(), "k_plans_dp_value", None),
    ("plans:two-part menu", "plans", cp, "best_two_part_menu", dc_field("m", "fee"),
     "two_part_menu_nlp_vs_closed_form", None),
    ("plans:min-spend sheet", "plans", cp, "min_spend_sheet", tuple_item(1), "min_spend_payment", None),
]


# Mutants of the regimes that take seconds per run are in the slow profile,
# except one per closed-form family, so the default suite stays ~25 s (a value-scale
# run costs ~9 s: all of its mutants are slow).
SLOW = {"distributions:value-scale menu", "distributions:value-scale budget menu", "distributions:value-scale continuous ratio",
        "competition:leader transfers", "competition:leader fringe top-up", "competition:monopolist t",
        "competition:screening transfers", "competition:indirect utility", "competition:thresholds",
        "competition:leader continuous q_L (orders)", "competition:leader continuous T (orders)",
        "plans:linear demand", "plans:linear multiplier formula", "plans:two-part optimum",
        "plans:two-part multiplier formula", "plans:K-plan DP value", "plans:two-part menu", "plans:min-spend sheet"}


def _baseline_params():
    fast = {m[1] for m in MUTANTS if m[0] not in SLOW}
    return [pytest.param(k, marks=[] if k in fast else [pytest.mark.slow]) for k in sorted({m[1] for m in MUTANTS})]


@pytest.mark.parametrize("key", _baseline_params())
def test_baseline_verifies(key):
    ver, converged = baseline(key)
    assert converged, f"{key}: a solve did not converge"
    assert len(ver) and not failing(ver), f"{key}: unperturbed run fails {failing(ver)}"


def _params():
    out = []
    for mid, key, mod, fn, mut, expect, xf in MUTANTS:
        marks = [pytest.mark.xfail(strict=True, reason=xf)] if xf else []
        if mid in SLOW:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(key, mod, fn, mut, expect, id=mid, marks=marks))
    return out


@pytest.mark.parametrize("key, module, fn, mutate, expect", _params())
def test_mutant_is_caught(monkeypatch, key, module, fn, mutate, expect):
    ver0, conv0 = baseline(key)
    if not conv0 or failing(ver0):
        pytest.fail(f"baseline of {key} does not verify: {failing(ver0)}")
    assert hasattr(module, fn), f"{module.__name__}.{fn} is gone: update the mutation list"
    wrap(monkeypatch, module, fn, mutate)
    ver, _ = run_regimes(key)
    bad = failing(ver)
    assert bad, f"{module.__name__}.{fn} off by a small factor: every check still passes (vacuous)"
    expect = (expect,) if isinstance(expect, str) else expect
    assert any(e in b for b in bad for e in expect), f"{fn} mutant caught only by {bad}, not by {expect}"
