"""Read-only tasks: a job's JobResult as it stands, and a user's usage."""

from __future__ import annotations

from typing import Any

from celery.result import AsyncResult

from db.session import get_engine
from workers.app import app
from workers.pipeline import jobs
from workers.pipeline.job_result import QuietResult, job_result, quiet
from workers.pipeline.validation import JOB_ID
from workers.quotas import allowance as quotas
from workers.quotas.periods import utcnow


@app.task(name="litink.job_status")
def job_status(job_id: Any) -> QuietResult:
    """The JobResult as it stands (its repr, in events and Flower, is a summary)."""
    return quiet(_status(job_id))


def _status(job_id: Any) -> dict[str, Any]:
    if not (isinstance(job_id, str) and JOB_ID.fullmatch(job_id)):
        return _unknown(job_id)
    with get_engine().connect() as conn:
        row = jobs.find(conn, job_id)
    if row is not None:
        return job_result(row)
    stored = AsyncResult(job_id, app=app)
    if stored.successful() and isinstance(stored.result, dict):
        return stored.result  # a rejection without a jobs row (its user id was invalid)
    return _unknown(job_id)


def _unknown(job_id: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": "queued",
        "reason": None,
        "detail": "no record yet: still waiting in intake, or an unknown id",
        "retry_after": None,
        "kind": None,
        "type": None,
        "tier": None,
        "content": None,
        "model_used": None,
        "used_fallback": False,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": "0"},
    }


@app.task(name="litink.usage")
def usage(user_id):
    with get_engine().connect() as conn:
        return quotas.usage(conn, user_id, utcnow())
