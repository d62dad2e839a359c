"""Single-flight: identical requests in flight at once, across every worker process, make
one provider call. The first takes a Redis lock on the cache key and calls; the others poll
only the lock, then find the leader's answer in the response cache.

Waiting never fails a job: a lock expires by itself, a failed leader hands over to the next
waiter, the same job's next delivery takes a lock over at once (the delivery that took it was
killed or lost its claim, so it would never store an answer), and a waiter that waited too
long (or finds Redis unreachable) calls the provider itself. The steps and settings:
docs/cost-optimisations.md, "Single-flight".
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

import redis

from config import get_settings
from workers.redis_connection import redis_client

log = logging.getLogger(__name__)

T = TypeVar("T")
KEY_PREFIX = "litink:flight:"
POLL_SECONDS = 0.05
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] the lock. ARGV: our token, its lifetime (ms), our job's digest ('' for none), our
# delivery. A token is a nonce, the delivery number, then the job's digest (fixed widths; the
# digest, not the id, so that any job id compares exactly and encodes).
NONCE_CHARS = 32
DELIVERY_CHARS = 10
_ACQUIRE = f"""
local current = redis.call('GET', KEYS[1])
if current then
  local job = string.sub(current, {NONCE_CHARS + DELIVERY_CHARS + 1})
  local delivery = tonumber(string.sub(current, {NONCE_CHARS + 1}, {NONCE_CHARS + DELIVERY_CHARS}))
  if ARGV[3] == '' or job ~= ARGV[3] or delivery == nil or delivery > tonumber(ARGV[4]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


@dataclass
class Lease:
    """The leader's lock on one key; release it once the answer is stored (or the call failed)."""

    flight: SingleFlight
    key: str
    token: str

    def release(self) -> None:
        self.flight.release(self)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """Either this caller leads (``lease``), or another's answer is ready (``value``), or
    neither (the wait ran out, or Redis is unreachable): call the provider unlocked."""

    lease: Lease | None = None
    value: T | None = None
    waited_seconds: float = 0.0


class SingleFlight:
    def __init__(
        self,
        redis_url: str,
        *,
        lock_seconds: float,
        wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        sentinel_master: str | None = None,
    ):
        self._redis = redis_client(redis_url, sentinel_master, socket_timeout=2, socket_connect_timeout=2)
        self._release = self._redis.register_script(_RELEASE)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self.lock_ms = int(lock_seconds * 1000)
        self.wait_seconds = wait_seconds
        self._sleep = sleep

    def lead_or_wait(
        self, key: str, ready: Callable[[], T | None], *, job_id: str = "", delivery: int = 0
    ) -> Outcome[T]:
        """Lead the work for ``key``, or wait for the current leader's answer (``ready()``
        reads it; it is asked only when the lock is free). A lock taken by this delivery of
        ``job_id`` or an earlier one is taken over instead of waited for."""
        started = time.monotonic()
        job = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest() if job_id else ""
        token = f"{uuid.uuid4().hex}{delivery:0{DELIVERY_CHARS}d}{job}"
        while True:
            try:
                acquired = self._acquire(keys=[KEY_PREFIX + key], args=[token, self.lock_ms, job, delivery])
            except redis.RedisError:
                log.warning("single-flight lock unavailable; calling without it")
                return Outcome()
            waited = time.monotonic() - started
            if acquired:
                # A leader may have stored its answer and released just before we took the lock.
                value = ready()
                if value is not None:
                    self.release(Lease(self, key, token))
                    return Outcome(value=value, waited_seconds=waited)
                return Outcome(lease=Lease(self, key, token), waited_seconds=waited)
            if waited >= self.wait_seconds:
                return Outcome(waited_seconds=waited)
            self._sleep(POLL_SECONDS)

    def release(self, lease: Lease) -> None:
        try:
            self._release(keys=[KEY_PREFIX + lease.key], args=[lease.token])
        except redis.RedisError:
            log.warning("single-flight lock not released; it expires by itself")


@lru_cache(maxsize=1)
def get_single_flight() -> SingleFlight:
    s = get_settings()
    return SingleFlight(
        s.require_redis_url(),
        lock_seconds=s.single_flight_lock_seconds,
        wait_seconds=s.single_flight_wait_seconds,
        sentinel_master=s.redis_sentinel_master,
    )
