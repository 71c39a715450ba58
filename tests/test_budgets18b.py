"""budgets18b: stranger18 F3(a) (a type of mass 1e-12 stopped the local menu 'acceptable' and the advice named
changes a CSV scenario cannot make) and F4 (types at 1e-150 $ per quality unit: numbers below the double
range, Beta-tail advice)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import budgets, run, scenario
from models.closed_form import budgets as cb

ROOT = Path(__file__).resolve().parent.parent

TECH = """[technology]
sigma = 0.5
rho = 0.5

[[technology.tokens]]
name = "input"
weight = 0.6
cost = 1.0

[[technology.tokens]]
name = "output"
weight = 0.4
cost = 4.0
"""


def _scenario(tmp_path, csv: str, ic: str = "both", formulation: str = "auto"):
    (tmp_path / "t.csv").write_text(csv)
    (tmp_path / "s.toml").write_text(f'name = "s"\n{TECH}\n[types]\ndistribution = "discrete"\nfile = "t.csv"\n\n'
                                     f'[regimes.budgets]\nic = "{ic}"\nlemma_cells = 0\n'
                                     f'formulation = "{formulation}"\n')
    return scenario.load(tmp_path / "s.toml")


def _run(scn):
    return run.run_regime(scn, "budgets", run.Context(route="auto", options=scn.solver["options"],
                                                       user_options=scn.solver["user_options"],
                                                       progress=lambda *a, **k: None, figures=False))


# stranger18 s18_csv_close_thetas: θ = 1, 1 + 1e-12, 1.5 (mass 1e-12), 2
S18 = "theta,mass\n1.0,0.3\n1.000000000001,0.3\n1.5,1e-12\n2.0,0.4\n"


@pytest.mark.component
@pytest.mark.parametrize("formulation", ["auto", "structured", "presolved"])
def test_a_type_of_mass_1e12_no_longer_stops_the_local_menu_acceptable(tmp_path, formulation):
    """F3(a): the local solve stopped 'acceptable' (line search failed on the O(1) Newton step in the inputs
    of the mass-1e-12 type, whose effect on the objective is below its round-off), the polish never ran, and
    menu.csv had X_input = 0.316 at θ = 1.5 where the cost-efficient mix is 0.010 (rel_err 0.85).  The
    retry from the last iterate (ACCEPTABLE_RETRY, same tol) ends 'optimal' and the polish resolves it
    (auto = the Pyomo model at N = 4; the structured forms stopped 'acceptable' too)."""
    from models import solver

    if formulation != "auto" and "cyipopt" not in solver.available_routes():
        pytest.skip("structured forms need cyipopt")
    scn = _scenario(tmp_path, S18, formulation=formulation)
    res = _run(scn)
    r = res.solves["menu[local]"]
    assert r.status.value == "optimal" and "retried" in r.message, (r.status, r.message)
    assert res.converged and res.verified, res.verification[~res.verification["passed"]]
    th, ms = scn.discrete_types()
    ref = cb.discrete_menu(scn.technology, th, ms)
    menu = res.tables["menu"]
    # the exported row of the light type: its cost-minimising mix (judged on the scale of the column)
    for j, name in enumerate(("input", "output")):
        err = np.abs(menu[f"X_{name}_Mtok"].to_numpy() - ref.X[:, j]) / np.max(np.abs(ref.X[:, j]))
        assert np.max(err) <= budgets.TOL_DISCRETE, (name, err)


# θ·(0, 0.5, 1) at top θ = 1e-74: representable scales (input scale 2.5e-151 > DBL_MAX^(-1/2)), but the solve
# fails (Hessian overflow at inputs near their bound)
MID = "theta,mass\n0,0.5\n5e-75,0.3\n1e-74,0.2\n"


@pytest.mark.component
def test_failed_menu_advice_proposes_only_changes_a_csv_scenario_allows(tmp_path):
    """F3(ii)/F4: the advice of a failed CSV run named grid = "equal-mass" (refused for discrete types), a
    support that cuts the tail (a CSV has none) and formulation = "pyomo" (already the Pyomo model).  Now it
    names the cause this scenario has (scales near the small end of the double range) and what to change."""
    res = _run(_scenario(tmp_path, MID))
    assert not res.converged
    v = res.verification
    adv = v[~v["passed"] & v["check"].str.startswith(("nlp_vs_discrete_closed_form", "kkt_full_program"))]["advice"]
    assert len(adv), v[["check", "passed"]]
    for a in adv:
        assert "equal-mass" not in a and 'formulation = "pyomo"' not in a and "cuts the empty tail" not in a, a
        assert "technology's scale" in a and "docs/model.md §6" in a, a


@pytest.mark.unit
def test_low_advice_follows_the_scenario():
    """Each proposed change is one the scenario allows and that addresses a cause it has."""
    from models.solver import SolveResult, Status

    def sr(ok):
        return SolveResult(status=Status.OPTIMAL if ok else Status.ACCEPTABLE, objective=0.0, iterations=1,
                           route="cyipopt", ipopt_version="")

    def advice(kind, grid, p, ic="local", solves=None, pyomo_model=True):
        scn = type("S", (), {"types": type("T", (), {"kind": kind})(), "grid": grid})()
        tech = scenario.load(budgets_default()).technology
        th = np.linspace(0.5, 1.0, len(p))
        menu = cb.discrete_menu(tech, th, np.asarray(p, float))
        res = budgets.RegimeResult(budgets.NAME)
        res.solves.update(solves or {"menu[local]": sr(False)})
        return budgets._low_advice(res, tech, menu, scn, {"ic": ic}, pyomo_model)

    light = [0.5, 1e-12, 0.5]
    a = advice("beta", "equal-spacing", light)
    assert 'grid = "equal-mass"' in a and "cuts the empty tail" in a and "θ = 0.75 (mass 1e-12)" in a, a
    assert 'formulation = "pyomo"' not in a and "merge" not in a, a
    a = advice("beta", "equal-mass", light)
    assert "equal-mass" not in a and "cuts the empty tail" in a, a
    a = advice("discrete", "equal-spacing", light)
    assert "equal-mass" not in a and "cuts the empty tail" not in a and "merge such a type" in a, a
    a = advice("discrete", "equal-spacing", [0.3, 0.3, 0.4], pyomo_model=False)
    assert 'formulation = "pyomo"' in a and "no type here is below what Ipopt resolves" in a, a
    a = advice("discrete", "equal-spacing", [0.3, 0.3, 0.4], ic="both",
               solves={"menu[local]": sr(False), "menu[all-pairs]": sr(True)})
    assert 'ic = "all-pairs"' in a, a
    a = advice("discrete", "equal-spacing", [0.3, 0.3, 0.4], ic="both",
               solves={"menu[local]": sr(False), "menu[all-pairs]": sr(False)})
    assert "ic =" not in a and "nothing in the scenario to change" in a, a


def budgets_default():
    return ROOT / "data" / "default.toml"


@pytest.mark.component
def test_types_below_the_double_range_are_a_named_regime_error(tmp_path):
    """F4 (s25_tiny_thetas: θ = 0, 1e-300, 1e-150): both menu solves ended 'error', Q was off by 32 %, the
    excluded types were exported with t = −2.4e-302, and the advice was the Beta-tail one.  The top type's
    inputs (9e-302, 2.5e-303 Mtok) and value (2e-301 $) are below what the NLP represents, so the regime
    stops with the cause and what to change, as the huge-θ twin (θ = 1e200) does."""
    res = _run(_scenario(tmp_path, "theta,mass\n0,0.5\n1e-300,0.3\n1e-150,0.2\n"))
    assert not res.converged and res.error and not res.tables, res.status()
    assert "numbers out of double-precision range" in res.error and "FloatingPointError" in res.error
    assert "below what double precision represents" in res.error and "docs/model.md §6" in res.error
    # the huge twin keeps its OverflowError
    res = _run(_scenario(tmp_path, "theta,mass\n1,0.5\n1e200,0.5\n", ic="local"))
    assert res.error and "OverflowError" in res.error and "docs/model.md §6" in res.error
    assert "money unit" not in res.error  # a money unit leaves Q^FB (θ/c) unchanged: no help


@pytest.mark.component
def test_double_range_limit_rejects_only_what_fails(tmp_path):
    """The check's rule (b) (input scale < DBL_MAX^(-1/2)) against solves on both sides: θ·(0, 0.5, 1) at
    top θ = 1e-77 (input scale 2.5e-157) is rejected and its solve indeed fails; at 1e-72 (2.5e-147) and on
    an O(1) scale it passes and the solve is optimal -- no false alarm where the NLP works."""
    tech = _scenario(tmp_path, S18).technology
    ms = np.array([0.5, 0.3, 0.2])
    ctx = run.Context(route="auto", options={}, user_options={}, progress=lambda *a, **k: None)
    for e, ok in ((-77.0, False), (-72.0, True), (0.0, True)):
        th = np.array([0.0, 0.5, 1.0]) * 10.0 ** e
        if ok:
            budgets.check_double_range(tech, th, ms)
        else:
            with pytest.raises(FloatingPointError, match="DBL_MAX"):
                budgets.check_double_range(tech, th, ms)
        with np.errstate(all="ignore"):
            _, menu, r = budgets.solve_menu(tech, th, ms, ctx, "m", "local", formulation="pyomo", polish=True)
        ref = cb.discrete_menu(tech, th, ms)
        good = r.ok and np.max(np.abs(menu.Q - ref.Q)) <= budgets.TOL_DISCRETE * ref.Q.max()
        assert good == ok, (e, r.status, menu.Q, ref.Q)
