"""Regression tests of the competition regime's verification rows (models/competition/checks.py):
each built from a random valid scenario whose correct answer a check misjudged, and (for the per-type
rows) a mutation of the menu that the row must now catch."""
from __future__ import annotations

import copy
import tomllib

import numpy as np
import pytest

from models import run as runmod
from models import scenario

SPEED = "component"


@pytest.fixture(scope="module")
def ctx():
    return runmod.Context(route="auto", options={}, user_options={}, progress=lambda *a: None)


def _run(raw, ctx):
    s = scenario.from_dict(copy.deepcopy(raw), source="x.toml")
    res = runmod.run_regime(s, "competition", ctx)
    return res, res.verification


SCN_50_47 = tomllib.loads('''
name = "competition_50_47"
[technology]
sigma = 0.3216
rho = -2.057
[[technology.tokens]]
name = "tok1"
weight = 0.461339
cost = 2.11211
[[technology.tokens]]
name = "tok2"
weight = 0.5386610000000001
cost = 0.0816101
[types]
distribution = "piecewise"
breakpoints = [1.385, 2.2435, 2.385]
masses = [0.401173, 0.598827]
n = 26
[regimes.competition]
gamma_L = 0.3873
gamma_F = 0.0
c_L = 0.428874
c_F = 0.21438
task_cells = 0
convergence = [23, 46]
refine = 3
''')


def test_convergence_order_is_measured_away_from_density_jumps(ctx):
    """competition_50_47 (seed 50): the density jumps ×9 at 2.2435, inside the leader's interior region,
    so h and q^int jump there.  The 'away from thresholds' errors kept the type next to that jump (40 %
    off at N = 23): fitted orders 2.09 (q_L) and 2.57 (t) against the band [0.75, 1.25], exit 1 on a
    menu equal to the exact discrete optimum.  Types within 2 grid steps of a density breakpoint are
    now left out (orders 1.02 and 0.97), and the profit's order, whose O(1/N) constant moves with the
    jump's place in its cell, is reported with a note instead of checked."""
    res, v = _run(SCN_50_47, ctx)
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    rows = v[v.check == "leader_convergence_to_continuous"]
    assert sorted(rows.quantity) == ["observed order of max_rel_err_q_L_away_from_thresholds",
                                     "observed order of max_rel_err_t_away_from_thresholds"]
    assert np.all(np.abs(rows.numeric.to_numpy(float) - 1.0) <= 0.1)  # measured 1.02, 0.97
    assert any("order of rel_err_profit not checked (the density jumps at 2.2435" in n for n in res.notes)


SCN_91_9 = tomllib.loads('''
name = "competition_91_9"
[technology]
sigma = 0.6568
rho = 1.0
[[technology.tokens]]
name = "tok1"
weight = 0.420235
cost = 1.76478
[[technology.tokens]]
name = "tok2"
weight = 0.413858
cost = 0.0705206
[[technology.tokens]]
name = "tok3"
weight = 0.16590700000000003
cost = 0.236868
[types]
distribution = "piecewise"
breakpoints = [0.7917, 0.79909, 1.2172, 1.6729, 1.7917]
masses = [0.396575, 0.193621, 0.193855, 0.21594900000000006]
n = 57
[regimes.competition]
gamma_L = 0.2227
gamma_F = 0.0
c_L = 0.636046
c_F = 0.59999
task_cells = 0
refine = 10
''')


def test_theta_hi_row_after_a_density_spike(ctx):
    """competition_91_9 (seed 91): the continuous θ_hi was the spike's end 0.799, below θ_lo = 0.989
    (closed form fixed, tests/test_closed_form_competition.py); the NLP's boundary 1.4934 is now judged
    against 1.5022 and passes within one grid step, and every other row passes."""
    res, v = _run(SCN_91_9, ctx)
    bad = v[~v.passed.astype(bool)]
    assert res.converged and bad.empty, bad.to_string()
    row = v[(v.check == "leader_thresholds_vs_continuous") & v.quantity.str.startswith("theta_hi")]
    assert len(row) == 1 and float(row.reference.iloc[0]) == pytest.approx(1.50224, abs=1e-4)
