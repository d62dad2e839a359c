"""The cost and margin report, as data: queries and aggregation only (rendering is in
workers/reporting/html.py and text.py, the command in cli/).

The window, the conventions (exact decimal strings, four-place ratios, ``None`` for a figure
without meaning) and what each field counts: docs/operations.md, "The cost and margin report".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, text

from config import get_catalog
from db.models import JOB_STATUSES
from workers.money import display_usd, exact_decimal
from workers.quotas.periods import utcnow
from workers.reporting.cache_savings import savings

DIRECTIONS = ("upgrade", "downgrade", "lateral")

RATIO_PLACES = 4  # "0.2500"
PER_UNIT_PLACES = 10  # averages of tiny per-call costs: 1e-10 USD
REVENUE_PLACES = 2  # cents

REVENUE_RULE = (
    "active subscriptions x tier price_monthly x months in the window; each calendar month "
    "touched counts (days of the window in it) / (days in the month); custom prices count as 0"
)


@dataclass(frozen=True)
class Thresholds:
    """When a figure becomes a recommendation. Small samples never trigger one."""

    failure_rate: Decimal = Decimal("0.10")  # a model failing more than 10 % of its calls...
    min_calls: int = 20  # ...over at least 20 calls
    fallback_rate: Decimal = Decimal("0.20")  # a tier whose finished jobs fall back more than 20 %...
    min_jobs: int = 20  # ...over at least 20 finished jobs


DEFAULT_THRESHOLDS = Thresholds()


# -- small exact helpers ---------------------------------------------------------------------


def _rounded(value: Fraction, places: int) -> Decimal:
    """A fraction rounded half to even to ``places`` decimals, without passing through floats."""
    return Decimal(round(value * 10**places)).scaleb(-places)


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> str | None:
    if not denominator:
        return None
    return exact_decimal(_rounded(Fraction(Decimal(numerator)) / Fraction(Decimal(denominator)), RATIO_PLACES))


def _per_unit(total: Decimal, count: int) -> str | None:
    if not count:
        return None
    return exact_decimal(_rounded(Fraction(total) / count, PER_UNIT_PLACES))


def months_in(first: date, last: date) -> Fraction:
    """Length of ``[first, last]`` (inclusive) in months: each calendar month touched counts
    the share of its days the window covers."""
    total = Fraction(0)
    month = first.replace(day=1)
    while month <= last:
        following = (
            month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)
        )
        lo, hi = max(first, month), min(last, following - timedelta(days=1))
        total += Fraction((hi - lo).days + 1, (following - month).days)
        month = following
    return total


def resolve_window(date_from: date | None, date_to: date | None, today: date | None = None) -> tuple[date, date]:
    """The inclusive window; defaults to month to date."""
    last = date_to or today or utcnow().date()
    first = date_from or last.replace(day=1)
    if first > last:
        raise ValueError(f"date_from {first} is after date_to {last}")
    return first, last


# -- the report ------------------------------------------------------------------------------


def build_report(
    conn: Connection,
    date_from: date | None,
    date_to: date | None,
    *,
    today: date | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """The cost and margin report for ``[date_from, date_to]`` (see the module docstring)."""
    first, last = resolve_window(date_from, date_to, today)
    window = {
        "start": datetime.combine(first, time.min, tzinfo=UTC),
        "end": datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC),
    }
    months = months_in(first, last)

    cost_by_tier_raw = _costs_by_tier(conn, window)
    subscribers = _active_subscriptions(conn)
    tiers = tier_order(set(cost_by_tier_raw) | set(subscribers) | _job_tiers(conn, window))

    cost_by_tier = {t: cost_by_tier_raw.get(t, Decimal(0)) for t in tiers}
    total_cost = sum(cost_by_tier.values(), Decimal(0))
    revenue = revenue_by_tier(tiers, subscribers, months)
    total_revenue = sum((Decimal(r["revenue"]) for r in revenue.values()), Decimal(0))
    margin_by_tier = {t: margin(Decimal(revenue[t]["revenue"]), cost_by_tier[t]) for t in tiers}

    models = _model_stats(conn, window)
    fallback_rate = _fallbacks(conn, window, tiers)
    report: dict[str, Any] = {
        "period": {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "days": (last - first).days + 1,
            "months": exact_decimal(_rounded(months, RATIO_PLACES)),
        },
        "currency": "USD",
        "total_cost": exact_decimal(total_cost),
        "total_revenue": exact_decimal(total_revenue),
        "profit_margin": margin(total_revenue, total_cost),
        "cost_by_tier": {t: exact_decimal(c) for t, c in cost_by_tier.items()},
        "cost_by_model": {m: s["cost"] for m, s in models.items()},
        "exposure": _exposure(conn, window, tiers),
        "cost_by_day": _cost_by_day(conn, window, first, last, tiers),
        "cost_per_job_by_tier": _cost_per_job(conn, window, tiers),
        "jobs_by_tier": _jobs_by_tier(conn, window, tiers),
        "fallback_rate": fallback_rate,
        "models": models,
        "revenue_rule": REVENUE_RULE,
        "revenue_by_tier": revenue,
        "margin_by_tier": margin_by_tier,
        "subscription_changes": _subscription_changes(conn, window),
        "savings": savings(conn, window, tiers),  # what cache hits saved, what preprocessing cost
        "thresholds": {
            "failure_rate": exact_decimal(thresholds.failure_rate),
            "min_calls": thresholds.min_calls,
            "fallback_rate": exact_decimal(thresholds.fallback_rate),
            "min_jobs": thresholds.min_jobs,
        },
    }
    report["recommendations"] = recommendations(report, _chain_stats(conn, window), thresholds)
    return report


def margin(revenue: Decimal, cost: Decimal) -> str | None:
    """``(revenue - cost) / revenue`` as a ratio string; None without revenue."""
    return _ratio(revenue - cost, revenue) if revenue else None


def tier_order(seen: set[str]) -> list[str]:
    """Every catalog tier by rank (so charts and tables keep one shape), then unknown ones."""
    known = [t.name for t in sorted(get_catalog().tiers.values(), key=lambda t: t.rank)]
    return known + sorted(seen - set(known))


def _costs_by_tier(conn: Connection, window: dict) -> dict[str, Decimal]:
    rows = conn.execute(
        text(
            "SELECT tier, COALESCE(SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost FROM llm_calls"
            " WHERE created_at >= :start AND created_at < :end GROUP BY tier"
        ),
        window,
    )
    return {r.tier: r.cost for r in rows}


def _job_tiers(conn: Connection, window: dict) -> set[str]:
    rows = conn.execute(text("SELECT DISTINCT tier FROM jobs WHERE created_at >= :start AND created_at < :end"), window)
    return {r.tier for r in rows}


def _active_subscriptions(conn: Connection) -> dict[str, int]:
    rows = conn.execute(text("SELECT tier, COUNT(*) AS n FROM subscriptions WHERE status = 'active' GROUP BY tier"))
    return {r.tier: r.n for r in rows}


def revenue_by_tier(tiers: list[str], subscribers: dict[str, int], months: Fraction) -> dict[str, dict[str, Any]]:
    """Each tier's list revenue over ``months``: active subscriptions x its price, to the cent."""
    catalog = get_catalog()
    out = {}
    for tier in tiers:
        price = catalog.tiers[tier].limits.price_monthly if tier in catalog.tiers else None
        count = subscribers.get(tier, 0)
        revenue = Decimal(0) if price is None else _rounded(Fraction(price) * count * months, REVENUE_PLACES)
        out[tier] = {
            "active_subscriptions": count,
            "price_monthly": None if price is None else exact_decimal(price),
            "revenue": exact_decimal(revenue),
        }
    return out


