"""A claimed job's answer from the response cache, or from one provider call shared by every
identical job in flight (single-flight), else from the provider as usual.

    key_for(job) -> None (not cached) ----------------------------> run the provider path
                 -> cached answer --------------------------------> settle as a cache hit
                 -> single-flight: leader -> provider path -> store the answer -> release
                                   waiter -> the leader's answer --> settle as a cache hit
                                   wait ran out -----------------> provider path

A hit makes no provider call. The pending ``llm_calls`` row the claim wrote becomes the hit's
row (status ``cache_hit``, cost 0, ``saved_usd`` = the original cost), ``jobs.cache_hit`` is
set, and the job settles like any other. Its quota unit stays taken unless the catalog's
``cache.hit_takes_quota`` is false (docs/quotas.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config import get_catalog
from config.tiers import Tier
from db.session import transaction
from workers.llm import costs, response_cache
from workers.llm.response_cache import Cached, CacheKey
from workers.llm.single_flight import get_single_flight
from workers.ops import metrics
from workers.pipeline import jobs, long_content

log = logging.getLogger(__name__)

MARK_HIT = text("UPDATE jobs SET cache_hit = true WHERE id = :j AND deliveries = :d AND status = 'running'")


def run(claim: jobs.Claim, tier: Tier, provider_path: Callable[[], Any]) -> Any:
    """The JobResult of a claimed job, bought at most once per cache key (None when this
    delivery lost its claim, as runner.run)."""
    key = response_cache.key_for(claim.kind, claim.type, tier, claim.content, claim.user_id)
    if key is None:
        return provider_path()

    def ready() -> Cached | None:
        with transaction() as conn:
            return response_cache.lookup(conn, key)

    cached = ready()
    if cached is not None:
        return settle_hit(claim, tier, cached)
    flight = get_single_flight().lead_or_wait(key.digest, ready, job_id=claim.job_id, delivery=claim.delivery)
    if flight.value is not None:
        log.info(
            "served from an identical job in flight",
            extra={"job_id": claim.job_id, "tier": tier.name, "waited_s": round(flight.waited_seconds, 3)},
        )
        return settle_hit(claim, tier, flight.value)
    metrics.cache_lookups.labels(tier=tier.name, kind=claim.kind, outcome="miss").inc()
    try:
        result = provider_path()
        bought = result is not None and result["status"] == "succeeded" and not result.get("cache_hit")
        if bought and not long_content.degraded(result):  # a degraded answer is not worth keeping
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


def settle_hit(claim: jobs.Claim, tier: Tier, cached: Cached) -> Any:
    """Finish a claimed job with a cached answer: no provider call, a zero-cost ledger row."""
    from workers.pipeline.runner import ClaimLost, _finish  # the one place a job is settled

    with transaction() as conn:
        call_id = claim.call_id
        if call_id is None:  # a redelivery: no pending row was written for it
            try:
                call_id = costs.open_attempt(conn, claim.job_id, claim.delivery, cached.model_used or "", Decimal(0))[0]
            except LookupError as exc:
                raise ClaimLost(str(exc)) from exc
        response_cache.record_hit(conn, call_id=call_id, cached=cached)
        conn.execute(MARK_HIT, {"j": claim.job_id, "d": claim.delivery})
    result = _finish(
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
