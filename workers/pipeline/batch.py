"""Batched analyses: ``analysis_type`` given as a list runs every type in one provider call.

- The types travel as one job type joined with ``+`` (``"summary+keywords"``), in the order
  asked, without repeats; a one-element list is a plain analysis.
- The call asks for a JSON object with one string per type (``response_format`` with a strict
  JSON schema; OpenRouter passes it to the models that support structured outputs).
- A model that answers anything else (prose, JSON cut short, a missing key), or a chain that
  cannot serve the batched request at all, falls back to one call per type. Every call is an
  ``llm_calls`` attempt with its cost (workers/pipeline/attempts.py).
- The JobResult's ``content`` is the JSON text of ``{type: answer}``; ``answers`` holds the
  same object and ``type`` the list (workers/pipeline/job_result.py).
- Quota: one analysis unit per type, taken at intake and given back together on failure.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config import get_catalog
from config.prompts import analysis_messages, batch_messages, batch_response_format
from config.tiers import Tier
from db.session import transaction
from workers.errors import FallbackError, FatalProviderError, ProviderError, RetryableError
from workers.llm.capabilities import lacks_structured_outputs, remember_no_structured_outputs
from workers.llm.model_chain import Served
from workers.ops import metrics
from workers.pipeline import jobs
from workers.pipeline.attempts import Attempts
from workers.pipeline.batch_types import is_batch, known, normalise, parse, types_of, units
from workers.pipeline.job_result import JobResult, job_result
from workers.quotas import allowance as quotas
from workers.quotas import spend_alerts

__all__ = ["is_batch", "known", "normalise", "parse", "run", "types_of", "units"]

if TYPE_CHECKING:
    from workers.pipeline.runner import Work

log = logging.getLogger(__name__)


def run(work: Work, claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Answer every type of a batched analysis and settle the job. Returns the JobResult."""
    from workers.pipeline.runner import _settle_failure  # the one place a failure is settled

    analysis = get_catalog().analysis
    types = types_of(work.type)
    notes = [work.note] if work.note else []
    content = work.content
    if len(content) > analysis.max_chars:
        notes.append(f"analysed the first {analysis.max_chars} of {len(content)} characters")
        content = content[: analysis.max_chars]
    attempts = Attempts(work.job_id, claim.first_attempt, tier, sleep)
    answers: dict[str, str] | None = None
    served: Served | None = None
    if lacks_structured_outputs(tier.models[0]):
        notes.append(f"{tier.models[0]} gives no structured answers; one call per type")
    else:
        try:
            served = attempts.chain(
                tier.models,
                batch_messages(types, content),
                max_tokens=analysis.max_tokens * len(types),
                temperature=analysis.temperature,
                purpose="answer",
                response_format=batch_response_format(types),
            )
            answers = parse(served.completion.content, types)
            if answers is None:
                remember_no_structured_outputs(served.model)
                notes.append(f"{served.model} gave no structured answer; one call per type")
        except FatalProviderError as exc:
            return _settle_failure(work, claim, tier, exc, "; ".join(notes) or None)
        except (RetryableError, FallbackError) as exc:
            notes.append(f"the batched call failed ({type(exc).__name__}); one call per type")
    mode = "batched"
    if answers is None:
        try:
            answers, served = _one_call_per_type(attempts, tier, types, content)
        except ProviderError as exc:
            return _settle_failure(work, claim, tier, exc, "; ".join(notes) or None)
        mode = "per_type"
    assert served is not None
    metrics.batched_analyses.labels(tier=tier.name, mode=mode).inc()
    return _settle_success(work, claim, tier, answers, served, "; ".join(notes) or None)


def _one_call_per_type(attempts: Attempts, tier: Tier, types: list[str], content: str) -> tuple[dict[str, str], Served]:
    analysis = get_catalog().analysis
    answers: dict[str, str] = {}
    served: Served | None = None
    for type_ in types:
        served = attempts.chain(
            tier.models,
            analysis_messages(type_, content),
            max_tokens=analysis.max_tokens,
            temperature=analysis.temperature,
            purpose="answer",
        )
        answers[type_] = served.completion.content
    assert served is not None
    return answers, served


def _settle_success(
    work: Work, claim: jobs.Claim, tier: Tier, answers: dict[str, str], served: Served, note: str | None
) -> JobResult:
    with transaction() as conn:
        row = jobs.settle(
            conn,
            claim,
            status="succeeded",
            content=json.dumps(answers),
            model_used=served.completion.usage.model_served or served.model,
            used_fallback=served.used_fallback,
            detail=note,
        )
        if row is None:
            return job_result(jobs.find(conn, work.job_id))  # another delivery settled it first
        spend = quotas.add_spend(conn, work.user_id, row.quota_period, row.cost_usd) if row.quota_period else None
    if spend is not None:
        spend_alerts.check(work.user_id, tier, row.quota_period, spend)
    if served.used_fallback:
        metrics.fallbacks.labels(tier=tier.name, model=served.model).inc()
    metrics.jobs.labels(tier=tier.name, kind=work.kind, status="succeeded").inc()
    return job_result(row)
