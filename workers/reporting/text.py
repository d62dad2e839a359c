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
    out += ["", *_savings(report)]
    changes = report["subscription_changes"]
    out += ["", f"Upgrades {changes['upgrades']}, downgrades {changes['downgrades']}"]
    if report["recommendations"]:
        out += ["", "Recommendations"] + [f"  - {r['message']}" for r in report["recommendations"]]
    return "\n".join(out)


def _savings(report: dict[str, Any]) -> list[str]:
    """Cache hits, hit rate and money saved by tier and kind; preprocessing cost."""
    cache = report["savings"]["cache"]
    total = cache["total"]
    rows = [
        {
            "tier": tier,
            "kind": kind,
            "succeeded": e["succeeded_jobs"],
            "hits": e["hits"],
            "hit rate": _pct(e["hit_rate"]),
            "saved": e["saved_usd"],
        }
        for tier, kinds in cache["by_tier"].items()
        for kind, e in kinds.items()
        if e["succeeded_jobs"] or e["hits"]
    ]
    pre = report["savings"]["preprocessing"]
    return [
        f"Response cache: {total['hits']} hits of {total['succeeded_jobs']} succeeded jobs"
        f" ({_pct(total['hit_rate'])}), saved ${total['saved_usd']}",
        table(rows, ["tier", "kind", "succeeded", "hits", "hit rate", "saved"]) if rows else "  (no jobs)",
        f"Preprocessing (cheap model on long analyses): {pre['calls']} calls, ${pre['cost_usd']}",
    ]
