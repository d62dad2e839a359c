"""`litink costs` as text: the same report dict the --json and --html views show."""

from __future__ import annotations

from typing import Any

from cli.render import table


def _pct(ratio: str | None) -> str:
    return "n/a" if ratio is None else f"{float(ratio) * 100:.1f}%"


def render_text(report: dict[str, Any]) -> str:
    period = report["period"]
    out = [
        f"Cost and margin, {period['from']} to {period['to']} ({period['days']} days)",
        f"  cost ${report['total_cost']}   revenue ${report['total_revenue']}   margin {_pct(report['profit_margin'])}",
        f"  exposure (not in cost): ${report['exposure']['estimated_cost']} estimated for"
        f" {report['exposure']['unknown_calls']} unknown call(s); {report['exposure']['pending_calls']} pending",
        "",
        "By tier",
    ]
    tiers = [
        {
            "tier": t,
            "cost": report["cost_by_tier"][t],
            "revenue": report["revenue_by_tier"][t]["revenue"],
            "margin": _pct(report["margin_by_tier"][t]),
            "jobs": report["jobs_by_tier"][t]["total"],
            "avg cost/job": report["cost_per_job_by_tier"][t]["average"] or "",
            "fallback": _pct(report["fallback_rate"]["by_tier"][t]["rate"]),
        }
        for t in report["cost_by_tier"]
    ]
    out.append(table(tiers, ["tier", "cost", "revenue", "margin", "jobs", "avg cost/job", "fallback"]))
    models = [
        {
            "model": m,
            "calls": s["calls"],
            "failure rate": _pct(s["failure_rate"]),
            "cost": s["cost"],
            "avg ms": s["avg_latency_ms"],
            "p95 ms": s["p95_latency_ms"],
        }
        for m, s in report["models"].items()
    ]
    out += ["", "By model", table(models, ["model", "calls", "failure rate", "cost", "avg ms", "p95 ms"])]
    changes = report["subscription_changes"]
    out += ["", f"Upgrades {changes['upgrades']}, downgrades {changes['downgrades']}"]
    if report["recommendations"]:
        out += ["", "Recommendations"] + [f"  - {r['message']}" for r in report["recommendations"]]
    return "\n".join(out)
