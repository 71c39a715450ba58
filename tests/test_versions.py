"""Regime ``versions`` (L >= 2 model versions; models/competition/versions.py, docs/model.md §2.7
"L >= 3 versions"): the NLPs against the closed forms of models/closed_form/versions.py, the
scenario file end to end, validation, L = 2 against the two-model closed forms, and mutants of
the closed forms that the run must reject."""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import plotting
from models import run as runmod
from models import scenario
from models.closed_form import competition as cc
from models.closed_form import versions as cv
from models.competition import versions as vv

SPEED = "component"
ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "data" / "competition_three_models.toml"


@pytest.fixture(scope="module")
def ctx():
    return runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)


def _raw(n=None, **types):
    with open(FILE, "rb") as fh:
        raw = tomllib.load(fh)
    if n is not None:
        raw["types"]["n"] = n
    raw["types"].update(types)
    raw["regimes"]["versions"].update(task_cells=10, task_profiles=1)
    return raw


def _run(ctx, raw):
    s = scenario.from_dict(raw, source="x.toml")
    res = runmod.run_regime(s, "versions", ctx)
    for f in res.figures.values():
        plotting.close(f)
    return res, s


def _failed(res) -> pd.DataFrame:
    v = res.verification
    return v[~v.passed.astype(bool)]


# ----------------------------------------------------------------- validation
@pytest.mark.unit
@pytest.mark.parametrize("edit, pattern", [
    (lambda o: o["models"][0].update(gamma=0.5), r"models\[0\]\.gamma' = 0\.5 .*0 <= gamma < 0\.5"),
    (lambda o: o["models"][2].update(c=-1.0), r"models\[2\]\.c' = -1\.0 .*0 < c"),
    (lambda o: o["models"][1].update(name="small"), r"models\[1\]\.name' = 'small' .*not used by another"),
    (lambda o: o["models"][1].update(gamma=0.05), r"models' = .*pairwise different gamma"),
    (lambda o: o.update(models=o["models"][:1]), r"models' = .*2 to 8 tables"),
    (lambda o: o["models"][0].update(colour=1), r"unknown field 'regimes\.versions\.models\[0\]\.colour'"),
    (lambda o: o.update(task_cells=2.5), r"task_cells' = 2\.5 .*an integer"),
])
def test_validation_names_field_and_range(edit, pattern):
    raw = _raw()
    edit(raw["regimes"]["versions"])
    with pytest.raises(scenario.ScenarioError, match=pattern):
        scenario.from_dict(raw, source="x.toml")


@pytest.mark.unit
def test_scenario_file_is_the_documented_three_model_design():
    """The shipped costs put the surplus switches at θ = 0.35 and 0.75 (the file's description)."""
    s = scenario.load(FILE)
    models = vv.model_list(s.technology.sigma, s.regimes["versions"])
    assert [m.name for m in models] == ["small", "mid", "frontier"]
    assert cv.envelope(models) == [0, 1, 2]
    assert np.allclose([x for *_, x in cv.switch_points(models)], [0.35, 0.75], rtol=1e-12)
    th, _ = s.discrete_types()
    # no type on a switch (nor the monopolist's 0.5, 0.675, 0.875): the one-grid-step rows can fail
    for c in (0.35, 0.5, 0.675, 0.75, 0.875):
        assert np.min(np.abs(th - c)) > 1e-3


