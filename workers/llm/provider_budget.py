"""The shared OpenRouter budget: requests per minute overall, and calls in flight per model.

Unlike the per-user limit, this one delays calls instead of rejecting them: the job is
already accepted, it just has to wait its turn. Both limits live in Redis, so they hold
across every worker process. Zero turns a limit off (the default).

The in-flight counter is a sorted set of (token, expiry): one Lua script admits a caller
only while fewer than N unexpired tokens exist, so a crashed worker's slot frees itself
when its expiry passes. No library offers an expiring distributed semaphore on Redis in
one round trip, hence the script.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import redis
from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter

from config import get_settings
from workers.redis_connection import limits_storage, redis_client

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
SLOT_TTL_SECONDS = 120  # longer than any single HTTP call (connect + read timeouts)

_ACQUIRE = """
local key, limit, now, expiry, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, expiry, token)
  redis.call('EXPIRE', key, 600)
  return 1
end
return 0
"""


class ProviderBudget:
    def __init__(
        self,
        redis_url: str,
        requests_per_minute: int,
        concurrency_per_model: int,
        sleep: Callable[[float], None] = time.sleep,
        sentinel_master: str | None = None,
    ) -> None:
        # Bounded waits: a Redis that stops answering must fail the call, not hang the thread.
        self._redis = redis_client(redis_url, sentinel_master, socket_timeout=2, socket_connect_timeout=2)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._rpm = RateLimitItemPerMinute(requests_per_minute)
        self._limiter = (
            MovingWindowRateLimiter(limits_storage(redis_url, sentinel_master, key_prefix="litink:provider"))
            if requests_per_minute
            else None
        )
        self._concurrency = concurrency_per_model
        self._sleep = sleep

    @contextmanager
    def slot(self, model: str) -> Iterator[None]:
        """Wait for the request budget and a free in-flight slot for ``model``."""
        while self._limiter is not None and not self._limiter.hit(self._rpm, "openrouter"):
            self._sleep(
                max(POLL_SECONDS, self._limiter.get_window_stats(self._rpm, "openrouter").reset_time - time.time())
            )
        if not self._concurrency:
            yield
            return
        key, token = f"litink:inflight:{model}", uuid.uuid4().hex
        while not self._acquire(
            keys=[key], args=[self._concurrency, time.time(), time.time() + SLOT_TTL_SECONDS, token]
        ):
            self._sleep(POLL_SECONDS)
        try:
            yield
        finally:
            # The call has been made (and maybe paid): a Redis that went away now must not
            # replace its answer with an exception. The slot frees itself at its expiry.
            try:
                self._redis.zrem(key, token)
            except redis.RedisError:
                log.warning("could not free an in-flight slot; it expires by itself", extra={"model": model})


@lru_cache(maxsize=1)
def _budget() -> ProviderBudget | None:
    s = get_settings()
    if not (s.provider_requests_per_minute or s.provider_concurrency_per_model):
        return None
    return ProviderBudget(
        s.require_redis_url(),
        s.provider_requests_per_minute,
        s.provider_concurrency_per_model,
        sentinel_master=s.redis_sentinel_master,
    )


@contextmanager
def provider_slot(model: str) -> Iterator[None]:
    budget = _budget()
    if budget is None:
        yield
    else:
        with budget.slot(model):
            yield
