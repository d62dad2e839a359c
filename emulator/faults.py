"""The fault model: queued rules that make the next calls fail in a chosen way.

Tests and benchmarks need every failure a real router produces, on demand and in a
known order. Rules queue per model (or under "*" for any model), first in first out;
each answers ``times`` calls (-1 = forever) and then drops out of the queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import error_body

__all__ = [
    "ANY_MODEL",
    "ERROR_KINDS",
    "FAULT_KINDS",
    "SPECIAL_KINDS",
    "FaultBook",
    "FaultContext",
    "FaultError",
    "FaultRule",
    "fault_error",
]

ANY_MODEL = "*"


@dataclass
class FaultRule:
    """One queued fault. ``times`` counts the calls it still has to answer (-1 = forever)."""

    kind: str
    model: str = ANY_MODEL
    times: int = 1
    retry_after: float | None = None  # seconds for the Retry-After header
    delay_s: float = 30.0  # how long a "hang" sleeps before answering

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultContext:
    """What a fault's message and metadata may mention about the call it fails."""

    model: str
    provider: str
    context_length: int
    prompt_tokens: int
    max_tokens: int | None
    user_text: str


@dataclass(frozen=True)
class ErrorKind:
    """How an error-type fault answers."""

    status: int
    message: Callable[[FaultContext], str]
    metadata: Callable[[FaultContext], dict[str, Any]]
    default_retry_after: float | None = None


def _upstream(ctx: FaultContext) -> dict[str, Any]:
    return {"provider_name": ctx.provider}


def _nothing(ctx: FaultContext) -> dict[str, Any]:
    return {}


def _requested_tokens(ctx: FaultContext) -> int:
    return ctx.prompt_tokens + (ctx.max_tokens or 0)


ERROR_KINDS: dict[str, ErrorKind] = {
    "timeout": ErrorKind(408, lambda c: "Timed out waiting for the upstream provider to answer", _upstream),
    "rate_limit": ErrorKind(
        429,
        lambda c: f"Rate limit exceeded for {c.model}; slow down and retry later",
        lambda c: {"provider_name": c.provider, "raw": "too many requests"},
        default_retry_after=1,
    ),
    "server_error": ErrorKind(500, lambda c: "Internal server error", _nothing),
    "bad_gateway": ErrorKind(
        502,
        lambda c: "Provider returned error",
        lambda c: {"provider_name": c.provider, "raw": "upstream connection reset"},
    ),
    "unavailable": ErrorKind(
        503, lambda c: "Service temporarily unavailable; no provider can take the request now", _upstream
    ),
    "gateway_timeout": ErrorKind(504, lambda c: "Gateway timeout: the provider did not answer in time", _upstream),
    "in_flight_budget": ErrorKind(
        402,
        lambda c: "Too many requests in flight for the key's remaining balance; retry shortly",
        lambda c: {"reason": "in_flight_budget_exhausted"},
        default_retry_after=1,
    ),
    "credits": ErrorKind(402, lambda c: "Insufficient credits: add more credits to the account and retry", _nothing),
    "key_limit": ErrorKind(
        402,
        lambda c: "Key limit exceeded: this API key has reached its spending limit",
        lambda c: {"limit_reset": None},
    ),
    "unauthorized": ErrorKind(401, lambda c: "Invalid or disabled API key", _nothing),
    "moderation": ErrorKind(
        403,
        lambda c: f"{c.model} requires moderation and the input was flagged",
        lambda c: {
            "reasons": ["violence"],
            "flagged_input": c.user_text[:100],
            "provider_name": c.provider,
            "model_slug": c.model,
        },
    ),
    "context_length": ErrorKind(
        400,
        lambda c: (
            f"This model's maximum context length is {c.context_length} tokens, but about "
            f"{max(_requested_tokens(c), c.context_length + 1)} tokens were requested. "
            "Shorten the messages or lower max_tokens."
        ),
        lambda c: {"provider_name": c.provider},
    ),
    "bad_request": ErrorKind(400, lambda c: "Invalid request parameters", _nothing),
    "no_providers": ErrorKind(
        404, lambda c: "No allowed providers are available for the selected model.", lambda c: {"model": c.model}
    ),
}

# Kinds that do not answer with an HTTP error of their own.
SPECIAL_KINDS = ("hang", "finish_error", "non_json", "unstorable")

FAULT_KINDS: tuple[str, ...] = tuple(ERROR_KINDS) + SPECIAL_KINDS


@dataclass(frozen=True)
class FaultError:
    """An error answer produced by a fault: status, body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def fault_error(rule: FaultRule, ctx: FaultContext) -> FaultError:
    """The HTTP error an error-type ``rule`` answers with."""
    kind = ERROR_KINDS[rule.kind]
    headers: dict[str, str] = {}
    retry_after = rule.retry_after if rule.retry_after is not None else kind.default_retry_after
    if retry_after is not None:
        headers["Retry-After"] = _seconds_text(retry_after)
    body = error_body(kind.status, kind.message(ctx), kind.metadata(ctx))
    return FaultError(kind.status, body, headers)


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class FaultBook:
    """Per-model FIFO queues of fault rules. Used from the event loop thread only."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[FaultRule]] = {}

    def add(self, rule: FaultRule) -> None:
        if rule.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if rule.times == 0 or rule.times < -1:
            raise ValueError("times must be a positive count or -1 (forever)")
        self._queues.setdefault(rule.model, deque()).append(rule)

    def take(self, model: str) -> FaultRule | None:
        """Spend one use of the first rule for ``model``, else of the first "*" rule."""
        for key in (model, ANY_MODEL):
            queue = self._queues.get(key)
            if not queue:
                continue
            rule = queue[0]
            if rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    queue.popleft()
            return rule
        return None

    def clear(self) -> int:
        """Drop every queued rule; returns how many there were."""
        count = sum(len(queue) for queue in self._queues.values())
        self._queues.clear()
        return count

    def pending(self) -> list[dict[str, Any]]:
        return [rule.describe() for queue in self._queues.values() for rule in queue]
