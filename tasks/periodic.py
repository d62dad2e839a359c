"""Tasks run by Celery beat (schedule in tasks/schedule.py). Each is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from db.session import transaction
from workers.app import app
from workers.llm import model_catalog
from workers.llm.costs import catalog_prices
from workers.quotas import monthly_reset
from workers.quotas.periods import utcnow
from workers.reporting.alerts import check_cost_thresholds

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
