"""The boundary: a submission as a producer sent it, checked before anything looks it up.

Every field is checked for type, length (matching its column) and allowed characters
(``fullmatch``; no NUL, no lone surrogates). Unknown keyword arguments, positional arguments
and missing required ones are reported the same way, and all errors at once. Sizes are
checked before content is scanned, copied or hashed. Error texts never echo a value: they
name the field and say what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config import get_catalog, get_settings
from config.prompts import analysis_types, script_types
from workers.pipeline import batch_types as batch

# Column sizes (db/models.py, table jobs).
JOB_ID_MAX = 64
USER_ID_MAX = 64
IDEMPOTENCY_KEY_MAX = 128
NOTIFY_TASK_MAX = 120
NOTIFY_QUEUE_MAX = 50  # '{"task": ..., "queue": ...}' fits jobs.notify, VARCHAR(200)

# Celery task ids are uuids; producers may choose their own within this alphabet.
JOB_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:@-]{{0,{JOB_ID_MAX - 1}}}")
USER_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.:@-]{{0,{USER_ID_MAX - 1}}}")
IDEMPOTENCY_KEY = re.compile(rf"[!-~]{{1,{IDEMPOTENCY_KEY_MAX}}}")  # printable ASCII, no space
NOTIFY_TASK = re.compile(rf"[A-Za-z_][A-Za-z0-9_.:-]{{0,{NOTIFY_TASK_MAX - 1}}}")
NOTIFY_QUEUE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,{NOTIFY_QUEUE_MAX - 1}}}")
# Postgres text cannot hold NUL; a lone surrogate cannot be encoded as UTF-8.
FORBIDDEN_IN_TEXT = re.compile("[\x00\ud800-\udfff]")

KINDS = {"script": "script_type", "analysis": "analysis_type"}
DEFAULT_TYPE = {"script": "cinematic", "analysis": "summary"}
OPTIONAL = ("idempotency_key", "notify")


@dataclass(frozen=True)
class JobRequest:
    """A submission that passed the shape checks (the tier's size limit comes later)."""

    job_id: str
    kind: str  # script or analysis
    type: str
    user_id: str
    content: str
    idempotency_key: str | None = None
    notify: dict[str, str] | None = None  # {"task": name, "queue": name}, queue allow-listed

    @property
    def request_sha256(self) -> str:
        """What the job asks for; a reused idempotency key must ask for the same."""
        digest = hashlib.sha256(f"{self.kind}\x00{self.type}\x00".encode())
        digest.update(self.content.encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Invalid:
    """A submission that cannot be admitted: each bad field and what is allowed.

    The fields that did pass are kept, so the rejection can still be recorded (a valid job
    id and user id) and notified (a valid notify target).
    """

    job_id: Any
    kind: str
    type: str | None
    errors: dict[str, str]
    user_id: str | None = None
    notify: dict[str, str] | None = None

    @property
    def recordable(self) -> bool:
        """A jobs row can hold this rejection: its id and user are valid."""
        return self.user_id is not None and "job_id" not in self.errors


def max_content_chars() -> int:
    """The largest content any tier accepts: larger is refused before any lookup."""
    return max(tier.max_content_chars for tier in get_catalog().tiers.values())


def parse_submission(kind: str, job_id: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> JobRequest | Invalid:
    """Check every field of a submit task's message; all errors at once."""
    type_field = KINDS[kind]
    allowed = ("user_id", "content", type_field, *OPTIONAL)
    errors: dict[str, str] = {}

    if not _valid_text(job_id, JOB_ID):
        errors["job_id"] = (
            f"the task id must be 1-{JOB_ID_MAX} characters: letters, digits and _ . : @ -, "
            "starting with a letter or digit"
        )
    if args:
        errors["arguments"] = f"positional arguments are not accepted; send keyword arguments: {', '.join(allowed)}"
    unknown = [name for name in kwargs if name not in allowed]
    if unknown:
        errors["unknown_arguments"] = f"{_names(unknown)} not accepted; the arguments are: {', '.join(allowed)}"

    user_id = kwargs.get("user_id")
    if "user_id" not in kwargs:
        errors["user_id"] = "is required"
    elif not _valid_text(user_id, USER_ID):
        errors["user_id"] = (
            f"must be a string of 1-{USER_ID_MAX} characters: letters, digits and _ . : @ -, "
            "starting with a letter or digit"
        )

    content = kwargs.get("content")
    if "content" not in kwargs:
        errors["content"] = "is required"
    elif (problem := content_error(content)) is not None:
        errors["content"] = problem

    type_ = kwargs.get(type_field, DEFAULT_TYPE[kind])
    known = script_types() if kind == "script" else analysis_types()
    if kind == "analysis":  # a list of types is one batched analysis ("summary+keywords")
        type_ = batch.normalise(type_)
        if not batch.known(type_):
            errors[type_field] = f"must be one of: {', '.join(known)}, or a list of them"
            type_ = None
    elif not (isinstance(type_, str) and type_ in known):
        errors[type_field] = f"must be one of: {', '.join(known)}"
        type_ = None

    key = kwargs.get("idempotency_key")
    if key is not None and not _valid_text(key, IDEMPOTENCY_KEY):
        errors["idempotency_key"] = (
            f"must be null or a string of 1-{IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces"
        )

    notify, notify_error = parse_notify(kwargs.get("notify"))
    if notify_error:
        errors["notify"] = notify_error

    if errors:
        return Invalid(
            job_id=job_id,
            kind=kind,
            type=type_,
            errors=errors,
            user_id=user_id if "user_id" not in errors else None,
            notify=notify,
        )
    # Every field passed its check above: these are the types the request declares.
    return JobRequest(job_id, kind, str(type_), str(user_id), str(content), key, notify)


def content_error(content: Any) -> str | None:
    limit = max_content_chars()
    if not isinstance(content, str):
        return f"must be a string of 1-{limit} characters"
    if len(content) > limit:  # before scanning: len() of a str costs nothing
        return f"is {len(content)} characters; at most {limit} are accepted on any tier"
    if FORBIDDEN_IN_TEXT.search(content):
        return "must not contain NUL characters or unpaired surrogates"
    if not content.strip():
        return "must contain something other than whitespace"
    return None


def size_errors(content: str, max_chars: int, tier: str) -> dict[str, str]:
    if len(content) > max_chars:
        return {"content": f"is {len(content)} characters; the {tier} tier accepts at most {max_chars}"}
    return {}


def parse_notify(notify: Any) -> tuple[dict[str, str] | None, str | None]:
    """The notify option as ``{"task", "queue"}``, or an error text.

    A bare task name goes to queue ``celery``, where a stock Celery worker listens by default.
    The queue must be one of ``NOTIFY_QUEUES``.
    """
    if notify is None:
        return None, None
    queues = get_settings().notify_queues
    shape = (
        f"must be null, a task name, or {{'task': name, 'queue': name}}; a task name is 1-{NOTIFY_TASK_MAX} "
        "characters (letters, digits and _ . : -, starting with a letter or _); the queue is one of: "
        + ", ".join(queues)
    )
    if isinstance(notify, str):
        task, queue = notify, "celery"
    elif isinstance(notify, Mapping) and set(notify) <= {"task", "queue"} and "task" in notify:
        task, queue = notify["task"], notify.get("queue", "celery")
    else:
        return None, shape
    if not _valid_text(task, NOTIFY_TASK) or not _valid_text(queue, NOTIFY_QUEUE):
        return None, shape
    if queue not in queues:
        return None, f"queue must be one of: {', '.join(queues)}"
    return {"task": task, "queue": queue}, None


def notify_target(stored: str | dict[str, Any] | None) -> tuple[str, str] | None:
    """(task, queue) of a notify option stored in ``jobs.notify``, re-checked against the
    allow-list as it stands now."""
    if stored is None:
        return None
    try:
        value = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return None
    target, error = parse_notify(value)
    return None if error or target is None else (target["task"], target["queue"])


def _valid_text(value: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


SHOWN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


def _names(names: list[str]) -> str:
    """Unknown argument names, quoted when they look like names; others only counted."""
    shown = [repr(n) for n in names if SHOWN_NAME.fullmatch(n)]
    hidden = len(names) - len(shown)
    if hidden:
        shown.append(f"{hidden} other argument name(s)")
    return ", ".join(shown)
