r"""Technology and the cost of quality (docs/model.md §2.1).  No Pyomo here.

Gain :math:`g(x,z)=\Psi(x)\Phi(z)` with

* :math:`\Psi(x)=(\sum_j\alpha_j x_j^\rho)^{\sigma/\rho}` (``rho == 0``:
  Cobb-Douglas :math:`\prod_j x_j^{\sigma\alpha_j}`), homogeneous of degree σ;
* :math:`\Phi(z)=(\sum_k\hat\alpha_k z_k^{\hat\rho})^{\gamma/\hat\rho}`,
  homogeneous of degree γ, or the baseline form :math:`\Phi(z)=(b+z)^\gamma`
  (one fine-tuning class, ``b > 0``: fine-tuning optional).

Units: token quantities in millions of tokens (Mtok), costs in $ per Mtok.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Technology:
    """Primitives of the gain function and the token costs.

    ``alpha``/``cost`` are per token class (J of them); ``alpha_hat``/
    ``cost_hat`` per fine-tuning class (K of them; K = 0 means γ = 0).
    ``baseline`` is ``b`` of the baseline form (None: homogeneous Φ).
    """

    sigma: float
    rho: float
    alpha: tuple[float, ...]
    cost: tuple[float, ...]
    gamma: float = 0.0
    rho_hat: float = 0.0
    alpha_hat: tuple[float, ...] = ()
    cost_hat: tuple[float, ...] = ()
    baseline: float | None = None
    token_names: tuple[str, ...] = ()
    ft_names: tuple[str, ...] = ()

    @property
    def eta(self) -> float:
        return self.sigma + self.gamma

    @property
    def J(self) -> int:
        return len(self.alpha)

    @property
    def K(self) -> int:
        return len(self.alpha_hat) if self.gamma > 0 else 0

    @property
    def has_baseline(self) -> bool:
        return self.baseline is not None and self.gamma > 0

    def with_(self, **kw) -> "Technology":
        d = dict(self.__dict__)
        d.update(kw)
        return Technology(**d)


# ------------------------------------------------------------ CES pieces
# ρ = 1 (perfect substitutes): only the classes with the lowest price per
# unit of index c_j/α_j are bought.  Exact ties (within EXACT_TIE_RTOL, i.e.
# float round-off) are split by equal index share α_j x_j -- a deterministic
# choice: every split of a tie is optimal, so an NLP's split is arbitrary
# (path-dependent; measured 2e-4 off equal shares), and verification compares
# the tied classes' index Σ α_j x_j instead (tie_groups).  Near ties are just
# as undetermined numerically: an interior-point solve leaves μ/gap on the
# dearer class (measured: gap 1e-6 relative left X errors 5e-7 at tol 1e-12),
# so verification groups classes within TIE_RTOL = 1e-5 of the cheapest
# (leaves X errors <= ~1e-8, 10x below the cost regime's 1e-7).
EXACT_TIE_RTOL = 1e-12
TIE_RTOL = 1e-5
# |ρ| below this: CES formulas are evaluated by their series-safe forms
# (log1p/expm1) instead of powers ^(1/ρ), which lose ~1e-16/|ρ| relative
# accuracy (measured: ρ = 1e-12 lost 4 digits with the plain formula).
SMALL_RHO = 1e-4


def _log_ces(logx, a, rho):
    """log of (Σ a_j exp(ρ·logx_j))^(1/ρ) over the last axis, for any ρ ≠ 0:
    log1p/expm1 when |ρ| < SMALL_RHO (→ Σ a_j logx_j / Σ a_j ... as ρ → 0 for
    Σa = 1), a max-shifted log-sum-exp otherwise (no overflow for |ρ·logx| large)."""
    a = np.asarray(a, float)
    if abs(rho) < SMALL_RHO:
        A = np.sum(a, axis=-1)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            m = np.sum(a / A * np.expm1(rho * logx), axis=-1)
            return (np.log(A) + np.log1p(m)) / rho
    e = rho * logx + np.log(a)
    mx = np.max(e, axis=-1, keepdims=True)
    return (np.squeeze(mx, -1) + np.log(np.sum(np.exp(e - mx), axis=-1))) / rho


def ces_index(x, weights, rho) -> np.ndarray:
    r"""Degree-1 CES index :math:`(\sum_j a_j x_j^\rho)^{1/\rho}` over the last axis.

    ρ = 0: Cobb-Douglas :math:`\prod x_j^{a_j}`; ρ = 1: :math:`\sum_j a_j x_j`;
    small |ρ| through log1p/expm1 (see SMALL_RHO); ρ < 0 with some x_j = 0
    gives 0 (the limit)."""
    x = np.asarray(x, float)
    a = np.asarray(weights, float)
    if rho == 0:
        return np.exp(np.sum(a * np.log(np.maximum(x, 1e-300)), axis=-1))
    if rho == 1:
        return np.sum(a * x, axis=-1)
    if rho >= SMALL_RHO:  # plain powers: no overflow, round-off ≤ 1e-16/ρ ≤ 1e-12
        return np.sum(a * np.maximum(x, 0.0) ** rho, axis=-1) ** (1.0 / rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.log(np.maximum(x, 0.0))  # -inf at 0: the limit (0 for ρ < 0)
    if rho < 0:
        return np.exp(np.where(np.all(np.isfinite(lx), axis=-1), _log_ces(np.where(np.isfinite(lx), lx, 0.0), a, rho),
                               -np.inf))
    return np.exp(_log_ces(lx, a, rho))


# Smallest |ρ| ≠ 0 an NLP can be verified at: the power form (Σ α x^ρ)^(1/ρ)
# that the NLPs evaluate (Pyomo has no expm1/log1p) carries a relative
# round-off ~1e-16/|ρ| (measured: ρ = 1e-8 left Ipopt 'acceptable' with
# errors 2e-8; 1e-4 needed a tolerance above 1e-12 in the cost regime).
# Below it a scenario is rejected (use ρ = 0, Cobb-Douglas).
MIN_ABS_RHO = 1e-6


def rho_problem(tech: "Technology") -> str | None:
    """Why the technology's CES exponents cannot be solved and verified, or None."""
    for name, r, n in (("technology.rho", tech.rho, tech.J), ("technology.fine_tuning.rho", tech.rho_hat, tech.K)):
        if n >= 2 and r != 0 and abs(r) < MIN_ABS_RHO:
            return (f"{name} = {r:g}: 0 < |rho| < {MIN_ABS_RHO:g} is not allowed (the CES power form loses "
                    f"~1e-16/|rho| relative accuracy); use 0 (Cobb-Douglas) or |rho| >= {MIN_ABS_RHO:g}")
    return None


