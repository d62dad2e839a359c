"""What a call cost, and the llm_calls row that records it: written ``pending`` before the
request leaves (write-ahead), completed when the answer arrives.

Cost of record, in order of preference:
- ``provider``: OpenRouter's ``usage.cost`` on the response;
- ``catalog``: tokens x the model's price in ``model_prices`` (synced from /models);
- ``config``: tokens x the tier's fallback price in config/tiers.toml;
- ``estimate``: the attempt is ``unknown`` (its worker died mid-call); the cost is the most
  the call could have cost. Reports show it apart, as exposure;
- ``none``: the call failed before any usage was reported; nothing was charged.

The statements are named in db/queries/costs.sql.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection

from config.tiers import Tier
from db import named_sql
from workers.errors import CallUsage


class ModelPrice(NamedTuple):
    model: str
    prompt_price: Decimal
    completion_price: Decimal


class OpenedAttempt(NamedTuple):
    id: int
    attempt: int


CATALOG_TTL_SECONDS = 300
SQL = named_sql.load("costs")
CATALOG = SQL.rows("model_prices", ModelPrice)
OPEN_ATTEMPT = SQL.rows("open_attempt", OpenedAttempt)
COMPLETE_ATTEMPT = SQL.statement("complete_attempt")
MARK_UNKNOWN = SQL.statement("mark_attempt_unknown")
# Prompt tokens are estimated generously (about 4 characters a token is typical), since the
# estimate is what an unknown attempt is assumed to have cost and what admission reserves.
CHARS_PER_TOKEN_ESTIMATE = 3


class _CatalogPrices:
    """model_prices, cached per process: prices change daily, calls happen many times a second."""

    def __init__(self) -> None:
        self._prices: dict[str, tuple[Decimal, Decimal]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, conn: Connection, model: str) -> tuple[Decimal, Decimal] | None:
        """The model's price, reloading the table on ``conn`` (the caller's connection, so a
        busy pool is never asked for a second one) when the cache is stale."""
        if time.monotonic() - self._loaded_at > CATALOG_TTL_SECONDS:
            with self._lock:
                if time.monotonic() - self._loaded_at > CATALOG_TTL_SECONDS:
                    rows = CATALOG.all(conn)
                    self._prices = {r.model: (r.prompt_price, r.completion_price) for r in rows}
                    self._loaded_at = time.monotonic()
        return self._prices.get(model)

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")


catalog_prices = _CatalogPrices()


def price(conn: Connection, usage: CallUsage, model: str, tier: Tier) -> tuple[Decimal, str]:
    if usage.cost is not None:
        return usage.cost, "provider"
    if not (usage.prompt_tokens or usage.completion_tokens):
        return Decimal(0), "none"
    listed = catalog_prices.get(conn, usage.model_served or model) or catalog_prices.get(conn, model)
    if listed is not None:
        return usage.prompt_tokens * listed[0] + usage.completion_tokens * listed[1], "catalog"
    return usage.prompt_tokens * tier.price.prompt + usage.completion_tokens * tier.price.completion, "config"


def model_price(conn: Connection, model: str, tier: Tier) -> tuple[Decimal, Decimal]:
    """Per-token (prompt, completion) price: the catalog's, else the tier's configured price."""
    listed = catalog_prices.get(conn, model)
    return listed if listed is not None else (tier.price.prompt, tier.price.completion)


def prompt_tokens_estimate(messages: list[dict[str, str]]) -> int:
    chars = sum(len(m.get("content") or "") for m in messages)
    return -(-chars // CHARS_PER_TOKEN_ESTIMATE) + 4 * len(messages)


def attempt_estimate(conn: Connection, model: str, tier: Tier, prompt_tokens: int, max_tokens: int) -> Decimal:
    """The most one call can cost: the estimated prompt plus every allowed completion token."""
    prompt_price, completion_price = model_price(conn, model, tier)
    return prompt_tokens * prompt_price + max_tokens * completion_price


def job_maximum(conn: Connection, tier: Tier, prompt_tokens: int, max_tokens: int) -> Decimal:
    """What admission reserves against the spend cap: one call at the chain's dearest model."""
    return max(attempt_estimate(conn, model, tier, prompt_tokens, max_tokens) for model in tier.models)


def open_attempt(conn: Connection, job_id: str, delivery: int, model: str, estimate: Decimal) -> tuple[int, int]:
    """Write the pending row of the next attempt; returns (row id, attempt number).

    Raises LookupError when the delivery no longer holds the job (its lease was taken over).
    """
    row = OPEN_ATTEMPT.first(conn, {"job_id": job_id, "delivery": delivery, "model": model, "estimate_usd": estimate})
    if row is None:
        raise LookupError(f"job {job_id}: delivery {delivery} no longer holds the claim")
    return row.id, row.attempt


def mark_unknown(conn: Connection, call_id: int, error_class: str | None = None) -> None:
    """An attempt whose outcome nobody knows: it costs its estimate, flagged ``estimate``."""
    MARK_UNKNOWN.execute(conn, {"call_id": call_id, "error_class": error_class})


def complete_attempt(conn: Connection, call_id: int, **fields: Any) -> Decimal:
    """Complete an attempt's row with what the provider answered (``fields``: the keywords of
    ``completion_params``); returns its cost."""
    params = completion_params(conn, call_id, **fields)
    COMPLETE_ATTEMPT.execute(conn, params)
    return Decimal(params["cost"])


def completion_params(
    conn: Connection,
    call_id: int,
    *,
    tier: Tier,
    model: str,
    usage: CallUsage,
    status: str,
    latency_ms: int,
    error_class: str | None = None,
    http_status: int | None = None,
    content: str | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """The binds of ``complete_attempt`` (db/queries/costs.sql), the cost of record included.
    With ``prefix="a_"``, those of the answer's row in ``settle_job_with_answer`` (jobs.sql)."""
    cost, source = price(conn, usage, model, tier)
    values = {
        "call_id": call_id,
        "model_served": usage.model_served,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": cost,
        "cost_source": source,
        "call_status": status,
        "error_class": error_class,
        "http_status": http_status,
        "latency_ms": latency_ms,
        "generation_id": usage.generation_id,
        "response_content": content,
    }
    return {prefix + key: value for key, value in values.items()}
