"""One redis-py client per kombu channel instead of one per command.

kombu's Redis transport builds a new ``redis.Redis`` object (``Channel._create_client``) for
every publish, event, ack and unacked-bookkeeping call that is not given a client. Building
one costs about as much CPU as the command it sends (redis-py fills a case-insensitive dict
of ~200 response callbacks and an event dispatcher each time): several times per job.

A ``redis.Redis`` without ``single_connection_client`` holds no connection of its own; every
command borrows one from the channel's connection pool, so one client per channel is safe to
share between threads. The cached client is rebuilt whenever the channel's pool changes (a
reconnect replaces the pool). The asynchronous client (the BRPOP/pub-sub loop) is kombu's own
and already cached.
"""

from __future__ import annotations

import threading
from typing import Any

from kombu.transport import redis as kombu_redis

from workers.ops.internals import KOMBU, Internal

RELIES_ON = (
    Internal("kombu.transport.redis:Channel._create_client", KOMBU, "(self, asynchronous=False)"),
    Internal("kombu.transport.redis:Channel.pool", KOMBU),
)

_ATTR = "_litink_sync_client"
_lock = threading.Lock()
# kombu's own method, taken when the patch is installed (not at import, so that a kombu without
# it fails the RELIES_ON check by name rather than this module's import).
_original: Any = None


def _create_client(self: Any, asynchronous: bool = False) -> Any:
    if asynchronous:
        return _original(self, asynchronous=True)
    client = self.__dict__.get(_ATTR)
    pool = self.pool
    if client is None or client.connection_pool is not pool:
        with _lock:
            client = self.__dict__.get(_ATTR)
            if client is None or client.connection_pool is not pool:
                client = _original(self, asynchronous=False)
                self.__dict__[_ATTR] = client
    return client


def install() -> None:
    """Patch kombu's Redis channel in this process (idempotent)."""
    global _original
    if kombu_redis.Channel._create_client is not _create_client:
        _original = kombu_redis.Channel._create_client
        kombu_redis.Channel._create_client = _create_client  # type: ignore[method-assign]


def uninstall() -> None:
    """Back to kombu's behaviour (the benchmark measures both)."""
    if _original is not None:
        kombu_redis.Channel._create_client = _original  # type: ignore[method-assign]
