"""A cost report built in memory, in the shape ``build_report`` returns, for the unit tests of
what reads a report (recommendations, the HTML page). Its figures are made consistent the way
build_report makes them (totals are sums, margins come from revenue and cost) through the same
helpers, so a test can check a page against it. ``test_cost_report`` checks that a real report
has the same sections."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from db.models import JOB_STATUSES
from workers.money import exact_decimal
from workers.reporting.report import DEFAULT_THRESHOLDS, REVENUE_RULE, margin, revenue_by_tier, tier_order

# (day, tier) -> cost
COSTS = {
    ("2025-03-01", "basic"): "0.0011",
    ("2025-03-01", "premium"): "2.5",
    ("2025-03-02", "basic"): "0.0022",
    ("2025-03-02", "free"): "0.00002",
    ("2025-03-02", "premium"): "12.0",
    ("2025-03-03", "professional"): "0.75",
}
DAYS = ("2025-03-01", "2025-03-02", "2025-03-03")
SUBSCRIBERS = {"basic": 2, "premium": 1, "professional": 1, "enterprise": 1}
MODELS = {
    "openai/gpt-4o-mini": {"calls": 30, "ok": 27, "cost": "14.5", "latency": (420, 900)},
    "deepseek/deepseek-chat": {"calls": 12, "ok": 12, "cost": "0.0033", "latency": (180, 260)},
    "openai/gpt-4o": {"calls": 1, "ok": 1, "cost": "0.75", "latency": (700, 700)},
    "meta-llama/llama-3.2-3b-instruct": {"calls": 1, "ok": 0, "cost": "0.00002", "latency": (90, 90)},
}


def sample_report(**overrides: Any) -> dict[str, Any]:
    """A month-of-March report over three days; ``overrides`` replace whole sections."""
    tiers = tier_order({tier for _, tier in COSTS} | set(SUBSCRIBERS))
    cost_by_tier = {t: sum((Decimal(c) for (_, tier), c in COSTS.items() if tier == t), Decimal(0)) for t in tiers}
    total_cost = sum(cost_by_tier.values(), Decimal(0))
    months = Fraction(3, 31)
    revenue = revenue_by_tier(tiers, SUBSCRIBERS, months)
    total_revenue = sum((Decimal(r["revenue"]) for r in revenue.values()), Decimal(0))
    cost_by_day = []
    for day in DAYS:
        by_tier = {t: Decimal(COSTS.get((day, t), "0")) for t in tiers}
        cost_by_day.append(
            {
                "day": day,
                "total": exact_decimal(sum(by_tier.values(), Decimal(0))),
                "by_tier": {t: exact_decimal(c) for t, c in by_tier.items()},
            }
        )
    jobs_by_tier = {t: dict.fromkeys(JOB_STATUSES, 0) for t in tiers}
    jobs_by_tier["premium"].update({"succeeded": 2, "failed": 1})
    jobs_by_tier["basic"].update({"succeeded": 3, "rejected": 1})
    for counts in jobs_by_tier.values():
        counts["total"] = sum(counts[s] for s in JOB_STATUSES)
    cache_entry = {"succeeded_jobs": 0, "hits": 0, "hit_rate": None, "saved_usd": "0"}
    report: dict[str, Any] = {
        "period": {"from": "2025-03-01", "to": "2025-03-03", "days": 3, "months": "0.0968"},
        "currency": "USD",
        "total_cost": exact_decimal(total_cost),
        "total_revenue": exact_decimal(total_revenue),
        "profit_margin": margin(total_revenue, total_cost),
        "cost_by_tier": {t: exact_decimal(c) for t, c in cost_by_tier.items()},
        "cost_by_model": {m: s["cost"] for m, s in MODELS.items()},
        "exposure": {
            "estimated_cost": "0.0004",
            "unknown_calls": 1,
            "pending_calls": 0,
            "by_tier": {t: {"unknown_calls": 0, "estimated_cost": "0"} for t in tiers},
            "rule": "attempts whose worker died mid-call",
        },
        "cost_by_day": cost_by_day,
        "cost_per_job_by_tier": {
            t: {"succeeded_jobs": jobs_by_tier[t]["succeeded"], "cost": exact_decimal(cost_by_tier[t]), "average": None}
            for t in tiers
        },
        "jobs_by_tier": jobs_by_tier,
        "fallback_rate": {
            "overall": {"finished_jobs": 6, "fallback_jobs": 1, "rate": "0.1667"},
            "by_tier": {t: {"finished_jobs": 0, "fallback_jobs": 0, "rate": None} for t in tiers},
        },
        "models": {
            m: {
                "calls": s["calls"],
                "by_status": {
                    "ok": s["ok"],
                    "retry": s["calls"] - s["ok"],
                    "fallback": 0,
                    "fatal": 0,
                    "unknown": 0,
                    "pending": 0,
                },
                "failures": s["calls"] - s["ok"],
                "failure_rate": str((Decimal(s["calls"] - s["ok"]) / s["calls"]).quantize(Decimal("0.0001"))),
                "cost": s["cost"],
                "avg_latency_ms": s["latency"][0],
                "p95_latency_ms": s["latency"][1],
            }
            for m, s in MODELS.items()
        },
        "revenue_rule": REVENUE_RULE,
        "revenue_by_tier": revenue,
        "margin_by_tier": {t: margin(Decimal(revenue[t]["revenue"]), cost_by_tier[t]) for t in tiers},
        "subscription_changes": {
            "upgrades": 2,
            "downgrades": 1,
            "lateral": 0,
            "paths": [
                {"from": "free", "to": "basic", "direction": "upgrade", "count": 2},
                {"from": "premium", "to": "basic", "direction": "downgrade", "count": 1},
            ],
        },
        "savings": {
            "cache": {
                "total": {"succeeded_jobs": 5, "hits": 1, "hit_rate": "0.2000", "saved_usd": "0.0011"},
                "by_kind": {"analysis": dict(cache_entry), "script": dict(cache_entry)},
                "by_tier": {t: {"analysis": dict(cache_entry), "script": dict(cache_entry)} for t in tiers},
            },
            "preprocessing": {"calls": 0, "cost_usd": "0", "by_tier": {}},
        },
        "thresholds": {
            "failure_rate": exact_decimal(DEFAULT_THRESHOLDS.failure_rate),
            "min_calls": DEFAULT_THRESHOLDS.min_calls,
            "fallback_rate": exact_decimal(DEFAULT_THRESHOLDS.fallback_rate),
            "min_jobs": DEFAULT_THRESHOLDS.min_jobs,
        },
        "recommendations": [],
    }
    report.update(overrides)
    return report
