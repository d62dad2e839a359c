"""Provider calls a job makes besides its one answer call: preprocessing chunks, batched and
per-type analyses. Each call runs under the tier's retry policy and shared model health, and
keeps the ledger rule like the answer call: a ``pending`` llm_calls row is committed before
the request leaves (with its ``purpose``), and completed with its cost when the answer arrives.

``first_call_id`` hands over the pending row the claim already wrote for the job's first call
(for the chain's first model): the first call made here uses it, for whichever model it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, text

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
from workers.pipeline import jobs

log = logging.getLogger(__name__)

SET_PURPOSE = text("UPDATE llm_calls SET purpose = :p WHERE id = :id")
RETARGET = text("UPDATE llm_calls SET model = :m, estimate_usd = :e WHERE id = :id AND status = 'pending'")


def outcome(error: ProviderError | None) -> str:
    """The ``llm_calls.status`` word for an attempt's outcome."""
    if error is None:
        return "ok"
    return "retry" if isinstance(error, RetryableError) else "fallback" if isinstance(error, FallbackError) else "fatal"


def retarget(conn: Connection, call_id: int, model: str, estimate: Any) -> None:
    """Point a pending row at the model actually called (model health skipped the first one)."""
    conn.execute(RETARGET, {"id": call_id, "m": model, "e": estimate})


class Attempts:
    """Write-ahead rows for one job's extra provider calls (thread-safe)."""

    def __init__(
        self,
        claim: jobs.Claim,
        tier: Tier,
        sleep: Callable[[float], None] = time.sleep,
        *,
        first_call_id: int | None = None,
    ):
        self.claim = claim
        self.tier = tier
        self._sleep = sleep
        self._first = first_call_id
        self._lock = threading.Lock()

    def _open(self, model: str, prompt_estimate: int, max_tokens: int, purpose: str) -> int:
        from workers.pipeline.runner import ClaimLost

        # One open at a time per job: the next attempt number is read inside the insert, so two
        # parallel chunk calls opening at once would take the same one.
        with self._lock, transaction() as conn:
            reuse, self._first = self._first, None
            estimate = costs.attempt_estimate(conn, model, self.tier, prompt_estimate, max_tokens)
            if reuse is not None:
                retarget(conn, reuse, model, estimate)
                call_id = reuse
            else:
                try:
                    call_id = costs.open_attempt(conn, self.claim.job_id, self.claim.delivery, model, estimate)[0]
                except LookupError as exc:
                    raise ClaimLost(str(exc)) from exc
            if purpose != "answer":
                conn.execute(SET_PURPOSE, {"p": purpose, "id": call_id})
        if call_id == self.claim.call_id:
            self.claim.first_call_sent()  # committed: the request leaves next
        return call_id

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
        from workers.pipeline.runner import durably

        prompt_estimate = costs.prompt_tokens_estimate(messages)
        current: dict[str, Any] = {}

        def call(model: str) -> Completion:
            current.update(id=self._open(model, prompt_estimate, max_tokens, purpose), started=time.perf_counter())
            with provider_slot(model):
                return get_client().complete(
                    model, messages, max_tokens=max_tokens, temperature=temperature, response_format=response_format
                )

        def on_attempt(model: str, error: ProviderError | None, completion: Completion | None) -> None:
            status = outcome(error)
            latency = completion.latency_ms if completion else int((time.perf_counter() - current["started"]) * 1000)
            usage = completion.usage if completion else error.usage  # type: ignore[union-attr]

            def write() -> Any:
                with transaction() as conn:
                    return costs.complete_attempt(
                        conn,
                        current["id"],
                        tier=self.tier,
                        model=model,
                        usage=usage,
                        status=status,
                        latency_ms=latency,
                        error_class=None if error is None else type(error).__name__,
                        http_status=None if error is None else error.status,
                        content=completion.content if completion else None,
                    )

            cost = durably(write, what="an attempt", job_id=self.claim.job_id)
            metrics.llm_calls.labels(model=model, outcome=status).inc()
            metrics.llm_cost.labels(tier=self.tier.name, model=model).inc(float(cost))
            if error is not None:
                log.warning(
                    "provider call failed",
                    extra={"job_id": self.claim.job_id, "tier": self.tier.name, "model": model, "purpose": purpose},
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
