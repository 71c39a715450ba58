"""Outputs of the competition regime: the leader table, the welfare table (with its discrete checks)
and the figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.closed_form import competition as cc
from models.results import compare
from .audits import fringe_topup_numeric, NAME, _ref_scale, TOL_DISCRETE
from .units import _leader_quality, _model_labels, _quality, _type_surplus


def _leader_table(lf, theta, mass, menu, aud, reg, ref, cont):
    q_dev_next = np.append(fringe_topup_numeric(theta[1:], cc.leader_tokens(lf, menu.q[:-1]), lf.sigma, lf.c_F), np.nan)
    d = {"theta": theta, "mass": mass, "region": reg, "q_L": menu.q, "Q_L": _leader_quality(lf, menu.q, reg),
         "q_F": aud["q_F"], "Q_F": aud["q_F"] ** lf.sigma, "t": menu.T, "U": aud["U"], "u_0": aud["u0"],
         "rent_over_fringe_only": aud["U"] - aud["u0"],
         "next_type_topup_at_this_item": q_dev_next,
         "q_L_discrete_cf": ref["q_L"], "t_discrete_cf": ref["T"], "region_discrete_cf": ref["region"]}
    if cont is not None:
        d.update({"q_L_continuous_cf": cont["q_L"], "t_continuous_cf": cont["T"], "U_continuous_cf": cont["U"],
                  "region_continuous_cf": cont["region"]})
    return pd.DataFrame(d)


def _describe_monopolist(models, dist) -> str:
    """Who the continuous monopolist serves, in words (no 'up to nan' when one model serves every type)."""
    names = [mm.name for mm in models]
    ex, sw = cc.exclusion_type(dist), cc.monopolist_switch_type(models, dist)
    if not np.isfinite(ex):
        return "nobody served (virtual value ≤ 0 on the whole support)"
    if np.isfinite(sw):
        return f"excluded below {ex:.4g}; {names[0]} up to {sw:.4g}; {names[1]} above"
    # no switch inside the support: h − θ^e keeps one sign (monopolist_switch_type)
    hi = dist.support[1]
    one, other = ((names[0], names[1]) if float(cc.virtual_value(dist, hi)) < cc.efficient_switch_point(models)
                  else (names[1], names[0]))
    return f"excluded below {ex:.4g}; {one} serves every type above; {other} serves none"


def _describe_efficient(names, te: float, lo: float, hi: float) -> str:
    """Who the efficient allocation gives which model, on types in [lo, hi]: the low-η model (names[0]) below θ^e,
    the other above; one model for every type when θ^e lies outside (competition_196_1: θ^e = 17.32 above the
    support [0, 0.249] read 'fringe below θ^e = 17.32, leader above')."""
    if te > hi:
        return f"{names[0]} serves every type (θ^e = {te:.4g} lies above the types); {names[1]} serves none"
    if te <= lo:
        return f"{names[1]} serves every type (θ^e = {te:.4g} lies at or below the types); {names[0]} serves none"
    return f"{names[0]} below θ^e = {te:.4g}, {names[1]} above"


def _describe_leader(thr) -> str:
    """Proposition 4's regions of the continuous closed form, in words (no 'θ* = nan' when the leader serves
    nobody: θ_lo above the support and no entry, stranger17 F4)."""
    if thr["middle_nonempty"]:
        if np.isfinite(thr["theta_hi"]):
            return (f"fringe only below θ_lo = {thr['theta_lo']:.4g}; limit pricing to θ_hi = {thr['theta_hi']:.4g}; "
                    "interior above")
        return f"fringe only below θ_lo = {thr['theta_lo']:.4g}; limit pricing above (no interior region)"
    if np.isfinite(thr["theta_star"]):
        return f"fringe only below θ* = {thr['theta_star']:.4g}; interior above (middle region empty)"
    return "fringe serves every type; leader serves none"


def _welfare(res, lf, models, theta, mass, dist, eff, mon, lead, mon_ref=None, mon_continuous=True):
    """Welfare table.  ``mon_continuous``: whether the continuous monopolist closed form is valid (h increasing,
    no ironing); the leader's is valid when its schedule is monotone (``lead["cont"]`` set).  Invalid continuous
    rows are left out and a note says so (stranger17 F3: an un-ironed row with a wrong switch point was printed)."""
    rows = []
    names = [mm.name for mm in models]
    if eff is not None:
        S = _type_surplus(models, theta, eff["q"])
        model = _model_labels(models, eff["q"], theta)
        desc = _describe(theta, model, {0: f"{names[0]} model", 1: f"{names[1]} model", -1: "nobody", 2: "both"})
        rows.append({"regime": "efficient", "source": "NLP (discrete types)", "profit": 0.0,
                     "consumer_surplus": float(np.sum(mass * S)), "total_surplus": float(np.sum(mass * S)),
                     "who_serves_whom": desc})
        tot = float(np.sum(mass * cc.efficient_surplus(models, theta)))
        rows.append({"regime": "efficient", "source": "closed form (discrete types)", "profit": 0.0,
                     "consumer_surplus": tot, "total_surplus": tot,
                     "who_serves_whom": _describe_efficient(names, cc.efficient_switch_point(models),
                                                            theta[0], theta[-1])})
    if mon is not None:
        V, t, q = mon.values["V"], mon.values["t"], mon.values["q"]
        K = q @ np.array([mm.c for mm in models])
        model = _model_labels(models, q, theta)
        rows.append({"regime": "multi-model monopolist", "source": "NLP (discrete types)", "profit": mon.objective,
                     "consumer_surplus": float(np.sum(mass * (theta * V - t))),
                     "total_surplus": float(np.sum(mass * (theta * V - K))),
                     "who_serves_whom": _describe(theta, model, {0: f"{names[0]} model", 1: f"{names[1]} model",
                                                                 -1: "excluded", 2: "both"})})
        md = mon_ref if mon_ref is not None else cc.monopolist_discrete(models, theta, mass)
        rows.append({"regime": "multi-model monopolist", "source": "closed form (discrete types)", "profit": md["profit"],
                     "consumer_surplus": md["consumer_surplus"], "total_surplus": md["total_surplus"],
                     "who_serves_whom": _describe(theta, md["model"], {0: f"{names[0]} model", 1: f"{names[1]} model",
                                                                       -1: "excluded"})})
    if lead is not None:
        menu = lead["menu"]
        qf = lead["audit"]["q_F"]  # the buyer's top-up at the NLP item (see the q_F check)
        tot = theta * cc.effective_quality(lf, menu.q, qf) - lf.c_L * menu.q - lf.c_F * qf
        rows.append({"regime": "leader vs fringe", "source": "NLP (discrete types)", "profit": menu.objective,
                     "consumer_surplus": float(np.sum(mass * lead["audit"]["U"])),
                     "total_surplus": float(np.sum(mass * tot)),
                     "who_serves_whom": _describe(theta, lead["region"], {0: "fringe only", 1: "leader (limit pricing)",
                                                                          2: "leader (interior)"})})
        ref = lead["ref"]
        rows.append({"regime": "leader vs fringe", "source": "closed form (discrete types)", "profit": ref["profit"],
                     "consumer_surplus": ref["consumer_surplus"], "total_surplus": ref["total_surplus"],
                     "who_serves_whom": _describe(theta, ref["region"], {0: "fringe only", 1: "leader (limit pricing)",
                                                                         2: "leader (interior)"})})
    if dist is not None and lf is not None and eff is not None and mon is not None and lead is not None:
        valid = {"efficient": True, "monopolist": bool(mon_continuous), "leader_fringe": lead.get("cont") is not None}
        wc = cc.welfare_comparison(lf, dist, parts=[k for k, ok in valid.items() if ok])
        te = cc.efficient_switch_point(models)
        descr = {"efficient": _describe_efficient(names, te, *dist.support),
                 "monopolist": _describe_monopolist(models, dist) if valid["monopolist"] else "",
                 "leader_fringe": _describe_leader(cc.leader_thresholds(lf, dist)) if valid["leader_fringe"] else ""}
        label = {"efficient": "efficient", "monopolist": "multi-model monopolist", "leader_fringe": "leader vs fringe"}
        skipped = [label[k] for k, ok in valid.items() if not ok]
        if skipped:
            res.notes.append("welfare: no continuous closed-form row for " + " and ".join(skipped) + " (not valid "
                             "for this distribution: ironing needed; the discrete closed-form rows are ironed)")
        for key, d in wc.items():
            rows.append({"regime": label[key], "source": "closed form (continuous types)", "profit": d["profit"],
                         "consumer_surplus": d["consumer_surplus"], "total_surplus": d["total_surplus"],
                         "who_serves_whom": descr[key]})
    df = pd.DataFrame(rows, columns=["regime", "source", "profit", "consumer_surplus", "total_surplus",
                                     "who_serves_whom"])
    res.tables["welfare"] = df
    # discrete-type welfare must match the discrete closed forms (same menus)
    for reg in df["regime"].unique():
        a = df[(df.regime == reg) & (df.source == "NLP (discrete types)")]
        b = df[(df.regime == reg) & (df.source == "closed form (discrete types)")]
        if len(a) and len(b):
            # a part that is exactly 0 in the closed form (no consumer surplus, no profit) is
            # judged on the regime's total surplus, not in absolute money (_ref_scale)
            unit = max(abs(float(b["total_surplus"].iloc[0])), 1e-300)
            # consumer surplus = total surplus − profit inherits both their absolute errors, so
            # it is judged on the larger of the three (a monopolist leaving 1e-13 of the money
            # scale to buyers failed on its own size, competition_50_23)
            money = max(unit, abs(float(b["profit"].iloc[0])), abs(float(b["consumer_surplus"].iloc[0])))
            span = (_unresolved_welfare_span(lf, theta, mass, lead) if reg == "leader vs fringe"
                    else {})
            for col in ("profit", "consumer_surplus", "total_surplus"):
                sc = money if col == "consumer_surplus" else _ref_scale(b[col].iloc[0], unit)
                res.checks.append(compare(NAME, "welfare_vs_discrete_closed_form",
                                          f"{reg}: {col}" + (" (+ span of the unresolved types)"
                                                             if span.get(col, 0.0) > 0 else ""),
                                          a[col].iloc[0], b[col].iloc[0], TOL_DISCRETE + span.get(col, 0.0) / sc,
                                          scale=sc))
    return df


def _unresolved_welfare_span(lf, theta, mass, lead) -> dict:
    """How far consumer and total surplus move when the types below the NLP's resolution take the
    NLP's q instead of the closed form's (the rest at the closed form's, T from the binding downward
    IC: the exact menu for that choice, :func:`cc.leader_discrete`).

    A type worth I_k < TOL_DISCRETE of the profit (:func:`audits.leader_type_weight`) is not
    determined by the NLP, and the profit does not see where it ends up; consumer and total surplus
    do: serving a marginal type hands every higher type a rent.  competition_90_19 (uniform, N = 27):
    the NLP serves θ = 0.685 at q = 9.4 (profit gain ~1e-7 relative), the closed form does not; the
    types above get 0.25 more rent each, consumer surplus 3.2e-6 above the closed form's.  The profit
    row keeps TOL_DISCRETE (the unresolved types are defined by it); consumer and total surplus are
    judged within TOL_DISCRETE plus this span.  Empty when every type is resolved or the mixed
    schedule is not monotone (then it is not an IC menu, and the rows stay strict)."""
    if lead is None or lead.get("resolved") is None or bool(np.all(lead["resolved"])):
        return {}
    ref, q_nlp = lead["ref"], np.maximum(lead["menu"].q, 0.0)
    q = np.where(lead["resolved"], ref["q_L"], q_nlp)
    if np.any(np.diff(q) < 0):
        return {}
    th, p = np.asarray(theta, float), np.asarray(mass, float)
    v = cc.buyer_value(lf, th, q)
    T = np.cumsum(v - cc.buyer_value(lf, th, np.concatenate([[0.0], q[:-1]])))
    qf = cc.fringe_topup(lf, th, q)
    cs = float(np.sum(p * (v - T)))
    ts = float(np.sum(p * (th * cc.effective_quality(lf, q, qf) - lf.c_L * q - lf.c_F * qf)))
    return {"consumer_surplus": abs(cs - ref["consumer_surplus"]), "total_surplus": abs(ts - ref["total_surplus"])}


def _describe(theta, label, names) -> str:
    """'name θ∈[a, b]; ...' runs of equal labels along the grid."""
    out, i = [], 0
    label = np.asarray(label)
    while i < len(label):
        j = i
        while j + 1 < len(label) and label[j + 1] == label[i]:
            j += 1
        out.append(f"{names.get(int(label[i]), str(label[i]))} θ∈[{theta[i]:.4g}, {theta[j]:.4g}]")
        i = j + 1
    return "; ".join(out)


def _figures(lf, models, theta, dist, eff, mon, lead, mon_ref):
    from models import plotting

    figs = {}
    if lead is not None:
        menu, reg = lead["menu"], lead["region"]
        # the continuous leader closed form only where it is valid (a monotone schedule: lead["cont"] set)
        dist_all, dist = dist, (dist if lead.get("cont") is not None else None)
        fig, ax = plotting.new()
        colours = {0: "tab:gray", 1: "tab:orange", 2: "tab:green"}
        names = {0: "fringe only", 1: "limit pricing", 2: "interior"}
        edges = np.concatenate([[theta[0] - 0.5 * (theta[1] - theta[0])], 0.5 * (theta[1:] + theta[:-1]),
                                [theta[-1] + 0.5 * (theta[-1] - theta[-2])]])
        seen = set()
        for k in range(len(theta)):
            ax.axvspan(edges[k], edges[k + 1], color=colours[int(reg[k])], alpha=0.12, lw=0,
                       label=None if reg[k] in seen else f"NLP region: {names[int(reg[k])]}")
            seen.add(reg[k])
        if dist is not None:
            grid = np.linspace(*dist.support, 1201)
            c = cc.leader_continuous(lf, dist, grid)
            plotting.closed_form_line(ax, grid, c["Q_L"], "leader Q_L (continuous closed form)", color="tab:blue")
            plotting.closed_form_line(ax, grid, np.maximum(c["q_F"], 0) ** lf.sigma, "fringe Q_F (continuous closed form)",
                                      color="tab:red")
        plotting.numeric_markers(ax, theta, _leader_quality(lf, menu.q, reg), "leader Q_L (NLP)", color="tab:blue")
        plotting.numeric_markers(ax, theta, lead["audit"]["q_F"] ** lf.sigma, "fringe Q_F (buyer's top-up at the NLP menu)",
                                 color="tab:red")
        plotting.labels(ax, "type θ", "quality bought", "Leader vs competitive fringe: quantities")
        ax.legend(frameon=False, fontsize=7)
        figs["leader_fringe_quantities"] = fig

        fig, ax = plotting.new()
        if dist is not None:
            plotting.closed_form_line(ax, grid, c["T"], "transfer to leader (continuous closed form)", color="tab:blue")
            plotting.closed_form_line(ax, grid, c["U"], "buyer utility (continuous)", color="tab:green")
            plotting.closed_form_line(ax, grid, c["u0"], "fringe-only utility u(θ,0)", color="tab:gray")
        plotting.numeric_markers(ax, theta, menu.T, "transfer (NLP)", color="tab:blue")
        plotting.numeric_markers(ax, theta, lead["audit"]["U"], "utility (NLP)", color="tab:green")
        plotting.labels(ax, "type θ", "$", "Leader vs fringe: transfers and utility")
        figs["leader_fringe_transfers"] = fig

        if dist is not None:
            fig, ax = plotting.new()
            cfs = np.linspace(0.05 * lf.c_L, 0.995 * lf.c_L, 80)
            lo, hi, st = [], [], []
            for cF in cfs:
                lf2 = cc.LeaderFringe(lf.sigma, lf.gamma_L, lf.c_L, float(cF))
                d = cc.leader_thresholds(lf2, dist)
                lo.append(d["theta_lo"] if d["middle_nonempty"] else np.nan)
                hi.append(d["theta_hi"] if d["middle_nonempty"] else np.nan)
                st.append(d["theta_star"])
            plotting.closed_form_line(ax, cfs, lo, "θ_lo (closed form)")
            plotting.closed_form_line(ax, cfs, hi, "θ_hi (closed form)")
            plotting.closed_form_line(ax, cfs, st, "θ* (closed form, empty middle)")
            th = lead["thresholds"]
            for _, row in th.iterrows():
                if np.isfinite(row["nlp_midpoint"]):
                    ax.errorbar([lf.c_F], [row["nlp_midpoint"]], yerr=[[0.5 * row["grid_step"]], [0.5 * row["grid_step"]]],
                                fmt="o", mfc="none", color="k", capsize=3,
                                label=f"NLP {row['threshold']} (± half grid step)")
            ax.set_ylim(dist.support[0], dist.support[1])
            plotting.labels(ax, "fringe cost c_F", "threshold type", "Proposition 4 thresholds vs c_F")
            ax.legend(frameon=False, fontsize=7)
            figs["thresholds_vs_cF"] = fig

    if lead is not None:
        dist = dist_all
    if eff is not None or mon is not None:
        fig, ax = plotting.new()
        names = [mm.name for mm in models]
        colours = ("tab:red", "tab:blue")
        if eff is not None:
            if dist is not None:
                grid = np.linspace(*dist.support, 1201)
                Qe = cc.efficient_quality(models, grid)
                for l, nm in enumerate(names):
                    plotting.closed_form_line(ax, grid, Qe[l], f"efficient Q[{nm}] (closed form)", color=colours[l])
            for l, nm in enumerate(names):
                plotting.numeric_markers(ax, theta, _quality(models, eff["q"])[:, l], f"efficient Q[{nm}] (NLP)",
                                         color=colours[l])
        if mon is not None:
            if mon_ref is not None:
                ax.plot(theta, mon_ref["V"], "-", lw=0.8, color="k", label="monopolist V (discrete closed form)")
            ax.plot(theta, mon.values["V"], "s", ms=3, mfc="none", color="k", label="monopolist V (NLP)")
        plotting.labels(ax, "type θ", "quality", "Two models: efficient and monopolist")
        ax.legend(frameon=False, fontsize=7)
        figs["two_model_benchmarks"] = fig
    return figs
