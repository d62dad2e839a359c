"""The cost and margin report (workers/reporting/report.py) as one self-contained HTML page.

No script, no CDN: inline CSS and SVG charts drawn here. Every figure shown is a value of the
report dict: money through workers.money.display_usd (fixed decimals per kind of figure: costs
to 1e-8 USD, revenue and prices in cents), ratios as a percentage of the report's digits.
Each figure carries ``data-metric`` (its top-level key),
``data-path`` (a JSON list of keys into the report) and ``data-value`` (the report's value,
``null`` for None), so a test or a scraper can match the page against ``litink costs --json``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from html import escape
from typing import Any

from workers.money import display_usd

PALETTE = ("#8c96a8", "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1", "#e15759", "#76b7b2", "#edc948")
POSITIVE, NEGATIVE = "#59a14f", "#e15759"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2430;
       background: #f6f7f9; margin: 0; padding: 24px 32px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 10px; }
.period { color: #5b6475; margin: 0 0 18px; }
.cards { display: flex; gap: 14px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 12px 16px; min-width: 160px; }
.card .label { color: #5b6475; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.panel { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 12px 16px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eceef2; text-align: left; white-space: nowrap; }
th { font-size: 12px; color: #5b6475; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; }
tr:nth-child(even) td { background: #fafbfc; }
.neg { color: #c0392b; } .muted { color: #8a92a3; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
ul.recs { margin: 0; padding-left: 18px; } ul.recs li { margin: 4px 0; }
.kind { font-size: 11px; background: #eef1f6; border-radius: 4px; padding: 1px 6px; margin-right: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #5b6475; }
footer { color: #8a92a3; font-size: 12px; margin-top: 28px; }
"""


# -- one figure ------------------------------------------------------------------------------


def _shown(value: Any, style: str) -> str:
    """How a report value reads on the page: money with its context's fixed decimals, ratios
    with the report's digits."""
    if value is None:
        return "n/a"
    if style == "cost":
        return display_usd(value, "cost")
    if style == "revenue":
        return display_usd(value, "revenue")
    if style == "ratio":
        return f"{format(Decimal(value).scaleb(2), 'f')}%"
    if style == "ms":
        return f"{value} ms"
    return str(value)


def _attrs(path: tuple[Any, ...], value: Any) -> str:
    data_value = "null" if value is None else str(value)
    return (
        f'data-metric="{escape(str(path[0]))}" data-path="{escape(json.dumps(list(path)))}"'
        f' data-value="{escape(data_value)}"'
    )


def _lookup(report: dict[str, Any], path: tuple[Any, ...]) -> Any:
    node: Any = report
    for key in path:
        node = node[key]
    return node


def _fig(report: dict[str, Any], path: tuple[Any, ...], style: str = "text", tag: str = "span") -> str:
    value = _lookup(report, path)
    classes = []
    if tag == "td":
        classes.append("num")
    if style in ("ratio", "cost", "revenue") and value is not None and Decimal(value) < 0:
        classes.append("neg")
    if value is None:
        classes.append("muted")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<{tag}{cls} {_attrs(path, value)}>{escape(_shown(value, style))}</{tag}>"


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i >= numeric_from else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    if not rows:
        empty = f'<td colspan="{len(headers)}" class="muted">None in this period.</td>'
        return f"<table><tr>{head}</tr><tr>{empty}</tr></table>"
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _colors(report: dict[str, Any]) -> dict[str, str]:
    return {tier: PALETTE[i % len(PALETTE)] for i, tier in enumerate(report["cost_by_tier"])}


# -- charts ----------------------------------------------------------------------------------


