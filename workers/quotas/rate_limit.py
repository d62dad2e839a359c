"""Per-user requests-per-minute, shared by every worker process through Redis.

Celery's own ``rate_limit`` is per worker process, so it cannot hold a limit across a
fleet. The ``limits`` library's moving window runs as one atomic Lua script in Redis: a
true sliding minute, so a burst at a window edge cannot double the rate.

When Redis cannot be reached the limiter fails OPEN by default (RATE_LIMIT_FAIL_OPEN):
the quota and spend cap in Postgres still bound what a user can spend, and refusing every
job because a throttle is down would turn a Redis blip into an outage. Set it to false to
fail closed (reason ``rate_limiter_unavailable``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItemPerMinute
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from workers.redis_connection import limits_storage

log = logging.getLogger(__name__)
NAMESPACE = "litink:rpm"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int | None = None  # seconds until a request would be allowed
    degraded: bool = False  # Redis was unreachable and the fail-open policy applied


class UserRateLimiter:
    def __init__(self, redis_url: str, *, fail_open: bool = True, sentinel_master: str | None = None):
        self._limiter = MovingWindowRateLimiter(
            limits_storage(redis_url, sentinel_master, key_prefix=NAMESPACE, socket_timeout=1, socket_connect_timeout=1)
        )
        self._fail_open = fail_open

    def hit(self, user_id: str, per_minute: int) -> Decision:
        """Count one submission; say whether it is within the user's limit."""
        item = RateLimitItemPerMinute(per_minute)
        try:
            if self._limiter.hit(item, user_id):
                return Decision(True)
            reset_at = self._limiter.get_window_stats(item, user_id).reset_time
        except (RedisError, OSError) as exc:
            log.warning(
                "rate limiter unavailable (%s); failing %s", type(exc).__name__, "open" if self._fail_open else "closed"
            )
            return Decision(self._fail_open, None if self._fail_open else 5, degraded=True)
        return Decision(False, max(1, math.ceil(reset_at - time.time())))


@lru_cache(maxsize=4)
def user_rate_limiter(redis_url: str, fail_open: bool, sentinel_master: str | None = None) -> UserRateLimiter:
    return UserRateLimiter(redis_url, fail_open=fail_open, sentinel_master=sentinel_master)
