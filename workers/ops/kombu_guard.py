"""A worker survives a broker restart: a guard in kombu's Redis transport.

Reproduced here (tests/pipeline/test_broker_loss.py; kombu 5.7.0, and the code is unchanged
on kombu's main branch as of this writing): when Redis restarts under a busy worker, Celery's
consumer closes the broken connection (``on_connection_error_after_connected`` ->
``Connection.release``) and the transport drops the channel's ``connection.client``. Two
callers then build a new Redis client for that closed channel:

- the channel's close, ``QoS.restore_unacked``:
  ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (``Channel._connparams``);
- the ack of a task that finished meanwhile, ``QoS.ack``:
  ``AttributeError: 'NoneType' object has no attribute 'client'``.

Both callers already tolerate *connection* errors (``ignore_errors``, ``ack_log_error``), but an
AttributeError escapes and the worker stops with "Unrecoverable error" (1 process in 14 in the
issue; under honcho that stopped all the others). The guard makes a closed channel say what it
is: a ``redis.ConnectionError``. Nothing is lost by it: the messages it would have restored or
acked are still in the ``unacked`` hash (Redis with persistence), where kombu's sweep restores
them after the visibility timeout and the tier task finds its job finished, or gone with Redis's
data (no persistence), where recovery (workers/pipeline/recovery.py) re-publishes from Postgres.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from workers.ops.internals import KOMBU, Internal

RELIES_ON = (
    Internal("kombu.transport.redis:Channel._connparams", KOMBU, "(self, asynchronous=False)"),
    Internal("kombu.transport.redis:Channel.connection", KOMBU, assigned_in="kombu.transport.virtual.base"),
)

# kombu's own method, taken at install (a kombu without it fails the RELIES_ON check by name).
_original_connparams: Any = None


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    connection = getattr(self, "connection", None)
    if connection is None or getattr(connection, "client", None) is None:
        raise redis.ConnectionError("this broker channel's connection is closed")
    return _original_connparams(self, asynchronous)


def install() -> None:
    """Idempotent: patch once per process."""
    global _original_connparams
    if kombu_redis.Channel._connparams is not _connparams:
        _original_connparams = kombu_redis.Channel._connparams
        kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
