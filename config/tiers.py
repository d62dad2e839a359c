"""The tier catalog (``tiers.toml``) as typed, immutable objects.

"unlimited" becomes ``None`` in a count (no limit), and "custom" becomes ``None`` in a price
(negotiated, so not counted as list revenue). :func:`remaining` and :func:`within` are the
only places that interpret ``None``.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from config.settings import get_settings

CATALOG_PATH = Path(__file__).with_name("tiers.toml")
INTAKE_QUEUE = "intake"
INTAKE_PRIORITY = 0  # Redis: 0 is the highest priority bucket
# Stripe's events and checkouts. Listed right after intake: in the same priority bucket, intake
# is served first, so webhooks never hold up job admission.
BILLING_QUEUE = "billing"


def _word_as_none(word: str) -> BeforeValidator:
    def parse(value: Any) -> Any:
        return None if value == word else value

    return BeforeValidator(parse)


Count = Annotated[Annotated[int, Field(ge=0)] | None, _word_as_none("unlimited")]
Price = Annotated[Decimal | None, _word_as_none("custom")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """How long one model is retried before the next model in the chain is tried."""

    attempts: int = Field(ge=1)
    seconds: float = Field(gt=0)


class TokenPrice(_Frozen):
    prompt: Decimal
    completion: Decimal


class SubscriptionLimits(_Frozen):
    """What the subscription buys, as the integration guide defines it."""

    videos_per_month: Count
    max_video_duration: Count
    max_resolution: str
    watermark: bool
    priority: int
    support: str
    api_access: bool
    voice_cloning: bool
    custom_voices: Count
    price_monthly: Price


class AnalysisSettings(_Frozen):
    max_tokens: int
    temperature: float
    max_chars: int
    preprocess_model: str = "google/gemini-flash-1.5-8b"  # the cheap model that summarises long content
    chunk_chars: int = Field(default=6000, gt=0)
    summary_max_tokens: int = Field(default=200, gt=0)


class CacheSettings(_Frozen):
    """The response cache's TTL per job kind (0 = off) and its quota rule."""

    analysis_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    script_ttl_seconds: int = Field(default=24 * 3600, ge=0)
    hit_takes_quota: bool = True
    # Shared: identical content from any user is one answer. Per user: the user's id is part of
    # the key, so a hit never tells anyone that someone else submitted the same content.
    shared_across_users: bool = True


class BillingSettings(_Frozen):
    """How a plan change through the API is applied (docs/billing.md)."""

    # period_end: the subscription moves to the cheaper price when the period paid for ends;
    # immediately: at once, with the unused part prorated as STRIPE_PRORATION_BEHAVIOR says.
    downgrade: Literal["period_end", "immediately"] = "period_end"


class Tier(_Frozen):
    name: str
    rank: int  # order for upgrades and downgrades
    priority: int = Field(ge=0, le=9)
    models: tuple[str, ...] = Field(min_length=1)
    max_tokens: int
    temperature: float
    requests_per_minute: int = Field(gt=0)
    analyses_per_month: Count
    spend_cap_usd: Decimal | None
    max_content_chars: int
    # Analyses of content longer than analysis.max_chars: cut it at max_chars or summarise it first.
    long_content: Literal["truncate", "summarize"] = "summarize"
    cache_scripts: bool = False  # scripts are creative: cached only where a tier opts in
    retry: RetryPolicy
    price: TokenPrice
    limits: SubscriptionLimits

    @property
    def queue(self) -> str:
        return f"tier.{self.name}"

    def allowance(self, kind: str) -> int | None:
        """Monthly allowance for a job kind: scripts spend videos, analyses their own pool."""
        return self.limits.videos_per_month if kind == "script" else self.analyses_per_month


class Catalog(_Frozen):
    analysis: AnalysisSettings
    tiers: dict[str, Tier]
    cache: CacheSettings = CacheSettings()
    billing: BillingSettings = BillingSettings()

    def cache_ttl(self, kind: str, tier: Tier) -> int:
        """Seconds an answer of ``kind`` for ``tier`` is cached; 0 means not cached."""
        if kind == "script":
            return self.cache.script_ttl_seconds if tier.cache_scripts else 0
        return self.cache.analysis_ttl_seconds

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise KeyError(f"unknown tier {name!r}; known: {', '.join(self.tiers)}") from None

    @property
    def default(self) -> Tier:
        """The tier of a user without an active subscription."""
        return min(self.tiers.values(), key=lambda t: t.rank)

    def by_priority(self) -> list[Tier]:
        """Highest priority first (smallest number on Redis)."""
        return sorted(self.tiers.values(), key=lambda t: t.priority)

    def queues(self) -> list[str]:
        return [INTAKE_QUEUE, BILLING_QUEUE] + [t.queue for t in self.by_priority()]

    def priority_steps(self) -> list[int]:
        return sorted({INTAKE_PRIORITY, *(t.priority for t in self.tiers.values())})


def remaining(limit: int | None, used: int) -> int | None:
    """Units left, or None when the limit is unlimited."""
    return None if limit is None else max(0, limit - used)


def load_catalog(path: Path | str | None = None) -> Catalog:
    raw = tomllib.loads(Path(path or CATALOG_PATH).read_text())
    tiers = {name: {"name": name, **body} for name, body in raw["tiers"].items()}
    return Catalog(analysis=raw["analysis"], tiers=tiers, cache=raw.get("cache", {}), billing=raw.get("billing", {}))


@lru_cache(maxsize=1)
def get_catalog() -> Catalog:
    return load_catalog(get_settings().tier_catalog_path)
