"""The one writer of a job's provider-call rows (``llm_calls``): the answer call, batched and
per-type analyses, preprocessing chunks. Every call keeps the ledger rule: its ``pending`` row is
committed before the request leaves, and completed with its cost when the answer arrives. The
answer call's successful row is the exception: it is completed by the settlement statement
itself (workers/pipeline/settlement.py). The story: docs/architecture.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from config import get_settings
from config.tiers import Tier
from db.errors import durably
from db.session import autocommit, transaction
from workers.errors import CallUsage, ClaimLost, FallbackError, ProviderError, RetryableError
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

ANSWER = "answer"  # the purpose of the call whose answer the job settles with


@dataclass
class Attempt:
    """A provider call that was opened: its row, the model called and when it left."""

    call_id: int
    model: str
    started: float


@dataclass
class Answer:
    """The successful answer call, whose row the settlement completes in its own statement."""

    attempt: Attempt
    completion: Completion


def outcome(error: ProviderError | None) -> str:
    """The ``llm_calls.status`` word for an attempt's outcome."""
    if error is None:
        return "ok"
    return "retry" if isinstance(error, RetryableError) else "fallback" if isinstance(error, FallbackError) else "fatal"


def retarget(conn: Connection, call_id: int, model: str, estimate: Any) -> None:
    """Point a pending row at the model actually called (model health skipped the first one)."""
    conn.execute(RETARGET, {"id": call_id, "m": model, "e": estimate})


def open_row(conn: Connection, claim: jobs.Claim, model: str, estimate: Any) -> int:
    """The pending row of this delivery's next call. Raises ClaimLost when the delivery no
    longer holds the job: the delivery that holds it writes its own rows."""
    try:
        return costs.open_attempt(conn, claim.job_id, claim.delivery, model, estimate)[0]
    except LookupError as exc:
        raise ClaimLost(str(exc)) from exc


def completion_fields(attempt: Attempt, error: ProviderError | None, completion: Completion | None) -> dict[str, Any]:
    """What an attempt's row is completed with (``costs.completion_params`` keywords)."""
    if completion is not None:
        usage, latency_ms, content = completion.usage, completion.latency_ms, completion.content
    else:
        assert error is not None
        usage, latency_ms, content = error.usage, int((time.perf_counter() - attempt.started) * 1000), None
    return {
        "model": attempt.model,
        "usage": usage,
        "status": outcome(error),
        "latency_ms": latency_ms,
        "error_class": None if error is None else type(error).__name__,
        "http_status": None if error is None else error.status,
        "content": content,
    }


def answer_params(conn: Connection, tier: Tier, answer: Answer) -> dict[str, Any]:
    """The parameters that complete the answer's row inside the settlement statement (``a_``)."""
    fields = completion_fields(answer.attempt, None, answer.completion)
    return costs.completion_params(conn, answer.attempt.call_id, tier=tier, prefix="a_", **fields)


def close_in_flight(claim: jobs.Claim, tier: Tier, attempt: Attempt, exc: Exception) -> None:
    """Complete the row of a call our own fault interrupted. An encoding error is raised before
    the request is sent: nothing was charged. For anything else we cannot know, so the attempt
    is unknown at its estimate (exposure)."""
    status = "fatal" if isinstance(exc, UnicodeError) else "unknown"

    def write() -> None:
        with transaction() as conn:
            if status == "fatal":
                costs.complete_attempt(
                    conn,
                    attempt.call_id,
                    tier=tier,
                    model=attempt.model,
                    usage=CallUsage(),
                    status="fatal",
                    latency_ms=0,
                    error_class=type(exc).__name__,
                )
            else:
                costs.mark_unknown(conn, attempt.call_id, type(exc).__name__)

    durably(write, what="an attempt", job_id=claim.job_id)


