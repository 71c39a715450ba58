"""Pyomo expressions of the gain g(x, z) = Ψ(x)·Φ(z) (docs/model.md §1).

Shared by every regime so that the technology is written once.
"""
from __future__ import annotations

import pyomo.environ as pyo

from models.closed_form.cost import Technology

# Lower bound on token variables: powers below 1 have infinite slope at 0, so
# every token quantity is kept >= X_FLOOR (in Mtok).  Reported in the README;
# it shifts objectives by O(X_FLOOR) only.
X_FLOOR = 1e-9


def psi(tech: Technology, x) -> pyo.Expression:
    """Ψ(x) for an indexable of J Pyomo variables (index 0..J-1)."""
    J = tech.J
    if tech.rho == 0:
        out = 1
        for j in range(J):
            out = out * x[j] ** (tech.sigma * tech.alpha[j])
        return out
    return _ces(tech.alpha, tech.rho, [x[j] for j in range(J)]) ** tech.sigma


def _ces(alpha, rho, x):
    """Degree-1 CES index (Σ α_j x_j^ρ)^(1/ρ) as a Pyomo expression.

    ρ < 0 is written m·(Σ α_j (x_j/m)^ρ)^(1/ρ) with m = Σ α_j x_j (exact by
    homogeneity): the plain form overflows as inputs go to 0 -- an excluded
    type's X ~ 1e-10 gives x^ρ = 1e300 at ρ = -30 (measured: Ipopt stopped
    with an evaluation error at ρ = -30 and only 'acceptable' at ρ = -12) --
    while the ratios x_j/m stay O(1) along the optimal ray."""
    if rho == 1:
        return sum(a * xj for a, xj in zip(alpha, x))
    if rho < 0:
        m = sum(a * xj for a, xj in zip(alpha, x))
        return m * sum(a * (xj / m) ** rho for a, xj in zip(alpha, x)) ** (1.0 / rho)
    return sum(a * xj ** rho for a, xj in zip(alpha, x)) ** (1.0 / rho)


def phi(tech: Technology, z) -> pyo.Expression:
    """Φ(z) for K Pyomo variables (1 when γ = 0)."""
    if tech.K == 0:
        return 1
    if tech.has_baseline:
        return (tech.baseline + z[0]) ** tech.gamma
    if tech.rho_hat == 0:
        out = 1
        for k in range(tech.K):
            out = out * z[k] ** (tech.gamma * tech.alpha_hat[k])
        return out
    return _ces(tech.alpha_hat, tech.rho_hat, [z[k] for k in range(tech.K)]) ** tech.gamma


def spend_x(tech: Technology, x):
    return sum(tech.cost[j] * x[j] for j in range(tech.J))


def spend_z(tech: Technology, z):
    return sum(tech.cost_hat[k] * z[k] for k in range(tech.K)) if tech.K else 0


def z_floor(tech: Technology) -> float:
    """Fine-tuning may be exactly 0 in the baseline form (b > 0 keeps Φ smooth)."""
    return 0.0 if tech.has_baseline else X_FLOOR


def unit_tolerances(obj_unit: float, var_scales, con_scales) -> dict:
    """Ipopt's absolute termination tests, stated in the model's own units.

    Besides ``tol`` on the *scaled* problem, Ipopt stops only when the
    *unscaled* constraint violation <= constr_viol_tol (default 1e-4), dual
    infeasibility <= dual_inf_tol (1) and complementarity <= compl_inf_tol
    (1e-4).  These are absolute numbers in the model's units ($, Mtok,
    quality).  With user scaling to the model's natural units the scaled test
    (tol = 1e-12 per row and variable) is the stricter one, unless the units
    are far from 1: at σ+γ = 0.95 and θ up to 44 the top quality is 1e42, an
    unscaled violation of 1e-4 is 1e-46 relative -- below round-off, so Ipopt
    iterated on at mu = 1e-21 until an evaluation at a bound gave Inf
    (findings budget_11_11); in the cost NLP at σ = 0.1 an input of scale
    1e-16 turns a scaled dual residual of 1e-14 into 1e7 $/Mtok and Ipopt ran
    to max_iter at a solution correct to 3e-15 (budget_20_12).  The defaults
    are multiplied by the largest unit conversion (1 for O(1) models, so
    nothing changes there):

    * constraint rows: by max(1, row scales);
    * dual residuals (objective unit per variable unit): by
      max(1, obj_unit / min variable scale);
    * complementarity (objective units): by max(1, obj_unit).
    """
    import numpy as np

    v = np.asarray(var_scales, float).ravel()
    c = np.asarray(con_scales, float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    c = c[np.isfinite(c) & (c > 0)]
    vmin = float(v.min()) if v.size else 1.0
    return {"constr_viol_tol": 1e-4 * max(1.0, float(c.max()) if c.size else 1.0),
            "dual_inf_tol": max(1.0, obj_unit / vmin),
            "compl_inf_tol": 1e-4 * max(1.0, obj_unit)}
