"""Tasks run by Celery beat (schedule in tasks/schedule.py). Each is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from db.session import get_engine, transaction
from workers.app import app
from workers.errors import RetryableError
from workers.llm import model_catalog, response_cache
from workers.llm.costs import catalog_prices
from workers.llm.provider_account import ProviderAccount
from workers.pipeline import recovery
from workers.quotas import monthly_reset
from workers.quotas.periods import utcnow
from workers.reporting import reconcile
from workers.reporting.alerts import check_cost_thresholds
from workers.reporting.provider_usage import read_snapshot, store_snapshot

log = logging.getLogger(__name__)


@app.task(name="litink.reset_monthly_quotas")
def reset_monthly_quotas() -> dict[str, Any]:
    with transaction() as conn:
        summary = monthly_reset.roll(conn, utcnow())
    log.info("quota periods rolled", extra=summary)
    return summary


@app.task(name="litink.refresh_model_prices", autoretry_for=(Exception,), retry_backoff=60, max_retries=3)
def refresh_model_prices() -> dict[str, Any]:
    models = model_catalog.fetch_models()
    with transaction() as conn:
        summary = model_catalog.sync(conn, models, utcnow())
    catalog_prices.invalidate()
    return summary


@app.task(name="litink.check_cost_alerts")
def check_cost_alerts() -> dict[str, Any]:
    with transaction() as conn:
        return {"raised": check_cost_thresholds(conn, utcnow())}


@app.task(bind=True, name="litink.recover_jobs", ignore_result=True)
def recover_jobs(self: Task) -> dict[str, Any]:
    """Re-publish from Postgres what the broker lost (workers/pipeline/recovery.py)."""
    return recovery.recover(self.app).summary()


@app.task(name="litink.snapshot_provider_usage", autoretry_for=(RetryableError,), retry_backoff=30, max_retries=3)
def snapshot_provider_usage() -> dict[str, str]:
    """Store the provider's /key figures. A failed read is retried a few times, then skipped:
    the next snapshot is minutes away and reconciliation brackets with whichever exist."""
    snapshot = read_snapshot(ProviderAccount())  # HTTP first, outside any transaction
    with transaction() as conn:
        store_snapshot(conn, snapshot)
    return {"taken_at": snapshot.taken_at.isoformat(), "usage_usd": format(snapshot.usage_usd, "f")}


@app.task(name="litink.reconcile_costs")
def reconcile_costs() -> dict[str, Any]:
    """Reconcile yesterday (UTC) and raise a cost_drift alert past RECONCILE_DRIFT_ALERT_USD."""
    start, end = reconcile.previous_utc_day(utcnow())
    with get_engine().connect() as conn:  # reads, and /generation lookups: no write transaction held
        report = reconcile.reconcile(conn, start, end, account=ProviderAccount())
    with transaction() as conn:
        outcome = reconcile.check_drift(conn, report)
    if report["provider"]["spend_usd"] is None:
        log.warning("reconciliation skipped: no %s snapshot", " or ".join(report["measured"]["missing"]))
    log.info("costs reconciled", extra={"reconcile": outcome})
    return outcome


@app.task(name="litink.purge_response_cache")
def purge_response_cache(batch: int = response_cache.PURGE_BATCH) -> dict[str, int]:
    """Delete expired response-cache entries, ``batch`` rows per transaction, so a large
    backlog never holds one long transaction. Lookups already ignore expired entries; this
    only keeps the table from growing."""
    batch = max(1, batch)
    purged = batches = 0
    while True:
        with transaction() as conn:
            deleted = response_cache.purge_expired(conn, limit=batch)
        purged += deleted
        batches += 1
        if deleted < batch:
            break
    log.info("purged %d expired response-cache entries in %d batch(es)", purged, batches)
    return {"purged": purged, "batches": batches}
