"""Single-flight: identical requests in flight at once, across every worker process, make
one provider call. The first takes a Redis lock on the cache key and calls; the others poll
only the lock, then find the leader's answer in the response cache.

Waiting never fails a job: a lock expires by itself, a failed leader hands over to the next
waiter, and a waiter that waited too long (or finds Redis unreachable) calls the provider
itself. The steps and settings: docs/cost-optimisations.md, "Single-flight".
"""

from __future__ import annotations

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
        self.lock_ms = int(lock_seconds * 1000)
        self.wait_seconds = wait_seconds
        self._sleep = sleep

    def lead_or_wait(self, key: str, ready: Callable[[], T | None]) -> Outcome[T]:
        """Lead the work for ``key``, or wait for the current leader's answer (``ready()``
        reads it; it is asked only when the lock is free)."""
        started = time.monotonic()
        token = uuid.uuid4().hex
        while True:
            try:
                acquired = self._redis.set(KEY_PREFIX + key, token, nx=True, px=self.lock_ms)
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
