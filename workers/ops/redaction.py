"""What a task's arguments look like outside the ledger: in events, Flower, ``flower.db`` and
logs. Never the content.

Celery copies ``argsrepr`` / ``kwargsrepr`` from the message into the task-received event, the
worker's log lines and the request a retry is rebuilt from. A producer decides what its
message carries (a stock producer sends a repr of the whole content), so the worker replaces
both when the message arrives (:class:`RedactedRequest`), and every message the workers send
carries the redacted form (``LitinkTask.signature_from_request``).

Shown: identifiers (job id, user id, kind, type, tier) when they fit their pattern. Any other
value is shown as its type and size, and unknown argument names are only counted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from celery.worker.request import Request

from workers.ops.internals import CELERY, Internal

# The request's copy of the message headers and the reprs Celery reads from it.
RELIES_ON = tuple(
    Internal(f"celery.worker.request:Request.{name}", CELERY, assigned_in="celery.worker.request")
    for name in ("_request_dict", "_argsrepr", "_kwargsrepr")
)

SHOWN = frozenset(
    {"job_id", "user_id", "kind", "type", "script_type", "analysis_type", "tier", "queued_at", "event_id"}
)
KNOWN = SHOWN | frozenset(
    {
        "content",
        "idempotency_key",
        "notify",
        "payload",
        "signature",
        "success_url",
        "cancel_url",
    }
)
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


def value_summary(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return f"<str, {len(value)} chars>"
    if isinstance(value, Mapping | Sequence):
        return f"<{type(value).__name__}, {len(value)} items>"
    return f"<{type(value).__name__}>"


def args_repr(args: Any) -> str:
    if not args:
        return "()"
    count = len(args) if isinstance(args, Sequence) else 1
    return f"(<{count} positional argument(s) hidden>)"


def kwargs_repr(kwargs: Any) -> str:
    if not isinstance(kwargs, Mapping):
        return "<hidden>"
    parts = []
    unknown = 0
    for name, value in kwargs.items():
        if name not in KNOWN:
            unknown += 1
        elif name in SHOWN and _shown(value):
            parts.append(f"{name!r}: {value!r}")
        else:
            parts.append(f"{name!r}: {value_summary(value)!r}")
    if unknown:
        parts.append(f"'<unknown>': '{unknown} argument(s) hidden'")
    return "{" + ", ".join(parts) + "}"


def _shown(value: Any) -> bool:
    """An identifier-shaped string or a number: safe to show as is."""
    if isinstance(value, str):
        return SAFE_VALUE.fullmatch(value) is not None
    return isinstance(value, int | float) and not isinstance(value, bool)


class RedactedRequest(Request):
    """A worker request whose argsrepr / kwargsrepr are ours, whatever the message carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self._request_dict
        self._argsrepr = request["argsrepr"] = args_repr(request.get("args"))
        self._kwargsrepr = request["kwargsrepr"] = kwargs_repr(request.get("kwargs"))
