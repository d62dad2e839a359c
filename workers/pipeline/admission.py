"""Admission at intake, in order: validate (validation.py, before any lookup), resolve the
tier, check the size against the tier, rate-limit, then write the jobs row (content included:
the row is the whole job) and take its quota unit, reserving the job's maximum cost under the
spend cap, in one statement (db/queries/admission.sql).

The unit is taken only when the row is new, so a redelivered intake message finds its row and
never takes a second unit. A submission that is not new (a redelivery, another user's job id,
a reused idempotency key) is recognised when its row conflicts; until then it is checked and
counted like a new one, so a resubmission counts against the rate limit (and a rate-limited
one is told to retry after ``retry_after``).

Identity: a job id belongs to the user who created it; a submission with another user's id,
or with its own id but a different request, is ``job_id_conflict`` and learns nothing of the
existing job. A reused idempotency key returns the original job when the request is the same
(``jobs.request_sha256``), and is ``idempotency_conflict`` otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, NamedTuple

from config import get_catalog, get_settings
from config.prompts import prompt
from config.tiers import Tier
from db import named_sql
from db.session import transaction
from workers.llm import costs
from workers.ops import metrics
from workers.pipeline import batch_types as batch
from workers.pipeline import jobs
from workers.pipeline.job_result import FINISHED, JobResult, job_result, unrecorded_rejection
from workers.pipeline.validation import Invalid, JobRequest, size_errors
from workers.quotas import allowance as quotas
from workers.quotas.periods import quota_period, utcnow
from workers.quotas.rate_limit import user_rate_limiter
from workers.quotas.subscriptions import standing
from workers.storable import replacement_note, storable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """Either a JobResult to return now, or a job to hand over to its tier queue.

    ``notify_row`` names the jobs row whose notification this answer owes (recorded there,
    once); ``notify_unrecorded`` is the target of an answer that has no row of its own.
    ``store`` is False when the task id is another job's: the answer must not take that job's
    place in the result backend (Celery never replaces a stored SUCCESS, so the owner's result
    would be lost if the conflict were stored first).
    """

    result: JobResult | None = None
    tier: Tier | None = None
    notify_row: str | None = None
    notify_unrecorded: dict[str, str] | None = None
    store: bool = True
    published_at: datetime | None = None  # jobs.published_at: the hand-over's queued_at


class Admitted(NamedTuple):
    inserted: int  # 1 when the jobs row is new
    reserved: int  # 1 when its units were taken


# The jobs row and its quota unit in one statement, one per kind (db/queries/admission.sql).
SQL = named_sql.load("admission")
ADMIT = {
    "script": SQL.rows("admit_script_job", Admitted),
    "analysis": SQL.rows("admit_analysis_job", Admitted),
}


def _unit_params(tier: Tier, kind: str, period_end: date, units: int) -> dict[str, Any]:
    """The binds of an admit statement beyond the jobs row's: the units and their limits. The
    row's own ``user_id``, ``quota_period`` and ``reserved_usd`` name the quota row and the
    maximum cost reserved."""
    return {
        "period_end": period_end,
        "units": units,
        "unit_limit": tier.allowance(kind),
        "spend_cap_usd": tier.spend_cap_usd,
    }


def admit(sub: JobRequest | Invalid) -> Admission:
    if isinstance(sub, Invalid):
        return _invalid(sub)
    req = sub
    now = utcnow()
    with transaction() as conn:
        st = standing(conn, req.user_id, now)
        tier = st.tier
        # A submission that is not new (a redelivery, another user's job id, a reused
        # idempotency key) is found when its row conflicts, so the common case reads nothing
        # more; it is checked and counted like a new one until then.
        errors = size_errors(req.content, tier.max_content_chars, tier.name)
        if errors:  # an invalid request spends no idempotency key
            return _reject(conn, replace(req, idempotency_key=None), tier, "invalid_input", errors)

        settings = get_settings()
        limiter = user_rate_limiter(
            settings.require_redis_url(), settings.rate_limit_fail_open, settings.redis_sentinel_master
        )
        decision = limiter.hit(req.user_id, tier.requests_per_minute)
        if not decision.allowed:
            reason = "rate_limiter_unavailable" if decision.degraded else "rate_limited"
            detail = {
                "message": f"More than {tier.requests_per_minute} requests per minute on the {tier.name} tier.",
                "limit_per_minute": tier.requests_per_minute,
            }
            # The key is not spent: the producer is told to retry after retry_after, with it.
            return _reject(
                conn, replace(req, idempotency_key=None), tier, reason, detail, retry_after=decision.retry_after
            )

        period = quota_period(now, st.period_start, st.period_end)
        units = batch.units(req.kind, req.type)
        if not quotas.can_ever_fit(tier, req.kind, units):
            refusal = quotas.refusal(conn, req.user_id, req.kind, tier, period, units)
            return _reject(conn, replace(req, idempotency_key=None), tier, refusal.reason, refusal.detail)
        # The jobs row is the whole job: the tier task (and recovery) read the content from it.
        content, replaced = storable(req.content)
        note = replacement_note("the content", replaced) if replaced else None
        messages, max_tokens, _, _ = prompt(req.kind, req.type, content, tier)
        max_cost = costs.job_maximum(conn, tier, costs.prompt_tokens_estimate(messages), max_tokens)
        row_params = jobs.insert_params(
            req,
            tier.name,
            status="queued",
            quota_period=period[0],
            content=content,
            reserved_usd=max_cost,
            detail=note,
            published_at=now,
        )
        admitted = ADMIT[req.kind].one(conn, row_params | _unit_params(tier, req.kind, period[1], units))
        if not admitted.inserted:
            return _existing(conn, req, tier) or _conflict(req)
        if not admitted.reserved:
            refusal = quotas.refusal(conn, req.user_id, req.kind, tier, period, units)
            jobs.reject(conn, req.job_id, refusal.reason, refusal.detail)
            return _rejected(conn, req, tier, refusal.reason)
    return Admission(tier=tier, published_at=now)


def _invalid(sub: Invalid) -> Admission:
    """A malformed submission. Recorded as a rejected row when its id and user are valid
    (so it is notified once and ``job_status`` finds it); answered without a row otherwise."""
    if not sub.recordable or sub.user_id is None:
        metrics.rejections.labels(tier="unknown", reason="invalid_input").inc()
        result = unrecorded_rejection(sub.job_id, sub.kind, sub.type, None, "invalid_input", sub.errors)
        return Admission(result, notify_unrecorded=sub.notify)
    with transaction() as conn:
        tier = standing(conn, sub.user_id, utcnow()).tier
        if not jobs.insert_invalid(conn, sub, tier.name):
            row = jobs.find(conn, sub.job_id)
            if row is None or row.user_id != sub.user_id or row.reason != "invalid_input":
                return _conflict(sub)
            return Admission(job_result(row), notify_row=row.id)  # this rejection, redelivered
        metrics.rejections.labels(tier=tier.name, reason="invalid_input").inc()
        metrics.jobs.labels(tier=tier.name, kind=sub.kind, status="rejected").inc()
        log.info("job rejected", extra={"job_id": sub.job_id, "user_id": sub.user_id, "reason": "invalid_input"})
        return Admission(job_result(jobs.find(conn, sub.job_id)), notify_row=sub.job_id)


def _existing(conn: Any, req: JobRequest, tier: Tier) -> Admission | None:
    """The answer when this submission is not new: a redelivery (same id, same user, same
    request), someone else's id, or a reused idempotency key."""
    row = jobs.find(conn, req.job_id)
    if row is not None:
        if row.user_id != req.user_id or row.request_sha256 not in (None, req.request_sha256):
            return _conflict(req)
        if row.status in FINISHED:
            return Admission(job_result(row), notify_row=row.id)
        # The tier task is idempotent: hand the job over again.
        return Admission(tier=get_catalog().tier(row.tier), published_at=utcnow())
    if req.idempotency_key:
        row = jobs.find_by_key(conn, req.user_id, req.idempotency_key)
        if row is not None and row.request_sha256 in (None, req.request_sha256):
            return Admission(job_result(row))  # the original job, which notifies for itself
        if row is not None:
            detail = {
                "message": "this idempotency key was used for a different request (kind, type or content);"
                " use a new key, or resend the original request",
                "original_job_id": row.id,
            }
            return _reject(conn, replace(req, idempotency_key=None), tier, "idempotency_conflict", detail)
    return None


