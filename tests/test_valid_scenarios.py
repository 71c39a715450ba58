"""The drawer of ``bench/valid_scenarios.py``'s ``plans`` family against the scenario validator.

bench/valid_scenarios.py counts an exit 2 as "validation rejected a scenario the documented
ranges allow"; that verdict is only worth something while its drawer and the validator agree on
the ranges.  These tests load drawn ``plans`` scenarios with ``models.scenario.load`` (the loader
``solve.py`` runs first; no solve) and check that

* every draw validates and the validated options are the drawn ones (nothing coerced);
* the draws reach the edges the regime documents (README "Pricing plans", docs/model.md §2.8,
  ``models/plans.validate_options``): two types, K = 1, K = N, K above N, K up to 64, refine 1 and
  the refine cap, full_nlp_max 0 and 400, every type distribution, both grids, integer Beta shapes,
  CSV masses as customer counts with a light top type;
* one step past each of the drawer's limits is refused by the validator, so a validator that
  widens a range (the drawer would then miss the new edge) fails here as well as one that narrows it.
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

from models import plans as plans_regime
from models import scenario

SPEED = "unit"

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("valid_scenarios", ROOT / "bench" / "valid_scenarios.py")
V = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(V)

# 2 seeds x 60 draws: ~2 s of loading; enough that every edge below is drawn (each has a
# probability >= 1/40 per draw; a missing one fails the coverage test, it is not skipped)
SEEDS = (0, 170)
DRAWS = 60


def _load(spec, folder: Path):
    return scenario.load(spec.write(folder))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    out = []
    for seed in SEEDS:
        for i in range(DRAWS):
            spec = V.draw_scenario("plans", seed, i)
            out.append((spec, _load(spec, tmp_path_factory.mktemp(spec.name))))
    return out


def test_plans_family_is_registered():
    assert V.PLANS_K_MAX == plans_regime.K_MAX
    assert "plans" in V.FAMILIES and V.BASE_COUNTS["plans"] >= 1
    assert set(V.BASE_COUNTS) == set(V.FAMILIES)
    # the same scenario file for the same (seed, index): --only plans:I re-runs it
    a, b = V.draw_scenario("plans", 170, 7), V.draw_scenario("plans", 170, 7)
    assert a.name == "plans_170_7" and a.tree == b.tree and a.files == b.files
    assert V.draw_scenario("plans", 170, 8).tree != a.tree


def test_plans_draws_validate_unchanged(drawn):
    for spec, scn in drawn:
        assert list(scn.regimes) == ["plans"], spec.name
        got, asked = scn.regimes["plans"], spec.tree["regimes"]["plans"]
        assert got["K"] == asked.get("K", list(range(1, 9))), spec.name
        assert got["refine"] == asked.get("refine", 10), spec.name
        assert got["full_nlp_max"] == asked.get("full_nlp_max", 60), spec.name
        assert scn.n_types == V._n_types(spec.tree["types"], spec.files), spec.name
        assert scn.technology.baseline is None, spec.name  # the regime refuses the baseline form
        assert scn.types.kind == spec.tree["types"]["distribution"], spec.name
        # the finer grid stays the size the drawer promises (seconds per scenario)
        assert got["refine"] * scn.n_types <= V.PLANS_FINE_TYPES_MAX, spec.name


def test_plans_draws_reach_the_documented_edges(drawn):
    seen = set()
    for spec, scn in drawn:
        o, N, t = scn.regimes["plans"], scn.n_types, spec.tree["types"]
        seen.add(f"dist={scn.types.kind}")
        if scn.types.kind != "discrete":
            seen.add(f"grid={scn.grid}")
        if scn.types.kind == "beta" and float(scn.types.p).is_integer() and float(scn.types.q).is_integer():
            seen.add("integer beta")
        seen |= {f"N={N}"} if N <= 2 else set()
        seen |= {"K=1 alone"} if o["K"] == [1] else set()
        seen |= {"K=N"} if N in o["K"] else set()
        seen |= {"K>N"} if max(o["K"]) > N else set()
        seen |= {"K>=32"} if max(o["K"]) >= 32 else set()
        seen |= {"K=64"} if max(o["K"]) == plans_regime.K_MAX else set()
        seen |= {"refine=1"} if o["refine"] == 1 else set()
        seen |= {"refine=1000"} if o["refine"] == V.PLANS_REFINE_MAX else set()
        seen |= {"full_nlp_max=0"} if o["full_nlp_max"] == 0 else set()
        seen |= {"full_nlp_max=400"} if o["full_nlp_max"] == V.PLANS_FULL_NLP_MAX else set()
        seen |= {"fine-tuning"} if scn.technology.gamma > 0 else {"no fine-tuning"}
        seen |= {"theta=0 type"} if t.get("low", None) == 0.0 or "csv(theta=0)" in spec.features else set()
        if scn.types.kind == "discrete":
            counts = [float(r.split(",")[1]) for r in spec.files[t["file"]].strip().splitlines()[1:]]
            if all(c.is_integer() for c in counts) and max(counts) > 1:  # customer counts, not shares
                seen.add("csv counts")
                top = counts[max(range(len(counts)), key=lambda k: scn.types.points[k])]
                seen |= {"csv whale"} if top <= 3 else set()
    want = {"dist=uniform", "dist=beta", "dist=piecewise", "dist=discrete", "grid=equal-spacing",
            "grid=equal-mass", "integer beta", "N=2", "K=1 alone", "K=N", "K>N", "K>=32", "K=64", "refine=1",
            "refine=1000", "full_nlp_max=0", "full_nlp_max=400", "fine-tuning", "no fine-tuning", "theta=0 type",
            "csv counts", "csv whale"}
    assert want <= seen, f"edges never drawn in {len(drawn)} draws: {sorted(want - seen)}"


@pytest.mark.parametrize("field, value", [
    ("K", [V.PLANS_K_MAX + 1]),
    ("K", [0]),
    ("K", [2, 2]),
    ("refine", V.PLANS_REFINE_MAX + 1),
    ("refine", 0),
    ("full_nlp_max", V.PLANS_FULL_NLP_MAX + 1),
    ("full_nlp_max", -1),
])
def test_one_step_past_the_drawers_limits_is_refused(field, value, tmp_path):
    spec = copy.deepcopy(V.draw_scenario("plans", 170, 0))
    _load(spec, tmp_path / "ok")  # the draw itself is valid
    spec.tree["regimes"]["plans"][field] = value
    with pytest.raises(scenario.ScenarioError, match=rf"regimes\.plans\.{field}"):
        _load(spec, tmp_path / "bad")


def test_a_baseline_draw_would_be_refused(tmp_path):
    """The drawer removes the baseline form because the regime refuses it: if the regime
    accepted it, the drawer would be missing a documented case."""
    for i in range(DRAWS):
        spec = V.draw_scenario("plans", 0, i)
        if "ft=one-class" in spec.features:
            break
    else:
        pytest.fail("no baseline draw turned into a one-class fine-tuning in the first draws")
    spec = copy.deepcopy(spec)
    spec.tree["technology"]["fine_tuning"]["baseline"] = 0.02
    with pytest.raises(scenario.ScenarioError, match=r"technology\.fine_tuning\.baseline"):
        _load(spec, tmp_path)


@pytest.mark.unit
@pytest.mark.parametrize("only", ["nosuch:1", "budget", "competition:x", "budget:200", "budget:-1"])
def test_only_names_a_scenario_of_the_run_or_is_refused(only, capsys, tmp_path):
    """stranger15 F6: --only nosuch:1 / budget / competition:x were tracebacks (KeyError, ValueError), and
    budget:99999 or budget:-1 silently ran a draw that no run contains.  Exit 2, one line, nothing run."""
    rc = V.main(["--seed", "175", "--regimes", "budget", "--count-scale", "1.0", "--only", only,
                  "--failures", str(tmp_path / "f"), "--jsonl", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --only:") and err.count("\n") == 1, err
    assert not (tmp_path / "f").exists() and not (tmp_path / "r.jsonl").exists()