def _cost_by_day(conn: Connection, window: dict, first: date, last: date, tiers: list[str]) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, tier,"
            " SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate') AS cost FROM llm_calls"
            " WHERE created_at >= :start AND created_at < :end GROUP BY 1, 2"
        ),
        window,
    )
    cells = {(r.day, r.tier): r.cost for r in rows}
    days = []
    day = first
    while day <= last:
        by_tier = {t: cells.get((day, t), Decimal(0)) for t in tiers}
        days.append(
            {
                "day": day.isoformat(),
                "total": exact_decimal(sum(by_tier.values(), Decimal(0))),
                "by_tier": {t: exact_decimal(c) for t, c in by_tier.items()},
            }
        )
        day += timedelta(days=1)
    return days


def _cost_per_job(conn: Connection, window: dict, tiers: list[str]) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT j.tier, COUNT(*) AS jobs, COALESCE(SUM(c.cost), 0) AS cost FROM jobs j"
            " LEFT JOIN (SELECT job_id, SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate') AS cost"
            "  FROM llm_calls GROUP BY job_id) c ON c.job_id = j.id"
            " WHERE j.status = 'succeeded' AND j.created_at >= :start AND j.created_at < :end GROUP BY j.tier"
        ),
        window,
    )
    found = {r.tier: (r.jobs, r.cost) for r in rows}
    out = {}
    for tier in tiers:
        jobs, cost = found.get(tier, (0, Decimal(0)))
        out[tier] = {"succeeded_jobs": jobs, "cost": exact_decimal(cost), "average": _per_unit(cost, jobs)}
    return out


