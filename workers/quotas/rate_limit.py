"""Per-user requests-per-minute, shared by every worker process through Redis.

A true moving window (the user's last ``limit`` request times) in one small Lua script rather
than the ``limits`` library's moving window (which the provider budget uses): one round trip
that also returns when a refused request may retry, and four Redis commands per admission
instead of five plus a second call on refusal (docs/benchmarks.md). When Redis cannot be
reached it fails open unless RATE_LIMIT_FAIL_OPEN is false: docs/quotas.md, "Rate limits".
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from redis.exceptions import RedisError

from workers.redis_connection import redis_client

log = logging.getLogger(__name__)
NAMESPACE = "litink:rpm:"
WINDOW_SECONDS = 60

# KEYS[1] the user's request times, newest first. ARGV: limit, now (seconds), window (seconds).
# Returns "" when the request is counted, else the time at which one would be allowed.
_HIT = """
local limit, now, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and now - tonumber(oldest) < window then return tostring(tonumber(oldest) + window) end
if redis.call('LPUSH', KEYS[1], ARGV[2]) > limit then redis.call('LTRIM', KEYS[1], 0, limit - 1) end
redis.call('EXPIRE', KEYS[1], window)
return ''
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int | None = None  # seconds until a request would be allowed
    degraded: bool = False  # Redis was unreachable and the fail-open policy applied


class UserRateLimiter:
    def __init__(self, redis_url: str, *, fail_open: bool = True, sentinel_master: str | None = None):
        client = redis_client(redis_url, sentinel_master, socket_timeout=1, socket_connect_timeout=1)
        self._hit = client.register_script(_HIT)
        self._fail_open = fail_open

    def hit(self, user_id: str, per_minute: int) -> Decision:
        """Count one submission; say whether it is within the user's limit."""
        now = time.time()
        try:
            allowed_at = self._hit(keys=[NAMESPACE + user_id], args=[per_minute, repr(now), WINDOW_SECONDS])
        except (RedisError, OSError) as exc:
            log.warning(
                "rate limiter unavailable (%s); failing %s", type(exc).__name__, "open" if self._fail_open else "closed"
            )
            return Decision(self._fail_open, None if self._fail_open else 5, degraded=True)
        if not allowed_at:
            return Decision(True)
        return Decision(False, max(1, math.ceil(float(allowed_at) - now)))


@lru_cache(maxsize=4)
def user_rate_limiter(redis_url: str, fail_open: bool, sentinel_master: str | None = None) -> UserRateLimiter:
    return UserRateLimiter(redis_url, fail_open=fail_open, sentinel_master=sentinel_master)
