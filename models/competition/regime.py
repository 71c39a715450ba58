"""The competition regime's entry points: option validation and :func:`run`, which chains the
steps (task assignment, efficient, monopolist, leader, welfare, figures).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.closed_form import competition as cc
from models.results import bound_check, compare, RegimeResult
from .audits import (
    FLOOR, kkt_mass_weight,
    _audit_rows, buyer_value_numeric, exhaustive_topup_value, fringe_topup_numeric, leader_audit, leader_tokens_numeric,
    leader_regions, leader_type_weight, NAME, _ref_scale, _region_mismatches, TOL_AUDIT, TOL_DISCRETE, TOL_REGION,
    tuned_audit, _utility_scale,
)
from .units import _leader_quality, _leader_scales, _two_models, require_double_range
from .programs import leader_profit_scale, leader_type_scale
from .solving import (
    _attempt_table, _best_attempt, _efficient, leader_solve, leader_tuned_multistart, _monopolist_ladder,
)
from .checks import (
    _assignment_checks, _leader_convergence, _leader_finer_grid, _leader_thresholds, _two_model_checks,
)
from .outputs import _figures, _leader_table, _welfare


def validate_options(v, opts, path, tech):
    v.keys(opts, path, {"gamma_L", "gamma_F", "c_L", "c_F", "convergence", "refine",
                        "task_cells", "task_profiles"})
    s = tech.sigma
    gL = v.number(opts, path, "gamma_L", lo=0, hi=1 - s, lo_open=True, hi_open=True, required=True)
    gF = v.number(opts, path, "gamma_F", lo=0, hi=gL, hi_open=True, default=0.0)
    # c_L <= 1e6 ($ per unit of aggregate quality, types of order 1-100): beyond
    # it every quantity is below ~1e-20 of the type scale, under what Ipopt's
    # absolute tolerances resolve; c_L = 1e308 ran for >10 min (issue 16).
    cL = v.number(opts, path, "c_L", lo=0, hi=1e6, lo_open=True, required=True)
    cF = v.number(opts, path, "c_F", lo=0, hi=cL, lo_open=True, hi_open=True, required=True)
    conv = v.numbers(opts, path, "convergence", lo=2, min_len=2, default=[], increasing=True)
    if any(int(x) != x for x in conv):
        v.fail(path + ".convergence", conv, "a strictly increasing list of at least 2 integers >= 2 (numbers of types)")
    return {
        "gamma_L": gL, "gamma_F": gF, "c_L": cL, "c_F": cF,
        "convergence": [int(x) for x in conv],
        "refine": v.number(opts, path, "refine", lo=1, hi=1000, integer=True, default=10),
        "task_cells": v.number(opts, path, "task_cells", lo=0, hi=20_000, integer=True, default=40),
        "task_profiles": v.number(opts, path, "task_profiles", lo=1, hi=20, integer=True, default=3),
    }


LEADER_MARKET_NEGLIGIBLE = 1e-9
"""A leader market worth less than this share of the buyers' fringe-only surplus (its a priori profit
bound, programs.leader_profit_scale) gets a note: the leader program's objective, in that bound's unit, is
then dominated by the rows of heavy types the leader does not serve, and Ipopt's tol no longer resolves
the served types (competition_91_22: 5e-12, max_iterations on 7 of 23 starts)."""


def leader_market(lf, theta, mass) -> tuple[float, float]:
    """(the leader's a priori profit bound, the buyers' fringe-only surplus Σ p_k u0(θ_k)), both in money:
    what the leader's whole market can be worth, and against what (LEADER_MARKET_NEGLIGIBLE)."""
    theta = np.asarray(theta, float)
    u0 = buyer_value_numeric(theta, np.zeros_like(theta), lf.sigma, lf.c_F)
    return leader_profit_scale(lf, theta, mass), float(np.sum(np.asarray(mass, float) * u0))


