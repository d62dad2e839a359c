"""Admission at intake, in order: validate, resolve the tier, honour the idempotency key,
rate-limit, take a quota unit (under the spend cap) and write the jobs row.

The quota unit and the jobs row are written in one transaction, so a redelivered intake
message finds its row and never takes a second unit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from config import get_catalog, get_settings
from config.tiers import Tier
from db.session import transaction
from workers.ops import metrics
from workers.pipeline import jobs
from workers.pipeline.job_result import FINISHED, job_result, unrecorded_rejection
from workers.pipeline.validation import JobRequest, shape_errors, size_errors
from workers.quotas import allowance as quotas
from workers.quotas.periods import quota_period, utcnow
from workers.quotas.rate_limit import user_rate_limiter
from workers.quotas.subscriptions import standing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """Either a JobResult to return now, or a job to hand over to its tier queue."""

    result: dict[str, Any] | None = None
    tier: Tier | None = None


def admit(req: JobRequest) -> Admission:
    errors = shape_errors(req)
    if "user_id" in errors:
        metrics.rejections.labels(tier="unknown", reason="invalid_input").inc()
        return Admission(unrecorded_rejection(req.job_id, req.kind, req.type, None, "invalid_input", errors))

    now = utcnow()
    with transaction() as conn:
        st = standing(conn, req.user_id, now)
        tier = st.tier
        existing = _existing(conn, req)
        if existing is not None:
            return _resume(existing, req)

        if "content" not in errors:
            errors |= size_errors(req.content, tier.max_content_chars, tier.name)
        if errors:
            return _reject(conn, req, tier, "invalid_input", errors)

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
            return _reject(conn, req, tier, reason, detail, retry_after=decision.retry_after)

        period = quota_period(now, st.period_start, st.period_end)
        if not jobs.insert(conn, req, tier.name, status="queued", quota_period=period[0]):
            return _resume(_existing(conn, req), req)  # a concurrent twin committed first
        reservation = quotas.reserve(conn, req.user_id, req.kind, tier, period)
        if not reservation.taken:
            jobs.reject(conn, req.job_id, reservation.reason, reservation.detail)
            return _rejected(conn, req, tier, reservation.reason)
    return Admission(tier=tier)


def _existing(conn, req: JobRequest) -> Any:
    """The job this submission already is: a redelivery (same id) or a reused idempotency key."""
    row = jobs.find(conn, req.job_id)
    if row is None and req.idempotency_key:
        row = jobs.find_by_key(conn, req.user_id, req.idempotency_key)
    return row


def _resume(row: Any, req: JobRequest) -> Admission:
    """A finished job answers with its result. An unfinished one is handed over again when
    this is its own redelivered message (the tier task is idempotent); a reused key with a
    new id points the producer at the original job instead."""
    if row.status in FINISHED or row.id != req.job_id:
        return Admission(job_result(row))
    return Admission(tier=get_catalog().tier(row.tier))


def _reject(conn, req: JobRequest, tier: Tier, reason: str, detail: Any, retry_after: int | None = None) -> Admission:
    if not jobs.insert(conn, req, tier.name, status="rejected", reason=reason, detail=detail, retry_after=retry_after):
        return _resume(_existing(conn, req), req)
    return _rejected(conn, req, tier, reason)


def _rejected(conn, req: JobRequest, tier: Tier, reason: str) -> Admission:
    """Count, log and answer a rejection whose jobs row is written."""
    metrics.rejections.labels(tier=tier.name, reason=reason).inc()
    metrics.jobs.labels(tier=tier.name, kind=req.kind, status="rejected").inc()
    log.info("job rejected", extra={"job_id": req.job_id, "user_id": req.user_id, "tier": tier.name, "reason": reason})
    return Admission(job_result(jobs.find(conn, req.job_id)))
