"""Snapshots of the provider's own spend figures (``GET /key``), taken by beat.

OpenRouter reports only running totals, never the spend of an arbitrary window; a row every
few minutes turns those totals into a series, so the provider's spend over any window is the
difference of the two snapshots that bracket it (workers/reporting/reconcile.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, text

from db.session import get_engine
from workers.llm.provider_account import ProviderAccount

__all__ = [
    "Snapshot",
    "closing_snapshot",
    "database_clock",
    "opening_snapshot",
    "read_snapshot",
    "store_snapshot",
]

_COLUMNS = "taken_at, usage_usd, usage_daily, usage_monthly, credits_usage_usd"
OPENING = text(
    f"SELECT {_COLUMNS} FROM provider_usage_snapshots WHERE taken_at <= :at ORDER BY taken_at DESC, id DESC LIMIT 1"
)
CLOSING = text(f"SELECT {_COLUMNS} FROM provider_usage_snapshots WHERE taken_at >= :at ORDER BY taken_at, id LIMIT 1")
INSERT = text(
    "INSERT INTO provider_usage_snapshots (taken_at, usage_usd, usage_daily, usage_monthly, credits_usage_usd)"
    " VALUES (:taken_at, :usage_usd, :usage_daily, :usage_monthly, :credits_usage_usd)"
)


@dataclass(frozen=True)
class Snapshot:
    """The provider's figures for our key at ``taken_at`` (USD)."""

    taken_at: datetime
    usage_usd: Decimal
    usage_daily: Decimal
    usage_monthly: Decimal
    credits_usage_usd: Decimal | None = None


def database_clock() -> datetime:
    """Postgres' clock: the one ``llm_calls.created_at`` is stamped with, so a snapshot and the
    ledger rows around it are ordered by one clock, whatever the worker host's clock says."""
    with get_engine().connect() as conn:
        moment: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    return moment


def read_snapshot(account: ProviderAccount, clock: Callable[[], datetime] = database_clock) -> Snapshot:
    """Read /key (and /credits with a management key), outside any transaction. ``taken_at``
    is ``clock()`` just after the /key answer arrived."""
    key = account.key()
    taken_at = clock()
    credits = account.credits()
    return Snapshot(
        taken_at=taken_at,
        usage_usd=key.usage,
        usage_daily=key.usage_daily,
        usage_monthly=key.usage_monthly,
        credits_usage_usd=credits.total_usage if credits else None,
    )


def store_snapshot(conn: Connection, snapshot: Snapshot) -> None:
    """Append it. Two beats writing at once only add a second, equally valid point."""
    conn.execute(
        INSERT,
        {
            "taken_at": snapshot.taken_at,
            "usage_usd": snapshot.usage_usd,
            "usage_daily": snapshot.usage_daily,
            "usage_monthly": snapshot.usage_monthly,
            "credits_usage_usd": snapshot.credits_usage_usd,
        },
    )


def opening_snapshot(conn: Connection, at: datetime) -> Snapshot | None:
    """The newest snapshot taken at or before ``at``."""
    row = conn.execute(OPENING, {"at": at}).first()
    return Snapshot(*row) if row is not None else None


def closing_snapshot(conn: Connection, at: datetime) -> Snapshot | None:
    """The oldest snapshot taken at or after ``at``."""
    row = conn.execute(CLOSING, {"at": at}).first()
    return Snapshot(*row) if row is not None else None
