"""Quota periods. Calendar months in UTC by default, with their real lengths.

A period is ``[start, end)`` as dates. Usage rows are keyed by ``start``, so a new month
simply starts a new row: nothing has to be reset for counts to be right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from config import get_settings


def utcnow() -> datetime:
    return datetime.now(UTC)


def calendar_month(at: datetime) -> tuple[date, date]:
    start = at.astimezone(UTC).date().replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def quota_period(
    at: datetime, billing_start: datetime | None = None, billing_end: datetime | None = None
) -> tuple[date, date]:
    """The period ``at`` falls in: the Stripe billing period when QUOTA_PERIOD=billing and one
    covers ``at``, else the calendar month."""
    if get_settings().quota_period == "billing" and billing_start and billing_end and billing_start <= at < billing_end:
        return billing_start.astimezone(UTC).date(), billing_end.astimezone(UTC).date()
    return calendar_month(at)
