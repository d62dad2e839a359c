"""What a model was seen not to do, shared by every worker: a model that answered a
structured-output request (``response_format`` json_schema) in prose is remembered for a day,
so later batched analyses on it go straight to one call per type instead of paying for a
batched answer they cannot use. Redis unreachable: nothing is remembered, nothing breaks."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis

from config import get_settings
from workers.redis_connection import redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "litink:no_structured_outputs:"
REMEMBER_SECONDS = 24 * 3600  # a provider may add support; look again daily


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    s = get_settings()
    return redis_client(s.require_redis_url(), s.redis_sentinel_master, socket_timeout=2, socket_connect_timeout=2)


def lacks_structured_outputs(model: str) -> bool:
    try:
        return bool(_redis().exists(KEY_PREFIX + model))
    except redis.RedisError:
        return False


def remember_no_structured_outputs(model: str) -> None:
    try:
        if _redis().set(KEY_PREFIX + model, 1, ex=REMEMBER_SECONDS, nx=True):
            log.info(
                "model answered a structured-output request in prose; batches on it go per type", extra={"model": model}
            )
    except redis.RedisError:
        pass
