"""The beat side of reconciliation: snapshots every 10 minutes, yesterday reconciled daily, and a
cost_drift alert raised once when the unexplained drift exceeds RECONCILE_DRIFT_ALERT_USD."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from tasks.schedule import beat_schedule
from workers.reporting.provider_usage import Snapshot, store_snapshot


@pytest.mark.unit
def test_snapshots_every_ten_minutes_from_midnight_and_reconciles_once_a_day_after_midnights_snapshots():
    snapshots = beat_schedule["snapshot-provider-usage"]["schedule"]
    assert snapshots.minute == set(range(0, 60, 10)) and len(snapshots.hour) == 24
    daily = beat_schedule["reconcile-costs"]["schedule"]
    assert (daily.minute, daily.hour) == ({25}, {0})


def test_the_daily_task_on_a_worker_raises_one_drift_alert_for_yesterday(worker, celery_app, faults, db):
    # Given yesterday bracketed by snapshots, $2.50 charged by the provider and $0.40 in the ledger
    today = datetime.combine(datetime.now(UTC).date(), time.min, tzinfo=UTC)
    yesterday = today - timedelta(days=1)
    for moment, usage in ((yesterday, "10.00"), (today, "12.50")):
        store_snapshot(db, Snapshot(moment, Decimal(usage), Decimal(0), Decimal(0)))
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars) VALUES"
            " ('job-1', 'u', 'script', 'cinematic', 'basic', 'succeeded', 10)"
        )
    )
    db.execute(
        text(
            "INSERT INTO llm_calls (job_id, attempt, tier, model, cost_usd, cost_source, status, latency_ms,"
            " created_at) VALUES ('job-1', 1, 'basic', 'deepseek/deepseek-chat', 0.40, 'provider', 'ok', 100, :at)"
        ),
        {"at": yesterday + timedelta(hours=12)},
    )
    # When beat's task runs on a worker, twice
    first, second = (celery_app.send_task("litink.reconcile_costs").get(timeout=30) for _ in "ab")
    # Then $2.10 is unexplained, past the default $1.00 threshold, and alerted once
    assert first == {
        "period": yesterday.date().isoformat(),
        "threshold": "1.00",
        "unexplained_usd": "2.10",
        "beyond_estimates_usd": "2.10",
        "exceeded": True,
        "raised": True,
    }
    assert (second["exceeded"], second["raised"]) == (True, False)
    rows = db.execute(text("SELECT kind, subject, period, value FROM alerts")).all()
    assert [tuple(r) for r in rows] == [("cost_drift", "system", yesterday.date().isoformat(), Decimal("2.10"))]


def test_the_daily_task_without_snapshots_alerts_nothing(worker, celery_app, faults, db):
    outcome = celery_app.send_task("litink.reconcile_costs").get(timeout=30)
    assert (outcome["unexplained_usd"], outcome["raised"]) == (None, False)
