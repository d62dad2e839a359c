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
from celery.backends.base import BackendStoreError
from celery.backends.redis import RedisBackend, SentinelBackend
from kombu.utils.encoding import bytes_to_str
from kombu.utils.objects import cached_property

from workers.ops.internals import CELERY, Internal

_BACKEND = "celery.backends.redis:RedisBackend"
RELIES_ON = (
    Internal(
        f"{_BACKEND}._store_result", CELERY, "(self, task_id, result, state, traceback=None, request=None, **kwargs)"
    ),
    Internal(
        f"{_BACKEND}._get_result_meta",
        CELERY,
        "(self, result, state, traceback, request, format_date=True, encode=False)",
    ),
    Internal(f"{_BACKEND}._MAX_STR_VALUE_SIZE", CELERY),
    Internal(f"{_BACKEND}.ensure", CELERY, "(self, fun, args, **policy)"),
    Internal(f"{_BACKEND}.get_key_for_task", CELERY, "(self, task_id, key='')"),
    Internal(f"{_BACKEND}.encode", CELERY, "(self, data)"),
    Internal(f"{_BACKEND}.client", CELERY),
    Internal(f"{_BACKEND}.expires", CELERY, assigned_in="celery.backends.base"),
    Internal(f"{_BACKEND}.failure_expires", CELERY, assigned_in="celery.backends.redis"),
)

MODULE = "workers.ops.result_backend"


def backend_url(redis_url: str, *, sentinel: bool = False) -> str:
    """The ``result_backend`` setting: our class, then the URL Celery passes it."""
    return f"{MODULE}:{'GuardedSentinelBackend' if sentinel else 'GuardedRedisBackend'}+{redis_url}"


_FINAL = " or ".join(f"status == '{state}'" for state in sorted(states.READY_STATES))
# KEYS[1] the result key. ARGV: the encoded meta, seconds to keep it (0: no expiry), 1 when the
# new state is final. The check and the write are one step on the server: no interleaving
# writer can slip a RETRY in after a final state, and the store costs one round trip.
_GUARDED_SET = f"""
local current = redis.call('GET', KEYS[1])
if current then
  local decoded, meta = pcall(cjson.decode, current)
  if decoded and type(meta) == 'table' then
    local status = meta['status']
    if status == 'SUCCESS' or (ARGV[3] == '0' and ({_FINAL})) then return 0 end
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class FinalStateWins(RedisBackend):
    """A stored final state wins over any later non-final one (the base of both backends)."""

    def _store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError("value too large for Redis backend", state=state, task_id=task_id)
        expires = self.failure_expires if state == states.FAILURE else self.expires
        final = state in states.READY_STATES
        # Retried on a connection error like Celery's own set (ensure, then always_retry).
        self.ensure(self._guarded_set, (self.get_key_for_task(task_id), value, expires, final))
        return result

    @cached_property
    def _guarded_set_script(self) -> Any:
        return self.client.register_script(_GUARDED_SET)  # EVALSHA, loaded again after a flush

    def _guarded_set(self, key: bytes, value: Any, expires: Any, final: bool) -> Any:
        return self._guarded_set_script(keys=[key], args=[value, int(expires or 0), 1 if final else 0])


class GuardedRedisBackend(FinalStateWins):
    """Celery's Redis result backend, final state first."""


class GuardedSentinelBackend(FinalStateWins, SentinelBackend):
    """Celery's Sentinel result backend (REDIS_URL with sentinel://), final state first."""
