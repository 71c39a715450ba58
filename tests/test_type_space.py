"""models.type_space.expectation on Beta types with a density that is
singular or has an infinite slope at an end (p or q < 2), against exact
moments (stranger17 F1: Beta(0.5, 0.5) gave NaN, and plans' linear_continuum
row was silently dropped)."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from models.type_space import BETA_QUAD_RTOL, TypeDistribution, expectation

ROOT = Path(__file__).resolve().parent.parent

SHAPES = [(0.5, 0.5), (0.3, 25.0), (1.5, 1.2), (0.8, 300.0), (1.0, 1.9), (0.05, 0.05), (1.99, 50.0),
          (0.02, 1.5), (1.2, 800.0), (0.5, 2.0), (2.0, 0.5), (3.0, 0.5), (20.0, 0.9), (1.0, 1.0)]
# QUADPACK is asked for BETA_QUAD_RTOL (1e-12) on each of at most ~30 pieces of
# one sign, so the sum is within 30 × 1e-12 relative; measured worst 1.2e-12.
TOL = 30 * BETA_QUAD_RTOL


def _quiet(dist, g):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (0·∞) and no IntegrationWarning escapes
        return expectation(dist, g)


@pytest.mark.parametrize("p, q", SHAPES)
@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (2.0, 7.0), (0.0, 100.0)])
def test_beta_moments_exact(p, q, lo, hi):
    """E[x^k], x = (θ − low)/(high − low), = Π_{i<k} (p + i)/(p + q + i) (k = 1, 2, 3)."""
    d = TypeDistribution("beta", low=lo, high=hi, p=p, q=q)
    for k in (1, 2, 3):
        got = _quiet(d, lambda th: ((th - lo) / (hi - lo)) ** k)
        exact = math.prod((p + i) / (p + q + i) for i in range(k))
        assert abs(got - exact) <= TOL * exact, (p, q, lo, hi, k, got, exact)


@pytest.mark.parametrize("p, q", SHAPES)
def test_beta_fractional_power_exact(p, q):
    """E[θ^r] on [0, 3] = 3^r B(p + r, q)/B(p, q) for fractional r (the plans
    integrands are such powers of θ, with an infinite slope at θ = 0)."""
    d = TypeDistribution("beta", low=0.0, high=3.0, p=p, q=q)
    for r in (0.37, 2.5):
        got = _quiet(d, lambda th: np.maximum(th, 0.0) ** r)
        exact = 3.0 ** r * math.exp(special.betaln(p + r, q) - special.betaln(p, q))
        assert abs(got - exact) <= TOL * exact, (p, q, r, got, exact)


@pytest.mark.parametrize("p, q", [(1.5, 1e6), (1e5, 0.3), (0.7, 1e4)])
def test_beta_extreme_shapes(p, q):
    """Mass within 1e-5 of an end (a bisection of [0, 1/2] never samples it):
    the quantile cuts find it.  The log-density then carries ~1e-10 relative
    round-off (measured 1.9e-10), hence 1e-9 here."""
    d = TypeDistribution("beta", low=0.0, high=1.0, p=p, q=q)
    for k in (1, 2):
        got = _quiet(d, lambda th: th ** k)
        exact = math.prod((p + i) / (p + q + i) for i in range(k))
        assert abs(got - exact) <= 1e-9 * exact, (p, q, k, got, exact)


def test_plans_linear_continuum_row_on_singular_beta(tmp_path):
    """stranger17 F1: Beta(0.5, 0.5) types -- the linear_continuum row was
    dropped (NaN share) and the report said 'nan %'."""
    scn = tmp_path / "b.toml"
    scn.write_text('name = "b"\n[technology]\nsigma = 0.5\nrho = 0.0\n[[technology.tokens]]\nname = "tok"\n'
                   'weight = 1.0\ncost = 1.0\n[types]\ndistribution = "beta"\np = 0.5\nq = 0.5\nlow = 0.0\n'
                   'high = 1.0\nn = 30\ngrid = "equal-mass"\n[regimes.plans]\nK = [1, 2]\n')
    out = subprocess.run([sys.executable, str(ROOT / "solve.py"), str(scn),
                          "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ver = (tmp_path / "o" / "b" / "verification.csv").read_text()
    assert "linear_continuum" in ver, out.stdout[-2000:] + out.stderr[-2000:]
    assert "nan %" not in (tmp_path / "o" / "b" / "report.md").read_text()
