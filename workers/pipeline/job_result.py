"""The JobResult: the one shape every producer receives. Built from a ``jobs`` row only."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

JOB_COLUMNS = (
    "id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,"
    " used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at, cache_hit"
)
FINISHED = frozenset({"succeeded", "failed", "rejected"})


def money(value: Decimal | None) -> str:
    """A decimal string with every digit and no exponent (e.g. "0.000123")."""
    return format(value or Decimal(0), "f")


def job_result(row: Any) -> dict[str, Any]:
    result = _job_result(row)
    if row.kind == "analysis" and "+" in row.type:  # a batched analysis (workers/pipeline/batch.py)
        result["type"] = row.type.split("+")
        result["answers"] = json.loads(row.result_content) if row.result_content else None
    return result


def _job_result(row: Any) -> dict[str, Any]:
    return {
        "job_id": row.id,
        "status": row.status,
        "reason": row.reason,
        "cache_hit": bool(row.cache_hit),
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
            "cost_usd": money(row.cost_usd),
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
        "cache_hit": False,
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
