"""Redis clients for the project's own use (rate limits, the provider budget, health checks),
from REDIS_URL, plain or through Sentinel.

Celery and kombu read ``sentinel://`` URLs themselves (celeryconfig.py gives them the master
name); the clients here must follow a failover too, so each asks the Sentinels for the
current master instead of remembering an address:

- ``redis://host:6379/0`` -> ``redis.Redis.from_url``;
- ``sentinel://:pw@s1:26379/0;sentinel://s2:26379/0`` + ``REDIS_SENTINEL_MASTER`` ->
  ``Sentinel([(s1, 26379), (s2, 26379)]).master_for(master, db=0, password=pw)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from limits.storage import RedisSentinelStorage, RedisStorage, Storage
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel://"


@dataclass(frozen=True)
class SentinelURL:
    hosts: list[tuple[str, int]]
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelURL:
    """The Sentinel addresses, database and master password of a kombu ``sentinel://`` list."""
    parts = [urlsplit(chunk) for chunk in url.split(";") if chunk.strip()]
    hosts = [(p.hostname or "127.0.0.1", p.port or 26379) for p in parts]
    db = next((int(p.path.strip("/")) for p in parts if p.path.strip("/")), 0)
    password = next((p.password for p in parts if p.password), None)
    return SentinelURL(hosts, db, password)


def redis_client(url: str, sentinel_master: str | None = None, **options: Any) -> redis.Redis:
    """A client for ``url``; through Sentinel when it is a ``sentinel://`` list."""
    if not url.startswith(SENTINEL_SCHEME):
        return redis.Redis.from_url(url, **options)
    if not sentinel_master:
        raise ValueError("a sentinel:// URL needs the master name (REDIS_SENTINEL_MASTER)")
    parsed = parse_sentinel_url(url)
    timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(parsed.hosts, sentinel_kwargs=timeouts, **timeouts)
    return sentinel.master_for(sentinel_master, db=parsed.db, password=parsed.password, **options)


def limits_storage(url: str, sentinel_master: str | None = None, *, key_prefix: str, **options: Any) -> Storage:
    """The `limits` library's storage for ``url``; through Sentinel (always on the master: a
    limit read from a lagging replica would let bursts through) for a ``sentinel://`` list."""
    if not url.startswith(SENTINEL_SCHEME):
        return RedisStorage(url, key_prefix=key_prefix, **options)
    if not sentinel_master:
        raise ValueError("a sentinel:// URL needs the master name (REDIS_SENTINEL_MASTER)")
    parsed = parse_sentinel_url(url)
    hosts = ",".join(f"{h}:{p}" for h, p in parsed.hosts)
    extra: dict[str, Any] = {"db": parsed.db} | ({"password": parsed.password} if parsed.password else {})
    return RedisSentinelStorage(
        f"redis+sentinel://{hosts}/{sentinel_master}", key_prefix=key_prefix, use_replicas=False, **extra, **options
    )
