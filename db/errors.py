"""Database exceptions in the project's terms, and the retry for what must reach the database.

- ``UNAVAILABLE``: Postgres unreachable or the pool exhausted. Never the job's fault: retried.
- ``translate``: the project error a task raises instead (workers/errors.py): ``SystemFault``
  when Postgres stayed unavailable, ``DataRefused`` when it refused the data. Neither quotes
  the original message, which can carry row data.
- ``durably``: a write retried through an outage, for what was already paid for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential

from config.settings import get_settings
from workers.errors import DataRefused, LitinkError, SystemFault

log = logging.getLogger(__name__)

UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)

RECORD_BACKOFF_FIRST = 0.25
RECORD_BACKOFF_MAX = 5.0

T = TypeVar("T")


def cause(exc: BaseException) -> str:
    """The driver's exception class, e.g. ``DataError``: never its message."""
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ if orig is not None else type(exc).__name__


def translate(exc: BaseException, *, task_id: str | None, retries: int) -> LitinkError | None:
    """The project error for a database exception that ends a task, or None when ``exc`` is
    not one (the caller re-raises it unchanged)."""
    if isinstance(exc, UNAVAILABLE):
        return SystemFault(f"Postgres unreachable ({cause(exc)}) after {retries} retries; task {task_id}")
    if isinstance(exc, DBAPIError):
        log.error("database refused a row", extra={"job_id": task_id, "error": cause(exc)})
        return DataRefused(f"the database refused the data of job {task_id} ({cause(exc)}); nothing was stored")
    return None


def durably(
    write: Callable[[], T],
    *,
    what: str,
    job_id: str,
    sleep: Callable[[float], None] = time.sleep,
    budget_seconds: float | None = None,
) -> T:
    """Run a database write, retrying while Postgres is unavailable with a doubling wait, for at
    most ``budget_seconds`` (default ``SETTLE_RETRY_SECONDS``); then the outage propagates."""
    budget = get_settings().settle_retry_seconds if budget_seconds is None else budget_seconds

    def warn(state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else None
        log.warning("could not record %s; retrying", what, extra={"job_id": job_id, "wait": wait})

    retrying = Retrying(
        retry=retry_if_exception_type(UNAVAILABLE),
        wait=wait_exponential(
            multiplier=RECORD_BACKOFF_FIRST, exp_base=2, min=RECORD_BACKOFF_FIRST, max=RECORD_BACKOFF_MAX
        ),
        # Never start a wait that would end past the budget: give up and let the task retry.
        stop=stop_before_delay(budget),
        before_sleep=warn,
        sleep=sleep,
        reraise=True,
    )
    return retrying(write)