def evaluation_tol(tech: "Technology") -> float:
    """Ipopt tolerance the gain function's round-off allows: 1e-12, or
    1e-15/|ρ| for a small |ρ| (10x above the ~1e-16/|ρ| round-off of the power
    form), so Ipopt can stop 'optimal' instead of 'acceptable'.

    A single class counts too when ρ > 0: the NLPs evaluate (α x^ρ)^(1/ρ)
    with α = 1 (gain._ces), whose round-off is the same 1e-16/ρ although the
    index is x exactly (cost16_4: J = 1, ρ = 1e-6 ended 'acceptable' at tol
    1e-12 with C off 3e-11).  For ρ < 0 one class is exact: m·((x/m)^ρ)^(1/ρ)
    with x/m = 1."""
    tol = 1e-12
    for r, n in ((tech.rho, tech.J), (tech.rho_hat, tech.K)):
        if (n >= 2 or (n == 1 and r > 0)) and r not in (0, 1):
            tol = max(tol, 1e-15 / abs(r))
    return tol


def tied_classes(weights, costs, rho, rtol: float = EXACT_TIE_RTOL) -> np.ndarray:
    """ρ = 1: boolean mask of the cheapest classes per unit of index (within
    ``rtol`` of the minimum); otherwise every class (all are used)."""
    a = np.asarray(weights, float)
    c = np.asarray(costs, float)
    if rho != 1:
        return np.ones(a.shape, bool)
    r = c / a
    return r <= r.min() * (1 + rtol)


def tie_groups(weights, costs, rho) -> list[list[int]]:
    """Classes whose split the optimum does not determine (to what an NLP
    resolves): ρ = 1, two or more classes within TIE_RTOL of the cheapest.
    Verification compares Σ_{j in group} α_j x_j for each group."""
    mask = tied_classes(weights, costs, rho, TIE_RTOL)
    return [list(np.flatnonzero(mask))] if rho == 1 and mask.sum() > 1 else []


