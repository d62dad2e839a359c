"""Read-only tasks: a job's JobResult as it stands, and a user's usage."""

from __future__ import annotations

from typing import Any, cast

from celery.result import AsyncResult

from db.session import get_engine
from workers.app import app
from workers.pipeline import jobs
from workers.pipeline.job_result import JobResult, build, job_result
from workers.quotas import allowance as quotas
from workers.quotas.periods import utcnow


@app.task(name="litink.job_status")
def job_status(job_id: str) -> JobResult:
    with get_engine().connect() as conn:
        row = jobs.find(conn, job_id)
    if row is not None:
        return job_result(row)
    stored = AsyncResult(job_id, app=app)
    if stored.successful() and isinstance(stored.result, dict):
        return cast(JobResult, stored.result)  # a rejection without a jobs row (its user id was invalid)
    return build(job_id, "queued", detail="no record yet: still waiting in intake, or an unknown id")


@app.task(name="litink.usage")
def usage(user_id: str) -> dict[str, Any]:
    with get_engine().connect() as conn:
        return quotas.usage(conn, user_id, utcnow())
