"""Running one claimed job: prompt, model chain, write-ahead attempt rows, settlement.

The ledger rule, as this module keeps it:
- every provider call has its ``pending`` llm_calls row, committed before the request leaves
  (the first one is written by the claim itself), completed when the answer arrives;
- the successful attempt's row, with the answer, is committed as soon as the answer arrives;
  settlement follows and is retried in process for ``SETTLE_RETRY_SECONDS``; a later delivery
  that finds an ``ok`` attempt settles from it without calling the provider;
- any exception that is not a provider error or a database outage ends the job ``failed`` /
  ``internal_error`` with its unit refunded: a job is never left ``running`` by an exception.

A database outage (``DB_ERRORS``) is not the job's fault: it propagates, and the task retries
the delivery, which takes its own claim back. When the outage struck before the first
attempt's request left (the cache lookup, a retarget), the retry withdraws that attempt's row
(``Claim.unsent_call_id``): it announced a call that was never made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from config import get_catalog, get_settings
from config.prompts import analysis_messages, batch_messages, script_messages
from config.tiers import Tier
from db.session import autocommit, transaction
from workers.errors import CallUsage, DeferredRetry, FallbackError, FatalProviderError, ProviderError, RetryableError
from workers.llm import costs
from workers.llm.model_chain import run_chain
from workers.llm.model_health import get_health  # issue 13: shared model health
from workers.llm.openrouter import Completion, get_client
from workers.llm.provider_budget import provider_slot
from workers.ops import metrics
from workers.pipeline import batch, jobs, long_content, response_reuse  # batch, long_content, response_reuse: issue 13
from workers.pipeline.attempts import outcome, retarget
from workers.pipeline.heartbeat import heartbeat
from workers.pipeline.job_result import JobResult, job_result
from workers.quotas import spend_alerts
from workers.storable import replacement_note

log = logging.getLogger(__name__)

# Postgres unreachable or the pool exhausted: retry, never fail the job for it.
DB_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
RECORD_BACKOFF_MAX = 5.0

T = TypeVar("T")


class ClaimLost(Exception):
    """Raised when this delivery no longer holds the job (recovery or another delivery took it)."""


def prompt(kind: str, type_: str, content: str, tier: Tier) -> tuple[list[dict[str, str]], int, float, str | None]:
    """Messages, max_tokens, temperature, and a note when the content was cut."""
    if kind == "script":
        return script_messages(type_, content), tier.max_tokens, tier.temperature, None
    analysis = get_catalog().analysis
    note = None
    if len(content) > analysis.max_chars:
        note = f"analysed the first {analysis.max_chars} of {len(content)} characters"
    if batch.is_batch(kind, type_):  # issue 13: several analyses in one call (the batched request)
        types = batch.types_of(type_)
        messages = batch_messages(types, content[: analysis.max_chars])
        return messages, analysis.max_tokens * len(types), analysis.temperature, note
    return analysis_messages(type_, content[: analysis.max_chars]), analysis.max_tokens, analysis.temperature, note


def durably(write: Callable[[], T], *, what: str, job_id: str) -> T:
    """Run a database write, retrying a database outage with bounded backoff
    (``SETTLE_RETRY_SECONDS``): what it records was paid for and must not be lost."""
    deadline = time.monotonic() + get_settings().settle_retry_seconds
    wait = 0.25
    while True:
        try:
            return write()
        except DB_ERRORS:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("could not record %s; retrying", what, extra={"job_id": job_id, "wait": wait})
            time.sleep(wait)
            wait = min(wait * 2, RECORD_BACKOFF_MAX)


def _notes(*notes: Any) -> str | None:
    kept = [n for n in notes if isinstance(n, str) and n]
    return "; ".join(kept) or None


@dataclass
class _Attempt:
    call_id: int
    model: str
    started: float


def run(claim: jobs.Claim, sleep: Callable[[float], None] = time.sleep) -> JobResult | None:
    """Run a claimed job to its final state. Returns the JobResult, or None when this delivery
    lost its claim on the way (the delivery that holds it answers the producer)."""
    tier = get_catalog().tier(claim.tier)
    heartbeat.hold(claim.job_id, claim.delivery)
    try:
        if claim.delivery > get_settings().max_deliveries:
            return _poison(claim, tier)
        if claim.answered_id is not None:
            return _settle_from_answer(claim, tier)
        # issue 13: the response cache and single-flight wrap the provider path (response_reuse.py)
        return response_reuse.run(claim, tier, lambda: _call_and_settle(claim, tier, sleep))
    except ClaimLost:
        return None
    except (DeferredRetry, *DB_ERRORS):
        raise
    except Exception as exc:  # settlement itself failed (a DataError, a bug): never leave it running
        return _fail_internal(claim, tier, exc, None)
    finally:
        heartbeat.release(claim.job_id, claim.delivery)


class _Calls:
    """The provider calls of one delivery. Each has its llm_calls row, opened (pending) before
    the request leaves and completed when it returns (the answer's row by the settlement
    itself, in the same statement); the attempt in flight is kept for a failure report."""

    def __init__(
        self, claim: jobs.Claim, tier: Tier, messages: list[dict[str, str]], max_tokens: int, temperature: float
    ) -> None:
        self.claim, self.tier = claim, tier
        self.messages, self.max_tokens, self.temperature = messages, max_tokens, temperature
        self.prompt_estimate = costs.prompt_tokens_estimate(messages)
        self.current: _Attempt | None = None
        self.answer: _Answer | None = None  # the successful call, completed with the settlement
        self._preopened = claim.call_id  # the claim wrote the first attempt's pending row
        self._client = get_client()

    def call(self, model: str) -> Completion:
        if self._preopened is not None:
            call_id, self._preopened = self._preopened, None
            if model != self.tier.models[0]:  # model health skipped the first model
                _retarget(call_id, self.tier, model, self.prompt_estimate, self.max_tokens)
        else:
            call_id = _open_attempt(self.claim, self.tier, model, self.prompt_estimate, self.max_tokens)
        if call_id == self.claim.call_id:
            self.claim.first_call_sent()  # no database write until the answer: the request leaves
        self.current = _Attempt(call_id, model, time.perf_counter())
        with provider_slot(model):
            return self._client.complete(model, self.messages, max_tokens=self.max_tokens, temperature=self.temperature)

    def recorded(self, model: str, error: ProviderError | None, completion: Completion | None) -> None:
        assert self.current is not None
        if error is None and completion is not None:  # the chain's last attempt: settled with it
            _count_call(self.current.model, "ok", completion)
            self.answer = _Answer(self.current, completion)
            return
        _record(self.claim, self.tier, self.current, error, completion)

    def record_answer_alone(self) -> None:
        """The settlement failed (a bug, not an outage): the paid answer is recorded anyway."""
        if self.answer is not None:
            _write_attempt(self.claim, self.tier, self.answer.attempt, None, self.answer.completion)


def _call_and_settle(claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None]) -> JobResult | None:
    calls: _Calls | None = None
    note: str | None = None
    try:
        claim = long_content.prepare(claim, tier, sleep)  # issue 13: condense long analyses first
        if batch.is_batch(claim.kind, claim.type):  # issue 13: several analyses in one call
            return batch.run(claim, tier, sleep)
        messages, max_tokens, temperature, note = prompt(claim.kind, claim.type, claim.content, tier)
        calls = _Calls(claim, tier, messages, max_tokens, temperature)
        served = run_chain(
            tier.models,
            calls.call,
            policy=tier.retry,
            on_attempt=calls.recorded,
            in_process_cap=get_settings().retry_in_process_cap_seconds,
            sleep=sleep,
            health=get_health(),  # issue 13: skip models marked unhealthy by any worker
        )
    except (RetryableError, FallbackError, FatalProviderError) as exc:
        return _settle_failure(claim, tier, exc, _notes(claim.detail, note))
    except (ClaimLost, DeferredRetry, *DB_ERRORS):
        raise
    except Exception as exc:  # a bug, an encoding error in the SDK: never leave the job running
        return _fail_internal(claim, tier, exc, calls.current if calls else None)

    replaced = served.completion.replaced  # the client made the text storable
    detail = _notes(claim.detail, note, replacement_note("the answer", replaced) if replaced else None)
    try:
        return _settle_success(
            claim,
            tier,
            content=served.completion.content,
            model_used=served.completion.usage.model_served or served.model,
            used_fallback=served.used_fallback,
            detail=detail,
            answer=calls.answer,
        )
    except (ClaimLost, DeferredRetry, *DB_ERRORS):
        raise
    except Exception as exc:
        calls.record_answer_alone()
        return _fail_internal(claim, tier, exc, None)


def _open_attempt(claim: jobs.Claim, tier: Tier, model: str, prompt_estimate: int, max_tokens: int) -> int:
    def write() -> int:
        with transaction() as conn:
            estimate = costs.attempt_estimate(conn, model, tier, prompt_estimate, max_tokens)
            try:
                return costs.open_attempt(conn, claim.job_id, claim.delivery, model, estimate)[0]
            except LookupError as exc:
                raise ClaimLost(str(exc)) from exc

    return write()  # nothing was sent yet: a database error here is retried by the task


def _retarget(call_id: int, tier: Tier, model: str, prompt_estimate: int, max_tokens: int) -> None:
    with transaction() as conn:
        retarget(conn, call_id, model, costs.attempt_estimate(conn, model, tier, prompt_estimate, max_tokens))


@dataclass
class _Answer:
    """The successful call, whose row the settlement completes."""

    attempt: _Attempt
    completion: Completion


def _count_call(model: str, outcome: str, completion: Completion | None) -> None:
    metrics.llm_calls.labels(model=model, outcome=outcome).inc()
    if completion is not None:
        metrics.llm_latency.labels(model=model).observe(completion.latency_ms / 1000)


def _completion_fields(attempt: _Attempt, error: ProviderError | None, completion: Completion | None) -> dict[str, Any]:
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


def _record(
    claim: jobs.Claim, tier: Tier, attempt: _Attempt, error: ProviderError | None, completion: Completion | None
) -> None:
    """Complete the attempt's row, committed at once: success or failure, it was paid for."""
    _count_call(attempt.model, outcome(error), completion)
    if error is not None:
        log.warning(
            "provider call failed",
            extra={
                "job_id": claim.job_id,
                "tier": tier.name,
                "model": attempt.model,
                "error": type(error).__name__,
                "status": error.status,
            },
        )
    _write_attempt(claim, tier, attempt, error, completion)


