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
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from workers.llm.costs import UNKNOWN, completion_sql
from workers.pipeline.job_result import FINISHED, JOB_COLUMNS
from workers.pipeline.validation import Invalid, JobRequest
from workers.quotas.periods import utcnow

# Statements are built once: constructing text() per call is measurable on the hot path.
FIND = text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :j")
FIND_BY_KEY = text(f"SELECT {JOB_COLUMNS} FROM jobs WHERE user_id = :u AND idempotency_key = :k")
INSERT_SQL = (
    "INSERT INTO jobs (id, user_id, kind, type, tier, status, reason, detail, retry_after,"
    " idempotency_key, notify, content_chars, content, quota_period, reserved_usd, published_at, finished_at,"
    " request_sha256)"
    " VALUES (:id, :u, :kind, :type, :tier, :status, :reason, CAST(:detail AS jsonb), :retry_after,"
    " :key, :notify, :chars, :content, :period, :reserved, :published, :finished, :sha)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
INSERT = text(INSERT_SQL)
REJECT = text(
    "UPDATE jobs SET status = 'rejected', reason = :r, detail = CAST(:d AS jsonb), quota_period = NULL,"
    " idempotency_key = NULL, reserved_usd = 0, content = NULL, finished_at = now()"
    " WHERE id = :j AND status = 'queued'"
)
# A delivery retried after a database error takes its own claim back (``deliveries = :own``)
# without counting a new delivery: it never waits on its own lease.
CLAIM = text(
    "WITH claimed AS ("
    "  UPDATE jobs SET status = 'running', lease_until = now() + make_interval(secs => :lease),"
    "   deliveries = CASE WHEN status = 'running' AND deliveries = :own THEN deliveries ELSE deliveries + 1 END,"
    "   started_at = coalesce(started_at, now())"
    "  WHERE id = :j AND (status = 'queued' OR (status = 'running' AND (lease_until < now() OR deliveries = :own)))"
    "  RETURNING id, user_id, kind, type, tier, content, notify, deliveries, reserved_usd, detail),"
    " lost AS ("
    f"  UPDATE llm_calls SET {UNKNOWN} WHERE status = 'pending' AND job_id IN (SELECT id FROM claimed) RETURNING id),"
    " answered AS ("
    # only the job's own answer (not a preprocessing chunk or one part of a batch: issue 13)
    "  SELECT id, attempt, model, model_served FROM llm_calls WHERE job_id = :j AND status = 'ok'"
    "   AND purpose = 'answer'"
    "  ORDER BY attempt DESC LIMIT 1),"
    " opened AS ("
    "  INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd)"
    "  SELECT c.id, (SELECT coalesce(max(attempt), 0) + 1 FROM llm_calls WHERE job_id = :j), c.tier,"
    "   CAST(:first_models AS jsonb) ->> c.tier, 'pending', 'none', c.reserved_usd"
    "  FROM claimed c WHERE c.deliveries <= :max AND NOT EXISTS (SELECT 1 FROM answered)"
    "  RETURNING id, attempt)"
    " SELECT c.*, (SELECT count(*) FROM lost) AS lost, a.id AS answered_id, a.model AS answered_model,"
    "  o.id AS call_id, o.attempt AS call_attempt"
    " FROM claimed c LEFT JOIN answered a ON true LEFT JOIN opened o ON true"
)
ANSWER = text("SELECT response_content, model_served, model FROM llm_calls WHERE id = :id")
# A claim's first row whose request never left: still pending, or made unknown meanwhile by a
# later claim or by recovery (neither could know the call was never made). A completed row is
# never touched.
WITHDRAW_UNSENT = text("DELETE FROM llm_calls WHERE id = :id AND job_id = :j AND status IN ('pending', 'unknown')")
REQUEUE = text(
    "UPDATE jobs SET status = 'queued', lease_until = NULL, published_at = :published"
    " WHERE id = :j AND deliveries = :d AND status = 'running'"
)
# The answer's attempt row, completed by the settlement itself (parameters prefixed ``a_``).
# The totals below see the table as it was before the statement, so they take that row from
# here instead (or as it was, when it had been completed already).
ANSWER_CTE = (
    f"answer AS ({completion_sql('a_')}),"
    " calls AS (SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM llm_calls"
    "   WHERE job_id = :j AND (id <> :a_id OR NOT EXISTS (SELECT 1 FROM answer))"
    "  UNION ALL SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM answer),"
)
PLAIN_CTE = (
    "calls AS (SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM llm_calls WHERE job_id = :j),"
)


def _settle_sql(calls: str) -> str:
    """Settlement, in one statement: the job's final state with totals summed from its llm_calls
    rows (estimates excluded: they are exposure, not cost), the spend, the reservation released,
    and the quota unit given back when asked. Only the delivery holding the claim can settle."""
    return (
        f"WITH {calls}"
        " t AS (SELECT coalesce(sum(prompt_tokens), 0) AS p, coalesce(sum(completion_tokens), 0) AS c,"
        "   coalesce(sum(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost FROM calls),"
        " before AS (SELECT id, reserved_usd, quota_refunded FROM jobs WHERE id = :j),"
        " settled AS ("
        "  UPDATE jobs SET status = :status, reason = :reason, detail = CAST(:detail AS jsonb),"
        "   result_content = :content, model_used = :model, used_fallback = :fallback, lease_until = NULL,"
        "   finished_at = now(), prompt_tokens = t.p, completion_tokens = t.c, cost_usd = t.cost, reserved_usd = 0,"
        "   quota_refunded = jobs.quota_refunded OR (:refund AND jobs.quota_period IS NOT NULL)"
        "  FROM t WHERE jobs.id = :j AND jobs.deliveries = :d AND jobs.status = 'running'"
        f"  RETURNING {', '.join('jobs.' + c.strip() for c in JOB_COLUMNS.split(','))}),"
        " usage AS ("
        "  UPDATE quota_usage q SET spend_usd = q.spend_usd + s.cost_usd,"
        "   reserved_usd = greatest(q.reserved_usd - b.reserved_usd, 0),"
        "   scripts_used = greatest(q.scripts_used - CASE WHEN :refund AND NOT b.quota_refunded AND s.kind = 'script'"
        "    THEN 1 ELSE 0 END, 0),"
        "   analyses_used = greatest(q.analyses_used - CASE WHEN :refund AND NOT b.quota_refunded"
        # a batched analysis (type "summary+keywords") gave one unit per type
        "    AND s.kind = 'analysis' THEN cardinality(string_to_array(s.type, '+')) ELSE 0 END, 0),"
        "   updated_at = now()"
        "  FROM settled s, before b WHERE q.user_id = s.user_id AND q.period_start = s.quota_period"
        "  RETURNING q.spend_usd)"
        " SELECT settled.*, (SELECT spend_usd FROM usage) AS spend FROM settled"
    )


SETTLE = text(_settle_sql(PLAIN_CTE))
# A successful call's row and the settlement in one statement: one round trip after the answer.
SETTLE_WITH_ANSWER = text(_settle_sql(ANSWER_CTE))
HEARTBEAT = text(
    "UPDATE jobs SET lease_until = now() + make_interval(secs => :lease)"
    " FROM unnest(CAST(:ids AS text[]), CAST(:ds AS integer[])) AS held(id, d)"
    " WHERE jobs.id = held.id AND jobs.deliveries = held.d AND jobs.status = 'running'"
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


def insert(conn: Connection, req: JobRequest, tier: str, **fields: Any) -> bool:
    """Write the jobs row (``fields``: the keywords of ``insert_params``). False when it
    already exists (redelivery, or a reused idempotency key)."""
    return conn.execute(INSERT, insert_params(req, tier, **fields)).first() is not None


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
    """The parameters of ``INSERT_SQL`` for this request."""
    return {
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
        "content": content,
        "period": quota_period,
        "reserved": reserved_usd,
        "published": published_at,
        "finished": utcnow() if status == "rejected" else None,
        "sha": req.request_sha256,
    }


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
            "content": None,
            "period": None,
            "reserved": 0,
            "published": None,
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
) -> Claim | Busy | Any | None:
    """Claim a queued job (or one whose lease ran out, or this delivery's own).

    Returns a Claim; the finished job's row (nothing to do); Busy while another delivery
    holds a live lease or the job is queued for another message; None when the job has no row.
    ``first_models`` is a JSON object tier -> first model of its chain.
    """
    row = conn.execute(
        CLAIM,
        {
            "j": job_id,
            "lease": lease_seconds,
            "own": own_delivery if own_delivery is not None else -1,
            "first_models": first_models,
            "max": max_deliveries,
        },
    ).first()
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
    return conn.execute(WITHDRAW_UNSENT, {"id": call_id, "j": job_id}).rowcount > 0


def answer(conn: Connection, call_id: int) -> Any:
    """The stored answer of an ok attempt: content, model served, model requested."""
    return conn.execute(ANSWER, {"id": call_id}).first()


def requeue(conn: Connection, claim: Claim) -> datetime:
    """Give the job back to the queue (a Celery retry with a countdown follows, carrying the
    returned time as its ``queued_at``). Its lease is released: no delivery waits on it."""
    published = utcnow()
    conn.execute(REQUEUE, {"j": claim.job_id, "d": claim.delivery, "published": published})
    return published


def heartbeat(conn: Connection, held: dict[str, int], lease_seconds: float) -> int:
    """Renew the leases of every job this process holds (job id -> delivery), in one UPDATE."""
    if not held:
        return 0
    ids, deliveries = zip(*held.items(), strict=True)
    return conn.execute(HEARTBEAT, {"ids": list(ids), "ds": list(deliveries), "lease": lease_seconds}).rowcount


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
) -> Any:
    """Finish a claimed job: totals, spend, reservation released and (``refund``) the unit back,
    in one statement, with ``answer`` (``costs.completion_params(..., prefix="a_")``) its
    answer's attempt row completed. Returns the job's row (with ``spend``), or None when this
    delivery no longer holds the claim (the answer's row is completed all the same)."""
    return conn.execute(
        SETTLE if answer is None else SETTLE_WITH_ANSWER,
        (answer or {})
        | {
            "j": claim.job_id,
            "d": claim.delivery,
            "status": status,
            "reason": reason,
            "detail": None if detail is None else json.dumps(detail),
            "content": content,
            "model": model_used,
            "fallback": used_fallback,
            "refund": refund,
        },
    ).first()
