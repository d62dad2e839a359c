"""Closing finished quota periods and opening the current one.

Usage is keyed by period, so counts are right whether or not this runs. It writes one
summary row per user and closed period (once: a rerun, or a run a day late, adds
nothing), then opens the current period's rows for subscribed users.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from config import get_catalog
from workers.quotas.periods import calendar_month


def roll(conn: Connection, now: datetime) -> dict[str, int | str]:
    start, end = calendar_month(now)
    closed = conn.execute(
        text(
            "INSERT INTO quota_period_summaries"
            " (user_id, period_start, period_end, tier, scripts_used, analyses_used, spend_usd)"
            " SELECT q.user_id, q.period_start, q.period_end,"
            "   coalesce((SELECT j.tier FROM jobs j WHERE j.user_id = q.user_id AND j.quota_period = q.period_start"
            "             ORDER BY j.created_at DESC LIMIT 1), :default_tier),"
            "   q.scripts_used, q.analyses_used, q.spend_usd"
            " FROM quota_usage q WHERE q.period_end <= :today"
            " ON CONFLICT (user_id, period_start) DO NOTHING"
        ),
        {"today": now.date(), "default_tier": get_catalog().default.name},
    ).rowcount
    opened = conn.execute(
        text(
            "INSERT INTO quota_usage (user_id, period_start, period_end)"
            " SELECT user_id, :s, :e FROM subscriptions WHERE status IN ('active', 'past_due')"
            " ON CONFLICT (user_id, period_start) DO NOTHING"
        ),
        {"s": start, "e": end},
    ).rowcount
    return {"closed": closed, "opened": opened, "period_start": start.isoformat()}