def _write_attempt(
    claim: jobs.Claim, tier: Tier, attempt: _Attempt, error: ProviderError | None, completion: Completion | None
) -> None:
    fields = _completion_fields(attempt, error, completion)

    def write() -> Any:
        with autocommit() as conn:  # one UPDATE (the price table is read once per few minutes)
            return costs.complete_attempt(conn, attempt.call_id, tier=tier, **fields)

    cost = durably(write, what="an attempt", job_id=claim.job_id)
    metrics.llm_cost.labels(tier=tier.name, model=attempt.model).inc(float(cost))


def _finish(claim: jobs.Claim, tier: Tier, answer: _Answer | None = None, **settlement: Any) -> JobResult | None:
    """Settle the job in one statement; with ``answer``, its row is completed in the same one."""
    answer_cost: list[Any] = []

    def write() -> Any:
        with autocommit() as conn:  # settlement is one statement
            params = None
            if answer is not None:
                fields = _completion_fields(answer.attempt, None, answer.completion)
                params = costs.completion_params(conn, answer.attempt.call_id, tier=tier, prefix="a_", **fields)
                answer_cost[:] = [params["a_cost"]]
            return jobs.settle(conn, claim, answer=params, **settlement)

    row = durably(write, what="a settlement", job_id=claim.job_id)
    if answer is not None:
        metrics.llm_cost.labels(tier=tier.name, model=answer.attempt.model).inc(float(answer_cost[0]))
    if row is None:
        return None  # this delivery lost its claim; the one that holds it settles
    if row.quota_period is not None and row.spend is not None and row.cost_usd:
        spend_alerts.check(claim.user_id, tier, row.quota_period, row.spend)
    metrics.jobs.labels(tier=tier.name, kind=claim.kind, status=row.status).inc()
    return job_result(row)


