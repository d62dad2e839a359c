"""Alerts, raised once per (kind, subject, period, threshold).

The unique constraint on ``alerts`` is the "once": :func:`raise_alert` inserts with
``ON CONFLICT DO NOTHING``, and only the call that wrote the row logs a warning and posts to
``ALERT_WEBHOOK_URL``. A second beat run, a second worker or a redelivered task finds the row
and stays quiet. The webhook is best effort: a short timeout, and a failure is logged, never
raised, so an alert can never fail the task that noticed it.

Kinds: ``cost_daily`` and ``cost_monthly`` (subject ``system``, from
:func:`check_cost_thresholds`), ``cost_drift`` (subject ``system``, from
``workers.reporting.reconcile.check_drift``) and ``spend_soft_cap`` (subject a user id, raised
by the quota code).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from config import Settings, get_settings
from workers.money import display_usd
from workers.quotas.periods import calendar_month

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 3.0
SYSTEM = "system"


def raise_alert(
    conn: Connection,
    kind: str,
    subject: str,
    period: str,
    threshold: Decimal,
    value: Decimal,
    message: str,
    *,
    settings: Settings | None = None,
) -> bool:
    """Record the alert; True only the first time for this kind, subject, period and threshold.

    The row is written on ``conn``'s transaction, while the log line and the webhook happen at
    once: if the caller's transaction then rolls back, a later call will notify again.
    """
    row = conn.execute(
        text(
            "INSERT INTO alerts (kind, subject, period, threshold, value)"
            " VALUES (:kind, :subject, :period, :threshold, :value)"
            " ON CONFLICT (kind, subject, period, threshold) DO NOTHING RETURNING id"
        ),
        {"kind": kind, "subject": subject, "period": period, "threshold": threshold, "value": value},
    ).first()
    if row is None:
        return False
    payload = {
        "alert_id": row.id,
        "kind": kind,
        "subject": subject,
        "period": period,
        "threshold": format(threshold, "f"),
        "value": format(value, "f"),
        "message": message,
    }
    log.warning(
        "alert raised: %s (kind=%s subject=%s period=%s threshold=%s value=%s)",
        message,
        kind,
        subject,
        period,
        payload["threshold"],
        payload["value"],
        extra={"alert": payload},
    )
    url = (settings or get_settings()).alert_webhook_url
    if url:
        _post(url, payload)
    return True


def _post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "litink-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The URL may carry a token: log its kind of failure, not the URL.
        log.error(
            "alert webhook failed for alert %s (%s: %s)",
            payload["alert_id"],
            type(exc).__name__,
            getattr(exc, "code", None) or getattr(exc, "reason", None) or "",
            extra={"alert": payload},
        )


def _cost_between(conn: Connection, start: datetime, end: datetime) -> Decimal:
    return conn.execute(
        text(
            "SELECT COALESCE(SUM(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) FROM llm_calls"
            " WHERE created_at >= :start AND created_at < :end"
        ),
        {"start": start, "end": end},
    ).scalar_one()


def check_cost_thresholds(conn: Connection, now: datetime, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Compare today's and this month's LLM cost (UTC) with ``COST_ALERT_DAILY_USD`` and
    ``COST_ALERT_MONTHLY_USD`` and raise an alert when a total reaches its threshold.

    Returns one entry per configured threshold: ``{kind, subject, period, threshold, value,
    exceeded, raised}`` with money as decimal strings; ``raised`` is True only for the call
    that created the alert.
    """
    settings = settings or get_settings()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    day = now.astimezone(UTC).date()
    month_start, month_end = calendar_month(now)
    checks = (
        ("cost_daily", settings.cost_alert_daily_usd, day.isoformat(), day, day + timedelta(days=1), "Daily"),
        (
            "cost_monthly",
            settings.cost_alert_monthly_usd,
            month_start.strftime("%Y-%m"),
            month_start,
            month_end,
            "Monthly",
        ),
    )
    results = []
    for kind, threshold, period, first, end, label in checks:
        if threshold is None:
            continue
        value = _cost_between(
            conn,
            datetime.combine(first, time.min, tzinfo=UTC),
            datetime.combine(end, time.min, tzinfo=UTC),
        )
        exceeded = value >= threshold
        raised = exceeded and raise_alert(
            conn,
            kind,
            SYSTEM,
            period,
            threshold,
            value,
            f"{label} LLM cost {display_usd(value)} for {period} reached the alert threshold {display_usd(threshold)}",
            settings=settings,
        )
        results.append(
            {
                "kind": kind,
                "subject": SYSTEM,
                "period": period,
                "threshold": format(threshold, "f"),
                "value": format(value, "f"),
                "exceeded": exceeded,
                "raised": raised,
            }
        )
    return results
