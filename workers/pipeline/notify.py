"""Sending a job's final JobResult to the producer's notify task, exactly once.

The notification is recorded in the jobs row (``notified_at``) by a guarded UPDATE in the
same transaction as the publish: a redelivered task, or a second delivery racing the first,
finds it set and sends nothing; a publish that fails rolls the mark back. A rejection that
has no row of its own (its job id or user id was invalid) is marked in Redis instead, under
the job id, for as long as results are kept.

The destination queue was checked against ``NOTIFY_QUEUES`` at submission and is checked
again here, so narrowing the allow-list takes effect for jobs already queued.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery
from sqlalchemy import text

from db.session import transaction
from workers.pipeline.job_result import summary
from workers.pipeline.validation import notify_target

log = logging.getLogger(__name__)

# The final statuses, as in job_result.FINISHED.
MARK = text(
    "UPDATE jobs SET notified_at = now()"
    " WHERE id = :j AND notified_at IS NULL AND notify IS NOT NULL AND status IN ('succeeded', 'failed', 'rejected')"
    " RETURNING notify"
)
UNRECORDED_KEY = "litink:notified:{}"


def notify_job(app: Celery, job_id: str, result: Mapping[str, Any]) -> bool:
    """Send a recorded job's final JobResult to its notify task, unless already sent."""
    with transaction() as conn:
        stored = conn.execute(MARK, {"j": job_id}).scalar()
        if stored is None:
            return False  # no notify option, not final yet, or already notified
        target = notify_target(stored)
        if target is None:
            log.warning("notify queue no longer allowed; not sent", extra={"job_id": job_id})
            return False
        _publish(app, target, result)  # inside the transaction: a failed publish unmarks
    return True


def notify_unrecorded(app: Celery, job_id: Any, target: Mapping[str, str] | None, result: Mapping[str, Any]) -> bool:
    """Send a rejection that has no jobs row, once per job id."""
    if target is None:
        return False
    backend_client = app.backend.client
    try:
        key = UNRECORDED_KEY.format(job_id).encode()
    except UnicodeEncodeError:  # an id no Redis client can name; nobody can read its answer either
        return False
    expires = app.conf.result_expires
    seconds = int(expires.total_seconds()) if hasattr(expires, "total_seconds") else int(expires or 86400)
    if not backend_client.set(key, b"1", nx=True, ex=seconds):
        return False
    try:
        _publish(app, (target["task"], target["queue"]), result)
    except Exception:
        backend_client.delete(key)
        raise
    return True


def _publish(app: Celery, target: tuple[str, str], result: Mapping[str, Any]) -> None:
    task, queue = target
    # The task-sent event and Flower show the summary, never the content.
    app.send_task(task, args=[dict(result)], queue=queue, argsrepr=f"({summary(result)},)", kwargsrepr="{}")