def _settle_success(
    claim: jobs.Claim,
    tier: Tier,
    *,
    content: str,
    model_used: str,
    used_fallback: bool,
    detail: Any,
    answer: _Answer | None = None,
) -> JobResult | None:
    if used_fallback:
        metrics.fallbacks.labels(tier=tier.name, model=model_used).inc()
    return _finish(
        claim,
        tier,
        answer,
        status="succeeded",
        content=content,
        model_used=model_used,
        used_fallback=used_fallback,
        detail=detail,
    )


def _settle_from_answer(claim: jobs.Claim, tier: Tier) -> JobResult | None:
    """A previous delivery got the answer and died before settling: settle from its row."""
    assert claim.answered_id is not None
    with transaction() as conn:
        answered = jobs.answer(conn, claim.answered_id)
    log.info("settling from an answer already paid for", extra={"job_id": claim.job_id, "tier": tier.name})
    return _settle_success(
        claim,
        tier,
        content=answered.response_content or "",
        model_used=answered.model_served or answered.model,
        used_fallback=answered.model != tier.models[0],
        detail=_notes(claim.detail),
    )


def _settle_failure(claim: jobs.Claim, tier: Tier, error: ProviderError, note: str | None) -> JobResult | None:
    detail: dict[str, Any] = {"error": type(error).__name__, "message": str(error), "status": error.status}
    if note:
        detail["note"] = note
    if isinstance(error, FatalProviderError):
        log.error(
            "provider refused the account; operator action needed",
            extra={"job_id": claim.job_id, "tier": tier.name, "error": type(error).__name__},
        )
    return _finish(claim, tier, status="failed", reason=error.reason, detail=detail, refund=True)


