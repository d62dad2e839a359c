"""Monthly allowances and spend caps, enforced without races.

A unit is taken at intake by one conditional upsert on the user's row for the period, in the
statement that writes the jobs row (``admit_*_job`` in db/queries/admission.sql): the row lock
that ON CONFLICT DO UPDATE takes serialises concurrent submits, and the WHERE clause refuses
the unit once the allowance or the spend cap is reached. 100 concurrent submits with 10 units
left take exactly 10. Settlement gives a unit back (``settle_job`` in db/queries/jobs.sql).
This module answers why a unit was refused, and what a user has used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection

from config.tiers import Tier, remaining
from db import named_sql
from workers.quotas.periods import quota_period
from workers.quotas.subscriptions import standing


class PeriodUsage(NamedTuple):
    """A user's row of one quota period."""

    scripts_used: int
    analyses_used: int
    spend_usd: Decimal
    reserved_usd: Decimal

    def used(self, kind: str) -> int:
        return self.scripts_used if kind == "script" else self.analyses_used


SQL = named_sql.load("allowance")
USAGE_OF_PERIOD = SQL.rows("quota_usage_of_period", PeriodUsage)


def can_ever_fit(tier: Tier, kind: str, units: int) -> bool:
    """False when the tier's allowance is smaller than one request (a batch of many analyses):
    a fresh period's row is inserted without the limit check, so this is asked first."""
    limit = tier.allowance(kind)
    return limit is None or units <= limit


@dataclass(frozen=True)
class Refusal:
    """Why a unit could not be taken: the JobResult's reason and detail."""

    reason: str  # quota_exceeded or spend_cap_reached
    detail: dict[str, Any]


def refusal(
    conn: Connection, user_id: str, kind: str, tier: Tier, period: tuple[date, date], units: int = 1
) -> Refusal:
    """Why the units could not be taken: the allowance, else the spend cap."""
    row = _row(conn, user_id, period[0])
    used = row.used(kind) if row else 0
    spend = row.spend_usd if row else Decimal(0)
    reserved = row.reserved_usd if row else Decimal(0)
    limit = tier.allowance(kind)
    if limit is not None and used + units > limit:
        noun = "scripts (videos)" if kind == "script" else "analyses"
        asked = f" This request needs {units}." if units > 1 else ""
        return Refusal(
            "quota_exceeded",
            {
                "used": used,
                "limit": limit,
                "period_start": period[0].isoformat(),
                "period_end": period[1].isoformat(),
                "message": f"Monthly limit reached: you have used {used} of {limit} {noun}"
                f" on the {tier.name} tier.{asked} Upgrade your subscription for a larger allowance.",
            },
        )
    return Refusal(
        "spend_cap_reached",
        {
            "spend_usd": format(spend, "f"),
            "reserved_usd": format(reserved, "f"),
            "spend_cap_usd": format(tier.spend_cap_usd, "f"),
            "period_start": period[0].isoformat(),
            "period_end": period[1].isoformat(),
            "message": f"The {tier.name} tier's monthly model spend cap is reached. Upgrade your subscription.",
        },
    )


def _row(conn: Connection, user_id: str, period_start: date) -> PeriodUsage | None:
    return USAGE_OF_PERIOD.first(conn, {"user_id": user_id, "period_start": period_start})


def usage(conn: Connection, user_id: str, now: datetime) -> dict[str, Any]:
    """The user's tier, limits, current period, used, remaining and spend: ``litink.usage``."""
    st = standing(conn, user_id, now)
    tier = st.tier
    start, end = quota_period(now, st.period_start, st.period_end)
    row = _row(conn, user_id, start)
    scripts = row.scripts_used if row else 0
    analyses = row.analyses_used if row else 0
    spend = row.spend_usd if row else Decimal(0)

    def counted(limit: int | None, used: int) -> dict[str, Any]:
        left = remaining(limit, used)
        return {
            "used": used,
            "limit": "unlimited" if limit is None else limit,
            "remaining": "unlimited" if left is None else left,
        }

    videos = counted(tier.limits.videos_per_month, scripts)
    under_cap = tier.spend_cap_usd is None or spend < tier.spend_cap_usd
    limits = tier.limits.model_dump(mode="json")
    limits = {
        k: ("unlimited" if v is None and k != "price_monthly" else "custom" if v is None else v)
        for k, v in limits.items()
    }
    return {
        "user_id": user_id,
        "tier": tier.name,
        "status": st.status,
        "limits": limits
        | {
            "analyses_per_month": "unlimited" if tier.analyses_per_month is None else tier.analyses_per_month,
            "requests_per_minute": tier.requests_per_minute,
        },
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "videos": videos,
        "analyses": counted(tier.analyses_per_month, analyses),
        "used": scripts,
        "remaining": videos["remaining"],
        "spend_usd": format(spend, "f"),
        "spend_cap_usd": None if tier.spend_cap_usd is None else format(tier.spend_cap_usd, "f"),
        "can_generate": under_cap and videos["remaining"] != 0,
    }
