"""The tier task, ``litink.run_job(job_id)``: claims the job from its ``jobs`` row, runs it
(workers/pipeline/runner.py) and answers its JobResult.

The message carries only the job id, so recovery can publish it again from Postgres, and any
number of deliveries are safe: docs/architecture.md, "Redelivery and idempotency".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from celery import Task
from celery.exceptions import Ignore

from config import get_catalog, get_settings
from db.errors import UNAVAILABLE
from db.session import autocommit, transaction
from workers.app import app
from workers.errors import DeferredRetry
from workers.ops import metrics
from workers.pipeline import jobs, runner
from workers.pipeline.job_result import QuietResult, job_result, quiet
from workers.pipeline.notify import notify_job

log = logging.getLogger(__name__)

# A delivery retried after a database error: 1, 2, 4, ... seconds, never zero.
DB_RETRY_MAX_COUNTDOWN = 30


@lru_cache(maxsize=1)
def _first_models() -> str:
    """tier -> the first model of its chain, as the claim statement takes it (JSON)."""
    return json.dumps({name: tier.models[0] for name, tier in get_catalog().tiers.items()})


@app.task(bind=True, name="litink.run_job", max_retries=None)
def run_job(
    self: Task,
    job_id: str,
    queued_at: float | None = None,
    own_delivery: int | None = None,
    unsent_call: int | None = None,
) -> Mapping[str, Any]:
    settings = get_settings()
    try:
        # Usually one statement (the claim), committed by itself; with the withdrawal of the
        # last try's unsent row (its request never left) both commit together.
        with autocommit() if unsent_call is None else transaction() as conn:
            if unsent_call is not None:
                jobs.withdraw_unsent(conn, job_id, unsent_call)
            claimed = jobs.claim(
                conn,
                job_id,
                lease_seconds=settings.job_lease_seconds,
                first_models=_first_models(),
                max_deliveries=settings.max_deliveries,
                own_delivery=own_delivery,
            )
    except UNAVAILABLE as exc:
        raise _retry_later(self, job_id, queued_at, own_delivery, exc, unsent_call) from exc
    if claimed is None:
        log.error("tier message for a job with no jobs row; dropped", extra={"job_id": job_id})
        raise Ignore()
    if isinstance(claimed, jobs.Busy):
        raise Ignore()  # another delivery holds it (or recovery queued it again): it answers
    if not isinstance(claimed, jobs.Claim):
        # already finished: no second call, no second row
        return _finish(self, job_id, queued_at, job_result(claimed), claimed.notify)

    if queued_at and claimed.delivery == 1:
        metrics.queue_wait.labels(tier=claimed.tier).observe(max(0.0, time.time() - queued_at))
    try:
        result = runner.run(claimed)
    except DeferredRetry as deferred:
        with transaction() as conn:
            published = jobs.requeue(conn, claimed)
        log.info(
            "provider asked for a long wait; slot given back",
            extra={"job_id": job_id, "tier": claimed.tier, "countdown": deferred.countdown},
        )
        # A countdown is held unacked by the worker; keep it well inside the visibility timeout.
        countdown = max(1.0, min(deferred.countdown, settings.visibility_timeout / 2))
        retry_kwargs = {"job_id": job_id, "queued_at": published.timestamp()}
        raise self.retry(countdown=countdown, kwargs=retry_kwargs) from deferred
    except UNAVAILABLE as exc:
        raise _retry_later(self, job_id, queued_at, claimed.delivery, exc, claimed.unsent_call_id) from exc
    if result is None:
        raise Ignore()  # this delivery lost its claim: the one holding it answers
    return _finish(self, job_id, queued_at, result, claimed.notify)


def _retry_later(
    self: Task, job_id: str, queued_at: float | None, own: int | None, exc: Exception, unsent: int | None
) -> Exception:
    """Postgres is unreachable: try again soon, taking this delivery's own claim back then, and
    withdrawing first the attempt row (``unsent``) whose request never left."""
    countdown = min(2 ** min(self.request.retries, 5), DB_RETRY_MAX_COUNTDOWN)
    log.warning(
        "database unavailable; delivery retried",
        extra={"job_id": job_id, "countdown": countdown, "own_delivery": own, "unsent_call": unsent},
    )
    kwargs = {"job_id": job_id, "queued_at": queued_at, "own_delivery": own, "unsent_call": unsent}
    return self.retry(countdown=countdown, kwargs=kwargs, exc=exc)


def _finish(self: Task, job_id: str, queued_at: float | None, result: Mapping[str, Any], notify: Any) -> QuietResult:
    """The tier task's answer. Notified once when the job asked for it (the jobs row records
    it, so a redelivered finished job sends nothing twice, and one that crashed before
    notifying sends it now); returned with a summary repr, so its task-succeeded event and
    Flower carry no content.

    Postgres lost between the settlement and the notification mark: the job is settled, so
    the delivery is retried; the retry finds it finished, notifies and answers then (never a
    SystemFault for a job that succeeded)."""
    if not notify:  # set at submission and never changed: no target, no round trip to look
        return quiet(result)
    try:
        notify_job(self.app, job_id, result)
    except UNAVAILABLE as exc:
        raise _retry_later(self, job_id, queued_at, None, exc, None) from exc
    return quiet(result)
