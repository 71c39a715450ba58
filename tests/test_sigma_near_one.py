"""σ close to 1 (README: 0 < σ < 1) in the regimes whose numbers go like θ^(1/(1−σ)) (stranger18 F0b, F0c).

At σ = 0.999 a type value w ≈ 2.5 gives θ = w^(1/(1−σ)) = 2.7^1000 = inf, and σθ/c ≈ 0.4 gives
Q_FB = (σθ/c)^(σ/(1−σ)) = 0.4^999 = 0: these valid scenarios ended in Python tracebacks.  Each must end
as a failed regime (exit 1, never verified) with the project's advice, the other regimes still run and
written -- never a traceback, never a false 'verified'."""
import pytest

HEAD = """\
name = "{name}"

[technology]
sigma = {sigma}
rho = 0.5

[[technology.tokens]]
name = "input"
weight = 0.6
cost = 1.0

[[technology.tokens]]
name = "output"
weight = 0.4
cost = 4.0

[types]
distribution = "uniform"
n = 10

[regimes.cost]
quantities = [0.5, 1.0]
"""

TWO_TYPES = """
[regimes.distributions]
family = "two-types"
ic = "all-pairs"
starts = ["neutral", "budget", "closed-form"]
random_starts = 0

[[regimes.distributions.pairs]]
name = "dominated"
high = {high}
low  = {low}
mass_high = 0.4
"""

ADVICE = "numbers out of double-precision range"


def run(tmp_path, capsys, text, name):
    import solve

    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    rc = solve.main([str(f), "--out", str(tmp_path / "out"), "--quiet"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err, tmp_path / "out" / name


def assert_failed_cleanly(rc, out, err, folder, regime):
    assert "Traceback" not in out + err, err[-3000:]
    assert rc == 1 and "NOT VERIFIED" in out and "all converged and verified" not in out, out[-3000:]
    assert ADVICE in out and "put θ on the technology's scale, docs/model.md §6" in out, out[-3000:]
    # the other regime (cost) still ran, verified, and the run was written
    import json

    summ = json.loads((folder / "summary.json").read_text())
    text = json.dumps(summ)
    assert "cost" in text and regime in text
    assert (folder / "verification.csv").is_file()
    import pandas as pd

    v = pd.read_csv(folder / "verification.csv")
    assert v[v.regime == "cost"].passed.all() and len(v[v.regime == "cost"]) > 0


@pytest.mark.parametrize("high,low", [
    ([2.7, 2.6, 2.55, 2.5], [2.5, 2.5, 2.45, 2.4]),      # s42b: θ = w^1000 = inf
    ([1.08, 1.04, 1.02, 1.0], [1.0, 1.0, 0.98, 0.96]),  # v42_smallw: Q_FB = 0.4^999 = 0
], ids=["theta_overflow", "quality_underflow"])
def test_two_types_at_sigma_0999_is_a_failed_regime_not_a_traceback(tmp_path, capsys, high, low):
    """stranger18 F0b: `ValueError: Var 'g[0,0]' … non-finite lower bound (inf)` (set_start) and
    `ZeroDivisionError` (build_menu's 1/Q) tracebacks."""
    text = HEAD.format(name="tt", sigma=0.999) + TWO_TYPES.format(high=high, low=low)
    rc, out, err, folder = run(tmp_path, capsys, text, "tt")
    assert_failed_cleanly(rc, out, err, folder, "distributions")


def test_two_types_at_sigma_0998_still_verifies(tmp_path, capsys):
    """The guard is not a false alarm: σ = 0.998 with the same pair is in range (v42_sig0.998)."""
    text = HEAD.format(name="tt", sigma=0.998) + TWO_TYPES.format(high=[2.7, 2.6, 2.55, 2.5],
                                                                  low=[2.5, 2.5, 2.45, 2.4])
    rc, out, err, _ = run(tmp_path, capsys, text, "tt")
    assert "Traceback" not in out + err and ADVICE not in out
    assert rc == 0 and "all converged and verified" in out, out[-3000:]


COMPETITION = """
[regimes.competition]
gamma_L = 0.0005
gamma_F = 0.0
c_L = 0.2
c_F = 0.16
convergence = [40, 80]
task_cells = 10
task_profiles = 1
"""


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (0.2, 0.21)], ids=["s54", "s54b_calibrated"])
def test_competition_at_sigma_0999_is_a_failed_regime_not_a_traceback(tmp_path, capsys, low, high):
    """stranger18 F0c: s54 (θ on [0, 1]) was `ValueError: No variables appear in the Pyomo model` from the
    nl writer (Q^FB = 5^2000 = inf made every coefficient nan); s54b (θ on [0.2, 0.21]) already failed
    cleanly but without the money-unit advice."""
    text = (HEAD.format(name="cm", sigma=0.999).replace('n = 10', f'low = {low}\nhigh = {high}\nn = 40')
            + COMPETITION)
    rc, out, err, folder = run(tmp_path, capsys, text, "cm")
    assert_failed_cleanly(rc, out, err, folder, "competition")


VERSIONS = """
[regimes.versions]
task_cells = 10
task_profiles = 1

[[regimes.versions.models]]
name = "small"
gamma = 0.0
c = 0.1
[[regimes.versions.models]]
name = "mid"
gamma = 0.0003
c = 0.12
[[regimes.versions.models]]
name = "big"
gamma = 0.0006
c = 0.15
"""


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (0.1, 0.105)], ids=["s55", "s55b_calibrated"])
def test_versions_at_sigma_0999_is_a_failed_regime_not_a_traceback(tmp_path, capsys, low, high):
    """stranger18 F0c: s55 (θ on [0, 1]: Q^FB = 9.99^999 = inf) was `ValueError: need c > 0 … c=nan` from
    versions.Units.models; s55b (θ on [0.1, 0.105]: the big model's Q^FB = 0.7^2500 = 0 in the top's
    units, its one-model program empty) was `ValueError: No variables appear in the Pyomo model`."""
    text = (HEAD.format(name="vs", sigma=0.999).replace('n = 10', f'low = {low}\nhigh = {high}\nn = 40')
            + VERSIONS)
    rc, out, err, folder = run(tmp_path, capsys, text, "vs")
    assert_failed_cleanly(rc, out, err, folder, "versions")
