"""The provider's own figures: what OpenRouter says the key spent, and what one call cost.

- ``GET /key`` (the ordinary inference key): the key's cumulative ``usage`` and its spend in
  the current UTC day, week and month. Snapshotted by beat (tasks/periodic.py), so the
  provider's spend over a window is a difference of two snapshots.
- ``GET /generation?id=``: one generation's cost and tokens, for calls whose cost the ledger
  did not get from the provider.
- ``GET /credits``: the whole account's usage; needs ``OPENROUTER_MANAGEMENT_KEY``.

Same base URL and key as the chat client (workers/llm/openrouter.py), plain HTTP through the
same HTTP library (httpx2), explicit timeouts, bodies parsed with ``parse_float=Decimal`` so money keeps
every digit. Every failure leaves this module as a workers.errors class: HTTP statuses go
through ``openrouter.translate`` (one classification of provider answers), and only what is
specific to these endpoints (a 404 on /generation, a body of the wrong shape) is decided here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx2  # the HTTP library the openai SDK is built on, as in workers/llm/openrouter.py

from config import Settings, get_settings
from workers import errors
from workers.llm.openrouter import error_body, retry_after_seconds, translate

__all__ = ["Credits", "Generation", "KeyUsage", "ProviderAccount", "read_credits", "read_generation", "read_key"]

# Reads are small and rare (a snapshot every few minutes); a slow answer is better skipped
# and taken at the next snapshot than allowed to hold a worker slot.
READ_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class KeyUsage:
    """``GET /key``: what the key has spent, in USD (UTC day, Monday week, month)."""

    label: str
    usage: Decimal
    usage_daily: Decimal
    usage_weekly: Decimal
    usage_monthly: Decimal
    limit: Decimal | None
    limit_remaining: Decimal | None
    is_free_tier: bool


@dataclass(frozen=True)
class Generation:
    """``GET /generation?id=``: what the provider charged for one call."""

    id: str
    total_cost: Decimal
    tokens_prompt: int
    tokens_completion: int
    model: str | None


@dataclass(frozen=True)
class Credits:
    """``GET /credits``: credits bought and used by the whole account."""

    total_credits: Decimal
    total_usage: Decimal


def _money(value: Any, field: str) -> Decimal:
    """A JSON number parsed with parse_float=Decimal (an int if it had no fraction)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise errors.BadResponse(f"{field} is not a number: {value!r}")
    return Decimal(value)


def _optional_money(value: Any, field: str) -> Decimal | None:
    return None if value is None else _money(value, field)


class ProviderAccount:
    """Reads of the provider's account endpoints. Cheap to build; one HTTP client per use."""

    def __init__(self, settings: Settings | None = None, *, read_timeout: float = READ_TIMEOUT_SECONDS) -> None:
        settings = settings or get_settings()
        self._base_url = settings.openrouter_base_url.rstrip("/")
        self._key = settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else ""
        mgmt = settings.openrouter_management_key
        self._management_key = mgmt.get_secret_value() if mgmt else None
        self._headers = {"HTTP-Referer": settings.openrouter_referer, "X-Title": settings.openrouter_title}
        self._timeout = httpx2.Timeout(read_timeout, connect=settings.openrouter_connect_timeout)

    @property
    def has_management_key(self) -> bool:
        return bool(self._management_key)

    def key(self) -> KeyUsage:
        data = self._get("/key", self._key)
        return KeyUsage(
            label=str(data.get("label") or ""),
            usage=_money(data.get("usage"), "usage"),
            usage_daily=_money(data.get("usage_daily"), "usage_daily"),
            usage_weekly=_money(data.get("usage_weekly"), "usage_weekly"),
            usage_monthly=_money(data.get("usage_monthly"), "usage_monthly"),
            limit=_optional_money(data.get("limit"), "limit"),
            limit_remaining=_optional_money(data.get("limit_remaining"), "limit_remaining"),
            is_free_tier=bool(data.get("is_free_tier")),
        )

    def generation(self, generation_id: str) -> Generation:
        data = self._get("/generation", self._key, params={"id": generation_id}, generation=True)
        try:
            return Generation(
                id=str(data.get("id") or generation_id),
                total_cost=_money(data.get("total_cost"), "total_cost"),
                tokens_prompt=int(data.get("tokens_prompt") or 0),
                tokens_completion=int(data.get("tokens_completion") or 0),
                model=data.get("model"),
            )
        except (TypeError, ValueError) as exc:
            raise errors.BadResponse("the /generation answer is not a generation") from exc

    def credits(self) -> Credits | None:
        """The account's credits, or None when no management key is configured."""
        if not self._management_key:
            return None
        data = self._get("/credits", self._management_key)
        return Credits(
            total_credits=_money(data.get("total_credits"), "total_credits"),
            total_usage=_money(data.get("total_usage"), "total_usage"),
        )

    def _get(self, path: str, key: str, params: dict[str, str] | None = None, *, generation: bool = False) -> Any:
        """The ``data`` of a GET, or the workers.errors class its failure belongs to."""
        headers = self._headers | ({"Authorization": f"Bearer {key}"} if key else {})
        try:
            with httpx2.Client(timeout=self._timeout, headers=headers) as client:
                response = client.get(self._base_url + path, params=params)
        except httpx2.TimeoutException as exc:
            raise errors.ProviderTimeout(f"GET {path}: timed out") from exc
        except httpx2.TransportError as exc:
            raise errors.ProviderUnavailable(f"GET {path}: connection failed ({type(exc).__name__})") from exc
        if generation and response.status_code == 404:
            raise errors.GenerationNotFound(f"generation {params and params.get('id')} not found", status=404)
        if response.status_code >= 400:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise translate(response.status_code, error_body(response), retry_after)
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise errors.BadResponse(f"GET {path}: the answer is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise errors.BadResponse(f"GET {path}: the answer has no data object")
        return body["data"]


def read_key(settings: Settings | None = None) -> KeyUsage:
    return ProviderAccount(settings).key()


def read_generation(generation_id: str, settings: Settings | None = None) -> Generation:
    return ProviderAccount(settings).generation(generation_id)


def read_credits(settings: Settings | None = None) -> Credits | None:
    return ProviderAccount(settings).credits()