# ----------------------------------------------------------------- end to end
def test_solve_py_three_models_exits_0_well_under_a_minute(run_solve, out_dir):
    import time
    t0 = time.perf_counter()
    code, out, err = run_solve(FILE, "--out", out_dir, "--quiet")
    wall = time.perf_counter() - t0
    assert code == 0, out + err
    assert wall < 60, wall  # ~6 s idle, ~18 s at load 6 (measured)
    d = out_dir / "competition_three_models"
    ver = pd.read_csv(d / "verification.csv")
    assert ver.passed.all() and len(ver) > 150
    for chk in ("task_assignment", "efficient", "monopolist", "monopolist_audit", "monopolist_mixing_audit",
                "efficient_mixing_audit", "l2_special_case"):
        assert chk in set(ver.check), chk
    mon = pd.read_csv(d / "versions" / "monopolist.csv")
    # three versions sold, in the order small < mid < frontier along θ, and the exclusion below 1/2
    seq = [m for i, m in enumerate(mon.model) if i == 0 or m != mon.model[i - 1]]
    assert seq == ["none", "small", "mid", "frontier"]
    starts = pd.read_csv(d / "versions" / "monopolist_starts.csv")
    assert len(starts) >= 20 and (starts.status == "optimal").all() and starts.iterations.max() <= 300
    assert (d / "figures" / "versions" / "upper_envelope.png").is_file()


def test_L2_special_case_nlp_matches_the_two_model_closed_forms(ctx):
    """Two versions through the L-model programs vs closed_form.competition (cut-off + PAVA, θ^e)."""
    raw = _raw(n=24)
    del raw["regimes"]["versions"]["models"][1]
    res, s = _run(ctx, raw)
    assert res.converged and _failed(res).empty, _failed(res).to_string()
    th, p = s.discrete_types()
    models = vv.model_list(s.technology.sigma, s.regimes["versions"])
    ref = cc.monopolist_discrete(models, th, p)
    mon = res.tables["monopolist"]
    assert np.max(np.abs(mon.V - ref["V"])) <= vv.TOL_DISCRETE * np.max(ref["V"])
    assert np.max(np.abs(mon.t - ref["t"])) <= vv.TOL_DISCRETE * np.max(np.abs(ref["t"]))
    eff = res.tables["efficient"]
    Ve = cc.efficient_quality(models, th).sum(axis=0)
    assert np.max(np.abs(eff.V - Ve)) <= vv.TOL_DISCRETE * np.max(Ve)


def test_dominated_version_is_never_sold_and_beta_types_verify(ctx):
    """A mid model off the surplus envelope (cheapest for some V, never sold) on Beta(2, 3) types."""
    raw = _raw(n=30, distribution="beta", p=2.0, q=3.0)
    raw["regimes"]["versions"]["models"][1]["c"] = 0.2
    res, _ = _run(ctx, raw)
    assert res.converged and _failed(res).empty, _failed(res).to_string()
    tab = res.tables["models"].set_index("model")
    assert not tab.loc["mid", "on_surplus_envelope"] and tab.loc["mid", "cheapest_for_some_V"]
    assert tab.loc["mid", "types_monopolist_nlp"] == 0 and tab.loc["mid", "types_efficient_nlp"] == 0
    assert any("never sold" in n and "mid" in n for n in res.notes)


def test_beta_types_get_the_continuous_monopolist_switch_rows(ctx):
    """Beta(2, 3) (f = 0 at θ_max), the three shipped versions, 30 types: the monopolist's regions are judged
    against the continuous switch types h(θ) = θ_ij (0.5374, 0.8151) as well as the exclusion type 1/3.
    Before (cv.monopolist_switch_types on h(θ_max) = 0/0 = NaN) both switch rows were silently absent for every
    Beta with q > 1, and the run verified without them."""
    res, _ = _run(ctx, _raw(n=30, distribution="beta", p=2.0, q=3.0))
    assert res.converged and _failed(res).empty, _failed(res).to_string()
    v = res.verification
    rows = v[(v.check == "monopolist") & v.quantity.str.contains("discrete switch")]
    assert sorted(str(i).split(" at ")[0] for i in rows["index"]) == ["-1->0", "0->1", "1->2"], rows.to_string()


