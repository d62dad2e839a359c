"""The producer-facing submit tasks: admit the job, then hand it to its tier's queue.

``self.replace`` keeps the task id, so ``AsyncResult(job_id).get()`` returns the tier
task's final JobResult.
"""

from __future__ import annotations

from typing import Any

from tasks.generation import run_job
from workers.admission import admit
from workers.app import app
from workers.periods import utcnow
from workers.validation import JobRequest


def _submit(task, kind: str, type_: str, user_id: Any, content: Any, idempotency_key: Any, notify: Any) -> dict:
    req = JobRequest(task.request.id, kind, type_, user_id, content, idempotency_key, notify)
    admission = admit(req)
    if admission.tier is None:
        return admission.result
    tier = admission.tier
    handover = run_job.signature(
        kwargs={"job_id": req.job_id, "user_id": req.user_id, "kind": kind, "type": type_, "tier": tier.name,
                "content": req.content, "notify": notify, "queued_at": utcnow().timestamp()},
        queue=tier.queue,
        priority=tier.priority,
    )
    return task.replace(handover)


@app.task(bind=True, name="litink.submit_script")
def submit_script(self, user_id, content, script_type="cinematic", idempotency_key=None, notify=None):
    """Write a script (cinematic, narration, educational, marketing) from the content."""
    return _submit(self, "script", script_type, user_id, content, idempotency_key, notify)


@app.task(bind=True, name="litink.submit_analysis")
def submit_analysis(self, user_id, content, analysis_type="summary", idempotency_key=None, notify=None):
    """Analyse the content (summary, keywords, difficulty, genre, characters)."""
    return _submit(self, "analysis", analysis_type, user_id, content, idempotency_key, notify)
