"""`litink costs` as text: the same report dict the --json and --html views show, as Rich
tables (money through workers.money.display_usd, ratios as percentages)."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from workers.money import display_usd


def _pct(ratio: str | None) -> str:
    return "n/a" if ratio is None else f"{Decimal(ratio).scaleb(2).quantize(Decimal('0.1'))}%"


def _table(title: str, columns: list[str], rows: list[list[str]], text_columns: int = 1) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < text_columns else "right", no_wrap=i < text_columns)
    for row in rows:
        table.add_row(*row)
    return table


def text_report(report: dict[str, Any]) -> RenderableType:
    """The report as Rich renderables, for a console to print."""
    period = report["period"]
    head = Text.assemble(
        (f"Cost and margin, {period['from']} to {period['to']} ({period['days']} days)\n", "bold"),
        f"  cost {display_usd(report['total_cost'])}   revenue {display_usd(report['total_revenue'], 'revenue')}"
        f"   margin {_pct(report['profit_margin'])}\n",
        f"  exposure (not in cost): {display_usd(report['exposure']['estimated_cost'])} estimated for"
        f" {report['exposure']['unknown_calls']} unknown call(s); {report['exposure']['pending_calls']} pending",
    )
    tiers = _table(
        "By tier",
        ["tier", "cost", "revenue", "margin", "jobs", "avg cost/job", "fallback"],
        [
            [
                t,
                display_usd(report["cost_by_tier"][t]),
                display_usd(report["revenue_by_tier"][t]["revenue"], "revenue"),
                _pct(report["margin_by_tier"][t]),
                str(report["jobs_by_tier"][t]["total"]),
                display_usd(report["cost_per_job_by_tier"][t]["average"]),
                _pct(report["fallback_rate"]["by_tier"][t]["rate"]),
            ]
            for t in report["cost_by_tier"]
        ],
    )
    models = _table(
        "By model",
        ["model", "calls", "failure rate", "cost", "avg ms", "p95 ms"],
        [
            [
                m,
                str(s["calls"]),
                _pct(s["failure_rate"]),
                display_usd(s["cost"]),
                "" if s["avg_latency_ms"] is None else str(s["avg_latency_ms"]),
                "" if s["p95_latency_ms"] is None else str(s["p95_latency_ms"]),
            ]
            for m, s in report["models"].items()
        ],
    )
    changes = report["subscription_changes"]
    parts: list[RenderableType] = [
        head,
        "",
        tiers,
        "",
        models,
        "",
        *_savings(report),  # what the response cache saved, what preprocessing cost
        "",
        f"Upgrades {changes['upgrades']}, downgrades {changes['downgrades']}",
    ]
    if report["recommendations"]:
        parts += ["", Text("Recommendations", style="bold")]
        parts += [f"  - {r['message']}" for r in report["recommendations"]]
    return Group(*parts)


def _savings(report: dict[str, Any]) -> list[RenderableType]:
    """Cache hits, hit rate and money saved by tier and kind; preprocessing calls and cost."""
    cache = report["savings"]["cache"]
    total = cache["total"]
    rows = [
        [tier, kind, str(e["succeeded_jobs"]), str(e["hits"]), _pct(e["hit_rate"]), display_usd(e["saved_usd"])]
        for tier, kinds in cache["by_tier"].items()
        for kind, e in kinds.items()
        if e["succeeded_jobs"] or e["hits"]
    ]
    pre = report["savings"]["preprocessing"]
    return [
        Text(
            f"Response cache: {total['hits']} hits of {total['succeeded_jobs']} succeeded jobs"
            f" ({_pct(total['hit_rate'])}), saved {display_usd(total['saved_usd'])}",
            style="bold",
        ),
        _table("Cache by tier and kind", ["tier", "kind", "succeeded", "hits", "hit rate", "saved"], rows, 2),
        f"Preprocessing (cheap model on long analyses): {pre['calls']} calls, {display_usd(pre['cost_usd'])}",
    ]


def render_text(report: dict[str, Any], width: int = 120) -> str:
    """The report as plain text (no colour), e.g. for an e-mail or a log."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(text_report(report))
    return out.getvalue().rstrip("\n")
