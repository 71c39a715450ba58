"""Run report: report.md (and a self-contained report.html) per run."""
from __future__ import annotations

import base64
import json

from models.export import to_markdown
from models import results

# The report echoes the scenario; beyond this many characters it shows the
# start only (the description itself is bounded by scenario.MAX_DESCRIPTION).
MAX_ECHO = 20_000


def build_markdown(scn, run, summary, writer, embed: bool = False) -> str:
    lines = [f"# Run report: {scn.name}", ""]
    ok = run.verified
    lines.append(('<p class="ok">All regimes converged and every check passed.</p>' if ok else
                  '<p class="bad">ATTENTION: something did not converge or did not verify — see the '
                  'regimes and the rows marked NO below.</p>'))
    lines.append("")
    lines += glance(run) + [""]
    lines.append(f"Solver route: `{summary['route']}`, Ipopt {summary['ipopt_version']}.")
    if scn.description:
        lines += ["", scn.description]
    lines += ["", "## Regimes", "", "| regime | status | checks | failed | solves (status, iterations, build+translate+solve s) |",
              "|---|---|---:|---:|---|"]
    for name, r in summary["regimes"].items():
        solves = "; ".join(f"{k}: {s['status']}, {s['iterations']} it, "
                           f"{s['build_seconds']:.2f}+{s['translate_seconds']:.2f}+{s['solve_seconds']:.2f}"
                           for k, s in r["solves"].items())
        st = r["status"] if r["verified"] else f"**{r['status']}**"
        lines.append(f"| {name} | {st} | {r['checks']} | {r['checks_failed']} | {solves} |")
    lines += ["", "## Verification (numeric vs reference)", ""]
    ver = run.verification
    if len(ver):
        agg = ver.groupby(["regime", "check", "quantity"], sort=False).agg(
            rows=("passed", "size"), max_rel_err=("rel_err", "max"), tolerance=("tolerance", "max"),
            passed=("passed", "all")).reset_index()
        agg["passed"] = agg["passed"].map(lambda b: "yes" if b else "**NO**")
        lines.append(to_markdown(agg))
    for name, res in run.results.items():
        lines += ["", f"## {name}", ""]
        for note in res.notes:
            lines.append(f"- {note}")
        for tname, df in res.tables.items():
            lines += ["", f"### {tname}", "", to_markdown(df, max_rows=25)]
        for fname in res.figures:
            rel = f"figures/{name}/{fname}.png"
            src = rel
            if embed and (writer.out / rel).is_file():
                src = "data:image/png;base64," + base64.b64encode((writer.out / rel).read_bytes()).decode()
            lines += ["", f"![{fname}]({src})"]
    given = json.dumps(scn.raw, indent=2)
    if len(given) > MAX_ECHO:  # a long list (quantities, convergence) must not blow up the report
        given = given[:MAX_ECHO] + f"\n... ({len(given) - MAX_ECHO} more characters; the scenario file's " \
                                   "SHA-256 is in manifest.json)"
    lines += ["", "## Scenario as given", "", "```json", given, "```", ""]
    return "\n".join(lines)


def glance(run) -> list[str]:
    """The report's first screen: one line per regime -- its verdict, its numbers, where
    to look (its section, its tables and figures, the failing checks if any)."""
    out = []
    for name, res in run.results.items():
        ver = res.verification
        n_bad = int((~ver["passed"].astype(bool)).sum()) if len(ver) else 0
        checks = ver["check"].nunique() if len(ver) else 0
        verdict = "verified" if res.verified else f"**{res.status()}**"
        where = [f"[section](#{name})"]
        if res.tables:
            where.append(f"`{name}/` ({len(res.tables)} tables)")
        if res.figures:
            where.append(f"`figures/{name}/` ({len(res.figures)} figures)")
        line = f"- **{name}**: {verdict} -- {checks} checks, {len(ver)} rows, {n_bad} failed; {', '.join(where)}"
        if n_bad:
            failing = list(dict.fromkeys(ver.loc[~ver["passed"].astype(bool), "check"]))
            line += "; failing: " + ", ".join(f"`{c}`" for c in failing[:5]) + (" ..." if len(failing) > 5 else "")
        if res.error:
            line += f"; error: {res.error}"
        out.append(line)
        out += [f"    - {f}" for f in results.failure_lines(ver)]
    return out


def write(writer, scn, run, summary) -> None:
    writer.text(build_markdown(scn, run, summary, writer), "report.md", kind="report/md")
    try:
        import markdown
    except ImportError:  # pragma: no cover
        return
    body = markdown.markdown(build_markdown(scn, run, summary, writer, embed=True), extensions=["tables", "fenced_code", "toc"])
    html = ("<!doctype html><html><head><meta charset='utf-8'><title>Run report: " + scn.name + "</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
            "img{max-width:100%}strong{color:#b00}.ok{color:#060;font-weight:bold}"
            ".bad{color:#fff;background:#b00;padding:4px;font-weight:bold}</style></head><body>" + body + "</body></html>")
    writer.text(html, "report.html", kind="report/html")
