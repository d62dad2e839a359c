"""The life of a ``jobs`` row. Every transition is guarded in SQL, so a redelivered task
can never move a job twice, and only the delivery that claimed a job may settle it.

    queued --claim--> running --settle--> succeeded | failed
      ^                  |  \
      |                  |   +--(claimed more than MAX_DELIVERIES times)--> failed / poison
      +-- requeue -------+   (a long Retry-After gives the slot back; recovery, after the lease expired)
    rejected (at intake, final)

A claim holds a short lease (``JOB_LEASE_SECONDS``) that the worker's heartbeat renews
(workers/pipeline/heartbeat.py); recovery (workers/pipeline/recovery.py) requeues a job whose
lease ran out. The claim statement also writes the first attempt's ``pending`` llm_calls row,
turns a dead delivery's pending rows into ``unknown`` and finds an ``ok`` attempt a dead
delivery already paid for: one round trip.

A delivery that met a database error after its claim but before that first row's request left
knows the row announced a call that was never made: its retry withdraws the row
(``withdraw_unsent``) before claiming again, so the next claim does not take it for a call in
flight and turn it into an ``unknown`` estimate.

The statements are named in db/queries/jobs.sql.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection

from db import named_sql
from workers.pipeline.job_result import FINISHED
from workers.pipeline.validation import Invalid, JobRequest
from workers.quotas.periods import utcnow


class JobRow(NamedTuple):
    """A job as ``job_result`` reads it (the columns of ``job_result.JOB_COLUMNS``)."""

    id: str
    user_id: str
    kind: str
    type: str
    tier: str
    status: str
    reason: str | None
    detail: Any
    retry_after: int | None
    result_content: str | None
    model_used: str | None
    used_fallback: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    quota_period: date | None
    notify: str | None
    created_at: datetime
    request_sha256: str | None
    cache_hit: bool


class SettledJob(NamedTuple):
    """A settled job's row, and the period's spend after it (None without a quota row)."""

    id: str
    user_id: str
    kind: str
    type: str
    tier: str
    status: str
    reason: str | None
    detail: Any
    retry_after: int | None
    result_content: str | None
    model_used: str | None
    used_fallback: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    quota_period: date | None
    notify: str | None
    created_at: datetime
    request_sha256: str | None
    cache_hit: bool
    spend: Decimal | None


class InsertedJob(NamedTuple):
    id: str


class ClaimedJob(NamedTuple):
    """What the claim statement returns: the job as claimed, and the attempt it opened."""

    id: str
    user_id: str
    kind: str
    type: str
    tier: str
    content: str | None
    notify: str | None
    deliveries: int
    reserved_usd: Decimal
    detail: Any
    lost: int  # pending rows of a dead delivery, now unknown
    answered_id: int | None
    answered_model: str | None
    call_id: int | None
    call_attempt: int | None


class StoredAnswer(NamedTuple):
    """An ok attempt's answer."""

    response_content: str | None
    model_served: str | None
    model: str


# Parsed once at import: building a statement per call is measurable on the hot path.
SQL = named_sql.load("jobs")
FIND = SQL.rows("find_job", JobRow)
FIND_BY_KEY = SQL.rows("find_job_by_idempotency_key", JobRow)
FIND_BY_PREFIX = SQL.rows("find_jobs_by_id_prefix", JobRow)
INSERT = SQL.rows("insert_job", InsertedJob)
REJECT = SQL.statement("reject_queued_job")
CLAIM = SQL.rows("claim_job", ClaimedJob)
ANSWER = SQL.rows("answer_of_call", StoredAnswer)
WITHDRAW_UNSENT = SQL.statement("withdraw_unsent_call")
REQUEUE = SQL.statement("requeue_job")
HEARTBEAT = SQL.statement("renew_leases")
SETTLE = SQL.rows("settle_job", SettledJob)
SETTLE_WITH_ANSWER = SQL.rows("settle_job_with_answer", SettledJob)


def find(conn: Connection, job_id: str) -> JobRow | None:
    return FIND.first(conn, {"job_id": job_id})


MIN_PREFIX = 8  # the demo prints 8 characters of a job id


class AmbiguousPrefix(LookupError):
    """Raised when an id prefix matches more than one job."""