def _jobs_by_tier(conn: Connection, window: dict, tiers: list[str]) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        text(
            "SELECT tier, status, COUNT(*) AS n FROM jobs"
            " WHERE created_at >= :start AND created_at < :end GROUP BY tier, status"
        ),
        window,
    )
    out = {t: dict.fromkeys(JOB_STATUSES, 0) for t in tiers}
    for r in rows:
        out[r.tier][r.status] = r.n
    for counts in out.values():
        counts["total"] = sum(counts[s] for s in JOB_STATUSES)
    return out


def _fallbacks(conn: Connection, window: dict, tiers: list[str]) -> dict[str, Any]:
    rows = conn.execute(
        text(
            "SELECT tier, COUNT(*) AS finished, COUNT(*) FILTER (WHERE used_fallback) AS fallback FROM jobs"
            " WHERE status IN ('succeeded', 'failed') AND created_at >= :start AND created_at < :end GROUP BY tier"
        ),
        window,
    )
    found = {r.tier: (r.finished, r.fallback) for r in rows}

    def entry(finished: int, fallback: int) -> dict[str, Any]:
        return {"finished_jobs": finished, "fallback_jobs": fallback, "rate": _ratio(fallback, finished)}

    by_tier = {t: entry(*found.get(t, (0, 0))) for t in tiers}
    overall = entry(sum(f for f, _ in found.values()), sum(b for _, b in found.values()))
    return {"overall": overall, "by_tier": by_tier}


def _model_stats(conn: Connection, window: dict) -> dict[str, dict[str, Any]]:
    """Per requested model: calls by status, failure rate (anything not ``ok``), cost, latency.
    The p95 is nearest-rank (``percentile_disc``), so it is a latency that really happened."""
    rows = conn.execute(
        text(
            "SELECT model, COUNT(*) AS calls,"
            " COUNT(*) FILTER (WHERE status = 'ok') AS ok,"
            " COUNT(*) FILTER (WHERE status = 'retry') AS retry,"
            " COUNT(*) FILTER (WHERE status = 'fallback') AS fallback,"
            " COUNT(*) FILTER (WHERE status = 'fatal') AS fatal,"
            " COUNT(*) FILTER (WHERE status = 'unknown') AS unknown,"
            " COUNT(*) FILTER (WHERE status = 'pending') AS pending,"
            " COALESCE(SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost,"
            " ROUND(AVG(latency_ms))::int AS avg_latency_ms,"
            " percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency_ms"
            " FROM llm_calls WHERE created_at >= :start AND created_at < :end"
            " AND status <> 'cache_hit'"  # provider calls only: a hit called nobody
            " GROUP BY model ORDER BY cost DESC, model"
        ),
        window,
    )
    out = {}
    for r in rows:
        failures = r.calls - r.ok
        out[r.model] = {
            "calls": r.calls,
            "by_status": {
                "ok": r.ok,
                "retry": r.retry,
                "fallback": r.fallback,
                "fatal": r.fatal,
                "unknown": r.unknown,
                "pending": r.pending,
            },
            "failures": failures,
            "failure_rate": _ratio(failures, r.calls),
            "cost": exact_decimal(r.cost),
            "avg_latency_ms": r.avg_latency_ms,
            "p95_latency_ms": r.p95_latency_ms,
        }
    return out


