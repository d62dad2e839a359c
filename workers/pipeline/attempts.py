"""Provider calls a job makes besides its one answer call: preprocessing chunks, batched and
per-type analyses. Each call runs under the tier's retry policy and shared model health, and
each attempt is an ``llm_calls`` row with its cost, committed as soon as it returns.

Attempt numbers continue from the claim's ``first_attempt`` and are handed out under a lock,
so calls made in parallel threads never share one; ``next_attempt`` is where the job's own
answer call continues.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from config import get_settings
from config.tiers import Tier
from db.session import transaction
from workers.errors import FallbackError, ProviderError, RetryableError
from workers.llm import costs
from workers.llm.model_chain import Served, run_chain
from workers.llm.model_health import get_health
from workers.llm.openrouter import Completion, get_client
from workers.llm.provider_budget import provider_slot
from workers.ops import metrics

log = logging.getLogger(__name__)

MARK_PURPOSE = text("UPDATE llm_calls SET purpose = :p WHERE job_id = :j AND attempt = :a")


def outcome(error: ProviderError | None) -> str:
    """The ``llm_calls.status`` word for an attempt's outcome."""
    if error is None:
        return "ok"
    return "retry" if isinstance(error, RetryableError) else "fallback" if isinstance(error, FallbackError) else "fatal"


class Attempts:
    """Numbering and recording of one job's extra provider calls."""

    def __init__(self, job_id: str, first_attempt: int, tier: Tier, sleep: Callable[[float], None] = time.sleep):
        self.job_id = job_id
        self.tier = tier
        self._numbers = itertools.count(first_attempt)
        self._lock = threading.Lock()
        self._sleep = sleep
        self._last = first_attempt - 1

    @property
    def next_attempt(self) -> int:
        with self._lock:
            return self._last + 1

    def _take(self) -> int:
        with self._lock:
            self._last = next(self._numbers)
            return self._last

    def chain(
        self,
        models: tuple[str, ...],
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        purpose: str,
        response_format: dict[str, Any] | None = None,
    ) -> Served:
        """Serve ``messages`` from the first of ``models`` that can; raises like run_chain."""
        started = [time.perf_counter()]

        def call(model: str) -> Completion:
            started[0] = time.perf_counter()
            with provider_slot(model):
                return get_client().complete(
                    model, messages, max_tokens=max_tokens, temperature=temperature, response_format=response_format
                )

        def on_attempt(model: str, error: ProviderError | None, completion: Completion | None) -> None:
            attempt = self._take()
            status = outcome(error)
            latency = completion.latency_ms if completion else int((time.perf_counter() - started[0]) * 1000)
            usage = completion.usage if completion else error.usage  # type: ignore[union-attr]
            with transaction() as conn:
                cost = costs.record_call(
                    conn,
                    job_id=self.job_id,
                    attempt=attempt,
                    tier=self.tier,
                    model=model,
                    usage=usage,
                    status=status,
                    latency_ms=latency,
                    error_class=None if error is None else type(error).__name__,
                    http_status=None if error is None else error.status,
                )
                if purpose != "answer":
                    conn.execute(MARK_PURPOSE, {"p": purpose, "j": self.job_id, "a": attempt})
            metrics.llm_calls.labels(model=model, outcome=status).inc()
            metrics.llm_cost.labels(tier=self.tier.name, model=model).inc(float(cost))
            if error is not None:
                log.warning(
                    "provider call failed",
                    extra={"job_id": self.job_id, "tier": self.tier.name, "model": model, "purpose": purpose},
                )

        return run_chain(
            models,
            call,
            policy=self.tier.retry,
            in_process_cap=get_settings().retry_in_process_cap_seconds,
            on_attempt=on_attempt,
            sleep=self._sleep,
            health=get_health(),
        )
