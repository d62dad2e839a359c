"""A worker survives a broker restart: a guard in kombu's Redis transport (kombu 5.7.0).

When Redis restarts under a busy worker, Celery releases the broken connection and kombu
drops the channel's ``connection.client``; the channel's close (``QoS.restore_unacked``) and the
ack of a task that finished meanwhile then build a client for it and raise ``AttributeError``,
which stops the worker ("Unrecoverable error"). Both callers already tolerate connection errors,
so the guard makes a closed channel raise ``redis.ConnectionError``. Nothing is lost: the
messages stay in the ``unacked`` hash for kombu's sweep, or, if Redis lost its data, recovery
re-publishes them from Postgres. Reproduced by tests/pipeline/test_broker_loss.py; see
docs/operations.md, "Broker restarts".
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