def _exposure(conn: Connection, window: dict, tiers: list[str]) -> dict[str, Any]:
    """Estimated cost of the attempts nobody recorded an answer for (``unknown``), by tier, and
    how many attempts are still ``pending`` (in flight now, or of a worker not yet found dead)."""
    rows = conn.execute(
        text(
            "SELECT tier, COUNT(*) FILTER (WHERE status = 'unknown') AS unknown,"
            " COUNT(*) FILTER (WHERE status = 'pending') AS pending,"
            " COALESCE(SUM(cost_usd) FILTER (WHERE cost_source = 'estimate'), 0) AS estimate FROM llm_calls"
            " WHERE created_at >= :start AND created_at < :end AND status IN ('unknown', 'pending') GROUP BY tier"
        ),
        window,
    )
    cells = {r.tier: r for r in rows}
    by_tier = {
        t: {
            "unknown_calls": cells[t].unknown if t in cells else 0,
            "estimated_cost": exact_decimal(cells[t].estimate if t in cells else Decimal(0)),
        }
        for t in tiers
    }
    return {
        "estimated_cost": exact_decimal(sum((r.estimate for r in cells.values()), Decimal(0))),
        "unknown_calls": sum(r.unknown for r in cells.values()),
        "pending_calls": sum(r.pending for r in cells.values()),
        "by_tier": by_tier,
        "rule": "attempts whose worker died mid-call: the estimated prompt plus max_tokens at the model's price",
    }


def _chain_stats(conn: Connection, window: dict) -> dict[tuple[str, str], tuple[int, int, Decimal]]:
    """(tier, model) -> (calls, ok calls, cost): a model's record inside one tier's chain."""
    rows = conn.execute(
        text(
            "SELECT tier, model, COUNT(*) AS calls, COUNT(*) FILTER (WHERE status = 'ok') AS ok,"
            " COALESCE(SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost FROM llm_calls"
            " WHERE created_at >= :start AND created_at < :end AND status <> 'cache_hit' GROUP BY tier, model"
        ),
        window,
    )
    return {(r.tier, r.model): (r.calls, r.ok, r.cost) for r in rows}


def _subscription_changes(conn: Connection, window: dict) -> dict[str, Any]:
    rows = conn.execute(
        text(
            "SELECT from_tier, to_tier, direction, COUNT(*) AS n FROM subscription_changes"
            " WHERE changed_at >= :start AND changed_at < :end"
            " GROUP BY from_tier, to_tier, direction ORDER BY n DESC, from_tier, to_tier"
        ),
        window,
    )
    paths = [{"from": r.from_tier, "to": r.to_tier, "direction": r.direction, "count": r.n} for r in rows]
    counts = {d: sum(p["count"] for p in paths if p["direction"] == d) for d in DIRECTIONS}
    return {
        "upgrades": counts["upgrade"],
        "downgrades": counts["downgrade"],
        "lateral": counts["lateral"],
        "paths": paths,
    }


# -- recommendations -------------------------------------------------------------------------


def _pct(ratio: str | None) -> str:
    return "n/a" if ratio is None else f"{exact_decimal(Decimal(ratio).scaleb(2))}%"