class Attempts:
    """The provider calls of one delivery of a job (thread-safe: chunks may be called at once).

    ``first_call_id`` hands over the pending row the claim already wrote for the job's first
    call (for the chain's first model): the first call made here uses it, for whichever model
    it is. A chain run with purpose ``answer`` keeps its successful call in ``answer`` for the
    settlement; ``in_flight`` is the last call opened, for a failure report.
    """

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
        self.in_flight: Attempt | None = None
        self.answer: Answer | None = None

    def _open(self, model: str, prompt_estimate: int, max_tokens: int, purpose: str) -> int:
        # One open at a time per job: the next attempt number is read inside the insert, so two
        # parallel chunk calls opening at once would take the same one.
        with self._lock:
            reuse, self._first = self._first, None
            if reuse is not None and purpose == ANSWER and model == self.tier.models[0]:
                # The claim wrote this row for this call (the chain's first model, estimated at
                # the job's reservation): the request leaves with no write. A call for another
                # model or purpose re-estimates the row for its own request below.
                call_id = reuse
            else:
                with transaction() as conn:
                    estimate = costs.attempt_estimate(conn, model, self.tier, prompt_estimate, max_tokens)
                    if reuse is not None:
                        retarget(conn, reuse, model, estimate)
                        call_id = reuse
                    else:
                        call_id = open_row(conn, self.claim, model, estimate)
                    if purpose != ANSWER:
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
        prompt_estimate = costs.prompt_tokens_estimate(messages)
        current: list[Attempt] = []  # this chain's call (chains of one job may run at once)

        def call(model: str) -> Completion:
            call_id = self._open(model, prompt_estimate, max_tokens, purpose)
            attempt = Attempt(call_id, model, time.perf_counter())
            current[:] = [attempt]
            self.in_flight = attempt
            with provider_slot(model):
                return get_client().complete(
                    model, messages, max_tokens=max_tokens, temperature=temperature, response_format=response_format
                )

        def on_attempt(model: str, error: ProviderError | None, completion: Completion | None) -> None:
            attempt = current[0]
            if error is None and completion is not None and purpose == ANSWER:
                _count(attempt.model, "ok", completion)
                self.answer = Answer(attempt, completion)  # completed with the settlement
                return
            self._record(attempt, error, completion, purpose)

        return run_chain(
            models,
            call,
            policy=self.tier.retry,
            in_process_cap=get_settings().retry_in_process_cap_seconds,
            on_attempt=on_attempt,
            sleep=self._sleep,
            health=get_health(),
        )

    def record_answer(self) -> None:
        """The settlement failed (a bug, not an outage): the paid answer is recorded anyway."""
        if self.answer is not None:
            self._write(self.answer.attempt, None, self.answer.completion)

    def _record(
        self, attempt: Attempt, error: ProviderError | None, completion: Completion | None, purpose: str
    ) -> None:
        """Complete the attempt's row, committed at once: success or failure, it was paid for."""
        _count(attempt.model, outcome(error), completion)
        if error is not None:
            log.warning(
                "provider call failed",
                extra={
                    "job_id": self.claim.job_id,
                    "tier": self.tier.name,
                    "model": attempt.model,
                    "purpose": purpose,
                    "error": type(error).__name__,
                    "status": error.status,
                },
            )
        self._write(attempt, error, completion)

    def _write(self, attempt: Attempt, error: ProviderError | None, completion: Completion | None) -> None:
        fields = completion_fields(attempt, error, completion)

        def write() -> Any:
            with autocommit() as conn:  # one UPDATE (the price table is read once per few minutes)
                return costs.complete_attempt(conn, attempt.call_id, tier=self.tier, **fields)

        cost = durably(write, what="an attempt", job_id=self.claim.job_id, sleep=self._sleep)
        metrics.llm_cost.labels(tier=self.tier.name, model=attempt.model).inc(float(cost))


def _count(model: str, status: str, completion: Completion | None) -> None:
    metrics.llm_calls.labels(model=model, outcome=status).inc()
    if completion is not None:
        metrics.llm_latency.labels(model=model).observe(completion.latency_ms / 1000)
