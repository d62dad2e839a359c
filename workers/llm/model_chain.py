"""The retry and fallback policy of a tier, in one function (``run_chain``).

Retryable errors are retried per model (backoff with full jitter, or the provider's
Retry-After) until the tier's attempts or seconds run out; a fallback error or exhausted retries
move to the next model; a fatal error ends the chain; a long Retry-After raises DeferredRetry;
models marked unhealthy are skipped, except the last. Sleeping is injectable (``sleep=``).
The table of provider answers: docs/architecture.md, "Errors, retries and fallback".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from config.tiers import RetryPolicy
from workers.errors import DeferredRetry, FallbackError, ProviderError, RetryableError
from workers.llm.openrouter import Completion

BACKOFF_MULTIPLIER = 0.5  # seconds; full jitter in [0, 0.5 * 2^n]
BACKOFF_MAX = 8.0


class wait_provider(wait_base):
    """Wait as long as the provider's Retry-After asks, else full-jitter exponential backoff."""

    def __init__(self, backoff: wait_base):
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(exc, "retry_after", None)
        return asked if asked is not None else self.backoff(retry_state)


@dataclass(frozen=True)
class Served:
    completion: Completion
    model: str
    used_fallback: bool


class HealthGate(Protocol):
    """What the chain asks of shared model health (workers.llm.model_health.ModelHealth)."""

    def available(self, model: str) -> bool: ...

    def healthy(self, model: str) -> bool: ...

    def record(self, model: str, error: ProviderError | None) -> None: ...


Call = Callable[[str], Completion]
Attempted = Callable[[str, ProviderError | None, Completion | None], None]


def run_chain(
    models: tuple[str, ...],
    call: Call,
    *,
    policy: RetryPolicy,
    in_process_cap: float,
    on_attempt: Attempted,
    sleep: Callable[[float], None] = time.sleep,
    health: HealthGate | None = None,
) -> Served:
    """Serve the request from the first model that can. Raises the last ProviderError
    when none could, a FatalProviderError at once, or DeferredRetry."""

    def attempt(model: str) -> Completion:
        try:
            completion = call(model)
        except ProviderError as exc:
            if health is not None:
                health.record(model, exc)
            on_attempt(model, exc, None)
            if isinstance(exc, RetryableError) and exc.retry_after is not None and exc.retry_after > in_process_cap:
                raise DeferredRetry(exc.retry_after, exc) from exc
            raise
        if health is not None:
            health.record(model, None)
        on_attempt(model, None, completion)
        return completion

    def retryable_here(model: str, is_last: bool) -> Callable[[BaseException], bool]:
        # Stop retrying a model the moment any worker marks it unhealthy: go to the next.
        # The last model is the last resort and keeps its full retry policy.
        def check(exc: BaseException) -> bool:
            return isinstance(exc, RetryableError) and (health is None or is_last or health.healthy(model))

        return check

    last: ProviderError | None = None
    for index, model in enumerate(models):
        is_last = index == len(models) - 1
        if health is not None and not is_last and not health.available(model):
            continue  # marked unhealthy by shared model health: straight to the next model
        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.seconds),
            wait=wait_provider(wait_random_exponential(multiplier=BACKOFF_MULTIPLIER, max=BACKOFF_MAX)),
            retry=retry_if_exception(retryable_here(model, is_last)),
            sleep=sleep,
            reraise=True,
        )
        try:
            completion = retrying(attempt, model)
        except (RetryableError, FallbackError) as exc:
            last = exc
            continue
        return Served(completion, model, used_fallback=index > 0)
    assert last is not None
    raise last
