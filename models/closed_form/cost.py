r"""Technology and the cost of quality (MODEL.md 2.1).  No Pyomo here.

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
def ces_index(x, weights, rho) -> np.ndarray:
    r"""Degree-1 CES index :math:`(\sum_j a_j x_j^\rho)^{1/\rho}` over the last axis."""
    x = np.asarray(x, float)
    a = np.asarray(weights, float)
    if rho == 0:
        return np.exp(np.sum(a * np.log(np.maximum(x, 1e-300)), axis=-1))
    return np.sum(a * x**rho, axis=-1) ** (1.0 / rho)


def unit_cost(weights, costs, rho) -> float:
    r"""Price of one unit of the degree-1 CES index.

    :math:`p=(\sum_j a_j^s c_j^{1-s})^{1/(1-s)}`, :math:`s=1/(1-\rho)`;
    Cobb-Douglas (ρ=0): :math:`p=\prod_j (c_j/a_j)^{a_j}`.
    """
    a = np.asarray(weights, float)
    c = np.asarray(costs, float)
    if rho == 0:
        return float(np.prod((c / a) ** a))
    s = 1.0 / (1.0 - rho)
    return float(np.sum(a**s * c ** (1 - s)) ** (1 / (1 - s)))


def unit_demands(weights, costs, rho) -> np.ndarray:
    """Inputs that buy one unit of the CES index at least cost (sum c·x = p)."""
    a = np.asarray(weights, float)
    c = np.asarray(costs, float)
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
    """Cost of quality C(Q) (MODEL.md 2.1)."""
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
