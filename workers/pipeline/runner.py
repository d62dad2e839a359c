"""Running one claimed job: prompt, model chain, cost rows, settlement.

Failed attempts are written as they happen (their cost is never lost, even if the worker
dies later). The successful attempt, the job's settlement, the spend and a refund are
written in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config import get_catalog, get_settings
from config.prompts import analysis_messages, script_messages
from config.tiers import Tier
from db.session import transaction
from workers.errors import FallbackError, FatalProviderError, ProviderError, RetryableError
from workers.llm import costs
from workers.llm.model_chain import run_chain
from workers.llm.model_health import get_health  # issue 13: shared model health
from workers.llm.openrouter import Completion, get_client
from workers.llm.provider_budget import provider_slot
from workers.ops import metrics
from workers.pipeline import batch, jobs, long_content, response_reuse
from workers.pipeline.job_result import job_result
from workers.quotas import allowance as quotas
from workers.quotas import spend_alerts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """What the tier task was handed: the job and its input."""

    job_id: str
    user_id: str
    kind: str
    type: str
    tier: str
    content: str
    note: str | None = None  # issue 13: what preprocessing did to the content (long_content.py)


def prompt(work: Work, tier: Tier) -> tuple[list[dict[str, str]], int, float, str | None]:
    """Messages, max_tokens, temperature, and a note when the content was cut."""
    if work.kind == "script":
        return script_messages(work.type, work.content), tier.max_tokens, tier.temperature, None
    analysis = get_catalog().analysis
    note = work.note
    if len(work.content) > analysis.max_chars:
        note = f"analysed the first {analysis.max_chars} of {len(work.content)} characters"
    content = work.content[: analysis.max_chars]
    return analysis_messages(work.type, content), analysis.max_tokens, analysis.temperature, note


def _outcome(error: ProviderError | None) -> str:
    if error is None:
        return "ok"
    if isinstance(error, RetryableError):
        return "retry"
    if isinstance(error, FallbackError):
        return "fallback"
    return "fatal"


def run(work: Work, claim: jobs.Claim, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Settle a claimed job, from the response cache when it can be. Returns the JobResult."""
    # issue 13: the response cache and single-flight wrap the provider path (response_reuse.py)
    return response_reuse.run(work, claim, run_provider, sleep=sleep)


def run_provider(work: Work, claim: jobs.Claim, sleep=time.sleep) -> dict[str, Any]:
    """Call the tier's model chain for a claimed job and settle it. Returns the JobResult."""
    tier = get_catalog().tier(work.tier)
    work, claim = long_content.prepare(work, claim, tier, sleep=sleep)  # issue 13: condense long analyses
    if batch.is_batch(work.kind, work.type):  # issue 13: several analyses in one call
        return batch.run(work, claim, tier, sleep=sleep)
    messages, max_tokens, temperature, note = prompt(work, tier)
    client = get_client()
    attempt_no = claim.first_attempt
    success: dict[str, Any] = {}
    started = time.perf_counter()

    def call(model: str) -> Completion:
        nonlocal started
        started = time.perf_counter()
        with provider_slot(model):
            return client.complete(model, messages, max_tokens=max_tokens, temperature=temperature)

    def on_attempt(model: str, error: ProviderError | None, completion: Completion | None) -> None:
        nonlocal attempt_no
        outcome = _outcome(error)
        metrics.llm_calls.labels(model=model, outcome=outcome).inc()
        if completion is not None:
            metrics.llm_latency.labels(model=model).observe(completion.latency_ms / 1000)
            success.update(attempt=attempt_no, model=model, completion=completion)
        else:
            latency_ms = int((time.perf_counter() - started) * 1000)
            with transaction() as conn:  # a failed attempt is recorded at once
                cost = costs.record_call(
                    conn,
                    job_id=work.job_id,
                    attempt=attempt_no,
                    tier=tier,
                    model=model,
                    usage=error.usage,
                    status=outcome,
                    latency_ms=latency_ms,
                    error_class=type(error).__name__,
                    http_status=error.status,
                )
            metrics.llm_cost.labels(tier=tier.name, model=model).inc(float(cost))
            log.warning(
                "provider call failed",
                extra={
                    "job_id": work.job_id,
                    "tier": tier.name,
                    "model": model,
                    "error": type(error).__name__,
                    "status": error.status,
                },
            )
        attempt_no += 1

    try:
        served = run_chain(
            tier.models,
            call,
            policy=tier.retry,
            on_attempt=on_attempt,
            in_process_cap=get_settings().retry_in_process_cap_seconds,
            sleep=sleep,
            health=get_health(),  # issue 13: skip models marked unhealthy by any worker
        )
    except (RetryableError, FallbackError, FatalProviderError) as exc:
        return _settle_failure(work, claim, tier, exc, note)

    completion = served.completion
    with transaction() as conn:
        cost = costs.record_call(
            conn,
            job_id=work.job_id,
            attempt=success["attempt"],
            tier=tier,
            model=served.model,
            usage=completion.usage,
            status="ok",
            latency_ms=completion.latency_ms,
        )
        row = jobs.settle(
            conn,
            claim,
            status="succeeded",
            content=completion.content,
            model_used=completion.usage.model_served or served.model,
            used_fallback=served.used_fallback,
            detail=note,
        )
        if row is None:
            return job_result(jobs.find(conn, work.job_id))  # another delivery settled it first
        spend = quotas.add_spend(conn, work.user_id, row.quota_period, row.cost_usd) if row.quota_period else None
    if spend is not None:
        spend_alerts.check(work.user_id, tier, row.quota_period, spend)
    metrics.llm_cost.labels(tier=tier.name, model=served.model).inc(float(cost))
    if served.used_fallback:
        metrics.fallbacks.labels(tier=tier.name, model=served.model).inc()
    metrics.jobs.labels(tier=tier.name, kind=work.kind, status="succeeded").inc()
    return job_result(row)


def _settle_failure(
    work: Work, claim: jobs.Claim, tier: Tier, error: ProviderError, note: str | None
) -> dict[str, Any]:
    detail = {"error": type(error).__name__, "message": str(error), "status": error.status}
    if note:
        detail["note"] = note
    if isinstance(error, FatalProviderError):
        log.error(
            "provider refused the account; operator action needed",
            extra={"job_id": work.job_id, "tier": tier.name, "error": type(error).__name__},
        )
    with transaction() as conn:
        row = jobs.settle(conn, claim, status="failed", reason=error.reason, detail=detail)
        if row is None:
            return job_result(jobs.find(conn, work.job_id))
        quotas.refund(conn, work.job_id)  # a provider failure gives the unit back
        if row.quota_period and row.cost_usd:
            quotas.add_spend(conn, work.user_id, row.quota_period, row.cost_usd)
        row = jobs.find(conn, work.job_id)
    metrics.jobs.labels(tier=tier.name, kind=work.kind, status="failed").inc()
    return job_result(row)