def _poison(claim: jobs.Claim, tier: Tier) -> JobResult | None:
    log.error(
        "job claimed too many times; failed as poison",
        extra={"job_id": claim.job_id, "tier": tier.name, "deliveries": claim.delivery},
    )
    detail = {
        "message": f"the job was claimed {claim.delivery} times without finishing (limit"
        f" {get_settings().max_deliveries}); each worker that ran it stopped before it could settle",
        "deliveries": claim.delivery,
    }
    return _finish(claim, tier, status="failed", reason="poison", detail=detail, refund=True)


def _fail_internal(claim: jobs.Claim, tier: Tier, exc: Exception, current: _Attempt | None) -> JobResult | None:
    """A fault of ours: the job fails ``internal_error``, its unit back, its attempt recorded."""
    log.error(
        "tier task failed with an internal error",
        extra={"job_id": claim.job_id, "tier": tier.name, "error": type(exc).__name__},
        exc_info=exc,
    )
    if current is not None:
        # An encoding error is raised before the request is sent: nothing was charged. For
        # anything else we cannot know, so the attempt is unknown at its estimate (exposure).
        status = "fatal" if isinstance(exc, UnicodeError) else "unknown"

        def write() -> None:
            with transaction() as conn:
                if status == "fatal":
                    costs.complete_attempt(
                        conn,
                        current.call_id,
                        tier=tier,
                        model=current.model,
                        usage=CallUsage(),
                        status="fatal",
                        latency_ms=0,
                        error_class=type(exc).__name__,
                    )
                else:
                    costs.mark_unknown(conn, current.call_id, type(exc).__name__)

        durably(write, what="an attempt", job_id=claim.job_id)
    detail = {
        "error": type(exc).__name__,
        "message": "the worker failed while running the job; an operator was alerted",
    }
    return _finish(claim, tier, status="failed", reason="internal_error", detail=detail, refund=True)
