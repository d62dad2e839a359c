"""Checking a submission before anything is spent on it. Field-level errors, all at once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.prompts import analysis_types, script_types
from workers.pipeline import batch_types as batch

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")
MAX_IDEMPOTENCY_KEY = 128


@dataclass(frozen=True)
class JobRequest:
    """A submission as the producer sent it."""

    job_id: str
    kind: str  # script or analysis
    type: str
    user_id: str
    content: str
    idempotency_key: str | None = None
    notify: str | dict | None = None


def shape_errors(req: JobRequest) -> dict[str, str]:
    """Errors that do not depend on the user's tier."""
    errors: dict[str, str] = {}
    if not isinstance(req.user_id, str) or not USER_ID.match(req.user_id):
        errors["user_id"] = "must be 1-64 characters: letters, digits and _ . : @ -, starting with a letter or digit"
    if not isinstance(req.content, str) or not req.content.strip():
        errors["content"] = "must be a non-empty string"
    known = script_types() if req.kind == "script" else analysis_types()
    field = "script_type" if req.kind == "script" else "analysis_type"
    if not (batch.known(req.type) if req.kind == "analysis" else req.type in known):  # issue 13: lists
        errors[field] = f"unknown {field} {req.type!r}; one of: {', '.join(known)}"
    key = req.idempotency_key
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        errors["idempotency_key"] = f"must be a string of 1-{MAX_IDEMPOTENCY_KEY} characters"
    if req.notify is not None and notify_target(req.notify) is None:
        errors["notify"] = 'must be a task name, or {"task": name, "queue": name}'
    return errors


def size_errors(content: str, max_chars: int, tier: str) -> dict[str, str]:
    if len(content) > max_chars:
        return {"content": f"is {len(content)} characters; the {tier} tier accepts at most {max_chars}"}
    return {}


def notify_target(notify: str | dict) -> tuple[str, str] | None:
    """(task name, queue) for a notify option, or None when malformed.

    A bare task name goes to queue "celery", where a stock Celery worker listens by default.
    """
    if isinstance(notify, str):
        task, queue = notify, "celery"
    elif isinstance(notify, dict) and set(notify) <= {"task", "queue"}:
        task, queue = notify.get("task"), notify.get("queue", "celery")
    else:
        return None
    if not (isinstance(task, str) and TASK_NAME.match(task) and isinstance(queue, str) and TASK_NAME.match(queue)):
        return None
    return task, queue
