"""A worker survives a broker restart: a guard around kombu's Redis ``QoS.restore_unacked``.

Reproduced here (tests/pipeline/test_broker_loss.py, kombu 5.7.0; unchanged on kombu's main
branch as of this writing): when Redis restarts under a busy worker, Celery's consumer closes
the broken connection (``on_connection_error_after_connected`` -> ``Connection.release``),
the channel's close calls ``restore_unacked``, which builds a new Redis client from
``self.connection.client``, already ``None``:

    AttributeError: 'NoneType' object has no attribute 'hostname'   (Channel._connparams)

``ignore_errors`` only ignores connection errors, so the worker stops with "Unrecoverable
error" (1 process in 14 in the issue; under honcho that stopped all the others).

The guard lets that one call fail quietly. Nothing is lost by it: the messages it would have
restored are still in the ``unacked`` hash (Redis with persistence), where kombu's sweep
restores them after the visibility timeout, or gone with Redis's data (no persistence), where
recovery (workers/pipeline/recovery.py) re-publishes their jobs from Postgres.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)

_original = kombu_redis.QoS.restore_unacked


def _restore_unacked(self: Any, client: Any = None) -> Any:
    try:
        return _original(self, client)
    except AttributeError:
        connection = getattr(self.channel, "connection", None)
        if connection is not None and getattr(connection, "client", None) is not None:
            raise  # not the closed-connection case: a real bug
        log.warning(
            "could not restore %d unacked message(s) while closing a broken broker connection; they come back"
            " after the visibility timeout, or recovery re-publishes their jobs",
            len(self._delivered),
        )
        self._delivered.clear()
        return None


def install() -> None:
    """Idempotent: patch once per process."""
    if kombu_redis.QoS.restore_unacked is not _restore_unacked:
        kombu_redis.QoS.restore_unacked = _restore_unacked
