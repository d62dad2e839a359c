"""Monthly allowances and spend caps, enforced without races.

A unit is taken at intake by one conditional upsert on the user's row for the period: the
row lock that ON CONFLICT DO UPDATE takes serialises concurrent submits, and the WHERE
clause refuses the unit once the allowance or the spend cap is reached. 100 concurrent
submits with 10 units left take exactly 10.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from config.tiers import Tier, remaining
from workers.pipeline.batch_types import units as batch_units
from workers.quotas.periods import quota_period
from workers.quotas.subscriptions import standing

COLUMN = {"script": "scripts_used", "analysis": "analyses_used"}


def reserve_sql(kind: str, *, after: str) -> str:
    """The statement that takes units of ``kind`` (parameters: ``reserve_params``) for the row
    the CTE named ``after`` returned: admission writes the jobs row and takes its unit in one
    statement (workers/pipeline/admission.py).

    The spend cap counts settled spend plus the maximum cost of every admitted, unsettled job
    (reserved_usd), so a burst of concurrent submits overruns it by at most one job's maximum.
    A batched analysis takes one unit per type (:n), all or none.
    """
    column = COLUMN[kind]  # ours, never user input
    return (
        f"INSERT INTO quota_usage (user_id, period_start, period_end, {column}, reserved_usd)"
        " SELECT CAST(:u AS text), CAST(:s AS date), CAST(:e AS date), CAST(:n AS integer), CAST(:max AS numeric)"
        + f" FROM {after} ON CONFLICT (user_id, period_start) DO UPDATE SET {column} = quota_usage.{column} + :n,"
        " reserved_usd = quota_usage.reserved_usd + :max, updated_at = now()"
        f" WHERE (CAST(:lim AS integer) IS NULL OR quota_usage.{column} + :n <= CAST(:lim AS integer))"
        "   AND (CAST(:cap AS numeric) IS NULL"
        "        OR quota_usage.spend_usd + quota_usage.reserved_usd < CAST(:cap AS numeric))"
        f" RETURNING {column}"
    )


def reserve_params(
    user_id: str, tier: Tier, kind: str, period: tuple[date, date], max_cost: Decimal, units: int
) -> dict[str, Any]:
    return {
        "u": user_id,
        "s": period[0],
        "e": period[1],
        "lim": tier.allowance(kind),
        "cap": tier.spend_cap_usd,
        "max": max_cost,
        "n": units,
    }


def can_ever_fit(tier: Tier, kind: str, units: int) -> bool:
    """False when the tier's allowance is smaller than one request (a batch of many analyses):
    a fresh period's row is inserted without the limit check, so this is asked first."""
    limit = tier.allowance(kind)
    return limit is None or units <= limit


ADD_SPEND = text(
    "UPDATE quota_usage SET spend_usd = spend_usd + :a, updated_at = now()"
    " WHERE user_id = :u AND period_start = :s RETURNING spend_usd"
)


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
    used = getattr(row, COLUMN[kind], 0) if row else 0
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


def _row(conn: Connection, user_id: str, period_start: date) -> Any:
    return conn.execute(
        text(
            "SELECT scripts_used, analyses_used, spend_usd, reserved_usd FROM quota_usage"
            " WHERE user_id = :u AND period_start = :s"
        ),
        {"u": user_id, "s": period_start},
    ).first()


def refund(conn: Connection, job_id: str) -> bool:
    """Give a failed job's unit back, once: the jobs row remembers that it was refunded."""
    job = conn.execute(
        text(
            "UPDATE jobs SET quota_refunded = true WHERE id = :j AND NOT quota_refunded"
            " AND quota_period IS NOT NULL RETURNING user_id, kind, type, quota_period"
        ),
        {"j": job_id},
    ).first()
    if job is None:
        return False
    column = COLUMN[job.kind]
    conn.execute(
        text(
            f"UPDATE quota_usage SET {column} = greatest({column} - :n, 0), updated_at = now()"
            f" WHERE user_id = :u AND period_start = :s AND {column} > 0"
        ),
        {"u": job.user_id, "s": job.quota_period, "n": batch_units(job.kind, job.type)},
    )
    return True


def add_spend(conn: Connection, user_id: str, period_start: date, amount: Decimal) -> Decimal | None:
    """Settle a job's cost against the period's spend. Returns the new total."""
    row = conn.execute(ADD_SPEND, {"a": amount, "u": user_id, "s": period_start}).first()
    return row.spend_usd if row else None


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
