"""Units, scales and how a solution is read (docs/model.md §2.7): the nondimensional units of every
competition program, per-type scales, model labels and the two models of a scenario.  No Pyomo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.closed_form import competition as cc
from .audits import fringe_topup_numeric, TOL_DISCRETE


def _or_inf(f) -> float:
    """f() or inf where it overflows: (η/c)^(η/(1−η)) in first_best_surplus is a Python float power,
    which raises OverflowError instead of returning inf (its θ^(1/(1−η)) may underflow to 0 at once:
    the surplus is then not representable as computed, though the product may be)."""
    try:
        return f()
    except OverflowError:
        return float("inf")


def require_double_range(models, theta) -> None:
    """Raise OverflowError (the run's handler: a failed regime, exit 1, never verified) where a model's
    first best at the top type leaves double range: Q^FB = (ηθ/c)^(η/(1−η)), its tokens Q^(1/η) and
    surplus inf or nan, or every model's Q^FB underflowing to 0 for θ̄ > 0.  Every program's units are
    built on these; without this, σ = 0.999 (η/(1−η) ~ 1000–2000) was a Pyomo 'No variables appear'
    traceback on a model of nan coefficients (stranger18 F0c: s54, σ = 0.999, θ on [0, 1], c_L = 0.2:
    Q^FB = 5^2000)."""
    th = float(np.max(np.asarray(theta, float)))
    if not th > 0:
        return
    zero = 0
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for mm in models:
            Q = _or_inf(lambda: float(cc.first_best_quality(mm, np.array([th]))[0]))
            S = _or_inf(lambda: float(cc.first_best_surplus(mm, np.array([th]))[0]))
            q = _or_inf(lambda: float(np.float64(Q) ** (1.0 / mm.eta)))
            if not (np.isfinite(Q) and np.isfinite(S) and np.isfinite(q)):
                what = (f"first-best quality {Q:.3g}, tokens {q:.3g} and surplus {S:.3g} leave double range"
                        if not (np.isfinite(Q) and np.isfinite(q)) else
                        f"first-best quality {Q:.3g} is in range, but its surplus θ^(1/(1−η))·(η/c)^(η/(1−η)) "
                        "leaves double range as the regime computes it")
                raise OverflowError(f"model {mm.name or '?'} (η = {mm.eta:g}, c = {mm.c:g}): the top type's "
                                    f"(θ = {th:.3g}) {what} (put θ on the technology's scale, docs/model.md §6: θ(S) from customers' spends; or σ + γ further from 1)")
            zero += not (Q > 0 and S > 0)
    if zero == len(models):
        raise OverflowError(f"every model's first-best quality at the top type (θ = {th:.3g}) underflows to 0 "
                            "(put θ on the technology's scale, docs/model.md §6: θ(S) from customers' spends; or σ + γ further from 1)")


def _quality_scale(models, theta) -> float:
    return max(float(cc.first_best_quality(mm, np.max(theta))) for mm in models)


def _token_scale(models, theta) -> float:
    """Scale of linear-cost units: the larger first-best q = Q^(1/η) of the top type."""
    return max(float(cc.first_best_quality(mm, np.max(theta))) ** (1 / mm.eta) for mm in models)


@dataclass(frozen=True)
class Units:
    r"""Units in which a program is written (nondimensionalisation, docs/model.md §2.7).

    The model is homogeneous: with a quality unit ``Q`` and a type unit ``θu``
    (money unit ``P = θu·Q``), qualities ``Q̃ = Q/Q``, types ``θ̃ = θ/θu``,
    tokens of a model with exponent η ``q̃ = q/Q^{1/η}``, money ``t̃ = t/P``
    and costs ``c̃ = c·Q^{1/η}/P`` give the *same* problem in O(1) numbers
    (θ̃ ≤ 1, the top type's first-best quality 1).  Why not Ipopt's user scaling
    alone: Ipopt also stops on *unscaled* absolute tolerances (dual_inf_tol,
    constr_viol_tol, compl_inf_tol) and evaluates pow at the unscaled values;
    at σ = 0.9, θ ≈ 25, c_F = 0.004 quantities are ~1e33, the unscaled
    complementarity stayed at 9e4 while the scaled NLP error was 1e-16, and Ipopt
    drove μ to 1e-39 until it evaluated pow(0, 1/η) (measured, repro
    competition_11_0)."""

    theta: float
    Q: float

    @property
    def P(self) -> float:
        return self.theta * self.Q

    def token(self, eta: float) -> float:
        return self.Q ** (1.0 / eta)

    def models(self, models):
        out = _Models(tuple(cc.ModelCost(mm.c * self.token(mm.eta) / self.P, mm.eta, mm.name) for mm in models))
        out.sigma = models.sigma
        return out

    def tokens(self, models) -> np.ndarray:
        return np.array([self.token(mm.eta) for mm in models])


def _units(models, theta) -> Units:
    """Units of a two-model program: θ_max and the top type's larger first-best quality."""
    th = float(np.max(theta))
    return Units(theta=th, Q=max(_quality_scale(models, theta), 1e-300))


def _nondim(models, theta, q0):
    """(units, models, θ, q0) of the nondimensional program (:class:`Units`)."""
    u = _units(models, theta)
    q0 = None if q0 is None else np.asarray(q0, float) / u.tokens(models)
    return u, u.models(models), np.asarray(theta, float) / u.theta, q0


def _model_tokens(models, theta) -> np.ndarray:
    """τ_ℓ: each model's own first-best tokens for the top type (the unit of its token variables)."""
    return np.array([max(float(cc.first_best_quality(mm, np.max(theta))) ** (1 / mm.eta), 1e-300) for mm in models])


def _pooled(models, q) -> np.ndarray:
    """Σ_ℓ q_ℓ^(η_ℓ/σ) = V^(1/σ) per type (numpy).  Overflows when V^(1/σ) leaves double range
    (σ = 0.05, V ~ 1e35: competition_92_9); :func:`_value` does not."""
    return sum(np.maximum(q[:, l], 0.0) ** (mm.eta / models.sigma) for l, mm in enumerate(models))


def _value(models, q) -> np.ndarray:
    """V = (Σ_ℓ Q_ℓ^(1/σ))^σ per type (numpy), Q_ℓ = q_ℓ^η_ℓ, computed as max_ℓ Q_ℓ·(Σ_ℓ (Q_ℓ/max Q)^(1/σ))^σ:
    finite whenever the qualities are, even where V^(1/σ) is not a double (competition_92_9: σ = 0.05,
    the leader's top quality 1e35, V^(1/σ) = 1e700)."""
    Q = _quality(models, np.asarray(q, float))
    top = np.max(Q, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(top[:, None] > 0, Q / np.where(top > 0, top, 1.0)[:, None], 0.0)
    return top * np.sum(r ** (1.0 / models.sigma), axis=1) ** models.sigma


def _quality(models, q) -> np.ndarray:
    """Qualities Q_ℓ = q_ℓ^η_ℓ, shape (N, 2)."""
    return np.stack([np.maximum(q[:, l], 0.0) ** mm.eta for l, mm in enumerate(models)], axis=1)


def _type_surplus(models, theta, q):
    return theta * _value(models, q) - q @ np.array([mm.c for mm in models])


SERVED_V = 1e-5
"""A type is served (two-model programs) when its value V = (Σ_ℓ Q_ℓ^{1/σ})^σ
exceeds this fraction of the type's own scale, its first-best quality
max_ℓ Q_ℓ^FB(θ_k) (:func:`_type_scale`).  Not an absolute token cut-off: the
lowest type of a fine grid buys tokens ~1e-7 of the top type's and is served
(the old cut-off called it 'none'), and at σ+γ = 0.89 the fringe types' V is
1e-9 of the top type's (a cut-off relative to max V called them 'none').  The same rule labels the NLP and the closed
form; types whose closed-form V lies within TOL_DISCRETE of the cut-off are
not counted as mismatches (a label there is decided by solver accuracy), so a
counted mismatch always means a V error above TOL_DISCRETE."""


MIX_SHARE = 1e-6
"""A served type uses 'both' models when the smaller model's share of
V^{1/σ} exceeds this; an unused model sits at its floor (share < 1e-12,
measured), a genuine mix has an O(1) share."""


def _type_scale(models, theta) -> np.ndarray:
    """Per-type quality scale: the first-best quality of the better model, max_ℓ Q_ℓ^FB(θ_k)."""
    return np.maximum(np.max(np.stack([cc.first_best_quality(mm, theta) for mm in models]), axis=0), 1e-300)


def _labels_from_quality(Q, sigma: float, V_scale=None) -> np.ndarray:
    """Model per type from qualities Q (N, 2): −1 none, 0/1 the model, 2 both (SERVED_V, MIX_SHARE)."""
    Q = np.maximum(np.asarray(Q, float), 0.0)
    top = np.max(Q, axis=1)
    # shares of V^(1/σ) relative to the larger quality: V^(1/σ) itself can leave double range (competition_92_9)
    c = np.where(top[:, None] > 0, Q / np.where(top > 0, top, 1.0)[:, None], 0.0) ** (1.0 / sigma)
    tot = c.sum(axis=1)
    V = top * tot ** sigma
    Vs = float(np.max(V)) if V_scale is None else V_scale
    with np.errstate(invalid="ignore", divide="ignore"):
        minor = np.where(tot > 0, c.min(axis=1) / tot, 0.0)
    served = V > SERVED_V * Vs
    return np.where(served, np.where(minor > MIX_SHARE, 2, np.argmax(c, axis=1)), -1)


def _model_labels(models, q, theta) -> np.ndarray:
    """Model per type of an NLP allocation in linear-cost units q (N, 2) (:func:`_labels_from_quality`)."""
    return _labels_from_quality(_quality(models, q), models.sigma, _type_scale(models, theta))


def _label_mismatches(models, label, label_ref, V_ref, theta) -> int:
    """Types labelled differently from the closed form, not counting types whose closed-form
    V is within TOL_DISCRETE·max V of the served cut-off (see SERVED_V)."""
    V_ref = np.asarray(V_ref, float)
    Vs = float(np.max(V_ref)) if len(V_ref) and np.max(V_ref) > 0 else 1.0
    ambiguous = np.abs(V_ref - SERVED_V * _type_scale(models, theta)) <= TOL_DISCRETE * Vs
    return int(np.sum((np.asarray(label) != np.asarray(label_ref)) & ~ambiguous))


def _switches(theta, model) -> list[tuple[float, float, int, int]]:
    """(midpoint, step, from, to) wherever the model label changes along θ."""
    return [(0.5 * (theta[i] + theta[i + 1]), theta[i + 1] - theta[i], int(model[i]), int(model[i + 1]))
            for i in np.nonzero(np.diff(model))[0]]


def _model_names(models, model) -> list[str]:
    names = [mm.name for mm in models]
    return [names[i] if i in (0, 1) else ("none" if i < 0 else "both") for i in model]


def _fb_tokens(models, theta) -> np.ndarray:
    """First-best linear-cost units of each model alone, (N, 2): used for start points only."""
    return np.stack([cc.first_best_quality(mm, theta) ** (1 / mm.eta) for mm in models], axis=1)


def _leader_scales(lf, theta):
    A = fringe_topup_numeric(theta, 0.0, lf.sigma, lf.c_F)  # stand-alone fringe purchase (numeric)
    q_fb = (lf.eta * float(np.max(theta)) / lf.c_L) ** (1 / (1 - lf.eta))  # leader first best at θ_max
    qs = max(q_fb, float(np.max(A)) ** (1 / lf.r), 1e-12)
    ts = max(float(np.max(theta)) * qs**lf.eta, 1e-300)
    return A, qs, ts


LOG_TOKEN_MAX = float(np.log(np.finfo(float).max))
"""Largest natural log of the leader program's fringe-token unit qs^r (709.78: the largest double).  Up to
it the units are those of every earlier session (unchanged results); beyond it Units raised OverflowError."""


def _leader_units(lf, theta):
    """Units of the leader program (:class:`Units`): θ_max and the top type's quality scale qs^η.

    Homogeneity leaves one token unit: leader tokens q and fringe tokens x enter as q^r + x, so the
    fringe-token unit is the leader-token unit to the power r = η/σ, and the money unit is θ-unit ×
    (fringe-token unit)^σ.  When the fringe-token unit qs^r (the top item in fringe tokens) leaves double
    range (r·ln qs > LOG_TOKEN_MAX), fringe tokens are measured in their own scale instead, the top type's
    stand-alone purchase X = A(θ_max), and the money unit is kept at the top type's leader money
    θ_max·qs^η by the type unit θu = θ_max·qs^η/X^σ (θ̃ = θ/θu ≪ 1): the program's objective stays O(1)
    against Ipopt's unscaled tolerances (:class:`Units`), its fringe numbers O(1), and its leader numbers are
    per type in logs (build_leader).  competition_180_33 (σ = 0.1, σ + γ_L = 0.928, θ to 73): qs^r = 1e330,
    and Units raised OverflowError; competition_92_9 (σ = 0.05, σ + γ_L = 0.947): 1e710."""
    A, qs, _ = _leader_scales(lf, theta)
    th = float(np.max(theta))
    if lf.r * np.log(qs) <= LOG_TOKEN_MAX:
        u = Units(theta=th, Q=qs**lf.eta)
    else:
        lX = float(np.log(max(float(np.max(A)), 1e-300)))
        u = Units(theta=th * float(np.exp(lf.eta * np.log(qs) - lf.sigma * lX)), Q=float(np.exp(lf.sigma * lX)))
    lf_s = cc.LeaderFringe(sigma=lf.sigma, gamma_L=lf.gamma_L, c_L=lf.c_L * u.token(lf.eta) / u.P,
                           c_F=lf.c_F * u.token(lf.sigma) / u.P)
    return u, lf_s


def _leader_quality(lf, q, region) -> np.ndarray:
    """Leader quality Q_L = q^η of served types, 0 for types in region 0 (q at its floor)."""
    return np.where(np.asarray(region) > 0, np.maximum(np.asarray(q, float), 0.0) ** lf.eta, 0.0)


def tuned_units(tf: cc.TunedFringe, theta):
    """Nondimensional units (:class:`Units`) of the tuned-fringe leader program and the
    program's own TunedFringe (costs in those units)."""
    th = float(np.max(theta))
    Q_L = (tf.eta * th / tf.c_L) ** (tf.eta / (1 - tf.eta))  # leader first best at θ_max
    Q_F = float(cc.tuned_stand_alone(tf, th)) ** (tf.sigma + tf.gamma_F)  # fringe-only quality of θ_max
    u = Units(theta=th, Q=max(Q_L, Q_F, 1e-300))
    tf_s = cc.TunedFringe(sigma=tf.sigma, gamma_L=tf.gamma_L, gamma_F=tf.gamma_F,
                          c_L=tf.c_L * u.token(tf.eta) / u.P, c_F=tf.c_F * u.token(tf.sigma + tf.gamma_F) / u.P)
    return u, tf_s


class _Models(tuple):
    """(model 1, model 2) with the shared σ attached."""

    sigma: float


def _two_models(sigma, opts) -> _Models:
    F = cc.ModelCost(opts["c_F"], sigma + opts["gamma_F"], "fringe" if opts["gamma_F"] == 0 else "model 1")
    L = cc.ModelCost(opts["c_L"], sigma + opts["gamma_L"], "leader" if opts["gamma_F"] == 0 else "model 2")
    out = _Models((F, L))
    out.sigma = sigma
    return out