def _leader(res, lf, scn, opts, ctx, theta, mass):
    N = len(theta)
    dist = scn.types if scn.types.kind != "discrete" else None
    solved = leader_solve(res, lf, scn, ctx, theta, mass)
    if solved is None:
        return None
    final, known = solved
    _, qs, ts = _leader_scales(lf, theta)
    # exact discrete optimum under the NLP's own constraints (monotone q: ironed when the
    # pointwise schedule is not monotone -- then the pointwise menu is not IC, repro competition_11_4)
    ref = cc.leader_discrete_monotone(lf, theta, mass)
    if ref["ironed"]:
        pooled = [f"θ∈[{theta[i]:.4g}, {theta[e]:.4g}]" for i, e in ref["blocks"] if e > i]
        res.notes.append("leader_fringe: the pointwise discrete schedule is not monotone; reference = the ironed "
                         f"discrete optimum (pooled: {', '.join(pooled)})")
    reg = leader_regions(lf, theta, final.q, leader_type_scale(lf, theta))  # per-type floors (build_leader)
    aud = leader_audit(lf, theta, final.q, final.T)
    chk = "leader_vs_discrete_closed_form"
    # types worth less than TOL_DISCRETE of the profit: their labels are not resolved (leader_type_weight);
    # 'the profit' is the profit row's own scale _ref_scale(profit, ts), which is |profit| unless the exact
    # profit is 0 -- then the money unit ts, not 1e-300 (competition_96_0, fresh seed 96: the leader serves
    # nobody, the NLP sold the top type, mass 9.4e-9, a loss-making item for a profit of -6.2e-9 = 5.8e-10
    # of ts, which the profit row passes; dividing by 0 made that type 'resolved' and failed 4 rows on it)
    resolved = leader_type_weight(lf, theta, mass, ref["q_L"], final.q, _ref_scale(ref["profit"], ts)) >= TOL_DISCRETE
    if not resolved.all():
        res.notes.append(
            f"leader_fringe: {int((~resolved).sum())} of {N} types are each worth < {TOL_DISCRETE:g} of the profit "
            f"(θ ∈ {', '.join(f'{theta[k]:.4g}' for k in np.nonzero(~resolved)[0][:8])}"
            f"{', …' if (~resolved).sum() > 8 else ''}): their region labels are below the NLP's resolution and "
            "are not compared, nor are their per-type entries (per_type_verified = False in leader_fringe.csv; "
            "the profit row bounds what they can change); thresholds next to them are judged within one grid "
            "step plus the span of those types")
    res.checks.append(bound_check(NAME, chk, "types in another region than leader_discrete (resolved types)",
                                  _region_mismatches(lf, theta, reg, ref["region"], ref["q_L"], qs, resolved), 0))
    wk = kkt_mass_weight(mass)  # per-type rows judged on each type's KKT scale (kkt_mass_weight)
    light = wk < 1e-2
    # ... and not at all on types worth < TOL_DISCRETE of the profit: moving such a type's q anywhere
    # between its candidates (0, the reference's q) changes the objective by less than the profit row's
    # tolerance, so neither Ipopt nor this verification fixes it (competition_70_42: a type with I_k ~ 1e-7
    # left unserved, q 2.4 vs max q 3e5).  Their entries are marked per_type_verified = False in the
    # leader table; a wrong q with an economic effect raises |Δ_k(q_nlp)| and so I_k, and is judged.
    wk = np.where(resolved, wk, 0.0)
    if light.any():  # say which per-type entries these rows verify only loosely
        res.notes.append(
            f"leader_fringe: {int(light.sum())} of {len(wk)} types have mass below 1/(100·N) (lightest N·p = "
            f"{len(mass) * float(np.min(mass)):.1e}); the per-type rows (q_L, Q_L, q_F, T, U) judge them on their "
            f"own KKT scale min(1, N·p_k), so their entries in leader_fringe.csv are verified only to "
            f"{TOL_DISCRETE:g}/(N·p_k) of the scale (the solver fixes them no better); the all-pairs IC/IR audit "
            f"and the profit row are not weighted")
    res.checks.append(compare(NAME, chk, "q_L (× min(1, N·p_k))", wk * final.q, wk * ref["q_L"], TOL_DISCRETE,
                              index=theta,
                              scale=_ref_scale(ref["q_L"], qs)))
    # Q_L of an unserved type is 0, not floor^η (η small: FLOOR^0.07 ≈ 0.14 of the scale).
    # Tolerance TOL_DISCRETE^η: the program resolves tokens q (linear cost) to TOL_DISCRETE·q_s (row
    # above), and Q = q^η maps an error δq ≤ TOL·q_s of a type near q = 0 (the marginal entry type,
    # whose profit gain is below any solver tie) to |ΔQ|/Q_s ≤ TOL^η, the worst case of the concave
    # power (competition_50_6/50_30: entry type Q_L 0 vs 45, 8e-6 of Q_s while q_L passes).
    res.checks.append(compare(NAME, chk, "Q_L (= q_L^η; tolerance TOL^η inherited from q_L)",
                              wk * _leader_quality(lf, final.q, reg), wk * ref["Q_L"], TOL_DISCRETE ** lf.eta,
                              index=theta, scale=_ref_scale(ref["Q_L"], qs**lf.eta),
                              advice="the leader's quality schedule misses the discrete optimum by more than "
                                     "its token accuracy allows: the leader table is not verified; check q_L"))
    # the buyer's top-up at the NLP's item (numeric bisection), not the variable f: where the
    # own-top-up objective is flat at f = 0 (q_k at or just above the limit quality) the NLP's
    # f is determined only to O(sqrt(tol)) (1e-5 of max q_F, repro competition_11_4) while its
    # effect on the buyer's utility is O(f²); that effect is checked on its own below
    a_nlp, a_nlp_s = leader_tokens_numeric(lf, final.q)  # q^r: +inf beyond double range (no top-up there)
    qF = fringe_topup_numeric(theta, a_nlp, lf.sigma, lf.c_F)
    # scale: the buyer's effective tokens in fringe units, max(q_F, q_L^r): q_F = A − q_L^r inherits the
    # leader's error δ(q_L^r), and where q_L^cf = 0 the NLP's q_L ~ 1e-11·max q_L still gives q_L^r ~ 1e-6
    # of max q_F when the leader's scale dwarfs the fringe's (repro competition_11_4)
    # (items beyond double range in fringe tokens, q^r = +inf, have q_F = 0 on both sides: left out of the scale,
    # competition_92_9)
    a_ref = leader_tokens_numeric(lf, ref["q_L"])[0]
    qF_scale = max(float(np.max(np.abs(ref["q_F"]))), float(np.max(a_ref[np.isfinite(a_ref)], initial=0.0)), 1e-300)
    res.checks.append(compare(NAME, chk, "q_F (buyer's top-up at the NLP item, × min(1, N·p_k))", wk * qF,
                              wk * ref["q_F"], TOL_DISCRETE,
                              index=theta, scale=qF_scale))
    # Types both the NLP and leader_discrete leave to the fringe (region 0: q = 0 exactly, unserved_as_outside)
    # buy the fringe's stand-alone quantity A(θ_k): no NLP decision enters it, so it is judged on each type's
    # own scale, whatever the type's weight.  The row above cannot see it: those types are unresolved by
    # leader_type_weight (their gain is 0 at q = 0 on both sides) and its scale max(q_F, q_L^r) dwarfs their
    # purchases (the mutation scenario: max q_L^r = 284 vs max q_F = 2.05; a 1 % error of the closed form's
    # q_F there passed every row).  Numeric side: bisection (fringe_topup_numeric, ~1e-15 relative).
    both_out = (np.asarray(ref["region"]) == 0) & (np.asarray(reg) == 0)
    if both_out.any():
        sA = np.maximum(np.abs(ref["q_F"][both_out]), 1e-300)
        res.checks.append(compare(NAME, chk, "q_F of types both leave to the fringe (stand-alone purchase, "
                                  "on each type's own scale)", qF[both_out] / sA, ref["q_F"][both_out] / sA,
                                  TOL_DISCRETE, index=theta[both_out], scale=1.0))
    own_f = theta * cc.effective_quality(lf, final.q, np.maximum(final.f, 0.0)) - lf.c_F * np.maximum(final.f, 0.0)
    own_u = buyer_value_numeric(theta, a_nlp, lf.sigma, lf.c_F, a_nlp_s)
    # on the resolved types, like every per-type row: a type worth < TOL_DISCRETE of the profit has no
    # gradient that pins its item or its top-up (competition_92_33: Beta(1, 18.5), the top type has mass
    # ~0; its f stayed at 2.4e6 tokens where the buyer's best is 0, own_u − own_f = 2.6e-3 of the scale,
    # while the exported q_F, U come from the numeric top-up and the all-pairs audit holds)
    # ... and on each type's KKT scale min(1, N·p_k) (wk, zero on the unresolved types), like the other
    # per-type rows: where the buyer's best top-up is 0 the NLP's f_k sits on its bound f ≥ 0, whose
    # multiplier is (the multipliers of the rows holding own_k, Σ ≥ p_k from T_k's stationarity) ×
    # |∂own_k/∂f_k|, so Ipopt's complementarity test f·z ≤ ~tol leaves f_k ~ tol/p_k and a utility loss
    # |∂own/∂f|·f_k ~ tol/p_k: invariant to the program's units (variable and row scaling leave f·z
    # unchanged), i.e. a resolution limit, not a units defect.  competition_122_3 (Beta(17, 5.7)): the top
    # type, p = 6.4e-7 (N·p = 5.1e-5), kept f = 2.6e-4 tokens where the best is 0 (4.6e-6 of the scale) after
    # the tol = 1e-10 retry, 2.6e-6 / 2.6e-8 at tol 1e-12 / 1e-14 (f ∝ tol), f_k·p_k ≈ 1.1–1.7e-10 on
    # its top five types
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "own-item utility with the NLP's top-up f "
                                  "below the buyer's best / max(|T|,|U|) (× min(1, N·p_k), resolved types)",
                                  float(np.max(wk * (own_u - own_f))) / _utility_scale(final.T, aud["U"]),
                                  TOL_AUDIT))
    res.checks.append(compare(NAME, chk, "T (× min(1, N·p_k))", wk * final.T, wk * ref["T"], TOL_DISCRETE, index=theta,
                              scale=_ref_scale(ref["T"], ts)))
    res.checks.append(compare(NAME, chk, "U (× min(1, N·p_k))", wk * aud["U"], wk * ref["U"], TOL_DISCRETE, index=theta,
                              scale=_utility_scale(ref["T"], ref["U"])))
    # U = value − T is a difference of money-sized terms: it inherits T's accuracy on the money
    # scale max(|T|, |U|) (as the audits), not its own size (competition_50_23: U ~ 1e-13 of T)
    res.checks.append(compare(NAME, chk, "profit", final.objective, ref["profit"], TOL_DISCRETE,
                              scale=_ref_scale(ref["profit"], ts)))
    # how much the leader's whole market can be worth, against what the buyers get from the fringe alone:
    # competition_91_22 (Beta(2.6, 20) on [0, 8.6], γ_L = 0.03): only types of mass < 1e-15 gain from the
    # leader, its exact profit is 1.2e-10 = 5e-12 of that surplus, and the NLP (objective in that
    # bound's unit, the heavy unserved types' rows ~1e7 times steeper) ends at max_iterations or -1.5e-10
    bound, u0_all = leader_market(lf, theta, mass)
    if u0_all > 0 and bound < LEADER_MARKET_NEGLIGIBLE * u0_all:
        res.notes.append(f"leader_fringe: the leader's whole market is worth at most {bound:.3g} "
                         f"({bound / u0_all:.1e} of the buyers' fringe-only surplus {u0_all:.4g}): only types of "
                         "negligible mass gain from its model, and its menu, profit and thresholds are numbers at the "
                         "edge of double precision for this scenario -- failed leader rows here say 'not resolved', "
                         "not that the theory fails; a type range or density with mass where σ + γ_L pays off "
                         "(higher θ) gives a leader market the NLP can resolve")
    if not np.any(ref["q_L"] > 0) and not np.any(reg > 0):
        res.notes.append("leader_fringe: the leader serves nobody (NLP and leader_discrete): every buyer stays "
                         "with the fringe; profit 0")
    # against the profit row's own scale (not |profit|: when the leader serves nobody both are ~1e-25 noise)
    elif final.objective > ref["profit"] + TOL_DISCRETE * _ref_scale(ref["profit"], ts):
        res.notes.append(f"LEADER–FRINGE: the NLP menu earns MORE than leader_discrete on the same grid "
                         f"({final.objective:.10g} > {ref['profit']:.10g}); the discrete closed form is not optimal")
    scale = _utility_scale(final.T, aud["U"])
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "worst IC violation / max(|T|,|U|)",
                                  aud["ic"] / scale, TOL_AUDIT))
    res.checks.append(bound_check(NAME, "leader_numpy_audit_all_pairs", "worst IR violation / max(|T|,|U|)",
                                  aud["ir"] / scale, TOL_AUDIT))
    _audit_rows(res, ["leader: all-pairs IC (numeric top-up)", "leader: IR vs fringe only"],
                [aud["ic"], aud["ir"]], [N * (N - 1), N])
    if dist is not None and not cc.leader_schedule_is_monotone(lf, dist):
        res.notes.append("leader_fringe: the continuous closed-form schedule is not monotone for this distribution "
                         "(ironing needed): continuous comparisons skipped")
        dist = None
    cont = cc.leader_continuous(lf, dist, theta) if dist is not None else None
    th_out = _leader_thresholds(res, lf, dist, theta, reg, ref, resolved)
    res.tables["leader_fringe"] = _leader_table(lf, theta, mass, final, aud, reg, ref, cont)
    res.tables["leader_fringe"]["per_type_verified"] = resolved
    _leader_finer_grid(res, lf, scn, opts, theta, mass, res.tables["leader_fringe"], aud, dist, cont,
                       final.objective)
    conv = None
    if opts["convergence"] and dist is not None:
        conv = _leader_convergence(res, lf, scn, ctx, opts["convergence"], final, known)
    elif opts["convergence"]:
        res.notes.append("leader_fringe: convergence study skipped (no continuous closed form for these types)")
    return {"menu": final, "ref": ref, "region": reg, "audit": aud, "cont": cont, "thresholds": th_out,
            "conv": conv, "resolved": resolved}


