"""The retry and fallback policy of a tier, in one function.

For each model of the tier's chain, in order:
- retry RetryableError with exponential backoff and full jitter, or the provider's
  Retry-After when it sent one, until the tier's attempts or seconds run out;
- a FallbackError, or retries running out, moves on to the next model;
- a FatalProviderError ends the chain: no other model can succeed (key, credits);
- a Retry-After longer than the in-process cap raises DeferredRetry, so the task gives its
  worker slot back and Celery retries it later.

Sleeping is injectable (``sleep=``), so tests never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
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
) -> Served:
    """Serve the request from the first model that can. Raises the last ProviderError
    when none could, a FatalProviderError at once, or DeferredRetry."""

    def attempt(model: str) -> Completion:
        try:
            completion = call(model)
        except ProviderError as exc:
            on_attempt(model, exc, None)
            if isinstance(exc, RetryableError) and exc.retry_after is not None and exc.retry_after > in_process_cap:
                raise DeferredRetry(exc.retry_after, exc) from exc
            raise
        on_attempt(model, None, completion)
        return completion

    last: ProviderError | None = None
    for index, model in enumerate(models):
        retrying = Retrying(
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.seconds),
            wait=wait_provider(wait_random_exponential(multiplier=BACKOFF_MULTIPLIER, max=BACKOFF_MAX)),
            retry=retry_if_exception_type(RetryableError),
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
