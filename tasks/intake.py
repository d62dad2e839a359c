"""The producer-facing submit tasks: admit the job, then hand it to its tier's queue.

``self.replace`` freezes the tier task under this task's id, so
``AsyncResult(job_id).get()`` returns the tier task's final JobResult.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Signature, states
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from config import get_settings
from db.errors import UNAVAILABLE
from tasks.generation import run_job
from workers.app import app
from workers.ops.internals import CELERY, Internal
from workers.ops.task_base import LitinkTask
from workers.pipeline.admission import Admission, admit
from workers.pipeline.job_result import QuietResult, quiet
from workers.pipeline.notify import notify_job, notify_unrecorded
from workers.pipeline.validation import JobRequest, parse_submission

log = logging.getLogger(__name__)

# Backoff while Postgres is unreachable: 1, 2, 4, ... 60 s (never 0: no jitter), for at least
# INTAKE_DB_OUTAGE_SECONDS in total.
INTAKE_RETRY_BACKOFF_MAX = 60

# IntakeTask.on_replace publishes and returns, which relies on Task.replace returning what
# on_replace returns.
RELIES_ON = (Internal("celery.app.task:Task.on_replace", CELERY, "(self, sig)"),)


def outage_retries(outage_seconds: float, backoff_max: int = INTAKE_RETRY_BACKOFF_MAX) -> int:
    """How many backoff retries (1, 2, 4, ... capped) cover ``outage_seconds``."""
    retries, waited = 0, 0
    while waited < outage_seconds:
        waited += min(2**retries, backoff_max)
        retries += 1
    return retries


class IntakeTask(LitinkTask):
    """Base of the submit tasks: replacement without Celery's Ignore.

    Stock ``Task.replace`` publishes the new signature and then raises ``Ignore`` so that the
    replaced task stores no result. On Python 3.11 Celery answers that Ignore by building two
    billiard ``ExceptionInfo`` objects (a copy of every frame's ``co_positions`` and a
    formatted traceback): 22% of a worker's CPU in the pipeline profile (docs/benchmarks.md).
    Intake tasks therefore never store their own return value (``ignore_result``), so
    ``on_replace`` publishes and simply returns; an answer given at intake (a rejection) is
    stored under the job id explicitly, where the tier task would have stored it.
    """

    ignore_result = True
    store_errors_even_if_ignored = True  # a system fault still reaches the producer's get()
    autoretry_for = UNAVAILABLE  # Postgres unreachable: admission is idempotent, wait it out
    retry_backoff = True
    retry_backoff_max = INTAKE_RETRY_BACKOFF_MAX
    retry_jitter = False  # full jitter can draw 0 s: a retry racing the state its predecessor stores
    max_retries = outage_retries(get_settings().intake_db_outage_seconds)

    def on_replace(self, sig: Signature) -> Any:
        if self.request.is_eager:
            return super().on_replace(sig)
        try:
            hand_over(sig)
        except HANDOVER_ERRORS:
            # The job is admitted (its row is committed): recovery publishes it from Postgres,
            # and the producer's get() still receives the tier task's JobResult.
            log.warning(
                "hand-over not published (broker unreachable); recovery will", extra={"job_id": self.request.id}
            )
        return None

    def answer(self, admission: Admission) -> QuietResult:
        """Store an answer given at intake under the job id (the task id), then notify it."""
        result = quiet(admission.result or {})
        try:
            if admission.store:
                self.backend.store_result(self.request.id, result, states.SUCCESS)
        except UnicodeEncodeError:
            # A task id with an unpaired surrogate: no Redis client can name it, so no
            # producer can be waiting on it either.
            log.error("answer not stored: the task id cannot be encoded", extra={"reason": result["reason"]})
            return result
        if admission.notify_row is not None:
            notify_job(self.app, admission.notify_row, result)
        else:
            notify_unrecorded(self.app, self.request.id, admission.notify_unrecorded, result)
        return result


# A broker failover (Sentinel promoting a replica) takes a few seconds. kombu retries a publish
# only on the errors it knows; when the connection is replaced under a producer's channel it
# can surface as AttributeError ('NoneType' object has no attribute 'client'). The jobs row is
# already written, so giving up here would strand the job: try again for a while instead. A
# handover published twice is harmless (the tier task is idempotent).
HANDOVER_ERRORS = (KombuOperationalError, RedisError, OSError, AttributeError)
HANDOVER_ATTEMPTS = 15
HANDOVER_PAUSE_S = 1.0


def hand_over(sig: Any, sleep: Callable[[float], None] = time.sleep) -> None:
    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("handover not published (%s); trying again", type(error).__name__)

    retrying = Retrying(
        retry=retry_if_exception_type(HANDOVER_ERRORS),
        stop=stop_after_attempt(HANDOVER_ATTEMPTS),
        wait=wait_fixed(HANDOVER_PAUSE_S),
        before_sleep=warn,
        sleep=sleep,
        reraise=True,
    )
    retrying(sig.delay)


def _submit(task: IntakeTask, kind: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    submission = parse_submission(kind, task.request.id, args, kwargs)
    admission = admit(submission)
    if admission.tier is None or not isinstance(submission, JobRequest):
        return task.answer(admission)
    req, tier = submission, admission.tier
    assert admission.published_at is not None
    # The jobs row is the whole job: the message carries its id and when it was published
    # (recovery compares that with jobs.published_at to find a message the broker lost).
    handover = run_job.signature(
        kwargs={"job_id": req.job_id, "queued_at": admission.published_at.timestamp()},
        queue=tier.queue,
        priority=tier.priority,
        # Flower, events and logs show this instead of the kwargs: never the user's content.
        kwargsrepr=repr({"job_id": req.job_id, "kind": kind, "type": req.type, "tier": tier.name}),
        argsrepr="()",
    )
    return task.replace(handover)


# The contract is the documented keyword arguments. The tasks take *args and **kwargs so that
# any other shape reaches the validation and is answered with an invalid_input JobResult,
# instead of a TypeError raised by Celery before our code runs. `self` is positional-only, so
# even an argument named "self" lands in kwargs.


@app.task(bind=True, base=IntakeTask, name="litink.submit_script")
def submit_script(self: IntakeTask, /, *args: Any, **kwargs: Any) -> Any:
    """Write a script (cinematic, narration, educational, marketing) from the content.

    Keyword arguments: ``user_id``, ``content``, ``script_type="cinematic"``,
    ``idempotency_key=None``, ``notify=None``.
    """
    return _submit(self, "script", args, kwargs)


@app.task(bind=True, base=IntakeTask, name="litink.submit_analysis")
def submit_analysis(self: IntakeTask, /, *args: Any, **kwargs: Any) -> Any:
    """Analyse the content (summary, keywords, difficulty, genre, characters).

    Keyword arguments: ``user_id``, ``content``, ``analysis_type="summary"``,
    ``idempotency_key=None``, ``notify=None``.
    """
    return _submit(self, "analysis", args, kwargs)