# ----------------------------------------------------------------- mutants: the run must fail
MUTANTS = {
    # a wrong switch point (the envelope's θ_ij 2 % too high): efficient regions and monopolist menu
    "switch_points": lambda orig: (lambda models: [(i, j, 1.02 * s) for i, j, s in orig(models)]),
    # the versioning jump made 1 % larger (V above a switch scaled)
    "monopolist_discrete": lambda orig: (lambda *a, **k: _scaled_above_switch(orig(*a, **k))),
    # ironing skipped (a wrong discrete virtual value of one type)
    "discrete_virtual_values": lambda orig: (lambda th, p: orig(th, p) * np.r_[np.ones(len(th) - 1), 0.99]),
}


def _scaled_above_switch(ref):
    ref = dict(ref)
    V = ref["V"].copy()
    top = ref["model"] == np.max(ref["model"])
    V[top] *= 1.01
    ref["V"] = V
    return ref


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutated_closed_form_fails_the_run(ctx, monkeypatch, name):
    orig = getattr(cv, name)
    monkeypatch.setattr(cv, name, MUTANTS[name](orig))
    res, _ = _run(ctx, _raw(n=20))
    assert res.converged
    bad = _failed(res)
    assert not bad.empty, f"mutant {name} passed every check"
    assert set(bad.check) & {"efficient", "monopolist", "l2_special_case"}


def test_perturbed_menu_fails_the_ic_audit():
    """The audit that judges the NLP's menu flags a menu whose top transfer is 1 % too high."""
    th = np.linspace(0.05, 1.0, 20)
    p = np.full(20, 0.05)
    models = vv.model_list(0.5, _raw()["regimes"]["versions"])
    ref = cv.monopolist_discrete(models, th, p)
    assert cv.ic_audit(th, ref["V"], ref["t"])["ic"] <= vv.TOL_AUDIT
    t = ref["t"].copy()
    t[-1] *= 1.01
    assert cv.ic_audit(th, ref["V"], t)["ic"] > vv.TOL_AUDIT


def test_mixing_audit_flags_a_type_on_the_dearer_model():
    from models.results import RegimeResult
    models = vv.model_list(0.5, _raw()["regimes"]["versions"])
    V = np.array([1.0, 50.0])
    q = np.zeros((2, 3))
    q[0, 0] = V[0] ** (1 / models[0].eta)
    q[1, 0] = V[1] ** (1 / models[0].eta)  # a high V on the small model: the frontier is far cheaper
    res = RegimeResult("versions")
    vv._mixing_audit(res, models, 0.5, V, q, "monopolist_mixing_audit")
    assert not res.verification.passed.all()


def test_tokens_row_fails_when_the_tokens_do_not_buy_the_reported_V():
    """Both directions of the row a reported unrestricted final gets: tokens that deliver V pass, the
    same menu with one type's V 1e-5 high (10 x TOL_DISCRETE) fails."""
    from models.results import RegimeResult
    models = vv.model_list(0.5, _raw()["regimes"]["versions"])
    V = np.array([1.0, 2.0, 3.0])
    q = np.zeros((3, 3))
    q[:, 1] = V ** (1 / models[1].eta)
    ok, bad = RegimeResult("versions"), RegimeResult("versions")
    vv._tokens_row(ok, models, 0.5, V, q)
    vv._tokens_row(bad, models, 0.5, V * np.array([1.0, 1.0 + 1e-5, 1.0]), q)
    assert ok.verification.passed.all() and not bad.verification.passed.any()


# ----------------------------------------------------------------- regressions (random versions draws, seed 60)
def _case(tmp_path, sigma, models, types, csv=None):
    raw = _raw()
    raw["technology"]["sigma"] = sigma
    raw["types"] = types
    raw["regimes"]["versions"]["models"] = [{"name": f"m{i}", "gamma": g, "c": c} for i, (g, c) in enumerate(models)]
    if csv is not None:
        (tmp_path / "types.csv").write_text(csv)
    return raw