def recommendations(
    report: dict[str, Any],
    chain_stats: dict[tuple[str, str], tuple[int, int, Decimal]],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[dict[str, Any]]:
    """Rules over the report's own figures, each a ``{kind, subject, message, figure}``:

    - ``model_failure_rate``: a model failed more than ``failure_rate`` of at least ``min_calls``
      calls. Figure: its failure rate.
    - ``negative_margin``: a tier (or the whole report, subject ``all``) costs more than its
      list revenue. Figure: the margin.
    - ``fallback_rate``: more than ``fallback_rate`` of a tier's finished jobs (at least
      ``min_jobs``) were served by a fallback model. Figure: the rate.
    - ``cheaper_model``: a later model of a tier's chain cost less per successful call than an
      earlier one, with an equal or better success rate, both over at least ``min_calls`` calls
      in that tier. Figure: the saving per successful call, in USD.
    """
    out: list[dict[str, Any]] = []
    for model, s in report["models"].items():
        if s["calls"] >= thresholds.min_calls and s["failures"] > thresholds.failure_rate * s["calls"]:
            out.append(
                {
                    "kind": "model_failure_rate",
                    "subject": model,
                    "message": f"{model} failed {_pct(s['failure_rate'])} of {s['calls']} calls (threshold "
                    f"{_pct(exact_decimal(thresholds.failure_rate))}); check the provider or move it down its chains.",
                    "figure": s["failure_rate"],
                }
            )
    for tier, margin in report["margin_by_tier"].items():
        if margin is not None and Decimal(margin) < 0:
            out.append(
                {
                    "kind": "negative_margin",
                    "subject": tier,
                    "message": f"Tier {tier} cost {display_usd(report['cost_by_tier'][tier])} against "
                    f"{display_usd(report['revenue_by_tier'][tier]['revenue'], 'revenue')} of revenue"
                    f" (margin {_pct(margin)}); "
                    "review its models, allowance or price.",
                    "figure": margin,
                }
            )
    if report["profit_margin"] is not None and Decimal(report["profit_margin"]) < 0:
        out.append(
            {
                "kind": "negative_margin",
                "subject": "all",
                "message": f"Total cost {display_usd(report['total_cost'])} exceeds list revenue "
                f"{display_usd(report['total_revenue'], 'revenue')} "
                f"(margin {_pct(report['profit_margin'])}).",
                "figure": report["profit_margin"],
            }
        )
    for tier, f in report["fallback_rate"]["by_tier"].items():
        if (
            f["finished_jobs"] >= thresholds.min_jobs
            and f["fallback_jobs"] > thresholds.fallback_rate * f["finished_jobs"]
        ):
            out.append(
                {
                    "kind": "fallback_rate",
                    "subject": tier,
                    "message": f"{_pct(f['rate'])} of {f['finished_jobs']} finished {tier} jobs used a fallback model "
                    f"(threshold {_pct(exact_decimal(thresholds.fallback_rate))}); the primary model is unreliable.",
                    "figure": f["rate"],
                }
            )
    out.extend(_cheaper_models(chain_stats, thresholds))
    return out


def _cheaper_models(
    chain_stats: dict[tuple[str, str], tuple[int, int, Decimal]], thresholds: Thresholds
) -> list[dict[str, Any]]:
    out = []
    for tier in get_catalog().tiers.values():
        chain = tier.models
        for i, preferred in enumerate(chain):
            for later in chain[i + 1 :]:
                a, b = chain_stats.get((tier.name, preferred)), chain_stats.get((tier.name, later))
                if not a or not b or min(a[0], b[0]) < thresholds.min_calls or not a[1] or not b[1]:
                    continue
                (calls_a, ok_a, cost_a), (calls_b, ok_b, cost_b) = a, b
                # Exact comparisons by cross-multiplication: cost per success and success rate.
                cheaper = cost_b * ok_a < cost_a * ok_b
                as_reliable = ok_b * calls_a >= ok_a * calls_b
                if not (cheaper and as_reliable):
                    continue
                saving = _rounded(Fraction(cost_a) / ok_a - Fraction(cost_b) / ok_b, PER_UNIT_PLACES)
                out.append(
                    {
                        "kind": "cheaper_model",
                        "subject": f"{tier.name}:{later}",
                        "message": f"In tier {tier.name}, {later} cost {display_usd(_per_unit(cost_b, ok_b))}"
                        " per successful call "
                        f"against {display_usd(_per_unit(cost_a, ok_a))} for {preferred}, with a success rate of "
                        f"{_pct(_ratio(ok_b, calls_b))} against {_pct(_ratio(ok_a, calls_a))}; "
                        "consider putting it first.",
                        "figure": exact_decimal(saving),
                    }
                )
    return out
