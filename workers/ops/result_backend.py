"""The result backend: Celery's Redis backend, except that a final state is never overwritten
by a non-final one.

Celery itself only refuses to overwrite SUCCESS. A task retried after a failure stores RETRY
after publishing its retry; when the retry runs first and stores FAILURE (or a rejection is
stored as the final answer), the late RETRY would leave the producer's ``get()`` waiting for
ever. Selected in celeryconfig.py as ``workers.ops.result_backend:GuardedRedisBackend+redis://...``.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.base import BackendStoreError, BaseKeyValueStoreBackend
from celery.backends.redis import RedisBackend, SentinelBackend
from kombu.utils.encoding import bytes_to_str

MODULE = "workers.ops.result_backend"


def backend_url(redis_url: str, *, sentinel: bool = False) -> str:
    """The ``result_backend`` setting: our class, then the URL Celery passes it."""
    return f"{MODULE}:{'GuardedSentinelBackend' if sentinel else 'GuardedRedisBackend'}+{redis_url}"


class FinalStateWins(BaseKeyValueStoreBackend):
    """A stored final state wins over any later non-final one (mixed into a Redis backend)."""

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        current = self._get_task_meta_for(task_id)["status"]
        if current == states.SUCCESS or (current in states.READY_STATES and state not in states.READY_STATES):
            return result
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
        except BackendStoreError as ex:
            raise BackendStoreError(str(ex), state=state, task_id=task_id) from ex
        return result


class GuardedRedisBackend(FinalStateWins, RedisBackend):
    """Celery's Redis result backend, final state first."""


class GuardedSentinelBackend(FinalStateWins, SentinelBackend):
    """Celery's Sentinel result backend (REDIS_URL with sentinel://), final state first."""
