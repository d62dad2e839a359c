"""The OpenRouter client: the official openai SDK, and the one boundary where its errors
become the project's own (workers.errors).

- ``max_retries=0``: retry policy lives in workers/llm/model_chain.py alone.
- Explicit connect and read timeouts: the threads pool enforces no task time limit.
- The raw body is parsed once with ``parse_float=Decimal``, so ``usage.cost`` keeps every
  digit the provider sent, and no pydantic model is built per response (cheaper).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2  # the HTTP library the openai SDK is built on
import openai

from config import Settings, get_settings
from workers import errors
from workers.errors import CallUsage
from workers.storable import storable

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
IN_FLIGHT_BUDGET = "in_flight_budget_exhausted"


@dataclass(frozen=True)
class Completion:
    content: str  # storable: NUL and lone surrogates already replaced (workers/storable.py)
    usage: CallUsage
    latency_ms: int
    replaced: int = 0  # how many characters of the provider's text were replaced


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _usage(body: dict[str, Any]) -> CallUsage:
    usage = body.get("usage") or {}
    cost = usage.get("cost")
    return CallUsage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cost=None if cost is None else Decimal(cost),
        model_served=body.get("model"),
        generation_id=body.get("id"),
    )


def translate(
    status: int, error: dict[str, Any], retry_after: float | None, usage: CallUsage | None = None
) -> errors.ProviderError:
    """Map an OpenRouter error (HTTP status and ``{"code", "message", "metadata"}``) to our tree."""
    message = str(error.get("message") or f"HTTP {status}")
    metadata = error.get("metadata") or {}
    if status == 402 and isinstance(metadata, dict) and metadata.get("reason") == IN_FLIGHT_BUDGET:
        kind: type[errors.ProviderError] = errors.RetryableError
    elif status in RETRYABLE_STATUS or status >= 500:
        kind = errors.RetryableError
    elif status == 401:
        kind = errors.ProviderAuthError
    elif status == 402:
        kind = errors.InsufficientCredits
    else:  # 400 invalid request or context length, 403 moderation, 404 no allowed providers, ...
        kind = errors.FallbackError
    return kind(message, status=status, code=error.get("code"), retry_after=retry_after, usage=usage)


def error_body(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except (ValueError, AttributeError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


class _HttpClient(openai.DefaultHttpxClient):
    """The SDK's HTTP client with our pool limits. Like the client the SDK builds for itself,
    it closes its pooled connections when it is dropped."""

    def __del__(self) -> None:
        if not self.is_closed:
            with contextlib.suppress(Exception):
                self.close()


class OpenRouterClient:
    """One per process: the SDK's HTTP client is thread-safe and keeps connections alive."""

    def __init__(self, settings: Settings):
        self._sdk = openai.OpenAI(
            api_key=settings.openrouter_api_key.get_secret_value() if settings.openrouter_api_key else "unset",
            base_url=settings.openrouter_base_url,
            max_retries=0,
            timeout=openai.Timeout(settings.openrouter_read_timeout, connect=settings.openrouter_connect_timeout),
            http_client=_HttpClient(
                limits=httpx2.Limits(
                    max_connections=1000, max_keepalive_connections=settings.openrouter_keepalive_connections
                )
            ),
            default_headers={"HTTP-Referer": settings.openrouter_referer, "X-Title": settings.openrouter_title},
        )

    def complete(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        response_format: dict[str, Any] | None = None,
    ) -> Completion:
        started = time.perf_counter()
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if response_format is not None:  # structured output (batched analyses); OpenRouter passes it on
            body["response_format"] = response_format
        try:
            # The SDK's own client (auth, headers, timeouts, error classes), asked for the raw
            # response: chat.completions.create would first walk the params through its
            # TypedDict transform and later build pydantic models, both measurable per call.
            response = self._sdk.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as exc:
            headers = exc.response.headers
            raise translate(
                exc.status_code, error_body(exc.response), retry_after_seconds(headers.get("retry-after"))
            ) from exc
        except openai.APITimeoutError as exc:
            raise errors.ProviderTimeout(f"{model}: timed out") from exc
        except openai.APIConnectionError as exc:
            raise errors.ProviderUnavailable(f"{model}: connection failed ({exc.__cause__ or exc})") from exc
        latency_ms = int((time.perf_counter() - started) * 1000)
        text, usage = self._read(response.content)
        # The one place a provider's text enters: made storable here, for every caller.
        content, replaced = storable(text)
        return Completion(content, usage, latency_ms=latency_ms, replaced=replaced)

    @staticmethod
    def _read(content: bytes) -> tuple[str, CallUsage]:
        try:
            body = json.loads(content, parse_float=Decimal)
        except ValueError as exc:
            raise errors.BadResponse(f"the response is not JSON: {content[:80]!r}") from exc
        if not isinstance(body, dict):
            raise errors.BadResponse("the response is not a JSON object")
        usage = _usage(body)
        if isinstance(body.get("error"), dict) and not body.get("choices"):
            error = body["error"]
            status = error.get("code") if isinstance(error.get("code"), int) else 502
            raise translate(status, error, None, usage)
        try:
            choice = body["choices"][0]
            finish = choice.get("finish_reason")
            content_text = (choice.get("message") or {}).get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise errors.BadResponse("the response has no choices") from exc
        if finish == "error":
            detail = (choice.get("error") or {}).get("message", "the provider stopped with an error")
            raise errors.FallbackError(f"finish_reason error: {detail}", status=200, usage=usage)
        if not isinstance(content_text, str):
            raise errors.BadResponse("the response has no message content", usage=usage)
        return content_text, usage


_client: OpenRouterClient | None = None
_client_lock = threading.Lock()


def get_client() -> OpenRouterClient:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = OpenRouterClient(get_settings())
    return _client
