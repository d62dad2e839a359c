"""A claimed job's answer from the response cache, or from one provider call shared by every
identical job in flight (single-flight), else from the provider as usual.

    key_for(job) -> None (not cached) ----------------------------> run the provider path
                 -> cached answer --------------------------------> settle as a cache hit
                 -> single-flight: leader -> provider path -> store the answer -> release
                                   waiter -> the leader's answer --> settle as a cache hit
                                   wait ran out -----------------> provider path

A hit settles the job in one transaction: its ``llm_calls`` row (status ``cache_hit``, cost
0, ``saved_usd``), the ``cache_hit`` flag and the job's final state. Its quota unit stays
taken unless the catalog's ``cache.hit_takes_quota`` is false (docs/quotas.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config import get_catalog
from db.session import transaction
from workers.llm import response_cache
from workers.llm.response_cache import Cached, CacheKey
from workers.llm.single_flight import get_single_flight
from workers.ops import metrics
from workers.pipeline import jobs, long_content
from workers.pipeline.job_result import JobResult, job_result
from workers.quotas import allowance as quotas

if TYPE_CHECKING:
    from workers.pipeline.runner import Work

log = logging.getLogger(__name__)

MARK_HIT = text("UPDATE jobs SET cache_hit = true WHERE id = :j AND deliveries = :d AND status = 'running'")

RunProvider = Callable[..., Any]  # runner.run_provider: returns the JobResult


def run(
    work: Work, claim: jobs.Claim, provider_path: RunProvider, sleep: Callable[[float], None] = time.sleep
) -> Any:  # the JobResult, typed as runner.run's
    """The JobResult of a claimed job, bought at most once per cache key."""
    tier = get_catalog().tier(work.tier)
    key = response_cache.key_for(work.kind, work.type, tier, work.content, work.user_id)
    if key is None:
        return provider_path(work, claim, sleep=sleep)

    def ready() -> Cached | None:
        with transaction() as conn:
            return response_cache.lookup(conn, key)

    cached = ready()
    if cached is not None:
        return settle_hit(work, claim, cached)
    flight = get_single_flight().lead_or_wait(key.digest, ready)
    if flight.value is not None:
        log.info(
            "served from an identical job in flight",
            extra={"job_id": work.job_id, "tier": work.tier, "waited_s": round(flight.waited_seconds, 3)},
        )
        return settle_hit(work, claim, flight.value)
    metrics.cache_lookups.labels(tier=work.tier, kind=work.kind, outcome="miss").inc()
    try:
        result = provider_path(work, claim, sleep=sleep)
        if result["status"] == "succeeded" and not result.get("cache_hit") and not long_content.degraded(result):
            _store(key, result)
        return result
    finally:
        if flight.lease is not None:
            flight.lease.release()


def _store(key: CacheKey, result: Any) -> None:
    """Keep the answer; the job is already settled, so a failure here only costs a future hit."""
    try:
        with transaction() as conn:
            response_cache.store(conn, key, result)
    except SQLAlchemyError:
        log.exception("answer not cached", extra={"job_id": result["job_id"], "tier": result["tier"]})


def settle_hit(work: Work, claim: jobs.Claim, cached: Cached) -> JobResult:
    """Finish a claimed job with a cached answer: no provider call, a zero-cost ledger row."""
    with transaction() as conn:
        response_cache.record_hit(conn, job_id=work.job_id, attempt=claim.first_attempt, tier=work.tier, cached=cached)
        conn.execute(MARK_HIT, {"j": work.job_id, "d": claim.delivery})
        row = jobs.settle(
            conn,
            claim,
            status="succeeded",
            content=cached.answer,
            model_used=cached.model_used,
            used_fallback=cached.used_fallback,
            detail=cached.detail,
        )
        if row is None:
            return job_result(jobs.find(conn, work.job_id))  # another delivery settled it first
        if not get_catalog().cache.hit_takes_quota:
            quotas.refund(conn, work.job_id)
            row = jobs.find(conn, work.job_id)
    metrics.cache_lookups.labels(tier=work.tier, kind=work.kind, outcome="hit").inc()
    metrics.cache_saved.labels(tier=work.tier, kind=work.kind).inc(float(cached.cost_usd))
    metrics.jobs.labels(tier=work.tier, kind=work.kind, status="succeeded").inc()
    return job_result(row)