def unit_cost(weights, costs, rho) -> float:
    r"""Price of one unit of the degree-1 CES index.

    :math:`p=(\sum_j a_j^s c_j^{1-s})^{1/(1-s)}`, :math:`s=1/(1-\rho)`;
    Cobb-Douglas (ρ=0): :math:`p=\prod_j (c_j/a_j)^{a_j}`; perfect substitutes
    (ρ=1, the limit s → ∞): :math:`p=\min_j c_j/a_j`.  Written as
    :math:`\log p = \frac1\varepsilon\log\sum_j a_j (c_j/a_j)^{\varepsilon}`,
    ε = 1−s = −ρ/(1−ρ), evaluated with log1p/expm1 so that ρ → 0 and ρ → −∞
    (ε → 1: the Leontief limit p = Σ_j c_j) keep full accuracy.
    """
    a = np.asarray(weights, float)
    c = np.asarray(costs, float)
    if rho == 0:
        return float(np.prod((c / a) ** a))
    if rho == 1:
        return float(np.min(c / a))
    eps = -rho / (1.0 - rho)
    L = np.log(c / a)
    return float(np.exp(_log_ces(L, a, eps)))


def unit_demands(weights, costs, rho) -> np.ndarray:
    """Inputs that buy one unit of the CES index at least cost (sum c·x = p).

    ρ = 1: corner -- only the cheapest classes per unit of index, ties split
    by equal index share α_j x_j (see TIE_RTOL)."""
    a = np.asarray(weights, float)
    c = np.asarray(costs, float)
    if rho == 1:
        tie = tied_classes(a, c, rho)
        return np.where(tie, 1.0 / (tie.sum() * a), 0.0)
    p = unit_cost(a, c, rho)
    if rho == 0:
        return a * p / c
    s = 1.0 / (1.0 - rho)
    return (a * p / c) ** s


def psi(tech: Technology, X) -> np.ndarray:
    return ces_index(X, tech.alpha, tech.rho) ** tech.sigma


def phi(tech: Technology, Z) -> np.ndarray:
    Z = np.asarray(Z, float)
    if tech.gamma == 0:
        return np.ones(Z.shape[:-1]) if Z.ndim else np.float64(1.0)
    if tech.has_baseline:
        return (tech.baseline + Z[..., 0]) ** tech.gamma
    return ces_index(Z, tech.alpha_hat, tech.rho_hat) ** tech.gamma


def p_X(tech: Technology) -> float:
    return unit_cost(tech.alpha, tech.cost, tech.rho)


def p_Z(tech: Technology) -> float:
    if tech.K == 0:
        return 0.0
    return unit_cost(tech.alpha_hat, tech.cost_hat, tech.rho_hat)


# ------------------------------------------------------- cost of quality
def cost_coefficient(tech: Technology) -> float:
    r"""``c`` in :math:`C(Q)=cQ^{1/\eta}` (homogeneous case; derived).

    :math:`c=\eta(p_X/\sigma)^{\sigma/\eta}(p_Z/\gamma)^{\gamma/\eta}`;
    γ = 0 gives :math:`c=p_X`.
    """
    s, g, e = tech.sigma, tech.gamma, tech.eta
    if tech.K == 0:
        return p_X(tech)
    return e * (p_X(tech) / s) ** (s / e) * (p_Z(tech) / g) ** (g / e)


def baseline_constants(tech: Technology) -> dict:
    r"""Constants of the baseline form (derived): κ = p_X, c0, Q̄, h̄ = C'(Q̄)."""
    s, g, e, b = tech.sigma, tech.gamma, tech.eta, tech.baseline
    kappa = p_X(tech)
    ch = tech.cost_hat[0]
    c0 = e * (kappa / s) ** (s / e) * (ch / g) ** (g / e)
    Qbar = b**e * (s * ch / (kappa * g)) ** s
    hbar = kappa * b ** (-g / s) * Qbar ** (1 / s - 1) / s
    return {"kappa": kappa, "c0": c0, "Qbar": Qbar, "hbar": hbar}


