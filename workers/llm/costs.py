"""What a call cost, and the llm_calls row that records it: written ``pending`` before the
request leaves (write-ahead), completed when the answer arrives.

Cost of record, in order of preference:
- ``provider``: OpenRouter's ``usage.cost`` on the response;
- ``catalog``: tokens x the model's price in ``model_prices`` (synced from /models);
- ``config``: tokens x the tier's fallback price in config/tiers.toml;
- ``estimate``: the attempt is ``unknown`` (its worker died mid-call); the cost is the most
  the call could have cost. Reports show it apart, as exposure;
- ``none``: the call failed before any usage was reported; nothing was charged.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from config.tiers import Tier
from workers.errors import CallUsage

CATALOG_TTL_SECONDS = 300
CATALOG = text("SELECT model, prompt_price, completion_price FROM model_prices")
# The write-ahead row: committed before the request leaves. The attempt number is taken under
# the job's row lock (FOR UPDATE) in the same statement, and only by the delivery that holds
# the claim, so two deliveries never share one; a conflict on (job_id, attempt) is a bug and raises.
OPEN_ATTEMPT = text(
    "INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd)"
    " SELECT j.id, (SELECT coalesce(max(attempt), 0) + 1 FROM llm_calls WHERE job_id = j.id), j.tier, :model,"
    " 'pending', 'none', :estimate"
    " FROM (SELECT id, tier FROM jobs WHERE id = :j AND deliveries = :d AND status = 'running' FOR UPDATE) AS j"
    " RETURNING id, attempt"
)


def completion_sql(prefix: str = "") -> str:
    """Completing a row: an `unknown` one too (a delivery that outlived its lease got its answer
    after all; the real cost replaces the estimate). Parameters are named ``prefix`` + the keys
    of ``completion_params``, so settlement can embed it as a CTE (workers/pipeline/jobs.py)."""
    p = ":" + prefix
    return (
        f"UPDATE llm_calls SET status = {p}status, model_served = {p}served, prompt_tokens = {p}p,"
        f" completion_tokens = {p}c, cost_usd = {p}cost, cost_source = {p}source, error_class = {p}err,"
        f" http_status = {p}http, latency_ms = {p}lat, generation_id = {p}gen, response_content = {p}content,"
        f" completed_at = now() WHERE id = {p}id AND status IN ('pending', 'unknown')"
        " RETURNING id, prompt_tokens, completion_tokens, cost_usd, cost_source"
    )


COMPLETE_ATTEMPT = text(completion_sql())
# An attempt whose worker died: its cost is the estimate written when it was opened.
UNKNOWN = "status = 'unknown', cost_usd = estimate_usd, cost_source = 'estimate', completed_at = now()"
MARK_UNKNOWN = text(f"UPDATE llm_calls SET {UNKNOWN}, error_class = :err WHERE id = :id AND status = 'pending'")
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
                    rows = conn.execute(CATALOG)
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
    row = conn.execute(OPEN_ATTEMPT, {"j": job_id, "d": delivery, "model": model, "estimate": estimate}).first()
    if row is None:
        raise LookupError(f"job {job_id}: delivery {delivery} no longer holds the claim")
    return row.id, row.attempt


def mark_unknown(conn: Connection, call_id: int, error_class: str | None = None) -> None:
    """An attempt whose outcome nobody knows: it costs its estimate, flagged ``estimate``."""
    conn.execute(MARK_UNKNOWN, {"id": call_id, "err": error_class})


def complete_attempt(conn: Connection, call_id: int, **fields: Any) -> Decimal:
    """Complete an attempt's row with what the provider answered (``fields``: the keywords of
    ``completion_params``); returns its cost."""
    params = completion_params(conn, call_id, **fields)
    conn.execute(COMPLETE_ATTEMPT, params)
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
    """The parameters of ``completion_sql(prefix)``, the cost of record included."""
    cost, source = price(conn, usage, model, tier)
    values = {
        "id": call_id,
        "served": usage.model_served,
        "p": usage.prompt_tokens,
        "c": usage.completion_tokens,
        "cost": cost,
        "source": source,
        "status": status,
        "err": error_class,
        "http": http_status,
        "lat": latency_ms,
        "gen": usage.generation_id,
        "content": content,
    }
    return {prefix + key: value for key, value in values.items()}
