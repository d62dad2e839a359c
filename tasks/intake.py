"""The producer-facing submit tasks: admit the job, then hand it to its tier's queue.

``self.replace`` freezes the tier task under this task's id, so
``AsyncResult(job_id).get()`` returns the tier task's final JobResult.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Signature, Task, states
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError

from tasks.generation import run_job
from workers.app import app
from workers.pipeline import batch_types as batch
from workers.pipeline.admission import admit
from workers.pipeline.validation import JobRequest
from workers.quotas.periods import utcnow

log = logging.getLogger(__name__)


class IntakeTask(Task):
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
    autoretry_for = (OperationalError,)  # Postgres unreachable: admission is idempotent
    retry_backoff = True
    max_retries = 5

    def on_replace(self, sig: Signature) -> Any:
        if self.request.is_eager:
            return super().on_replace(sig)
        _hand_over(sig)
        return None

    def answer(self, result: dict[str, Any]) -> dict[str, Any]:
        self.backend.store_result(self.request.id, result, states.SUCCESS)
        return result


# A broker failover (Sentinel promoting a replica) takes a few seconds. kombu retries a publish
# only on the errors it knows; when the connection is replaced under a producer's channel it
# can surface as AttributeError ('NoneType' object has no attribute 'client'). The jobs row is
# already written, so giving up here would strand the job: try again for a while instead. A
# handover published twice is harmless (the tier task is idempotent).
HANDOVER_ERRORS = (KombuOperationalError, RedisError, OSError, AttributeError)
HANDOVER_ATTEMPTS = 15
HANDOVER_PAUSE_S = 1.0


def _hand_over(sig: Any, sleep: Any = time.sleep) -> None:
    for attempt in range(1, HANDOVER_ATTEMPTS + 1):
        try:
            sig.delay()
            return
        except HANDOVER_ERRORS as exc:
            if attempt == HANDOVER_ATTEMPTS:
                raise
            log.warning("handover not published (%s); trying again", type(exc).__name__)
            sleep(HANDOVER_PAUSE_S)


def _submit(task: IntakeTask, kind: str, type_: str, user_id: Any, content: Any, idempotency_key: Any, notify: Any):
    req = JobRequest(task.request.id, kind, type_, user_id, content, idempotency_key, notify)
    admission = admit(req)
    if admission.tier is None:
        return task.answer(admission.result)
    tier = admission.tier
    handover = run_job.signature(
        kwargs={
            "job_id": req.job_id,
            "user_id": req.user_id,
            "kind": kind,
            "type": type_,
            "tier": tier.name,
            "content": req.content,
            "notify": notify,
            "queued_at": utcnow().timestamp(),
        },
        queue=tier.queue,
        priority=tier.priority,
        # Flower, events and logs show this instead of the kwargs: never the user's content.
        kwargsrepr=repr({"job_id": req.job_id, "kind": kind, "type": type_, "tier": tier.name}),
    )
    return task.replace(handover)


@app.task(bind=True, base=IntakeTask, name="litink.submit_script")
def submit_script(self, user_id, content, script_type="cinematic", idempotency_key=None, notify=None):
    """Write a script (cinematic, narration, educational, marketing) from the content."""
    return _submit(self, "script", script_type, user_id, content, idempotency_key, notify)


@app.task(bind=True, base=IntakeTask, name="litink.submit_analysis")
def submit_analysis(self, user_id, content, analysis_type="summary", idempotency_key=None, notify=None):
    """Analyse the content (summary, keywords, difficulty, genre, characters); a list of types
    runs them together in one provider call (workers/pipeline/batch.py)."""
    return _submit(self, "analysis", batch.normalise(analysis_type), user_id, content, idempotency_key, notify)
