"""The JobResult: the one shape every producer receives, built by ``build`` alone."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, Literal, NotRequired, TypedDict

from workers.money import exact_decimal
from workers.pipeline.validation import JOB_ID

JOB_COLUMNS = (
    "id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,"
    " used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,"
    " request_sha256, cache_hit"
)
FINISHED = frozenset({"succeeded", "failed", "rejected"})
Status = Literal["succeeded", "failed", "rejected", "queued", "running"]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: str  # an exact decimal string


class JobResult(TypedDict):
    """The contract of docs/architecture.md#the-jobresult."""

    job_id: str
    status: Status
    reason: str | None
    detail: Any
    retry_after: int | None
    kind: str | None
    type: str | list[str] | None  # a list for a batched analysis
    tier: str | None
    content: str | None
    model_used: str | None
    used_fallback: bool
    usage: Usage
    cache_hit: NotRequired[bool]
    answers: NotRequired[dict[str, str] | None]  # a batched analysis: each answer by type


def build(
    job_id: str,
    status: Status,
    *,
    reason: str | None = None,
    detail: Any = None,
    retry_after: int | None = None,
    kind: str | None = None,
    type: str | None = None,
    tier: str | None = None,
    content: str | None = None,
    model_used: str | None = None,
    used_fallback: bool = False,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: Decimal | None = None,
    cache_hit: bool = False,
) -> JobResult:
    return {
        "job_id": job_id,
        "status": status,
        "reason": reason,
        "cache_hit": cache_hit,
        "detail": detail,
        "retry_after": retry_after,
        "kind": kind,
        "type": type,
        "tier": tier,
        "content": content,
        "model_used": model_used,
        "used_fallback": used_fallback,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost_usd": exact_decimal(cost_usd),
        },
    }


def job_result(row: Any) -> JobResult:
    """The JobResult of a ``jobs`` row (selected with JOB_COLUMNS)."""
    result = build(
        row.id,
        row.status,
        reason=row.reason,
        detail=row.detail,
        retry_after=row.retry_after,
        kind=row.kind,
        type=row.type or None,  # "" on a rejection whose type was invalid
        tier=row.tier,
        content=row.result_content,
        model_used=row.model_used,
        used_fallback=bool(row.used_fallback),
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
        cache_hit=bool(row.cache_hit),
    )
    if row.kind == "analysis" and "+" in row.type:  # a batched analysis (workers/pipeline/batch.py)
        result["type"] = row.type.split("+")
        result["answers"] = json.loads(row.result_content) if row.result_content else None
    return result


def unrecorded_rejection(
    job_id: Any, kind: str, type_: str | None, tier: str | None, reason: str, detail: Any
) -> JobResult:
    """A rejection that has no jobs row of its own (its job id or user id was invalid, or the
    job id belongs to another job)."""
    return build(job_id, "rejected", reason=reason, detail=detail, kind=kind, type=type_, tier=tier)


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
