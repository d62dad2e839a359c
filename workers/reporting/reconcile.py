"""Reconciliation: the ledger (``llm_calls``) against the provider's own figures, the ``GET /key``
snapshots that bracket a window and ``GET /generation`` for calls we priced ourselves.

What is compared, over which span, and how exact it is: docs/operations.md, "Reconciliation
with the provider". Everything returned is plain data: money as Decimal, times as ISO 8601
strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from config import Settings, get_settings
from workers import errors
from workers.llm.provider_account import ProviderAccount
from workers.reporting.alerts import SYSTEM, raise_alert
from workers.reporting.provider_usage import Snapshot, closing_snapshot, opening_snapshot, read_snapshot

__all__ = [
    "ALERT_KIND",
    "ESTIMATED_SOURCES",
    "MAX_CALL_CHECKS",
    "RECORDED_SOURCES",
    "check_drift",
    "drift_beyond_bounds",
    "parse_moment",
    "previous_utc_day",
    "reconcile",
    "reconcile_until_now",
]

RECORDED_SOURCES = ("provider", "catalog", "config", "none")
ESTIMATED_SOURCES = ("estimate",)
MAX_CALL_CHECKS = 200  # /generation lookups per run; the rest are counted as skipped
ALERT_KIND = "cost_drift"

LEDGER = text(
    "SELECT cost_source, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost,"
    " COUNT(*) FILTER (WHERE status = 'pending') AS pending"
    " FROM llm_calls WHERE created_at >= :start AND created_at < :end GROUP BY cost_source"
)
TO_CHECK = text(
    "SELECT job_id, attempt, generation_id, cost_source, cost_usd FROM llm_calls"
    " WHERE created_at >= :start AND created_at < :end"
    " AND generation_id IS NOT NULL AND cost_source <> 'provider'"
    " ORDER BY created_at, id LIMIT :limit"
)
TO_CHECK_COUNT = text(
    "SELECT COUNT(*) FROM llm_calls WHERE created_at >= :start AND created_at < :end"
    " AND generation_id IS NOT NULL AND cost_source <> 'provider'"
)


@dataclass(frozen=True)
class _Ledger:
    by_source: dict[str, Decimal]
    calls: int
    in_flight: int

    @property
    def recorded(self) -> Decimal:
        return sum((v for k, v in self.by_source.items() if k not in ESTIMATED_SOURCES), Decimal(0))

    @property
    def estimated(self) -> Decimal:
        return sum((v for k, v in self.by_source.items() if k in ESTIMATED_SOURCES), Decimal(0))


def _text(value: Decimal | None) -> str | None:
    return format(value, "f") if value is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _ledger(conn: Connection, start: datetime, end: datetime) -> _Ledger:
    by_source: dict[str, Decimal] = {}
    calls = in_flight = 0
    for row in conn.execute(LEDGER, {"start": start, "end": end}):
        by_source[row.cost_source] = row.cost
        calls += row.calls
        in_flight += row.pending
    return _Ledger(by_source, calls, in_flight)


def _check_calls(
    conn: Connection, account: ProviderAccount, start: datetime, end: datetime, limit: int
) -> dict[str, Any]:
    """Each non-provider-priced attempt with a generation id, against /generation."""
    rows = conn.execute(TO_CHECK, {"start": start, "end": end, "limit": limit}).all()
    total = conn.execute(TO_CHECK_COUNT, {"start": start, "end": end}).scalar_one()
    matched = 0
    difference = Decimal(0)
    mismatched: list[dict[str, Any]] = []
    not_found: list[str] = []
    failed: list[dict[str, str]] = []
    for row in rows:
        try:
            generation = account.generation(row.generation_id)
        except errors.GenerationNotFound:
            not_found.append(row.generation_id)
            continue
        except errors.ProviderError as exc:
            failed.append({"generation_id": row.generation_id, "error": type(exc).__name__})
            continue
        if generation.total_cost == row.cost_usd:
            matched += 1
            continue
        difference += generation.total_cost - row.cost_usd
        mismatched.append(
            {
                "job_id": row.job_id,
                "attempt": row.attempt,
                "generation_id": row.generation_id,
                "cost_source": row.cost_source,
                "recorded_usd": row.cost_usd,
                "provider_usd": generation.total_cost,
                "difference_usd": generation.total_cost - row.cost_usd,
            }
        )
    return {
        "checked": len(rows),
        "matched": matched,
        "mismatched": mismatched,
        "not_found": not_found,
        "failed": failed,
        "skipped": total - len(rows),
        "difference_usd": difference,
    }


def reconcile(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    account: ProviderAccount | None = None,
    live: Snapshot | None = None,
    max_call_checks: int = MAX_CALL_CHECKS,
) -> dict[str, Any]:
    """The drift between the ledger and the provider over ``[start, end)``.

    ``live`` is a reading taken now, used as the closing edge when no snapshot was taken at or
    after ``end`` (a window that ends now). Without ``account`` the call checks are skipped.
    Provider and drift figures are None when a bracketing snapshot is missing.
    """
    if start >= end:
        raise ValueError(f"the window is empty: from {start.isoformat()} is not before to {end.isoformat()}")
    opening = opening_snapshot(conn, start)
    closing = closing_snapshot(conn, end)
    closing_source = "snapshot"
    if closing is None and live is not None and live.taken_at >= end:
        closing, closing_source = live, "live"
    measured_from = opening.taken_at if opening else start
    measured_to = closing.taken_at if closing else end
    ledger = _ledger(conn, measured_from, measured_to)

    provider_spend = closing.usage_usd - opening.usage_usd if opening and closing else None
    account_spend = (
        closing.credits_usage_usd - opening.credits_usage_usd
        if opening and closing and opening.credits_usage_usd is not None and closing.credits_usage_usd is not None
        else None
    )
    missing = [name for name, snap in (("opening", opening), ("closing", closing)) if snap is None]
    unexplained = provider_spend - ledger.recorded - ledger.estimated if provider_spend is not None else None
    return {
        "window": {"from": _iso(start), "to": _iso(end)},
        "measured": {
            "from": _iso(measured_from),
            "to": _iso(measured_to),
            "opening_snapshot": _iso(opening.taken_at) if opening else None,
            "closing_snapshot": _iso(closing.taken_at) if closing else None,
            "closing_source": closing_source if closing else None,
            "missing": missing,
        },
        "provider": {
            "opening_usage_usd": opening.usage_usd if opening else None,
            "closing_usage_usd": closing.usage_usd if closing else None,
            "spend_usd": provider_spend,
            "account_spend_usd": account_spend,
        },
        "ledger": {
            "calls": ledger.calls,
            "in_flight": ledger.in_flight,
            "by_source": dict(sorted(ledger.by_source.items())),
            "recorded_usd": ledger.recorded,
            "estimated_usd": ledger.estimated,
        },
        "drift": {
            "recorded_usd": ledger.recorded,
            "estimated_usd": ledger.estimated,
            "unexplained_usd": unexplained,
        },
        "call_checks": (
            _check_calls(conn, account, measured_from, measured_to, max_call_checks) if account is not None else None
        ),
    }


def reconcile_until_now(
    conn: Connection, start: datetime | None, end: datetime | None, account: ProviderAccount
) -> dict[str, Any]:
    """What ``litink reconcile`` shows: ``start`` defaults to today 00:00 UTC; without ``end``
    the window ends now, closed by a live /key reading (not stored)."""
    live = None
    if end is None:
        live = read_snapshot(account)
        end = live.taken_at
    if start is None:
        start = datetime.combine(end.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return reconcile(conn, start, end, account=account, live=live)


def parse_moment(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight) or an ISO 8601 time; without a zone it is UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def previous_utc_day(now: datetime) -> tuple[datetime, datetime]:
    """``[yesterday 00:00, today 00:00)`` in UTC."""
    today = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return today - timedelta(days=1), today


def drift_beyond_bounds(report: dict[str, Any]) -> Decimal | None:
    """The drift no ledger figure can account for, or 0 (None when the provider side is unknown).

    What the ledger misses, ``provider - recorded``, should lie between 0 and ``estimated``:
    an estimate is the most an unknown attempt can have cost, so an unexplained drift below
    zero but within the estimates is expected. Beyond the estimates (money left unrecorded)
    it is the positive unexplained drift; below zero (the ledger holds more than the provider
    charged) it is that negative gap."""
    provider = report["provider"]["spend_usd"]
    if provider is None:
        return None
    gap = provider - report["drift"]["recorded_usd"]
    if gap < 0:
        return gap
    return max(Decimal(0), gap - report["drift"]["estimated_usd"])


def check_drift(
    conn: Connection,
    report: dict[str, Any],
    *,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Raise a ``cost_drift`` alert (once per UTC day of the window's start) when the drift
    beyond the ledger's bounds (:func:`drift_beyond_bounds`), either way, exceeds
    ``RECONCILE_DRIFT_ALERT_USD``.

    Returns ``{period, threshold, unexplained_usd, beyond_estimates_usd, exceeded, raised}``,
    money as decimal strings (None when unknown), like ``alerts.check_cost_thresholds``."""
    settings = settings or get_settings()
    threshold = settings.reconcile_drift_alert_usd
    beyond = drift_beyond_bounds(report)
    period = report["window"]["from"][:10]
    outcome = {
        "period": period,
        "threshold": _text(threshold),
        "unexplained_usd": _text(report["drift"]["unexplained_usd"]),
        "beyond_estimates_usd": _text(beyond),
        "exceeded": False,
        "raised": False,
    }
    if threshold is None or beyond is None or abs(beyond) <= threshold:
        return outcome
    drift = report["drift"]
    message = (
        f"LLM cost drift of ${beyond:f} between the provider and the ledger for {period} exceeds ${threshold:f}:"
        f" provider ${report['provider']['spend_usd']:f}, recorded ${drift['recorded_usd']:f},"
        f" estimated ${drift['estimated_usd']:f}"
    )
    outcome["exceeded"] = True
    outcome["raised"] = raise_alert(conn, ALERT_KIND, SYSTEM, period, threshold, beyond, message, settings=settings)
    return outcome
