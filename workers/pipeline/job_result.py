"""The JobResult: the one shape every producer receives, built by ``build`` alone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, NotRequired, TypedDict

from workers.money import exact_decimal

JOB_COLUMNS = (
    "id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,"
    " used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at"
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
    type: str | None
    tier: str | None
    content: str | None
    model_used: str | None
    used_fallback: bool
    usage: Usage
    cache_hit: NotRequired[bool]


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
) -> JobResult:
    return {
        "job_id": job_id,
        "status": status,
        "reason": reason,
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
    return build(
        row.id,
        row.status,
        reason=row.reason,
        detail=row.detail,
        retry_after=row.retry_after,
        kind=row.kind,
        type=row.type,
        tier=row.tier,
        content=row.result_content,
        model_used=row.model_used,
        used_fallback=bool(row.used_fallback),
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
    )


def unrecorded_rejection(job_id: str, kind: str, type_: str, tier: str | None, reason: str, detail: Any) -> JobResult:
    """A rejection that has no jobs row (its user id itself was invalid)."""
    return build(job_id, "rejected", reason=reason, detail=detail, kind=kind, type=type_, tier=tier)
