"""The JobResult: the one shape every producer receives. Built from a ``jobs`` row only."""

from __future__ import annotations

from typing import Any

from workers.money import exact_decimal

JOB_COLUMNS = (
    "id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,"
    " used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at"
)
FINISHED = frozenset({"succeeded", "failed", "rejected"})


def job_result(row: Any) -> dict[str, Any]:
    return {
        "job_id": row.id,
        "status": row.status,
        "reason": row.reason,
        "detail": row.detail,
        "retry_after": row.retry_after,
        "kind": row.kind,
        "type": row.type,
        "tier": row.tier,
        "content": row.result_content,
        "model_used": row.model_used,
        "used_fallback": bool(row.used_fallback),
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "total_tokens": row.prompt_tokens + row.completion_tokens,
            "cost_usd": exact_decimal(row.cost_usd),
        },
    }


def unrecorded_rejection(
    job_id: str, kind: str, type_: str, tier: str | None, reason: str, detail: Any
) -> dict[str, Any]:
    """A rejection that has no jobs row (its user id itself was invalid)."""
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
