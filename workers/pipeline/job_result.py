"""The JobResult: the one shape every producer receives. Built from a ``jobs`` row only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from workers.pipeline.validation import JOB_ID

JOB_COLUMNS = (
    "id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,"
    " used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,"
    " request_sha256"
)
FINISHED = frozenset({"succeeded", "failed", "rejected"})


def money(value: Decimal | None) -> str:
    """A decimal string with every digit and no exponent (e.g. "0.000123")."""
    return format(value or Decimal(0), "f")


def job_result(row: Any) -> dict[str, Any]:
    return {
        "job_id": row.id,
        "status": row.status,
        "reason": row.reason,
        "detail": row.detail,
        "retry_after": row.retry_after,
        "kind": row.kind,
        "type": row.type or None,  # "" on a rejection whose type was invalid
        "tier": row.tier,
        "content": row.result_content,
        "model_used": row.model_used,
        "used_fallback": bool(row.used_fallback),
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "total_tokens": row.prompt_tokens + row.completion_tokens,
            "cost_usd": money(row.cost_usd),
        },
    }


def unrecorded_rejection(
    job_id: Any, kind: str, type_: str | None, tier: str | None, reason: str, detail: Any
) -> dict[str, Any]:
    """A rejection that has no jobs row of its own (its job id or user id was invalid, or the
    job id belongs to another job)."""
    return {
        "job_id": job_id,
        "status": "rejected",
        "reason": reason,
        "detail": detail,
        "retry_after": None,
        "kind": kind,
        "type": type_,
        "tier": tier,
        "content": None,
        "model_used": None,
        "used_fallback": False,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost_usd": "0"},
    }


class QuietResult(Mapping[str, Any]):
    """A JobResult as a task returns it: stored and sent whole (JSON through ``__json__``), but
    its ``repr``, which Celery puts in the task-succeeded event, Flower, ``flower.db`` and the
    worker's log, is a summary without content."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]):
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __json__(self) -> dict[str, Any]:
        return self._data

    def __repr__(self) -> str:
        return summary(self._data)


def summary(result: Mapping[str, Any]) -> str:
    """Job id, status, reason, tokens and cost: what operators need, nothing the user wrote."""
    job_id = result.get("job_id")
    shown = job_id if isinstance(job_id, str) and JOB_ID.fullmatch(job_id) else "<invalid id>"
    usage = result.get("usage") or {}
    return (
        f"JobResult(job_id={shown}, status={result.get('status')}, reason={result.get('reason')},"
        f" tokens={usage.get('total_tokens', 0)}, cost_usd={usage.get('cost_usd', '0')})"
    )


def quiet(result: Mapping[str, Any]) -> QuietResult:
    return result if isinstance(result, QuietResult) else QuietResult(result)