def cost_by_day_chart(report: dict[str, Any], width: int = 960, height: int = 280) -> str:
    """Stacked bars: one per UTC day, one segment per tier. The axis is labeled with the
    largest day's total, a figure of the report."""
    days = report["cost_by_day"]
    colors = _colors(report)
    left, right, top, bottom = 90, 10, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak_index = max(range(len(days)), key=lambda i: Decimal(days[i]["total"]), default=None)
    peak = Decimal(days[peak_index]["total"]) if peak_index is not None else Decimal(0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="Cost by day and tier" data-chart="cost_by_day">'
    ]
    base_y = top + plot_h
    parts.append(f'<line x1="{left}" y1="{base_y}" x2="{left + plot_w}" y2="{base_y}" stroke="#c5cad3"/>')
    parts.append(f'<text x="{left - 6}" y="{base_y + 4}" text-anchor="end">$0</text>')
    if peak <= 0:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
            "No LLM cost in this period.</text></svg>"
        )
        return "".join(parts)
    peak_path = ("cost_by_day", peak_index, "total")
    parts.append(
        f'<line x1="{left}" y1="{top}" x2="{left + plot_w}" y2="{top}" stroke="#e1e4ea" stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" {_attrs(peak_path, days[peak_index]["total"])}>'
        f"{escape(display_usd(days[peak_index]['total']))}</text>"
    )
    slot = plot_w / len(days)
    bar_w = max(1.0, slot * 0.75)
    label_every = max(1, -(-len(days) // 12))
    scale = plot_h / float(peak)  # geometry only; every figure shown stays a report string
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(base_y)
        for tier, cost in day["by_tier"].items():
            amount = Decimal(cost)
            if amount <= 0:
                continue
            h = float(amount) * scale
            y -= h
            tip = f"{day['day']} {tier}: {display_usd(cost)}"
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{colors[tier]}"'
                f" {_attrs(('cost_by_day', i, 'by_tier', tier), cost)}><title>{escape(tip)}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.2f}" y="{base_y + 16}" text-anchor="middle">{escape(day["day"][5:])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def margin_chart(report: dict[str, Any], width: int = 960, row_h: int = 30) -> str:
    """Horizontal bars around a zero line: green for a positive margin, red for a negative
    one; a tier without list revenue has no margin and says so."""
    margins = report["margin_by_tier"]
    values = [Decimal(m) for m in margins.values() if m is not None]
    low, high = min([Decimal(0), *values]), max([Decimal(0), *values])
    span = (high - low) or Decimal(1)
    left, right, top = 120, 90, 8
    plot_w = width - left - right
    height = top * 2 + row_h * max(1, len(margins))
    zero_x = left + plot_w * float((0 - low) / span)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="Margin by tier" data-chart="margin_by_tier">'
    ]
    for i, (tier, margin) in enumerate(margins.items()):
        y = top + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">{escape(tier)}</text>')
        path = ("margin_by_tier", tier)
        if margin is None:
            parts.append(
                f'<text x="{zero_x + 6:.2f}" y="{y + row_h / 2 + 4}" {_attrs(path, None)}>n/a (no list revenue)</text>'
            )
            continue
        value = Decimal(margin)
        x_end = left + plot_w * float((value - low) / span)
        x, w = min(zero_x, x_end), abs(x_end - zero_x)
        color = POSITIVE if value >= 0 else NEGATIVE
        label = escape(_shown(margin, "ratio"))
        parts.append(
            f'<rect x="{x:.2f}" y="{y + 5}" width="{max(w, 1):.2f}" height="{row_h - 10}" fill="{color}"'
            f" {_attrs(path, margin)}><title>{escape(tier)}: {label}</title></rect>"
        )
        # Positive: the label follows the bar; negative: it sits right of the zero line, clear of the tier names.
        anchor_x, anchor = (x_end + 6, "start") if value >= 0 else (zero_x + 6, "start")
        parts.append(f'<text x="{anchor_x:.2f}" y="{y + row_h / 2 + 4}" text-anchor="{anchor}">{label}</text>')
    parts.append(f'<line x1="{zero_x:.2f}" y1="{top}" x2="{zero_x:.2f}" y2="{height - top}" stroke="#8a92a3"/>')
    parts.append("</svg>")
    return "".join(parts)


# -- the page --------------------------------------------------------------------------------


def _tiers_table(report: dict[str, Any]) -> str:
    rows = []
    for tier in report["cost_by_tier"]:
        rows.append(
            [
                f"<td>{escape(tier)}</td>",
                _fig(report, ("cost_by_tier", tier), "cost", "td"),
                _fig(report, ("revenue_by_tier", tier, "active_subscriptions"), "int", "td"),
                _fig(report, ("revenue_by_tier", tier, "price_monthly"), "revenue", "td"),
                _fig(report, ("revenue_by_tier", tier, "revenue"), "revenue", "td"),
                _fig(report, ("margin_by_tier", tier), "ratio", "td"),
                _fig(report, ("cost_per_job_by_tier", tier, "succeeded_jobs"), "int", "td"),
                _fig(report, ("cost_per_job_by_tier", tier, "average"), "cost", "td"),
                _fig(report, ("fallback_rate", "by_tier", tier, "finished_jobs"), "int", "td"),
                _fig(report, ("fallback_rate", "by_tier", tier, "rate"), "ratio", "td"),
            ]
        )
    return _table(
        [
            "Tier",
            "Cost",
            "Active subs",
            "Price / month",
            "Revenue",
            "Margin",
            "Succeeded jobs",
            "Avg cost / job",
            "Finished jobs",
            "Fallback rate",
        ],
        rows,
    )


def _jobs_table(report: dict[str, Any]) -> str:
    statuses = list(next(iter(report["jobs_by_tier"].values()), {}))
    rows = [
        [f"<td>{escape(tier)}</td>"] + [_fig(report, ("jobs_by_tier", tier, s), "int", "td") for s in statuses]
        for tier in report["jobs_by_tier"]
    ]
    return _table(["Tier", *statuses], rows)


def _models_table(report: dict[str, Any]) -> str:
    rows = []
    for model in report["models"]:
        rows.append(
            [
                f"<td>{escape(model)}</td>",
                _fig(report, ("models", model, "calls"), "int", "td"),
                *(
                    _fig(report, ("models", model, "by_status", s), "int", "td")
                    for s in report["models"][model]["by_status"]
                ),
                _fig(report, ("models", model, "failure_rate"), "ratio", "td"),
                _fig(report, ("cost_by_model", model), "cost", "td"),
                _fig(report, ("models", model, "avg_latency_ms"), "ms", "td"),
                _fig(report, ("models", model, "p95_latency_ms"), "ms", "td"),
            ]
        )
    return _table(
        ["Model", "Calls", "ok", "retry", "fallback", "fatal", "Failure rate", "Cost", "Avg latency", "p95 latency"],
        rows,
    )


def _savings_table(report: dict[str, Any]) -> str:
    """Cache hits, hit rate and money saved by tier and kind."""
    rows = [
        [
            f"<td>{escape(tier)}</td>",
            f"<td>{escape(kind)}</td>",
            _fig(report, ("savings", "cache", "by_tier", tier, kind, "succeeded_jobs"), "int", "td"),
            _fig(report, ("savings", "cache", "by_tier", tier, kind, "hits"), "int", "td"),
            _fig(report, ("savings", "cache", "by_tier", tier, kind, "hit_rate"), "ratio", "td"),
            _fig(report, ("savings", "cache", "by_tier", tier, kind, "saved_usd"), "money", "td"),
        ]
        for tier, kinds in report["savings"]["cache"]["by_tier"].items()
        for kind in kinds
    ]
    return _table(["Tier", "Kind", "Succeeded jobs", "Cache hits", "Hit rate", "Saved"], rows, 2)


def _changes(report: dict[str, Any]) -> str:
    totals = " ".join(
        f'<span class="card"><span class="label">{label}</span><br>'
        f'<span class="value">{_fig(report, ("subscription_changes", key), "int")}</span></span>'
        for key, label in (("upgrades", "Upgrades"), ("downgrades", "Downgrades"), ("lateral", "Lateral"))
    )
    rows = [
        [
            f"<td>{escape(p['from'])}</td>",
            f"<td>{escape(p['to'])}</td>",
            f"<td>{escape(p['direction'])}</td>",
            _fig(report, ("subscription_changes", "paths", i, "count"), "int", "td"),
        ]
        for i, p in enumerate(report["subscription_changes"]["paths"])
    ]
    return f'<div class="cards">{totals}</div><br>' + _table(["From", "To", "Direction", "Count"], rows, 3)


def _recommendations(report: dict[str, Any]) -> str:
    if not report["recommendations"]:
        return '<p class="muted">No recommendation: every rule is within its threshold.</p>'
    items = "".join(
        f'<li {_attrs(("recommendations", i, "figure"), r["figure"])} data-kind="{escape(r["kind"])}">'
        f'<span class="kind">{escape(r["kind"])}</span>{escape(r["message"])}</li>'
        for i, r in enumerate(report["recommendations"])
    )
    return f'<ul class="recs">{items}</ul>'


def _card(report: dict[str, Any], label: str, path: tuple[Any, ...], style: str) -> str:
    value = _fig(report, path, style)
    return f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{value}</div></div>'


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page for a report from :func:`workers.reporting.report.build_report`."""
    period = report["period"]
    colors = _colors(report)
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(t)}</span>' for t, c in colors.items())
    title = f"Litink cost and margin, {period['from']} to {period['to']}"
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body>
<h1>Cost and margin</h1>
<p class="period">{_fig(report, ("period", "from"))} to {_fig(report, ("period", "to"))}
 ({_fig(report, ("period", "days"))} days, {_fig(report, ("period", "months"))} months),
 {escape(report["currency"])}</p>
<div class="cards">
{_card(report, "Total cost", ("total_cost",), "cost")}
{_card(report, "Exposure (estimated, not in cost)", ("exposure", "estimated_cost"), "cost")}
{_card(report, "List revenue", ("total_revenue",), "revenue")}
{_card(report, "Profit margin", ("profit_margin",), "ratio")}
{_card(report, "Fallback rate", ("fallback_rate", "overall", "rate"), "ratio")}
{_card(report, "Finished jobs", ("fallback_rate", "overall", "finished_jobs"), "int")}
{_card(report, "Cache hit rate", ("savings", "cache", "total", "hit_rate"), "ratio")}
{_card(report, "Saved by the cache", ("savings", "cache", "total", "saved_usd"), "money")}
{_card(report, "Preprocessing cost", ("savings", "preprocessing", "cost_usd"), "money")}
</div>
<h2>Cost by day and tier</h2>
<div class="panel">{cost_by_day_chart(report)}<div class="legend">{legend}</div></div>
<h2>Margin by tier</h2>
<div class="panel">{margin_chart(report)}</div>
<h2>Recommendations</h2>
<div class="panel">{_recommendations(report)}</div>
<h2>Tiers</h2>
<div class="panel">{_tiers_table(report)}</div>
<h2>Jobs by tier and status</h2>
<div class="panel">{_jobs_table(report)}</div>
<h2>Models</h2>
<div class="panel">{_models_table(report)}</div>
<h2>Response cache savings</h2>
<div class="panel">{_savings_table(report)}</div>
<h2>Upgrades and downgrades</h2>
<div class="panel">{_changes(report)}</div>
<footer>
<p>Revenue: {escape(report["revenue_rule"])}.</p>
<p>Recommendation thresholds: failure rate above {_fig(report, ("thresholds", "failure_rate"), "ratio")}
 over at least {_fig(report, ("thresholds", "min_calls"))} calls; fallback rate above
 {_fig(report, ("thresholds", "fallback_rate"), "ratio")} over at least
 {_fig(report, ("thresholds", "min_jobs"))} finished jobs.</p>
</footer>
</body>
</html>
"""
