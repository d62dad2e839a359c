"""Read-only tasks: a job's JobResult as it stands, and a user's usage."""

from __future__ import annotations

from typing import Any, cast

from celery.result import AsyncResult

from db.session import get_engine
from workers.app import app
from workers.pipeline import jobs
from workers.pipeline.job_result import JobResult, QuietResult, build, job_result, quiet
from workers.pipeline.validation import JOB_ID
from workers.quotas import allowance as quotas
from workers.quotas.periods import utcnow


@app.task(name="litink.job_status")
def job_status(job_id: Any) -> QuietResult:
    """The JobResult as it stands (its repr, in events and Flower, is a summary)."""
    return quiet(_status(job_id))


def _status(job_id: Any) -> JobResult:
    if not (isinstance(job_id, str) and JOB_ID.fullmatch(job_id)):
        return _unknown(job_id)
    with get_engine().connect() as conn:
        row = jobs.find(conn, job_id)
    if row is not None:
        return job_result(row)
    stored = AsyncResult(job_id, app=app)
    if stored.successful() and isinstance(stored.result, dict):
        return cast(JobResult, stored.result)  # a rejection without a jobs row (its user id was invalid)
    return _unknown(job_id)


def _unknown(job_id: Any) -> JobResult:
    return build(job_id, "queued", detail="no record yet: still waiting in intake, or an unknown id")


@app.task(name="litink.usage")
def usage(user_id: str) -> dict[str, Any]:
    with get_engine().connect() as conn:
        return quotas.usage(conn, user_id, utcnow())