REGRESSIONS = {
    # a discrete type at θ = 0: its transfer unit θ·S was 0 -> ZeroDivisionError in the assigned program
    "60_5_theta_zero": (0.3034, [(0.2218, 0.68105), (0.5366, 1.02098), (0.5962, 6.51107)],
                        {"distribution": "discrete", "file": "types.csv"},
                        "theta,mass\n0.0,0.6761\n0.197325,0.8464\n0.226431,0.2486\n0.295186,0.7419\n"
                        "0.4,0.3\n0.55,0.2\n0.7,0.4\n0.9,0.1\n"),
    # σ = 0.1, an expensive η = 0.91 model: (pool)^(σ−2) overflowed in the one-model program ('invalid number')
    "60_0_sigma_0.1": (0.1, [(0.05773, 1.30158), (0.814, 15.3165), (0.2852, 0.0433187)],
                       {"distribution": "piecewise", "breakpoints": [0.0, 0.43363, 1.0],
                        "masses": [0.86342, 0.13658000000000003], "n": 75, "grid": "equal-spacing"}, None),
    # Beta tail type of mass 2e-8: its V was off by 4.3e-6 of max V (mass-weighted stopping test)
    "60_7_light_tail": (0.2836, [(0.3764, 2.83027), (0.4993, 0.0671946)],
                        {"distribution": "beta", "low": 0.7518, "high": 1.7518, "p": 1.0, "q": 4.217, "n": 68}, None),
    # the unrestricted final solve ended 'acceptable' and made the regime 'not converged'
    "60_9_final_acceptable": (0.3686, [(0.4433, 0.160209), (0.2604, 17.2097), (0.1867, 5.29896)],
                              {"distribution": "beta", "low": 0.0, "high": 1.0, "p": 0.6365, "q": 1.0, "n": 42,
                               "grid": "equal-spacing"}, None),
}


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_random_versions_draws_verify(ctx, tmp_path, name):
    sigma, models, types, csv = REGRESSIONS[name]
    raw = _case(tmp_path, sigma, models, types, csv)
    s = scenario.from_dict(raw, source="x.toml", base=tmp_path)
    res = runmod.run_regime(s, "versions", ctx)
    for f in res.figures.values():
        plotting.close(f)
    assert res.converged, res.status()
    assert _failed(res).empty, _failed(res)[["check", "quantity", "index", "rel_err", "numeric"]].to_string()


REGRESSIONS_33 = {
    # Beta(1, 21): top tails 1e-15..1e-40; 1 − cumsum(p) put φ (closed form) off by up to 5 %, so a correct NLP
    # menu missed the reference by 0.6 % of max V; and the two-model code's V is undetermined there
    "33_12_tiny_tails": (0.6252, [(0.03876, 0.262521), (0.1688, 11.5713)],
                         {"distribution": "beta", "low": 0.0, "high": 1.0, "p": 1.0, "q": 21.02, "n": 74}, None),
    # σ = 0.05, type 0 excluded: cut-offs [0, 0] and [1, 1] tie, and the search stopped short of [2, 2]
    "33_15_excluded_plateau": (0.05, [(0.0, 0.0218028), (0.4294, 0.254253), (0.6481, 0.0279713)],
                               {"distribution": "beta", "low": 0.0, "high": 1.30899, "p": 1.091, "q": 11.05,
                                "n": 17}, None),
}
REGRESSIONS_33["34_16_unit_after_cut"] = (
    # per-type units without running maxima: after a cut-off to a model with a far smaller first best, v and τ
    # had to be ~1e10+: 'diverging' and 3000-iteration solves, the scenario timed out at 240 s
    0.7978, [(0.04828, 0.0354646), (0.09314, 0.347149), (0.1319, 11.5581)],
    {"distribution": "beta", "low": 0.0, "high": 0.589682, "p": 4.391, "q": 0.9552, "n": 64, "grid": "equal-mass"}, None)
