"""The base class of every Litink task: what leaves a task never carries the user's content.

- Arguments: the worker's requests redact ``argsrepr`` / ``kwargsrepr``
  (workers/ops/redaction.py), and a retry (``Task.retry``, ``autoretry_for``, a retry after a
  lost worker) is rebuilt with those redacted reprs: ``signature_from_request`` takes its
  options from ``Request.as_execution_options()``, which does not include them, so without
  this the retry's message and its task-sent event would carry a fresh repr of every argument.
- Exceptions: a database error's text can quote the row (``DataError`` "invalid input ...",
  SQLAlchemy's ``[parameters: ...]``); it is replaced by ``DataRefused`` naming the job, raised
  ``from None`` so the traceback in the task-failed event and the result backend drops the
  original. An unreachable Postgres or Redis, once the task's retries are spent, becomes a
  ``SystemFault`` that says which.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Retry
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import SQLAlchemyError

from db import errors as db_errors
from workers.errors import SystemFault
from workers.ops.internals import CELERY, Internal

RELIES_ON = (
    Internal("celery.app.task:Task.Request", CELERY),
    Internal(
        "celery.app.task:Task.signature_from_request",
        CELERY,
        "(self, request=None, args=None, kwargs=None, queue=None, **extra_options)",
    ),
)


class LitinkTask(Task):
    Request = "workers.ops.redaction:RedactedRequest"

    def signature_from_request(
        self, request: Any = None, args: Any = None, kwargs: Any = None, queue: Any = None, **extra_options: Any
    ) -> Any:
        request = self.request if request is None else request
        for field in ("argsrepr", "kwargsrepr"):
            value = request.get(field) if request is not None else None
            if value is not None:
                extra_options.setdefault(field, value)
        return super().signature_from_request(request, args, kwargs, queue, **extra_options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Retry:
            raise
        except SQLAlchemyError as exc:
            translated = db_errors.translate(exc, task_id=self.request.id, retries=self.request.retries)
            if translated is None:
                raise
            raise translated from None
        except (RedisConnectionError, RedisTimeoutError, BrokerError) as exc:
            raise SystemFault(f"Redis unreachable ({type(exc).__name__}); task {self.request.id}") from None
