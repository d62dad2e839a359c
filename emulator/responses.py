"""Bodies of the OpenRouter-shaped answers: completions, stream chunks, models, key, generation.

Kept apart from the HTTP handlers so the shapes can be read (and checked against the
real API) in one place. Money fields are Decimals; exactjson writes them exactly.
"""

from __future__ import annotations

import secrets
import string
import time
from decimal import Decimal
from typing import Any

from .calllog import CallRecord
from .catalog import CATALOG, ModelInfo
from .exactjson import decimal_text
from .spend import KeyFigures

__all__ = [
    "completion_body",
    "credits_body",
    "generation_body",
    "key_body",
    "models_body",
    "native_finish_reason",
    "new_generation_id",
    "stream_chunk",
    "usage_block",
]

_ID_ALPHABET = string.ascii_letters + string.digits

# How some upstreams spell their own finish reasons (reported as native_finish_reason).
_NATIVE_FINISH = {
    "Anthropic": {"stop": "end_turn", "length": "max_tokens"},
    "Google AI Studio": {"stop": "STOP", "length": "MAX_TOKENS", "error": "OTHER"},
}


def new_generation_id() -> str:
    """A unique id in OpenRouter's "gen-<unix>-<random>" form."""
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
    return f"gen-{int(time.time())}-{suffix}"


def native_finish_reason(provider: str, finish_reason: str | None) -> str | None:
    if finish_reason is None:
        return None
    return _NATIVE_FINISH.get(provider, {}).get(finish_reason, finish_reason)


def usage_block(model: ModelInfo, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The usage object OpenRouter attaches to every answer; cost is exact."""
    prompt_cost = prompt_tokens * model.prompt_price
    completion_cost = completion_tokens * model.completion_price
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": prompt_cost + completion_cost,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        },
    }


def completion_body(
    *,
    generation_id: str,
    model: ModelInfo,
    created: int,
    content: str,
    finish_reason: str,
    usage: dict[str, Any],
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A non-streamed chat completion."""
    choice: dict[str, Any] = {
        "logprobs": None,
        "finish_reason": finish_reason,
        "native_finish_reason": native_finish_reason(model.provider, finish_reason),
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None, "reasoning": None},
    }
    if error is not None:
        choice["error"] = error
    return {
        "id": generation_id,
        "provider": model.provider,
        "model": model.id,
        "object": "chat.completion",
        "created": created,
        "choices": [choice],
        "system_fingerprint": None,
        "usage": usage,
    }


def stream_chunk(
    *,
    generation_id: str,
    model: ModelInfo,
    created: int,
    content: str,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``data:`` event of a streamed completion."""
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
        "native_finish_reason": native_finish_reason(model.provider, finish_reason),
        "logprobs": None,
    }
    if error is not None:
        choice["error"] = error
    chunk: dict[str, Any] = {
        "id": generation_id,
        "provider": model.provider,
        "model": model.id,
        "object": "chat.completion.chunk",
        "created": created,
        "choices": [choice],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def models_body() -> dict[str, Any]:
    """GET /models: the catalogue with prices as decimal strings, like the real listing."""
    return {"data": [_model_entry(model) for model in CATALOG.values()]}


def _model_entry(model: ModelInfo) -> dict[str, Any]:
    return {
        "id": model.id,
        "canonical_slug": model.id,
        "name": model.name,
        "created": model.created,
        "description": f"{model.name}, as served by the local OpenRouter emulator.",
        "context_length": model.context_length,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": model.tokenizer,
            "instruct_type": None,
        },
        "pricing": {
            "prompt": decimal_text(model.prompt_price),
            "completion": decimal_text(model.completion_price),
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {
            "context_length": model.context_length,
            "max_completion_tokens": model.max_completion_tokens,
            "is_moderated": model.provider in ("OpenAI", "Anthropic"),
        },
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "top_p", "stop", "stream"],
    }


def key_body(label: str, figures: KeyFigures, *, management: bool = False) -> dict[str, Any]:
    """GET /key: an unlimited, paid key and what it has spent (UTC day, Monday week, month)."""
    zero = Decimal(0)
    return {
        "data": {
            "label": label,
            "limit": None,
            "limit_remaining": None,
            "limit_reset": None,
            "include_byok_in_limit": False,
            "usage": figures.usage,
            "usage_daily": figures.usage_daily,
            "usage_weekly": figures.usage_weekly,
            "usage_monthly": figures.usage_monthly,
            "byok_usage": zero,
            "byok_usage_daily": zero,
            "byok_usage_weekly": zero,
            "byok_usage_monthly": zero,
            "is_free_tier": False,
            "is_provisioning_key": False,
            "is_management_key": management,
            "expires_at": None,
            "rate_limit": {"requests": 1000, "interval": "10s"},
        }
    }


def credits_body(total_credits: Decimal, total_usage: Decimal) -> dict[str, Any]:
    """GET /credits: credits bought and used by the whole account (every key)."""
    return {"data": {"total_credits": total_credits, "total_usage": total_usage}}


def generation_body(record: CallRecord) -> dict[str, Any]:
    """GET /generation?id=: the stored facts about one call."""
    return {
        "data": {
            "id": record.id,
            "upstream_id": f"emu-{record.id[-12:]}",
            "total_cost": record.cost,
            "usage": record.cost,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "created_at": record.created_at,
            "model": record.model,
            "app_id": None,
            "streamed": record.stream,
            "cancelled": False,
            "provider_name": record.provider,
            "latency": record.latency_ms,
            "moderation_latency": None,
            "generation_time": record.latency_ms,
            "finish_reason": record.finish_reason,
            "native_finish_reason": native_finish_reason(record.provider or "", record.finish_reason),
            "tokens_prompt": record.prompt_tokens,
            "tokens_completion": record.completion_tokens,
            "native_tokens_prompt": record.prompt_tokens,
            "native_tokens_completion": record.completion_tokens,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": 0,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            "origin": record.referer or "",
            "is_byok": False,
        }
    }