REGRESSIONS_33["hyp6_light_band_objective"] = (
    # Beta(1, 29) on [0, 60], 16 types of mass 0.85 … 1.2e-35: the light-band re-solve kept the fixed types'
    # terms in its objective (~1e35 in the band's unit); round-off swamped the band, the top type came out
    # 'optimal' with V 1.8x, t 1.9x the optimum's and all-pairs IC violated by 1.9e-2 (lead's Hypothesis draw)
    0.7352, [(0.08045, 0.022925), (0.1323, 11.6574)],
    {"distribution": "beta", "low": 0.0, "high": 59.9515, "p": 1.0, "q": 29.0, "n": 16}, None)
REGRESSIONS_33["139_26_quality_row"] = (
    # σ = 0.05 (stranger12, seed 139): the unrestricted final's quality row V^(1/σ) = V^20 ~ 1e-20 in the top
    # type's units left V free of the tokens; the final reported a profit 0.32 % above the exact optimum
    0.05, [(0.0, 5.35697), (0.601, 0.0950741)],
    {"distribution": "beta", "low": 1.428, "high": 2.428, "p": 3.415, "q": 1.0, "n": 15}, None)
REGRESSIONS_33["139_21_theta_zero_final"] = (
    # a CSV type at θ = 0 (stranger12, seed 139): after the per-type quality row of 139_26 the unrestricted
    # final evaluated V^(1/σ) at V = 0, whose second derivative is infinite; the AMPL library stopped the
    # process (a crash, nothing written). V ≥ W_FLOOR (implied by the row) keeps it finite
    0.5351, [(0.02135, 0.225445), (0.09604, 0.915503), (0.1998, 2.4661), (0.3922, 3.15051)],
    {"distribution": "discrete", "file": "types.csv"},
    ("theta,mass\n0.0,0.8357\n0.0046135,0.03155\n0.271386,0.5558\n0.395455,0.9925\n"
      "0.608113,0.7374\n0.667948,0.01587\n0.947119,0.9022\n1.02619,0.6398\n"
      "1.11948,0.9421\n1.36303,0.9693\n1.39043,0.6121\n1.66166,0.3697\n1.71615,0.518\n"
      "1.86658,0.02741\n1.93277,0.8545\n2.06571,0.1914\n2.33316,0.6431\n2.559,0.9353\n"
      "2.56655,0.5538\n"))
REGRESSIONS.update(REGRESSIONS_33)


def test_unrestricted_program_values_what_its_tokens_buy(ctx, tmp_path):
    """The unrestricted monopolist started at the exact discrete optimum (versions_139_26): whatever status
    Ipopt reports, its V must be the value of its own tokens, (Σ_ℓ q^(η_ℓ/σ))^σ, to the solver's accuracy,
    and its profit cannot exceed the exact optimum (the optimum over a larger set is the same: mixing never
    pays at these costs, the mixing audit of the regime's run).  1e-6 = TOL_DISCRETE, the bar of every V row;
    the former token form gave V 0.258 from tokens worth 3.6e-6 (relative miss ~1) and a profit 0.32 % high."""
    import pyomo.environ as pyo

    sigma, mods, types, _ = REGRESSIONS["139_26_quality_row"]
    raw = _case(tmp_path, sigma, mods, types)
    s = scenario.from_dict(raw, source="x.toml", base=tmp_path)
    theta, mass = s.discrete_types()
    models = vv.model_list(sigma, s.regimes["versions"])
    exact = cv.monopolist_discrete(models, theta, mass)
    V, t, assign = exact["V"], exact["t"], exact["model"]
    q = np.zeros((len(theta), len(models)))
    served = assign >= 0
    q[served, assign[served]] = V[served] ** (1 / np.array([models[a].eta for a in assign[served]]))
    m = vv.build_monopolist(models, sigma, theta, mass, q, t)
    ctx.solve(m, "unrestricted from the exact optimum", 0.0, defaults=vv.START_DEFAULTS)
    Vn, tn = vv._read_menu(m)
    qn = vv._read_tokens(m, models)
    V_tokens = vv._pool(models, sigma, qn) ** sigma
    assert np.max(np.abs(Vn - V_tokens)) <= vv.TOL_DISCRETE * np.max(V), np.c_[Vn, V_tokens]
    profit = float(np.sum(mass * (tn - qn @ np.array([mm.c for mm in models]))))
    assert profit <= exact["profit"] * (1 + vv.TOL_DISCRETE), (profit, exact["profit"])


