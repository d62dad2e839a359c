"""The tier task: runs on ``tier.<name>`` at the tier's priority, calls the model chain
and settles the job. Safe to deliver twice: a finished job returns its stored JobResult
without calling the provider, and a job another delivery is running waits its turn."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from config import get_settings
from db.session import transaction
from workers.app import app
from workers.errors import DeferredRetry
from workers.ops import metrics
from workers.pipeline import jobs, runner
from workers.pipeline.job_result import QuietResult, job_result, quiet
from workers.pipeline.notify import notify_job

log = logging.getLogger(__name__)


@app.task(bind=True, name="litink.run_job", max_retries=None, autoretry_for=(OperationalError,), retry_backoff=True)
def run_job(self, job_id, user_id, kind, type, tier, content, notify=None, queued_at=None):
    settings = get_settings()
    # A countdown is held unacked by the worker; keep it well inside the visibility timeout.
    max_countdown = settings.visibility_timeout / 2
    with transaction() as conn:
        claimed = jobs.claim(conn, job_id, lease=timedelta(seconds=settings.visibility_timeout))
        if claimed is None:  # another delivery is running it right now
            wait = min(jobs.lease_left(conn, job_id) + 1, max_countdown)
            raise self.retry(countdown=wait)
    if not isinstance(claimed, jobs.Claim):
        return _finish(job_id, job_result(claimed))  # already finished: no second call, no second row

    if queued_at and claimed.delivery == 1:
        metrics.queue_wait.labels(tier=tier).observe(max(0.0, time.time() - queued_at))
    work = runner.Work(job_id, user_id, kind, type, tier, content)
    try:
        result = runner.run(work, claimed)
    except DeferredRetry as deferred:
        with transaction() as conn:
            jobs.requeue(conn, claimed)
        log.info(
            "provider asked for a long wait; slot given back",
            extra={"job_id": job_id, "tier": tier, "countdown": deferred.countdown},
        )
        raise self.retry(countdown=min(deferred.countdown, max_countdown))
    return _finish(job_id, result)


def _finish(job_id: str, result: Mapping[str, Any]) -> QuietResult:
    """The tier task's answer. Notified once (the jobs row records it, so a redelivered
    finished job sends nothing twice, and one that crashed before notifying sends it now);
    returned with a summary repr, so its task-succeeded event and Flower carry no content."""
    notify_job(job_id, result)
    return quiet(result)
