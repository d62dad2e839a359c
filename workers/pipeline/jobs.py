"""The life of a ``jobs`` row. Every transition is guarded in SQL, so a redelivered task
can never move a job twice, and only the delivery that claimed a job may settle it.

    queued --claim--> running --settle--> succeeded | failed
      ^                  |
      +-- requeue -------+   (a long Retry-After: the worker slot is given back)
    rejected (at intake, final)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, text

from workers.pipeline.job_result import FINISHED, JOB_COLUMNS
from workers.pipeline.validation import Invalid, JobRequest
from workers.quotas.periods import utcnow

# Statements are built once: constructing text() per call is measurable on the hot path.
FIND = text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :j")
FIND_BY_KEY = text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = :u AND idempotency_key = :k")
INSERT = text(
    "INSERT INTO jobs (id, user_id, kind, type, tier, status, reason, detail, retry_after,"
    " idempotency_key, notify, content_chars, quota_period, finished_at, request_sha256)"
    " VALUES (:id, :u, :kind, :type, :tier, :status, :reason, CAST(:detail AS jsonb), :retry_after,"
    " :key, :notify, :chars, :period, :finished, :sha)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
REJECT = text(
    "UPDATE jobs SET status = 'rejected', reason = :r, detail = CAST(:d AS jsonb), quota_period = NULL,"
    " idempotency_key = NULL, finished_at = now() WHERE id = :j AND status = 'queued'"
)
CLAIM = text(
    "UPDATE jobs SET status = 'running', deliveries = deliveries + 1, lease_until = :until,"
    " started_at = coalesce(started_at, :now)"
    " WHERE id = :j AND (status = 'queued' OR (status = 'running' AND lease_until < :now))"
    " RETURNING deliveries,"
    " (SELECT coalesce(max(attempt), 0) FROM llm_calls WHERE job_id = :j) AS last_attempt"
)
LEASE_LEFT = text("SELECT extract(epoch FROM lease_until - now()) FROM jobs WHERE id = :j")
REQUEUE = text(
    "UPDATE jobs SET status = 'queued', lease_until = NULL WHERE id = :j AND deliveries = :d AND status = 'running'"
)
SETTLE = text(
    "UPDATE jobs SET status = :status, reason = :reason, detail = CAST(:detail AS jsonb),"
    " result_content = :content, model_used = :model, used_fallback = :fallback, lease_until = NULL,"
    " finished_at = now(), prompt_tokens = t.p, completion_tokens = t.c, cost_usd = t.cost"
    " FROM (SELECT coalesce(sum(prompt_tokens), 0) AS p, coalesce(sum(completion_tokens), 0) AS c,"
    "       coalesce(sum(cost_usd), 0) AS cost FROM llm_calls WHERE job_id = :j) AS t"
    f" WHERE jobs.id = :j AND jobs.deliveries = :d AND jobs.status = 'running' RETURNING {JOB_COLUMNS}"
)


def find(conn: Connection, job_id: str) -> Any:
    return conn.execute(FIND, {"j": job_id}).first()


MIN_PREFIX = 8  # the demo prints 8 characters of a job id
FIND_BY_PREFIX = text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id LIKE :p || '%' ORDER BY id LIMIT 2")


class AmbiguousPrefix(LookupError):
    """Raised when an id prefix matches more than one job."""


def find_by_id_or_prefix(conn: Connection, id_or_prefix: str) -> Any:
    """The job with this id, or the only job whose id starts with it (at least
    ``MIN_PREFIX`` characters); None when there is none."""
    row = find(conn, id_or_prefix)
    if row is not None or len(id_or_prefix) < MIN_PREFIX:
        return row
    escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(FIND_BY_PREFIX, {"p": escaped}).all()
    if len(rows) > 1:
        raise AmbiguousPrefix(f"{id_or_prefix!r} is the start of more than one job id; give more characters")
    return rows[0] if rows else None


def find_by_key(conn: Connection, user_id: str, key: str) -> Any:
    return conn.execute(FIND_BY_KEY, {"u": user_id, "k": key}).first()


def insert(
    conn: Connection,
    req: JobRequest,
    tier: str,
    *,
    status: str,
    quota_period: date | None = None,
    reason: str | None = None,
    detail: Any = None,
    retry_after: int | None = None,
) -> bool:
    """Write the jobs row. False when it already exists (redelivery, or a reused idempotency key)."""
    row = conn.execute(
        INSERT,
        {
            "id": req.job_id,
            "u": req.user_id,
            "kind": req.kind,
            "type": req.type,
            "tier": tier,
            "status": status,
            "reason": reason,
            "detail": None if detail is None else json.dumps(detail),
            "retry_after": retry_after,
            "key": req.idempotency_key,
            "notify": None if req.notify is None else json.dumps(req.notify),
            "chars": len(req.content),
            "period": quota_period,
            "finished": utcnow() if status == "rejected" else None,
            "sha": req.request_sha256,
        },
    ).first()
    return row is not None


def insert_invalid(conn: Connection, sub: Invalid, tier: str) -> bool:
    """Record a malformed submission as rejected / invalid_input (its id and user are valid).

    The idempotency key is not recorded: a key is spent only by a well-formed request.
    False when the id already has a row.
    """
    row = conn.execute(
        INSERT,
        {
            "id": sub.job_id,
            "u": sub.user_id,
            "kind": sub.kind,
            "type": sub.type or "",
            "tier": tier,
            "status": "rejected",
            "reason": "invalid_input",
            "detail": json.dumps(sub.errors),
            "retry_after": None,
            "key": None,
            "notify": None if sub.notify is None else json.dumps(sub.notify),
            "chars": 0,
            "period": None,
            "finished": utcnow(),
            "sha": None,
        },
    ).first()
    return row is not None


def reject(conn: Connection, job_id: str, reason: str, detail: Any) -> None:
    """Turn a just-written queued job into a rejection (its unit was never taken). The
    idempotency key is released: a quota or spend-cap rejection is worth retrying later."""
    conn.execute(
        REJECT,
        {"j": job_id, "r": reason, "d": json.dumps(detail)},
    )


@dataclass(frozen=True)
class Claim:
    """The right to run a job's LLM calls, held by one delivery until it settles."""

    job_id: str
    delivery: int  # jobs.deliveries after this claim; settles must match it
    first_attempt: int  # llm_calls.attempt numbers continue after earlier deliveries'


