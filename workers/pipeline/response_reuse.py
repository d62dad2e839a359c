"""A claimed job's answer from the response cache, or from one provider call shared by every
identical job in flight (single-flight), else from the provider as usual.

    key_for(job) -> None (not cached) ----------------------------> run the provider path
                 -> cached answer --------------------------------> a hit
                 -> single-flight: leader -> provider path -> keep the answer -> release
                                   waiter -> the leader's answer --> a hit
                                   wait ran out -----------------> provider path

This module finds the answer; the runner settles the job (a hit through
``settlement.settle_hit``). A hit makes no provider call. The pending ``llm_calls`` row the
claim wrote becomes the hit's row (status ``cache_hit``, cost 0, ``saved_usd`` = the original
cost), ``jobs.cache_hit`` is set, and the job settles like any other. Its quota unit stays
taken unless the catalog's ``cache.hit_takes_quota`` is false (docs/quotas.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config.tiers import Tier
from db.session import transaction
from workers.llm import response_cache
from workers.llm.response_cache import Cached, CacheKey
from workers.llm.single_flight import Lease, get_single_flight
from workers.ops import metrics
from workers.pipeline import jobs, long_content
from workers.pipeline.attempts import open_row

log = logging.getLogger(__name__)

MARK_HIT = text("UPDATE jobs SET cache_hit = true WHERE id = :j AND deliveries = :d AND status = 'running'")


class Reuse:
    """What the lookup found: a ``hit`` to settle with, or the provider path to take and
    ``keep`` its answer for the identical jobs that follow."""

    def __init__(self, key: CacheKey | None, hit: Cached | None = None, lease: Lease | None = None):
        self.key, self.hit, self._lease = key, hit, lease

    def keep(self, result: Any) -> None:
        """Cache a job's answer bought from the provider (a degraded one is not worth keeping)."""
        if self.key is None or result is None:
            return
        bought = result["status"] == "succeeded" and not result.get("cache_hit")
        if bought and not long_content.degraded(result):
            _store(self.key, result)

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


@contextmanager
def looked_up(claim: jobs.Claim, tier: Tier) -> Iterator[Reuse]:
    """The cached answer of a claimed job, or the lead on buying it (released on exit), so a
    key is bought at most once at a time."""
    key = response_cache.key_for(claim.kind, claim.type, tier, claim.content, claim.user_id)
    if key is None:
        yield Reuse(None)
        return

    def ready() -> Cached | None:
        with transaction() as conn:
            return response_cache.lookup(conn, key)

    cached = ready()
    if cached is not None:
        yield Reuse(key, hit=cached)
        return
    flight = get_single_flight().lead_or_wait(key.digest, ready, job_id=claim.job_id, delivery=claim.delivery)
    if flight.value is not None:
        log.info(
            "served from an identical job in flight",
            extra={"job_id": claim.job_id, "tier": tier.name, "waited_s": round(flight.waited_seconds, 3)},
        )
        yield Reuse(key, hit=flight.value)
        return
    metrics.cache_lookups.labels(tier=tier.name, kind=claim.kind, outcome="miss").inc()
    reuse = Reuse(key, lease=flight.lease)
    try:
        yield reuse
    finally:
        reuse.release()


def _store(key: CacheKey, result: Any) -> None:
    """Keep the answer; the job is already settled, so a failure here only costs a future hit."""
    try:
        with transaction() as conn:
            response_cache.store(conn, key, result)
    except SQLAlchemyError:
        log.exception("answer not cached", extra={"job_id": result["job_id"], "tier": result["tier"]})


def record_hit(claim: jobs.Claim, cached: Cached) -> None:
    """The hit's zero-cost ledger row and the job's cache mark, committed before it settles."""
    with transaction() as conn:
        call_id = claim.call_id
        if call_id is None:  # a redelivery: no pending row was written for it
            call_id = open_row(conn, claim, cached.model_used or "", Decimal(0))
        response_cache.record_hit(conn, call_id=call_id, cached=cached)
        conn.execute(MARK_HIT, {"j": claim.job_id, "d": claim.delivery})
