r"""Distributions of the aggregate type θ and their discretisations.  No Pyomo.

Each distribution gives F, f, the virtual value :math:`h(\theta)=\theta-(1-F)/f`
and a discretisation into N types ``(theta, mass)``:

``grid = "equal-spacing"`` (default)
    N equal cells of [low, high]; each type sits at its cell's midpoint and
    carries the cell's probability F(right) − F(left).
``grid = "equal-mass"``
    N cells of equal probability 1/N; each type sits at the quantile
    midpoint F⁻¹((k − ½)/N).

Both converge to the continuous model at O(1/N).  A ``discrete``
distribution is already a list of (θ, mass) and is used as given.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import functools
import math

import numpy as np
from scipy import special


@functools.lru_cache(maxsize=64)
def _betaln(p: float, q: float) -> float:
    return float(special.betaln(p, q))


def _beta_pdf(t, d) -> np.ndarray:
    """Beta(p, q) density on [low, high] from scipy.special (scipy.stats.beta.pdf
    costs ~0.4 ms per scalar call in its argument checks, and the nested
    quadratures of the value-scale continuum call it ~10⁵ times: measured
    117 s of a 141 s run, value_scale_20_7).  0 outside the support; the
    end values follow x^(p−1)(1−x)^(q−1) (∞ for p < 1 at the low end)."""
    w = d.high - d.low
    if np.ndim(t) == 0:  # scalar fast path (quadrature integrands): plain floats
        x = (float(t) - d.low) / w
        if not 0.0 <= x <= 1.0:
            return np.float64(0.0)
        if (x == 0.0 and d.p < 1) or (x == 1.0 and d.q < 1):
            return np.float64(np.inf)
        if (x == 0.0 and d.p > 1) or (x == 1.0 and d.q > 1):
            return np.float64(0.0)
        lx = (d.p - 1) * math.log(x) if d.p != 1 else 0.0
        l1 = (d.q - 1) * math.log1p(-x) if d.q != 1 else 0.0
        return np.float64(math.exp(lx + l1 - _betaln(d.p, d.q)) / w)
    x = (np.asarray(t, float) - d.low) / w
    inside = (x >= 0) & (x <= 1)
    xc = np.clip(x, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logf = special.xlogy(d.p - 1, xc) + special.xlog1py(d.q - 1, -xc) - special.betaln(d.p, d.q)
        out = np.exp(logf) / w
    return np.where(inside, out, 0.0)


@dataclass(frozen=True)
class TypeDistribution:
    kind: str  # uniform | beta | piecewise | discrete
    low: float = 0.0
    high: float = 1.0
    p: float = 1.0  # beta shape parameters
    q: float = 1.0
    breakpoints: tuple[float, ...] = ()  # piecewise: K+1 points
    masses: tuple[float, ...] = ()  # piecewise: K masses summing to 1
    points: tuple[float, ...] = ()  # discrete: theta values
    weights: tuple[float, ...] = ()  # discrete: masses

    # -------------------------------------------------------------- cdf/pdf
    def cdf(self, t) -> np.ndarray:
        t = np.asarray(t, float)
        if self.kind == "uniform":
            return np.clip((t - self.low) / (self.high - self.low), 0, 1)
        if self.kind == "beta":
            return special.betainc(self.p, self.q, np.clip((t - self.low) / (self.high - self.low), 0.0, 1.0))
        if self.kind == "piecewise":
            b = np.asarray(self.breakpoints)
            cum = np.concatenate([[0.0], np.cumsum(self.masses)])
            return np.interp(t, b, cum)
        if self.kind == "discrete":
            pts, w = np.asarray(self.points), np.asarray(self.weights)
            return np.array([w[pts <= x].sum() for x in np.atleast_1d(t)]).reshape(t.shape)
        raise ValueError(self.kind)

    def pdf(self, t) -> np.ndarray:
        t = np.asarray(t, float)
        if self.kind == "uniform":
            inside = (t >= self.low) & (t <= self.high)
            return np.where(inside, 1.0 / (self.high - self.low), 0.0)
        if self.kind == "beta":
            return _beta_pdf(t, self)
        if self.kind == "piecewise":
            b = np.asarray(self.breakpoints)
            dens = np.asarray(self.masses) / np.diff(b)
            idx = np.clip(np.searchsorted(b, t, side="right") - 1, 0, len(dens) - 1)
            return np.where((t >= b[0]) & (t <= b[-1]), dens[idx], 0.0)
        raise ValueError(f"{self.kind} distribution has no density")

    def ppf(self, u) -> np.ndarray:
        u = np.asarray(u, float)
        if self.kind == "uniform":
            return self.low + u * (self.high - self.low)
        if self.kind == "beta":
            return self.low + (self.high - self.low) * special.betaincinv(self.p, self.q, u)
        if self.kind == "piecewise":
            cum = np.concatenate([[0.0], np.cumsum(self.masses)])
            return np.interp(u, cum, np.asarray(self.breakpoints))
        raise ValueError(self.kind)

    def sf(self, t) -> np.ndarray:
        """1 − F(θ), computed directly where 1 − cdf would cancel (Beta top:
        1 − F ~ 1e-12 at the last equal-spacing cell of Beta(2, 5) on a fine
        grid, where 1 − cdf keeps 4 digits)."""
        t = np.asarray(t, float)
        if self.kind == "beta":  # I_{1−x}(q, p): the upper tail without cancellation
            return special.betainc(self.q, self.p, np.clip((self.high - t) / (self.high - self.low), 0.0, 1.0))
        if self.kind == "uniform":
            return np.clip((self.high - t) / (self.high - self.low), 0, 1)
        return 1.0 - self.cdf(t)

    def virtual_value(self, t) -> np.ndarray:
        r""":math:`h(\theta)=\theta-(1-F(\theta))/f(\theta)` (1 − F from ``sf``)."""
        t = np.asarray(t, float)
        with np.errstate(divide="ignore", invalid="ignore"):  # f = 0 at an end: callers take the limit
            return t - self.sf(t) / self.pdf(t)

    @property
    def support(self) -> tuple[float, float]:
        if self.kind == "piecewise":
            return self.breakpoints[0], self.breakpoints[-1]
        if self.kind == "discrete":
            return min(self.points), max(self.points)
        return self.low, self.high

    # ------------------------------------------------------- discretisation
    def discretise(self, n: int, grid: str = "equal-spacing") -> tuple[np.ndarray, np.ndarray]:
        """N types (theta ascending, masses summing to 1)."""
        if self.kind == "discrete":
            th = np.asarray(self.points, float)
            w = np.asarray(self.weights, float)
            order = np.argsort(th)
            return th[order], w[order] / w.sum()
        lo, hi = self.support
        if grid == "equal-spacing":
            edges = np.linspace(lo, hi, n + 1)
            theta = 0.5 * (edges[:-1] + edges[1:])
            # cell probabilities from F below the median and from 1 − F above
            # it: a difference of two numbers near 1 would leave the top cells
            # of a Beta (mass ~1e-15) with few correct digits
            F, S = self.cdf(edges), self.sf(edges)
            mass = np.where(F[1:] <= 0.5, np.diff(F), -np.diff(S))
        elif grid == "equal-mass":
            u = (np.arange(n) + 0.5) / n
            theta = self.ppf(u)
            mass = np.full(n, 1.0 / n)
        else:
            raise ValueError(grid)
        keep = mass > 0
        theta, mass = theta[keep], mass[keep]
        return theta, mass / mass.sum()


def expectation(dist: TypeDistribution, g, n: int = 20001) -> float:
    """E[g(θ)] by composite Simpson on the support (densities here are piecewise smooth)."""
    from scipy.integrate import simpson

    if dist.kind == "discrete":
        th, w = dist.discretise(0)
        return float(np.sum(w * g(th)))
    if dist.kind == "piecewise":
        total = 0.0
        b = dist.breakpoints
        for a, c in zip(b[:-1], b[1:]):
            t = np.linspace(a, c, n)
            total += simpson(g(t) * dist.pdf(0.5 * (a + c)) * np.ones_like(t), x=t)
        return float(total)
    lo, hi = dist.support
    if dist.kind == "beta" and min(dist.p, dist.q) < BETA_SMOOTH:
        return _beta_expectation(dist, g)
    t = np.linspace(lo, hi, n)
    return float(simpson(g(t) * dist.pdf(t), x=t))


# Simpson on the density is used where the Beta density is at least C¹ at both
# ends (p, q >= 2: the integrand's error term is O(h^min(p,q)) <= 2.5e-9 at
# 20,001 points).  Below that the density has an infinite slope (1 < p < 2) or
# is infinite (p < 1) at an end: Simpson's nodes at the ends then give 0·∞ = NaN
# (stranger17 F1: Beta(0.5, 0.5)) or an O(h^p) error.  There each half of [0, 1]
# is integrated by QUADPACK's QAWS rule (scipy.integrate.quad, weight="alg"),
# which integrates the singular end's factor x^(p−1) (or (1−x)^(q−1)) exactly
# (modified Clenshaw–Curtis moments) while bisecting adaptively; the rest of the
# density (the other end's factor over B(p, q), formed in logs so huge shapes
# neither overflow nor lose the moments: q = 1e4 as a QAWS exponent gave NaN)
# is the smooth part.  Requested accuracy BETA_QUAD_RTOL relative; measured
# against E[θ^r] = B(p + r, q)/B(p, q) (tests/test_type_space.py): <= 2e-12.
BETA_SMOOTH = 2.0
BETA_QUAD_RTOL = 1e-12


def _beta_expectation(dist: TypeDistribution, g) -> float:
    """E[g(θ)] for Beta(p, q) on [low, high]: ∫₀¹ g(low + w·x) x^(p−1)(1−x)^(q−1) dx / B(p, q),
    the lower half of [0, 1] in x, the upper half in y = 1 − x (so a type near
    ``high`` is hi − w·y, without cancellation), each half cut at quantiles of
    its own variable so the adaptive rule sees where the mass is (Beta(1.5, 1e6):
    all of it within 1e-5 of 0, which a bisection of [0, 1/2] never samples)."""
    import warnings

    from scipy.integrate import IntegrationWarning, quad

    lo, hi, w, p, q = float(dist.low), float(dist.high), float(dist.high - dist.low), float(dist.p), float(dist.q)
    lnb = _betaln(p, q)
    u = np.array([1e-12, 1e-9, 1e-6, 1e-4, 1e-2, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 1 - 1e-4, 1 - 1e-6])

    def half(a, b, theta_of, singular):
        # ∫₀^½ g(θ(z)) z^(a−1)(1−z)^(b−1) dz / B(p, q); the z^(a−1) factor as
        # QAWS weight on the first piece where it is singular (a < BETA_SMOOTH)
        def part(z, with_own):
            lg = -lnb + (special.xlogy(a - 1.0, z) if with_own else 0.0) + special.xlog1py(b - 1.0, -z)
            gz = float(np.asarray(g(np.array([theta_of(z)], float)), float).reshape(-1)[0])
            return gz * math.exp(lg) if gz else 0.0

        cuts = special.betaincinv(a, b, u)
        cuts = cuts[(cuts > 0) & (cuts < 0.5)]
        # beyond the last quantile cut the tail decays fast (Beta(1.5, 1e6):
        # exp(−1e6·z) from 2e-5 on); doubling cuts up to 1/2 keep every piece
        # within a few decay lengths of where its integrand lives
        top = float(cuts.max()) if cuts.size else 0.5
        grow = top * 2.0 ** np.arange(1, 64)
        z = np.unique(np.concatenate([[0.0], cuts, grow[grow < 0.5], [0.5]]))
        tot = 0.0
        for k, (z0, z1) in enumerate(zip(z[:-1], z[1:])):
            wq = k == 0 and singular
            val, _ = quad(part, z0, z1, args=(not wq,), weight="alg", wvar=(a - 1.0 if wq else 0.0, 0.0),
                          epsabs=0.0, epsrel=BETA_QUAD_RTOL, limit=200)
            tot += val
        return tot

    with warnings.catch_warnings():
        # QUADPACK's round-off note at the requested 1e-12 is not an error: the
        # result is measured to <= 2e-12 (above); a NaN would still show
        warnings.simplefilter("ignore", IntegrationWarning)
        total = (half(p, q, lambda x: lo + w * x, p < BETA_SMOOTH)
                 + half(q, p, lambda y: hi - w * y, q < BETA_SMOOTH))
    return float(total)