def _conflict(sub: JobRequest | Invalid) -> Admission:
    """The job id is taken by another user's job or another request: reveal nothing of it."""
    metrics.rejections.labels(tier="unknown", reason="job_id_conflict").inc()
    log.warning("job id conflict", extra={"job_id": sub.job_id, "user_id": sub.user_id, "reason": "job_id_conflict"})
    detail = {"job_id": "this job id is already in use; send the submission with a new task id (a uuid4)"}
    result = unrecorded_rejection(sub.job_id, sub.kind, sub.type, None, "job_id_conflict", detail)
    return Admission(result, notify_unrecorded=sub.notify, store=False)


def _reject(
    conn: Any, req: JobRequest, tier: Tier, reason: str, detail: Any, retry_after: int | None = None
) -> Admission:
    if not jobs.insert(conn, req, tier.name, status="rejected", reason=reason, detail=detail, retry_after=retry_after):
        return _existing(conn, req, tier) or _conflict(req)
    return _rejected(conn, req, tier, reason)


def _rejected(conn: Any, req: JobRequest, tier: Tier, reason: str) -> Admission:
    """Count, log and answer a rejection whose jobs row is written."""
    metrics.rejections.labels(tier=tier.name, reason=reason).inc()
    metrics.jobs.labels(tier=tier.name, kind=req.kind, status="rejected").inc()
    log.info("job rejected", extra={"job_id": req.job_id, "user_id": req.user_id, "tier": tier.name, "reason": reason})
    return Admission(job_result(jobs.find(conn, req.job_id)), notify_row=req.job_id)