def find_by_id_or_prefix(conn: Connection, id_or_prefix: str) -> JobRow | None:
    """The job with this id, or the only job whose id starts with it (at least
    ``MIN_PREFIX`` characters); None when there is none."""
    row = find(conn, id_or_prefix)
    if row is not None or len(id_or_prefix) < MIN_PREFIX:
        return row
    escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = FIND_BY_PREFIX.all(conn, {"id_prefix": escaped})
    if len(rows) > 1:
        raise AmbiguousPrefix(f"{id_or_prefix!r} is the start of more than one job id; give more characters")
    return rows[0] if rows else None


def find_by_key(conn: Connection, user_id: str, key: str) -> JobRow | None:
    return FIND_BY_KEY.first(conn, {"user_id": user_id, "idempotency_key": key})


def insert(conn: Connection, req: JobRequest, tier: str, **fields: Any) -> bool:
    """Write the jobs row (``fields``: the keywords of ``insert_params``). False when it
    already exists (redelivery, or a reused idempotency key)."""
    return INSERT.first(conn, insert_params(req, tier, **fields)) is not None


def insert_params(
    req: JobRequest,
    tier: str,
    *,
    status: str,
    quota_period: date | None = None,
    reason: str | None = None,
    detail: Any = None,
    retry_after: int | None = None,
    content: str | None = None,
    reserved_usd: Decimal = Decimal(0),
    published_at: datetime | None = None,
) -> dict[str, Any]:
    """The binds of ``insert_job`` (db/queries/jobs.sql) for this request."""
    return {
        "job_id": req.job_id,
        "user_id": req.user_id,
        "kind": req.kind,
        "type": req.type,
        "tier": tier,
        "status": status,
        "reason": reason,
        "detail": None if detail is None else json.dumps(detail),
        "retry_after": retry_after,
        "idempotency_key": req.idempotency_key,
        "notify": None if req.notify is None else json.dumps(req.notify),
        "content_chars": len(req.content),
        "content": content,
        "quota_period": quota_period,
        "reserved_usd": reserved_usd,
        "published_at": published_at,
        "finished_at": utcnow() if status == "rejected" else None,
        "request_sha256": req.request_sha256,
    }


def insert_invalid(conn: Connection, sub: Invalid, tier: str) -> bool:
    """Record a malformed submission as rejected / invalid_input (its id and user are valid).

    The idempotency key is not recorded: a key is spent only by a well-formed request.
    False when the id already has a row.
    """
    row = INSERT.first(
        conn,
        {
            "job_id": sub.job_id,
            "user_id": sub.user_id,
            "kind": sub.kind,
            "type": sub.type or "",
            "tier": tier,
            "status": "rejected",
            "reason": "invalid_input",
            "detail": json.dumps(sub.errors),
            "retry_after": None,
            "idempotency_key": None,
            "notify": None if sub.notify is None else json.dumps(sub.notify),
            "content_chars": 0,
            "content": None,
            "quota_period": None,
            "reserved_usd": 0,
            "published_at": None,
            "finished_at": utcnow(),
            "request_sha256": None,
        },
    )
    return row is not None


def reject(conn: Connection, job_id: str, reason: str, detail: Any) -> None:
    """Turn a just-written queued job into a rejection (its unit was never taken). The
    idempotency key is released: a quota or spend-cap rejection is worth retrying later."""
    REJECT.execute(conn, {"job_id": job_id, "reason": reason, "detail": json.dumps(detail)})


@dataclass(frozen=True)
class Claim:
    """The right to run a job's LLM calls, held by one delivery until it settles."""

    job_id: str
    delivery: int  # jobs.deliveries after this claim; settles must match it
    user_id: str
    kind: str
    type: str
    tier: str
    content: str
    notify: Any
    detail: Any
    call_id: int | None  # the first attempt's pending llm_calls row, written by the claim
    call_attempt: int | None
    answered_id: int | None  # an ok attempt a previous delivery paid for: settle from it
    answered_model: str | None
    lost_attempts: int  # pending rows of a dead delivery, now unknown
    # Set when the request of the first attempt (``call_id``) is about to leave; shared by the
    # copies dataclasses.replace makes (long_content.prepare).
    _first_call_sent: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    def first_call_sent(self) -> None:
        """The first attempt's row is about to go out with a request: from now on only its
        answer (or recovery, at its estimate) may complete it."""
        self._first_call_sent.set()

    @property
    def unsent_call_id(self) -> int | None:
        """The first attempt's pending row when no request was made on it, else None."""
        return None if self.call_id is None or self._first_call_sent.is_set() else self.call_id


