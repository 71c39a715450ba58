"""stranger18 F6: an exit-0 run whose exported two-part price sheet does not implement the menu (an ironed
menu: θ/φ̄ increases over the served plans) said so only in report.md.  The sheet now carries, per plan, what
its own buyer gains by taking another plan (`gain_from_another_plan_usd`), and the console prints a caution
under the regime's status line.  The tester's independent check (numpy, each type's best plan on the exported
sheet, C = c·Q^(1/η)): max regret 0.0553 of max U, 19 of 20 served types moved."""
from __future__ import annotations

import numpy as np
import pandas as pd

SPEED = "integration"

S10 = """
name = "s10"
[technology]
sigma = 0.6
rho = -0.5
[[technology.tokens]]
name = "input"
weight = 0.5
cost = 1.0
[[technology.tokens]]
name = "output"
weight = 0.5
cost = 3.0
[technology.fine_tuning]
gamma = 0.2
[[technology.fine_tuning.classes]]
name = "ft"
weight = 1.0
cost = 1.0
[types]
distribution = "piecewise"
breakpoints = [0.0, 0.3, 0.8, 0.9, 1.0]
masses = [0.55, 0.02, 0.38, 0.05]
n = 100
[regimes.budgets]
ic = "local"
lemma_cells = 0
"""


def _brute_gain(sheet: pd.DataFrame, c: float, eta: float, U_menu) -> np.ndarray:
    """Each plan's buyer θ_l re-optimises her quality under every plan (p, F) of the sheet: with C = c·Q^(1/η)
    her best Q under multiplier p solves θ = p·c·Q^(1/η−1)/η; compared with her menu utility (or 0)."""
    th = sheet["theta"].to_numpy()
    p = sheet["price_multiplier"].to_numpy()
    F = sheet["fixed_fee_usd"].to_numpy()
    Q = (th[:, None] * eta / (p[None, :] * c)) ** (eta / (1 - eta))
    V = th[:, None] * Q - p[None, :] * c * Q ** (1 / eta) - F[None, :]
    return np.maximum(np.maximum(V.max(axis=1), 0.0) - U_menu, 0.0)


def test_a_sheet_that_does_not_implement_the_menu_says_so_in_the_file_and_on_the_console(tmp_path, capsys):
    import solve
    from models import scenario
    from models.closed_form import cost as cf

    (tmp_path / "s.toml").write_text(S10)
    rc = solve.main([str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    sheet = pd.read_csv(tmp_path / "out" / "s10" / "budgets" / "tariff_two_part.csv")
    menu = pd.read_csv(tmp_path / "out" / "s10" / "budgets" / "menu.csv")
    tech = scenario.load(tmp_path / "s.toml").technology
    eta = tech.sigma + tech.gamma
    c = float(cf.cost(tech, 1.0))  # C(1) = c for the homogeneous C = c·Q^(1/η) (no baseline)
    ucol = next(col for col in menu.columns if col in ("U", "utility"))
    U_menu = menu.set_index("theta")[ucol].reindex(sheet["theta"]).to_numpy()
    gain = sheet["gain_from_another_plan_usd"].to_numpy()
    brute = _brute_gain(sheet, c, eta, np.maximum(U_menu, 0))
    # the column is the brute force's: both are the same closed-form choice, to round-off of the utilities
    # (|U| <= max U ~ 1e-4 here; 1e-12 of it is far above double round-off of θQ - pC - F)
    assert np.max(np.abs(gain - brute)) <= 1e-9 * np.max(U_menu)
    regret = gain.max() / np.max(U_menu)
    assert 0.05 < regret < 0.06  # the tester's 0.0553
    assert int(np.sum(gain > 1e-7 * np.max(menu["t_usd"].abs()))) == 19
    assert "caution: tariff_two_part.csv does not implement this menu" in out
    assert "19 of 20 plans' buyers gain by another plan" in out
