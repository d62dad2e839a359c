"""The response cache, kept in the ledger: an answer bought once is served again to an
identical request, and what that saved is recorded next to what was spent.

The key is the sha256 of everything that shapes the answer (kind, type, prompt template
version, the model chain, max_tokens, temperature, the content's sha256, and the user when
answers are not shared across users). A hit turns the job's pending ``llm_calls`` row into a
``cache_hit`` row that costs 0 and saved the original cost. The rules and settings:
docs/cost-optimisations.md, "The response cache".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from config import get_catalog
from config.prompts import template_version
from config.tiers import Catalog, Tier

LOOKUP = text(
    "SELECT key, answer, model_used, used_fallback, detail, cost_usd, source_job_id FROM response_cache"
    " WHERE key = :k AND expires_at > now()"
)
# A replay of the same job stores nothing new; an expired entry is replaced by a fresh answer.
STORE = text(
    "INSERT INTO response_cache (key, kind, type, prompt_version, models, max_tokens, temperature,"
    " content_sha256, answer, model_used, used_fallback, detail, cost_usd, source_job_id, expires_at)"
    " VALUES (:k, :kind, :type, :pv, :models, :mt, :temp, :sha, :answer, :model, :fb, :detail, :cost, :job,"
    " now() + :ttl)"
    " ON CONFLICT (key) DO UPDATE SET answer = EXCLUDED.answer, model_used = EXCLUDED.model_used,"
    " used_fallback = EXCLUDED.used_fallback, detail = EXCLUDED.detail, cost_usd = EXCLUDED.cost_usd,"
    " source_job_id = EXCLUDED.source_job_id, created_at = now(), expires_at = EXCLUDED.expires_at, hits = 0"
    " WHERE response_cache.expires_at <= now()"
)
COUNT_HIT = text("UPDATE response_cache SET hits = hits + 1 WHERE key = :k")
# The hit takes over the pending row written for the job's call: no request ever leaves for it.
RECORD_HIT = text(
    "UPDATE llm_calls SET status = 'cache_hit', model = :model, model_served = :model, cost_usd = 0,"
    " cost_source = 'none', estimate_usd = 0, saved_usd = :saved, latency_ms = 0, completed_at = now()"
    " WHERE id = :id AND status = 'pending'"
)
# One batch of expired entries. Rows another transaction holds (an expired entry being replaced
# by a fresh answer) are skipped, and the outer condition is checked again on the row it
# deletes, so a just-renewed answer is never taken with the expired ones.
PURGE = text(
    "DELETE FROM response_cache WHERE expires_at <= now() AND key IN"
    " (SELECT key FROM response_cache WHERE expires_at <= now() ORDER BY expires_at LIMIT :limit"
    " FOR UPDATE SKIP LOCKED)"
)
PURGE_BATCH = 5000


@dataclass(frozen=True)
class CacheKey:
    """Everything that shapes an answer; ``digest`` is the table's primary key."""

    kind: str
    type: str
    prompt_version: str
    models: tuple[str, ...]
    max_tokens: int
    temperature: float
    content_sha256: str
    ttl_seconds: int
    user_scope: str | None = None  # the user id when answers are not shared across users

    @property
    def digest(self) -> str:
        parts = [
            self.kind,
            self.type,
            self.prompt_version,
            list(self.models),
            self.max_tokens,
            self.temperature,
            self.content_sha256,
        ]
        if self.user_scope is not None:
            parts.append(self.user_scope)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Cached:
    """A stored answer and what it originally cost."""

    key: str
    answer: str
    model_used: str | None
    used_fallback: bool
    detail: Any
    cost_usd: Decimal
    source_job_id: str


def request_shape(kind: str, tier: Tier, catalog: Catalog) -> tuple[int, float, str]:
    """max_tokens, temperature and the long-content rule a job of ``kind`` is sent with."""
    if kind == "script":
        return tier.max_tokens, tier.temperature, ""
    a = catalog.analysis
    rule = f"{tier.long_content}:{a.max_chars}"
    if tier.long_content == "summarize":
        rule += f":{a.preprocess_model}:{a.chunk_chars}:{a.summary_max_tokens}"
    return a.max_tokens, a.temperature, rule


def key_for(
    kind: str, type_: str, tier: Tier, content: str, user_id: str | None = None, *, catalog: Catalog | None = None
) -> CacheKey | None:
    """The cache key of a request, or None when its kind is not cached for this tier."""
    catalog = catalog or get_catalog()
    ttl = catalog.cache_ttl(kind, tier)
    if ttl <= 0:
        return None
    max_tokens, temperature, rule = request_shape(kind, tier, catalog)
    version = template_version(kind, type_)
    if rule:  # the long-content rule shapes the answer too
        version = hashlib.sha256(f"{version}+{rule}".encode()).hexdigest()[:16]
    return CacheKey(
        kind=kind,
        type=type_,
        prompt_version=version,
        models=tier.models,
        max_tokens=max_tokens,
        temperature=temperature,
        content_sha256=hashlib.sha256(content.encode()).hexdigest(),
        ttl_seconds=ttl,
        user_scope=None if catalog.cache.shared_across_users else user_id,
    )


def lookup(conn: Connection, key: CacheKey) -> Cached | None:
    row = conn.execute(LOOKUP, {"k": key.digest}).first()
    if row is None:
        return None
    detail = json.loads(row.detail) if row.detail else None
    return Cached(row.key, row.answer, row.model_used, row.used_fallback, detail, row.cost_usd, row.source_job_id)


def store(conn: Connection, key: CacheKey, result: dict[str, Any]) -> None:
    """Keep a succeeded JobResult's answer, with the job's whole cost (every attempt it took)."""
    conn.execute(
        STORE,
        {
            "k": key.digest,
            "kind": key.kind,
            "type": key.type,
            "pv": key.prompt_version,
            "models": ",".join(key.models),
            "mt": key.max_tokens,
            "temp": key.temperature,
            "sha": key.content_sha256,
            "answer": result["content"],
            "model": result["model_used"],
            "fb": bool(result["used_fallback"]),
            "detail": None if result.get("detail") is None else json.dumps(result["detail"]),
            "cost": Decimal(result["usage"]["cost_usd"]),
            "job": result["job_id"],
            "ttl": timedelta(seconds=key.ttl_seconds),
        },
    )


def record_hit(conn: Connection, *, call_id: int, cached: Cached) -> None:
    """Turn the job's pending ``llm_calls`` row into the hit's: no cost, the original cost as
    ``saved_usd``."""
    conn.execute(RECORD_HIT, {"id": call_id, "model": cached.model_used or "", "saved": cached.cost_usd})
    conn.execute(COUNT_HIT, {"k": cached.key})


def purge_expired(conn: Connection, limit: int = PURGE_BATCH) -> int:
    """Drop up to ``limit`` expired entries (lookups already ignore them); returns how many.
    The beat task calls it in short transactions until a batch comes back short."""
    return conn.execute(PURGE, {"limit": limit}).rowcount