@pytest.mark.parametrize("name", list(REGRESSIONS_33))
def test_random_versions_draws_seed_33_verify(ctx, tmp_path, name):
    test_random_versions_draws_verify(ctx, tmp_path, name)


@pytest.mark.unit
def test_tail_mass_is_exact_for_tiny_tails():
    p = np.array([0.5, 0.5 - 1e-30, 1e-30])
    assert cv.tail_mass(p)[1] == 1e-30  # 1 − cumsum gives 0 (or round-off) here
    assert np.allclose(cv.tail_mass(p)[:1], [0.5])


@pytest.mark.unit
def test_items_with_a_non_positive_price_are_exported_as_the_outside_option():
    """Stranger S8-D9 (v01_four_versions_beta): excluded types left in monopolist.csv at barrier noise
    with a negative price (V ≈ 6e-14, t = −2.6e-14).  In an IC menu with monotone V prices are
    non-decreasing and the first served type pays θ·V > 0, so t ≤ 0 only where V = 0: those items and
    every one below them become (0, 0); a served menu is untouched."""
    from models.competition import versions as vr
    from models.results import RegimeResult

    V = np.array([6e-14, 8e-14, 3e-13, 0.26, 0.5])
    t = np.array([-2.6e-14, 1e-15, -1e-16, 0.6, 1.0])
    out = {"V": V, "t": t, "q": np.stack([V, np.zeros(5)], axis=1)}
    res = RegimeResult("versions")
    vr._snap_unpriced(res, out)
    assert np.array_equal(out["V"][:3], np.zeros(3)) and np.array_equal(out["t"][:3], np.zeros(3))
    assert np.array_equal(out["q"][:3], np.zeros((3, 2)))
    assert out["V"][3] == 0.26 and out["t"][4] == 1.0 and any("price ≤ 0" in n for n in res.notes)
    exact = {"V": np.array([0.0, 0.3, 0.5]), "t": np.array([0.0, 0.4, 0.9]), "q": np.zeros((3, 2))}
    res2 = RegimeResult("versions")
    vr._snap_unpriced(res2, exact)
    assert not res2.notes and exact["t"][1] == 0.4


def test_beta_sliver_above_theta_min_gets_the_ironed_exclusion_row(ctx):
    """competition_131_29's types, Beta(0.7886, 4.906) on [0.575, 22.34] (h > 0 on (θ_min, θ_min + 1.2e-4] only,
    then < 0 up to 3.366), versions switching at h = 2 and 8, 32 types (h increasing at the types, so the
    continuous rows run): the monopolist's exclusion row is judged at the ironed exclusion type 3.366 (the
    argmax of θ(1 − F)).  Before, h(θ_min + 1e-12) > 0 dropped the row (and the switch rows were absent too,
    h(θ_max) = NaN); closed_form.competition.exclusion_type at 5f87e32 says θ_min there (4 steps off)."""
    raw = _raw(n=32, distribution="beta", low=0.575, high=22.34, p=0.7886, q=4.906)
    for m, c in zip(raw["regimes"]["versions"]["models"], (0.1, 0.33509577081426006, 1.8870781253880633)):
        m["c"] = c
    res, s = _run(ctx, raw)
    assert res.converged and _failed(res).empty, _failed(res).to_string()
    v = res.verification
    rows = v[(v.check == "monopolist") & v.quantity.str.contains("discrete switch")]
    assert sorted(str(i).split(" at ")[0] for i in rows["index"]) == ["-1->0", "0->1", "1->2"], rows.to_string()
    assert any("3.36614" in str(i) for i in rows["index"])


