"""What a call cost, and the llm_calls row that records it (once per job and attempt).

Cost of record, in order of preference:
- ``provider``: OpenRouter's ``usage.cost`` on the response;
- ``catalog``: tokens x the model's price in ``model_prices`` (synced from /models);
- ``config``: tokens x the tier's fallback price in config/tiers.toml;
- ``none``: the call failed before any usage was reported; nothing was charged.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from sqlalchemy import Connection, text

from config.tiers import Tier
from workers.errors import CallUsage

CATALOG_TTL_SECONDS = 300
CATALOG = text("SELECT model, prompt_price, completion_price FROM model_prices")
RECORD_CALL = text(
    "INSERT INTO llm_calls (job_id, attempt, tier, model, model_served, prompt_tokens, completion_tokens,"
    " cost_usd, cost_source, status, error_class, http_status, latency_ms, generation_id)"
    " VALUES (:j, :a, :tier, :model, :served, :p, :c, :cost, :source, :status, :err, :http, :lat, :gen)"
    " ON CONFLICT (job_id, attempt) DO NOTHING"
)


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


def record_call(
    conn: Connection,
    *,
    job_id: str,
    attempt: int,
    tier: Tier,
    model: str,
    usage: CallUsage,
    status: str,
    latency_ms: int,
    error_class: str | None = None,
    http_status: int | None = None,
) -> Decimal:
    """Insert one attempt's row; a replay of the same (job, attempt) writes nothing."""
    cost, source = price(conn, usage, model, tier)
    conn.execute(
        RECORD_CALL,
        {
            "j": job_id,
            "a": attempt,
            "tier": tier.name,
            "model": model,
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
        },
    )
    return cost
