"""Finishing a claimed job: success (answered, from an answer already paid for, or from the
response cache), provider failure, internal error and poison. Each ends in one guarded
statement (``jobs.settle``), retried through a database outage for ``SETTLE_RETRY_SECONDS``;
a delivery that lost its claim settles nothing and gets None. The story: docs/architecture.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from config import get_catalog, get_settings
from config.tiers import Tier
from db.errors import durably
from db.session import autocommit, transaction
from workers.errors import FatalProviderError, ProviderError
from workers.llm.response_cache import Cached
from workers.ops import metrics
from workers.pipeline import jobs, response_reuse
from workers.pipeline.attempts import Answer, Attempt, answer_params, close_in_flight
from workers.pipeline.job_result import JobResult, job_result
from workers.quotas import spend_alerts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answered:
    """A job's answer. Every provider call behind it is in the ledger already, except the
    ``answer`` call, whose row the settlement completes."""

    content: str
    model_used: str
    used_fallback: bool
    detail: str | None
    answer: Answer | None = None


@dataclass(frozen=True)
class ProviderFailed:
    """No model could answer the job."""

    error: ProviderError
    note: str | None


Outcome = Answered | ProviderFailed


def notes(*parts: Any) -> str | None:
    """The notes that are text, joined for a JobResult's detail."""
    kept = [n for n in parts if isinstance(n, str) and n]
    return "; ".join(kept) or None


def settle(claim: jobs.Claim, tier: Tier, outcome: Outcome) -> JobResult | None:
    if isinstance(outcome, ProviderFailed):
        return settle_failure(claim, tier, outcome.error, outcome.note)
    return settle_success(claim, tier, outcome)


def finish(claim: jobs.Claim, tier: Tier, answer: Answer | None = None, **settlement: Any) -> JobResult | None:
    """Settle the job in one statement; with ``answer``, its row is completed in the same one."""
    answer_cost: list[Any] = []

    def write() -> Any:
        with autocommit() as conn:  # settlement is one statement
            params = None
            if answer is not None:
                params = answer_params(conn, tier, answer)
                answer_cost[:] = [params["a_cost"]]
            return jobs.settle(conn, claim, answer=params, **settlement)

    row = durably(write, what="a settlement", job_id=claim.job_id)
    if answer is not None:
        metrics.llm_cost.labels(tier=tier.name, model=answer.attempt.model).inc(float(answer_cost[0]))
    if row is None:
        return None  # this delivery lost its claim; the one that holds it settles
    if row.quota_period is not None and row.spend is not None and row.cost_usd:
        spend_alerts.check(claim.user_id, tier, row.quota_period, row.spend)
    metrics.jobs.labels(tier=tier.name, kind=claim.kind, status=row.status).inc()
    return job_result(row)


def settle_success(claim: jobs.Claim, tier: Tier, answered: Answered) -> JobResult | None:
    if answered.used_fallback:
        metrics.fallbacks.labels(tier=tier.name, model=answered.model_used).inc()
    return finish(
        claim,
        tier,
        answered.answer,
        status="succeeded",
        content=answered.content,
        model_used=answered.model_used,
        used_fallback=answered.used_fallback,
        detail=answered.detail,
    )


def settle_from_answer(claim: jobs.Claim, tier: Tier) -> JobResult | None:
    """A previous delivery got the answer and died before settling: settle from its row."""
    assert claim.answered_id is not None
    with transaction() as conn:
        answered = jobs.answer(conn, claim.answered_id)
    log.info("settling from an answer already paid for", extra={"job_id": claim.job_id, "tier": tier.name})
    return settle_success(
        claim,
        tier,
        Answered(
            content=answered.response_content or "",
            model_used=answered.model_served or answered.model,
            used_fallback=answered.model != tier.models[0],
            detail=notes(claim.detail),
        ),
    )


def settle_hit(claim: jobs.Claim, tier: Tier, cached: Cached) -> JobResult | None:
    """Finish a claimed job with a cached answer: no provider call, a zero-cost ledger row."""
    response_reuse.record_hit(claim, cached)
    result = finish(
        claim,
        tier,
        status="succeeded",
        content=cached.answer,
        model_used=cached.model_used,
        used_fallback=cached.used_fallback,
        detail=cached.detail,
        refund=not get_catalog().cache.hit_takes_quota,
    )
    if result is not None:
        metrics.cache_lookups.labels(tier=tier.name, kind=claim.kind, outcome="hit").inc()
        metrics.cache_saved.labels(tier=tier.name, kind=claim.kind).inc(float(cached.cost_usd))
    return result


def settle_failure(claim: jobs.Claim, tier: Tier, error: ProviderError, note: str | None) -> JobResult | None:
    detail: dict[str, Any] = {"error": type(error).__name__, "message": str(error), "status": error.status}
    if note:
        detail["note"] = note
    if isinstance(error, FatalProviderError):
        log.error(
            "provider refused the account; operator action needed",
            extra={"job_id": claim.job_id, "tier": tier.name, "error": type(error).__name__},
        )
    return finish(claim, tier, status="failed", reason=error.reason, detail=detail, refund=True)


def poison(claim: jobs.Claim, tier: Tier) -> JobResult | None:
    log.error(
        "job claimed too many times; failed as poison",
        extra={"job_id": claim.job_id, "tier": tier.name, "deliveries": claim.delivery},
    )
    detail = {
        "message": f"the job was claimed {claim.delivery} times without finishing (limit"
        f" {get_settings().max_deliveries}); each worker that ran it stopped before it could settle",
        "deliveries": claim.delivery,
    }
    return finish(claim, tier, status="failed", reason="poison", detail=detail, refund=True)


def fail_internal(claim: jobs.Claim, tier: Tier, exc: Exception, in_flight: Attempt | None) -> JobResult | None:
    """A fault of ours: the job fails ``internal_error``, its unit back, its attempt recorded."""
    log.error(
        "tier task failed with an internal error",
        extra={"job_id": claim.job_id, "tier": tier.name, "error": type(exc).__name__},
        exc_info=exc,
    )
    if in_flight is not None:
        close_in_flight(claim, tier, in_flight, exc)
    detail = {
        "error": type(exc).__name__,
        "message": "the worker failed while running the job; an operator was alerted",
    }
    return finish(claim, tier, status="failed", reason="internal_error", detail=detail, refund=True)
