"""The project's error tree. Vendor exceptions are translated into it in one place each: the
provider's in ``workers.llm.openrouter.translate``, the database's in ``db.errors.translate``,
so producers never see an SDK, HTTP or driver exception.

    LitinkError
     +-- ProviderError                  OpenRouter did not give us a usable answer
          +-- RetryableError            try the same model again, after a wait
          |    +-- ProviderTimeout
          |    +-- ProviderUnavailable
          +-- FallbackError             this model will not work for this request: next model
          |    +-- BadResponse
          +-- FatalProviderError        the whole job must fail; an operator has to act
          |    +-- ProviderAuthError
          |    +-- InsufficientCredits
          +-- GenerationNotFound        /generation does not know the id (yet, or any more)
     +-- BillingError                   Stripe: see workers/billing/errors.py
     +-- DeferredRetry                  the provider asked for a wait too long to hold a slot
     +-- ClaimLost                      this delivery no longer holds its job
     +-- SystemFault                    Postgres or Redis unreachable past the task's retries
     +-- DataRefused                    the database refused a row; the text names the job, never the data
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CallUsage:
    """What a response that failed still reported, so its cost is recorded too."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal | None = None
    model_served: str | None = None
    generation_id: str | None = None


class LitinkError(Exception):
    """Raised for any failure the project itself classifies."""


class ProviderError(LitinkError):
    """Raised when OpenRouter did not give a usable completion."""

    reason = "provider_error"  # the JobResult reason when this ends a job

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        retry_after: float | None = None,
        usage: CallUsage | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.usage = usage or CallUsage()


class RetryableError(ProviderError):
    """Raised for a transient failure: 408, 429, 5xx, 402 in-flight budget."""


class ProviderTimeout(RetryableError):
    """Raised when connecting or reading timed out."""


class ProviderUnavailable(RetryableError):
    """Raised when the connection failed or dropped."""


class FallbackError(ProviderError):
    """Raised when this model cannot serve the request (no providers, context length,
    invalid request, moderation, finish_reason "error")."""


class BadResponse(FallbackError):
    """Raised when a 200 answer is not the JSON a chat completion should be."""


class FatalProviderError(ProviderError):
    """Raised when no model can succeed until an operator acts (key, credits)."""


class ProviderAuthError(FatalProviderError):
    """Raised on 401: the API key is missing, wrong or disabled."""

    reason = "provider_auth"


class InsufficientCredits(FatalProviderError):
    """Raised on a 402 other than the in-flight budget: credits or the key's limit are exhausted."""

    reason = "insufficient_credits"


class GenerationNotFound(ProviderError):
    """Raised when ``GET /generation?id=`` answers 404: the provider has no such generation,
    or has not indexed it yet (OpenRouter lags a little behind the call)."""


class DeferredRetry(LitinkError):
    """Raised when the provider asks for a wait too long to hold a worker slot for."""

    def __init__(self, countdown: float, cause: ProviderError):
        super().__init__(f"retry in {countdown:.0f}s: {cause}")
        self.countdown = countdown
        self.cause = cause


class ClaimLost(LitinkError):
    """Raised when this delivery no longer holds the job (recovery or another delivery took it):
    the delivery that holds it settles and answers."""


class SystemFault(LitinkError):
    """Raised when Postgres or Redis stayed unreachable past the task's retries: the only
    exception a producer's ``AsyncResult.get()`` sees."""


class DataRefused(LitinkError):
    """Raised instead of a database error that could quote row data (``DataError``,
    ``IntegrityError``): it carries a reason and the job id only."""