def cost(tech: Technology, Q) -> np.ndarray:
    """Cost of quality C(Q) (docs/model.md §2.1)."""
    Q = np.maximum(np.asarray(Q, float), 0.0)
    if tech.K == 0:
        return p_X(tech) * Q ** (1 / tech.sigma)
    if tech.has_baseline:
        k = baseline_constants(tech)
        low = k["kappa"] * tech.baseline ** (-tech.gamma / tech.sigma) * Q ** (1 / tech.sigma)
        high = k["c0"] * Q ** (1 / tech.eta) - tech.cost_hat[0] * tech.baseline
        return np.where(Q <= k["Qbar"], low, high)
    return cost_coefficient(tech) * Q ** (1 / tech.eta)


def marginal_cost(tech: Technology, Q) -> np.ndarray:
    """C'(Q)."""
    Q = np.maximum(np.asarray(Q, float), 0.0)
    if tech.K == 0:
        return p_X(tech) / tech.sigma * Q ** (1 / tech.sigma - 1)
    if tech.has_baseline:
        k = baseline_constants(tech)
        s, e = tech.sigma, tech.eta
        low = k["kappa"] * tech.baseline ** (-tech.gamma / s) * Q ** (1 / s - 1) / s
        high = k["c0"] / e * Q ** (1 / e - 1)
        return np.where(Q <= k["Qbar"], low, high)
    e = tech.eta
    return cost_coefficient(tech) / e * Q ** ((1 - e) / e)


def inverse_marginal_cost(tech: Technology, v) -> np.ndarray:
    """Q with C'(Q) = v (0 where v <= 0)."""
    v = np.asarray(v, float)
    vp = np.maximum(v, 0.0)
    if tech.K == 0:
        s = tech.sigma
        q = (vp * s / p_X(tech)) ** (s / (1 - s))
    elif tech.has_baseline:
        k = baseline_constants(tech)
        s, e = tech.sigma, tech.eta
        q_low = (vp * s / (k["kappa"] * tech.baseline ** (-tech.gamma / s))) ** (s / (1 - s))
        q_high = (vp * e / k["c0"]) ** (e / (1 - e))
        q = np.where(vp <= k["hbar"], q_low, q_high)
    else:
        e = tech.eta
        q = (vp * e / cost_coefficient(tech)) ** (e / (1 - e))
    return np.where(v > 0, q, 0.0)


def inputs(tech: Technology, Q) -> tuple[np.ndarray, np.ndarray]:
    """Cost-minimising (X, Z) for quality Q: arrays of shape (..., J), (..., K)."""
    Q = np.maximum(np.asarray(Q, float), 0.0)
    s, g, e = tech.sigma, tech.gamma, tech.eta
    ux = unit_demands(tech.alpha, tech.cost, tech.rho)
    if tech.K == 0:
        H = Q ** (1 / s)
        return H[..., None] * ux, np.zeros(Q.shape + (0,))
    uz = unit_demands(tech.alpha_hat, tech.cost_hat, tech.rho_hat)
    C = cost(tech, Q)
    if tech.has_baseline:
        k = baseline_constants(tech)
        b = tech.baseline
        H_low = (Q * b ** (-g)) ** (1 / s)
        Zp = g / e * k["c0"] * Q ** (1 / e) / tech.cost_hat[0]  # b + z at the interior optimum
        H_high = s / e * k["c0"] * Q ** (1 / e) / k["kappa"]
        low = Q <= k["Qbar"]
        H = np.where(low, H_low, H_high)
        z = np.where(low, 0.0, Zp - b)
        return H[..., None] * ux, z[..., None] * np.ones(1)
    H = s * C / (e * p_X(tech))
    Hz = g * C / (e * p_Z(tech))
    return H[..., None] * ux, Hz[..., None] * uz


def first_best_quality(tech: Technology, theta) -> np.ndarray:
    """Q^FB(θ): C'(Q) = θ (Proposition 1)."""
    return inverse_marginal_cost(tech, theta)


def first_best_surplus(tech: Technology, theta) -> np.ndarray:
    """θ Q^FB − C(Q^FB)."""
    q = first_best_quality(tech, theta)
    return np.asarray(theta) * q - cost(tech, q)
