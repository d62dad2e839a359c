"""What the cost optimisations saved, for the cost report (``report["savings"]``): cache hits
by tier and kind, with their hit rate and the money saved, and the preprocessing calls and
their cost. The fields: docs/operations.md, "The cost and margin report".
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, text

RATIO_PLACES = 4
KINDS = ("analysis", "script")

HITS = text(
    "SELECT j.tier, j.kind, COUNT(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,"
    " COUNT(*) FILTER (WHERE j.cache_hit) AS hits, COALESCE(SUM(c.saved), 0) AS saved"
    " FROM jobs j LEFT JOIN (SELECT job_id, SUM(saved_usd) AS saved FROM llm_calls"
    "   WHERE status = 'cache_hit' GROUP BY job_id) c ON c.job_id = j.id"
    " WHERE j.created_at >= :start AND j.created_at < :end GROUP BY j.tier, j.kind"
)
PREPROCESSING = text(
    "SELECT tier, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost FROM llm_calls"
    " WHERE purpose = 'preprocess' AND created_at >= :start AND created_at < :end GROUP BY tier"
)


def _money(value: Decimal | int) -> str:
    return format(Decimal(value), "f")


def _ratio(numerator: int, denominator: int) -> str | None:
    if not denominator:
        return None
    return _money(Decimal(round(Fraction(numerator, denominator) * 10**RATIO_PLACES)).scaleb(-RATIO_PLACES))


def _entry(succeeded: int, hits: int, saved: Decimal) -> dict[str, Any]:
    return {"succeeded_jobs": succeeded, "hits": hits, "hit_rate": _ratio(hits, succeeded), "saved_usd": _money(saved)}


def savings(conn: Connection, window: dict[str, Any], tiers: list[str]) -> dict[str, Any]:
    """Cache hits, hit rate and money saved by tier and kind; preprocessing calls and cost."""
    found = {(r.tier, r.kind): (r.succeeded, r.hits, r.saved) for r in conn.execute(HITS, window)}
    zero = (0, 0, Decimal(0))
    by_tier = {t: {k: _entry(*found.get((t, k), zero)) for k in KINDS} for t in tiers}
    by_kind = {
        k: _entry(
            sum(v[0] for (_, kind), v in found.items() if kind == k),
            sum(v[1] for (_, kind), v in found.items() if kind == k),
            sum((v[2] for (_, kind), v in found.items() if kind == k), Decimal(0)),
        )
        for k in KINDS
    }
    total = _entry(
        sum(v[0] for v in found.values()),
        sum(v[1] for v in found.values()),
        sum((v[2] for v in found.values()), Decimal(0)),
    )
    pre = {r.tier: (r.calls, r.cost) for r in conn.execute(PREPROCESSING, window)}
    return {
        "cache": {"total": total, "by_kind": by_kind, "by_tier": by_tier},
        "preprocessing": {
            "calls": sum(c for c, _ in pre.values()),
            "cost_usd": _money(sum((c for _, c in pre.values()), Decimal(0))),
            "by_tier": {t: {"calls": c, "cost_usd": _money(cost)} for t, (c, cost) in sorted(pre.items())},
        },
    }