# ----------------------------------------------------------------- light top types (vsearch15, seed 182)
REGRESSIONS_182 = {
    # Beta(4.899, 27.07) on [0.7214, 1.7214], 30 types, top masses 7e-14 … 2e-36: moving them between models
    # changes the profit by ~1e-13 relative, below the search's one tie tolerance; the search ended at
    # cut-offs [0, 24] (top six types on the dearest model m2, pooled), V 0.31 of max V off the exact optimum,
    # mixing audit 0.85, all-pairs IC 0.15.  The light-type pass compares each mass band on its own scale.
    "182_9_light_top_types": (0.3303, [(0.2265, 0.0210275), (0.3915, 0.0450672), (0.4482, 0.677738)],
                              {"distribution": "beta", "low": 0.7214, "high": 1.7214, "p": 4.899, "q": 27.07,
                               "n": 30, "grid": "equal-spacing"}, None),
    # Beta(7.105, 24.48) on [0, 5.30082], 36 types, top masses 2e-21 … 5e-33, middle model m1 dominated (never
    # sold), seed 171: the search ended at [36, 36] (all on m0); the correct [33, 33] moves both stacked
    # cut-offs together, which a one-cut-off walk cannot (the intermediate [35, 36] puts a type on the
    # dominated model): V 0.6 off.
    "171_22_stacked_cutoffs": (0.7186, [(0.07176, 0.0833135), (0.1049, 8.26828), (0.1683, 0.631413)],
                               {"distribution": "beta", "low": 0.0, "high": 5.30082, "p": 7.105, "q": 24.48,
                                "n": 36}, None),
}


@pytest.mark.parametrize("name", list(REGRESSIONS_182))
def test_random_versions_draws_seed_182_verify(ctx, tmp_path, name):
    sigma, models, types, csv = REGRESSIONS_182[name]
    raw = _case(tmp_path, sigma, models, types, csv)
    s = scenario.from_dict(raw, source="x.toml", base=tmp_path)
    res = runmod.run_regime(s, "versions", ctx)
    for f in res.figures.values():
        plotting.close(f)
    assert res.converged, res.status()
    assert _failed(res).empty, _failed(res)[["check", "quantity", "index", "rel_err", "numeric"]].to_string()
    mon = res.tables["monopolist"]
    assert (mon["model"] == mon["model_closed_form"]).all(), mon[["theta", "mass", "model", "model_closed_form"]]


@pytest.mark.unit
def test_banded_comparison_sees_a_light_band_below_the_heavy_round_off():
    """Two menus equal on the heavy types up to round-off (1e-14 relative, below TIE_CONVEX) and differing
    on a band of mass 1e-12 of max p by O(1) of that band's own profit: the single-tolerance comparison
    calls it a tie, the banded one prefers the better light band, and is blind to noise inside a band."""
    mass = np.array([0.5, 0.5, 1e-12, 1e-12])
    band = vv._mass_bands(mass)
    assert band.tolist() == [0, 0, 3, 3]
    Jb = np.array([10.0, 10.0, 1e-11, 1e-11])
    Ja = Jb * np.array([1 + 1e-14, 1 - 1e-14, 2.0, 2.0])
    assert not vv._better(Ja.sum(), Jb.sum())
    assert vv._better_banded(Ja, Jb, band) and not vv._better_banded(Jb, Ja, band)
    assert not vv._better_banded(Jb * (1 + 1e-13), Jb, band)  # within the tie on every band
    Jh = Jb + np.array([1e-6, 0.0, 0.0, 0.0])  # a real heavy gain outweighs a light loss
    assert vv._better_banded(Jh, Ja, band)