def claim(conn: Connection, job_id: str, lease: timedelta) -> Claim | Any | None:
    """Claim a queued job (or one whose lease ran out).

    Returns a Claim, or the finished job's row (nothing to do), or None while another
    delivery holds a live lease.
    """
    now = utcnow()
    row = conn.execute(
        CLAIM,
        {"j": job_id, "now": now, "until": now + lease},
    ).first()
    if row is not None:
        return Claim(job_id, row.deliveries, row.last_attempt + 1)
    current = find(conn, job_id)
    if current is None:
        raise LookupError(f"job {job_id} has no jobs row")
    return current if current.status in FINISHED else None


def lease_left(conn: Connection, job_id: str) -> float:
    left = conn.execute(LEASE_LEFT, {"j": job_id}).scalar()
    return max(0.0, float(left or 0))


def requeue(conn: Connection, claim: Claim) -> None:
    """Give the job back to the queue (a Celery retry with a countdown follows)."""
    conn.execute(REQUEUE, {"j": claim.job_id, "d": claim.delivery})


def settle(
    conn: Connection,
    claim: Claim,
    *,
    status: str,
    content: str | None = None,
    model_used: str | None = None,
    used_fallback: bool = False,
    reason: str | None = None,
    detail: Any = None,
) -> Any:
    """Finish a claimed job; totals are summed from its llm_calls rows in the same statement."""
    return conn.execute(
        SETTLE,
        {
            "j": claim.job_id,
            "d": claim.delivery,
            "status": status,
            "reason": reason,
            "detail": None if detail is None else json.dumps(detail),
            "content": content,
            "model": model_used,
            "fallback": used_fallback,
        },
    ).first()
