"""OpenRouter's model list, priced in Decimal, kept in ``model_prices``."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, text

from config import get_catalog
from workers.llm.openrouter import get_client


def _price(value: Any) -> Decimal | None:
    """Per-token price strings ("0.0000025") as Decimal; negative means "varies" (router models)."""
    try:
        price = Decimal(str(value))
    except (InvalidOperation, TypeError):
        return None
    return price if price >= 0 else None


def fetch_models() -> list[dict[str, Any]]:
    raw = get_client()._sdk.models.with_raw_response.list()
    return json.loads(raw.http_response.content)["data"]


def sync(conn: Connection, models: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Upsert every priced model and mark the ones OpenRouter no longer lists."""
    stored = 0
    for model in models:
        pricing = model.get("pricing") or {}
        prompt, completion = _price(pricing.get("prompt")), _price(pricing.get("completion"))
        if prompt is None or completion is None:
            continue
        conn.execute(
            text(
                "INSERT INTO model_prices (model, name, prompt_price, completion_price, request_price, context_length,"
                " listed, synced_at) VALUES (:m, :n, :p, :c, :r, :ctx, true, :now)"
                " ON CONFLICT (model) DO UPDATE SET name = :n, prompt_price = :p, completion_price = :c,"
                " request_price = :r, context_length = :ctx, listed = true, synced_at = :now"
            ),
            {
                "m": model["id"],
                "n": model.get("name"),
                "p": prompt,
                "c": completion,
                "r": _price(pricing.get("request")) or Decimal(0),
                "ctx": model.get("context_length"),
                "now": now,
            },
        )
        stored += 1
    delisted = conn.execute(
        text("UPDATE model_prices SET listed = false WHERE synced_at < :now AND listed"), {"now": now}
    ).rowcount
    return {"listed": len(models), "priced": stored, "delisted": delisted}


def tier_models(conn: Connection) -> list[dict[str, Any]]:
    """Every tier's chain with price, context length and whether OpenRouter lists it now."""
    prices = {r.model: r for r in conn.execute(text("SELECT * FROM model_prices"))}
    out = []
    for tier in get_catalog().by_priority():
        for position, model in enumerate(tier.models):
            row = prices.get(model)
            out.append(
                {
                    "tier": tier.name,
                    "role": "primary" if position == 0 else f"fallback {position}",
                    "model": model,
                    "prompt_price": None if row is None else format(row.prompt_price, "f"),
                    "completion_price": None if row is None else format(row.completion_price, "f"),
                    "context_length": None if row is None else row.context_length,
                    "listed": bool(row and row.listed),
                    "synced_at": None if row is None else row.synced_at.isoformat(),
                }
            )
    return out