@dataclass(frozen=True)
class Busy:
    """Another delivery holds a live lease on the job."""

    status: str


def claim(
    conn: Connection,
    job_id: str,
    *,
    lease_seconds: float,
    first_models: str,
    max_deliveries: int,
    own_delivery: int | None = None,
) -> Claim | Busy | JobRow | None:
    """Claim a queued job (or one whose lease ran out, or this delivery's own).

    Returns a Claim; the finished job's row (nothing to do); Busy while another delivery
    holds a live lease or the job is queued for another message; None when the job has no row.
    ``first_models`` is a JSON object tier -> first model of its chain.
    """
    row = CLAIM.first(
        conn,
        {
            "job_id": job_id,
            "lease_seconds": lease_seconds,
            "own_delivery": own_delivery if own_delivery is not None else -1,
            "first_models": first_models,
            "max_deliveries": max_deliveries,
        },
    )
    if row is not None:
        return Claim(
            job_id=job_id,
            delivery=row.deliveries,
            user_id=row.user_id,
            kind=row.kind,
            type=row.type,
            tier=row.tier,
            content=row.content or "",
            notify=json.loads(row.notify) if row.notify else None,
            detail=row.detail,
            call_id=row.call_id,
            call_attempt=row.call_attempt,
            answered_id=row.answered_id,
            answered_model=row.answered_model,
            lost_attempts=row.lost,
        )
    current = find(conn, job_id)
    if current is None:
        return None
    return current if current.status in FINISHED else Busy(current.status)


def withdraw_unsent(conn: Connection, job_id: str, call_id: int) -> bool:
    """Delete the first attempt's row of an earlier claim whose request never left (that
    delivery met a database error before sending it). True when a row was withdrawn."""
    return WITHDRAW_UNSENT.execute(conn, {"call_id": call_id, "job_id": job_id}) > 0


def answer(conn: Connection, call_id: int) -> StoredAnswer:
    """The stored answer of an ok attempt: content, model served, model requested."""
    return ANSWER.one(conn, {"call_id": call_id})


def requeue(conn: Connection, claim: Claim) -> datetime:
    """Give the job back to the queue (a Celery retry with a countdown follows, carrying the
    returned time as its ``queued_at``). Its lease is released: no delivery waits on it."""
    published = utcnow()
    REQUEUE.execute(conn, {"job_id": claim.job_id, "delivery": claim.delivery, "published_at": published})
    return published


def heartbeat(conn: Connection, held: dict[str, int], lease_seconds: float) -> int:
    """Renew the leases of every job this process holds (job id -> delivery), in one UPDATE."""
    if not held:
        return 0
    ids, deliveries = zip(*held.items(), strict=True)
    return HEARTBEAT.execute(
        conn, {"job_ids": list(ids), "deliveries": list(deliveries), "lease_seconds": lease_seconds}
    )


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
    refund: bool = False,
    answer: dict[str, Any] | None = None,
) -> SettledJob | None:
    """Finish a claimed job: totals, spend, reservation released and (``refund``) the unit back,
    in one statement, with ``answer`` (``costs.completion_params(..., prefix="a_")``) its
    answer's attempt row completed. Returns the job's row (with ``spend``), or None when this
    delivery no longer holds the claim (the answer's row is completed all the same)."""
    params = {
        "job_id": claim.job_id,
        "delivery": claim.delivery,
        "job_status": status,
        "reason": reason,
        "detail": None if detail is None else json.dumps(detail),
        "result_content": content,
        "model_used": model_used,
        "used_fallback": used_fallback,
        "refund_unit": refund,
    }
    if answer is None:
        return SETTLE.first(conn, params)
    return SETTLE_WITH_ANSWER.first(conn, answer | params)