def tuned_break_even_quality(tf: cc.TunedFringe) -> float:
    r"""q_be of the tuned fringe, :math:`(c_L/c_F)^{(\sigma+\gamma_F)/(\gamma_L-\gamma_F)}`: below it an item
    loses money on whoever buys it, as audits.break_even_quality at γ_F = 0 (to which it reduces).

    The q^r leader tokens of an item are worth at most q^{r/κ} fringe tokens (r/κ = (σ+γ_L)/(σ+γ_F) > 1):
    y ↦ y^{1/κ} is subadditive (κ > 1), so (q^r + x^κ)^{1/κ} ≤ q^{r/κ} + x fringe tokens buy the buyer's
    quality with the item and any top-up x; hence u(θ, q) ≤ u0(θ) + c_F q^{r/κ}, IR gives
    T − c_L q ≤ c_F q^{r/κ} − c_L q, negative for 0 < q < q_be."""
    return float((tf.c_L / tf.c_F) ** ((tf.sigma + tf.gamma_F) / (tf.gamma_L - tf.gamma_F)))


def tuned_exported_menu(tf: cc.TunedFringe, q, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(served, q, T) of the tuned-fringe menu as exported: an item the leader does not sell (q below
    :func:`tuned_break_even_quality`, or within twice the floor FLOOR of the top item's q) is "no leader
    item", q = T = 0, as solving.unserved_as_outside exports them at γ_F = 0 (the cut-off of
    audits.leader_regions).

    The NLP leaves such items at barrier noise off its floor, light types with a negative price
    (cc.example("three_regions") at γ_F = 0.05, 8 types: q_L 8e-11–2e-10, t −3e-12 to −1.3e-11).  The former cut-off, q > TOL_SERVED·max q,
    also dropped items that are sold: σ + γ_L = 0.86 on θ ∈ [0, 3] sells limit-priced items of q 1.6–30
    (q_be 1.49, positive prices) while max q is 6.3e7.  The checks judge the NLP's own menu, not this one."""
    q, T = np.asarray(q, float), np.asarray(T, float)
    served = (q >= (1 - TOL_REGION) * tuned_break_even_quality(tf)) & (q > 2 * FLOOR * max(float(np.max(q)), 0.0))
    return served, np.where(served, q, 0.0), np.where(served, T, 0.0)


def _leader_tuned(res, tf, theta, mass, ctx):
    """γ_F > 0: solve, audit (exact and exhaustive top-up, all pairs), compare with γ_F = 0."""
    N = len(theta)
    attempts, ref0 = leader_tuned_multistart(tf, theta, mass, ctx)
    res.tables["leader_tuned_fringe_starts"] = _attempt_table(attempts)
    best = _best_attempt(attempts)
    if best.status != "optimal":
        res.error = f"leader_tuned_fringe: none of {len(attempts)} starts converged"
        res.solves["leader_tuned_fringe"] = best.result
        return None
    menu = best.values["menu"]
    res.solves["leader_tuned_fringe"] = menu.result
    aud = tuned_audit(tf, theta, menu.q, menu.T)
    scale = _utility_scale(menu.T, aud["U"])
    chk = "leader_tuned_fringe_audit"
    res.checks.append(bound_check(NAME, chk, "worst IC violation / max(|T|,|U|) (exact top-up)", aud["ic"] / scale,
                                  TOL_AUDIT))
    res.checks.append(bound_check(NAME, chk, "worst IR violation / max(|T|,|U|) (exact top-up)", aud["ir"] / scale,
                                  TOL_AUDIT))
    # independent: the buyer's value of every item by exhaustive 1-D search (no FOC), all N² pairs
    qq = np.concatenate([menu.q, [0.0]])
    TT = np.concatenate([menu.T, [0.0]])
    U_ex = exhaustive_topup_value(tf, theta[:, None], qq[None, :]) - TT[None, :]
    own_ex = U_ex[np.arange(N), np.arange(N)]
    worst_ex = float(np.max(U_ex - own_ex[:, None]))
    res.checks.append(bound_check(NAME, chk, "worst gain from any item or fringe only (exhaustive 1-D top-up "
                                  "search) / max(|T|,|U|)", worst_ex / scale, TOL_AUDIT))
    # the exact top-up is never beaten by the exhaustive search (it is the max of g)
    u_exact = cc.tuned_buyer_value(tf, theta[:, None], qq[None, :])
    res.checks.append(bound_check(NAME, chk, "exhaustive search value − exact top-up value (all pairs) / "
                                  "max(|T|,|U|)", float(np.max(U_ex + TT[None, :] - u_exact)) / scale, TOL_AUDIT))
    _audit_rows(res, ["leader (γ_F>0): all-pairs IC, exact top-up", "leader (γ_F>0): IR vs fringe only",
                      "leader (γ_F>0): all pairs, exhaustive 1-D top-up"], [aud["ic"], aud["ir"], worst_ex],
                [N * (N - 1), N, N * (N + 1)])
    own_f = theta * (menu.q**tf.r + np.maximum(menu.f, 0) ** tf.kappa) ** tf.sigma - tf.c_F * np.maximum(menu.f, 0)
    res.checks.append(bound_check(NAME, chk, "own-item utility with the NLP's top-up f below the buyer's best / "
                                  "max(|T|,|U|)", float(np.max(aud["U"] + menu.T - own_f)) / scale, TOL_AUDIT))
    ok = [a for a in attempts if a.status == "optimal"]
    spread = max(a.objective for a in ok) - min(a.objective for a in ok)
    served, q_x, T_x = tuned_exported_menu(tf, menu.q, menu.T)
    # the buyer's top-up and utility at the exported item (= the stand-alone purchase and u0 where no item)
    qF_x = cc.tuned_topup(tf, theta, q_x)["x"]
    multi = served & (qF_x > 0)
    res.tables["leader_tuned_fringe"] = pd.DataFrame({
        "theta": theta, "mass": mass, "q_L": q_x, "Q_L": _leader_quality(tf, q_x, served), "q_F": qF_x,
        "Q_F": qF_x ** (tf.sigma + tf.gamma_F), "t": T_x, "U": cc.tuned_buyer_value(tf, theta, q_x) - T_x,
        "u_0": aud["u0"], "multi_homes": multi, "q_L_gamma_F0_discrete": ref0["q_L"],
        "t_gamma_F0_discrete": ref0["T"]})
    first = int(np.argmax(served)) if served.any() else N
    res.notes.append(
        f"leader_tuned_fringe (γ_F = {tf.gamma_F:g}): {len(attempts)} starts, {len(ok)} converged, spread "
        f"{spread:.3g}; profit {menu.objective:.10g} (γ_F = 0 discrete optimum {ref0['profit']:.10g}); leader serves "
        + (f"θ ≥ {theta[first]:.4g}" if first < N else "nobody")
        + f"; {int(multi.sum())} types multi-home (buy leader and fringe)")
    return {"menu": menu, "audit": aud, "ref0": ref0}


def run(scn, opts, ctx) -> RegimeResult:
    """Task assignment, efficient allocation, multi-model monopolist, leader vs fringe,
    welfare comparison and figures for one scenario (module docstring)."""
    tech = scn.technology
    res = RegimeResult(NAME)
    s = tech.sigma
    models = _two_models(s, opts)
    theta, mass = scn.discrete_types()
    dist = scn.types if scn.types.kind != "discrete" else None
    require_double_range(models, theta)
    if tech.K:
        res.notes.append("the [technology] fine-tuning block is not used here: each model's γ and cost are "
                         "[regimes.competition] gamma_L/gamma_F, c_L/c_F; [technology] gives σ and the token classes")
    if opts["task_cells"]:
        _assignment_checks(res, tech, ctx, opts, (opts["gamma_F"], opts["gamma_L"]))
    eff = _efficient(res, models, theta, mass, ctx)
    mon = _monopolist_ladder(res, models, scn, theta, mass, ctx)
    # decided on the distribution (its pieces / Beta shape), not on the grid: a drop of h between two grid
    # points went unseen and the un-ironed continuous monopolist was the reference (stranger17 F8); the grid
    # samples still count (round-off in h far in a tail: no continuous comparison on a noisy h)
    if dist is not None and not cc.virtual_value_is_increasing(dist):
        res.notes.append("virtual value h(θ) = θ − (1 − F)/f not increasing for this distribution (ironing needed): "
                         "continuous monopolist comparisons skipped")
        mdist = None
    elif dist is not None and not np.all(np.diff(dist.virtual_value(theta)) > 0):
        res.notes.append("virtual value not increasing on the grid: continuous monopolist comparisons skipped")
        mdist = None
    else:
        mdist = dist
    mon_ref = _two_model_checks(res, models, theta, mass, mdist, eff, mon)
    lead, lf = None, None
    if opts["gamma_F"] == 0:
        lf = cc.LeaderFringe(sigma=s, gamma_L=opts["gamma_L"], c_L=opts["c_L"], c_F=opts["c_F"])
        lead = _leader(res, lf, scn, opts, ctx, theta, mass)
    elif opts["gamma_F"] < opts["gamma_L"]:  # a fringe that fine-tunes: exact non-concave top-up
        tf = cc.TunedFringe(sigma=s, gamma_L=opts["gamma_L"], gamma_F=opts["gamma_F"], c_L=opts["c_L"], c_F=opts["c_F"])
        _leader_tuned(res, tf, theta, mass, ctx)
    else:
        res.notes.append("gamma_F >= gamma_L: the fringe is the better-tuned model; leader vs fringe skipped")
    _welfare(res, lf, models, theta, mass, dist if lf is not None else None, eff, mon, lead, mon_ref,
             mon_continuous=mdist is not None)
    if getattr(ctx, "figures", True):  # sweeps draw their own (Context.figures = False)
        res.figures.update(_figures(lf, models, theta, dist, eff, mon, lead, mon_ref))
    return res
