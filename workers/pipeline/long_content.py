"""Long analyses on tiers with ``long_content = "summarize"``: the content is condensed by the
catalog's cheap model first (workers/llm/preprocess.py), and the analysis reads the summaries.

Every preprocessing call is an attempt of the job in ``llm_calls`` (``purpose = 'preprocess'``)
with its cost, written as soon as it returns, so the job's totals include it. If condensing
fails for any reason, the analysis falls back to the seed's truncation and says so; it never
fails the job by itself. A redelivered job condenses again (its attempts continue the numbering).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from config import get_catalog, get_settings
from config.prompts import preprocess_messages
from config.tiers import Tier
from db.session import transaction
from workers.errors import DeferredRetry, FallbackError, ProviderError, RetryableError
from workers.llm import costs
from workers.llm.model_chain import run_chain
from workers.llm.model_health import get_health
from workers.llm.openrouter import Completion, get_client
from workers.llm.preprocess import condense
from workers.llm.provider_budget import provider_slot
from workers.ops import metrics
from workers.pipeline import jobs

if TYPE_CHECKING:
    from workers.pipeline.runner import Work

log = logging.getLogger(__name__)

MARK_PREPROCESS = text("UPDATE llm_calls SET purpose = 'preprocess' WHERE job_id = :j AND attempt = :a")
DEGRADED = "summarising failed"  # starts the note of an analysis that fell back to truncation
TOKENS_PER_WORD = 2  # headroom: a word is 1-2 tokens, and a summary cut short is still usable


def _outcome(error: ProviderError | None) -> str:
    if error is None:
        return "ok"
    return "retry" if isinstance(error, RetryableError) else "fallback" if isinstance(error, FallbackError) else "fatal"


def prepare(
    work: Work, claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None] = time.sleep
) -> tuple[Work, jobs.Claim]:
    """The work as the analysis should see it, and the claim with its attempt numbers advanced
    past the preprocessing calls. Unchanged unless the tier summarises long analyses."""
    analysis = get_catalog().analysis
    if work.kind != "analysis" or tier.long_content != "summarize" or len(work.content) <= analysis.max_chars:
        return work, claim
    model = analysis.preprocess_model
    numbers = itertools.count(claim.first_attempt)
    lock = threading.Lock()

    def one_call(chunk: str, part: int, parts: int, words: int) -> str:
        messages = preprocess_messages(chunk, part, parts, words)
        started = [time.perf_counter()]

        def call(m: str) -> Completion:
            started[0] = time.perf_counter()
            with provider_slot(m):
                return get_client().complete(
                    m, messages, max_tokens=words * TOKENS_PER_WORD, temperature=analysis.temperature
                )

        def on_attempt(m: str, error: ProviderError | None, completion: Completion | None) -> None:
            with lock:
                attempt = next(numbers)
            latency = completion.latency_ms if completion else int((time.perf_counter() - started[0]) * 1000)
            outcome = _outcome(error)
            with transaction() as conn:
                cost = costs.record_call(
                    conn,
                    job_id=work.job_id,
                    attempt=attempt,
                    tier=tier,
                    model=m,
                    usage=completion.usage if completion else error.usage,  # type: ignore[union-attr]
                    status=outcome,
                    latency_ms=latency,
                    error_class=None if error is None else type(error).__name__,
                    http_status=None if error is None else error.status,
                )
                conn.execute(MARK_PREPROCESS, {"j": work.job_id, "a": attempt})
            metrics.llm_calls.labels(model=m, outcome=outcome).inc()
            metrics.llm_cost.labels(tier=tier.name, model=m).inc(float(cost))

        served = run_chain(
            (model,),
            call,
            policy=tier.retry,
            in_process_cap=get_settings().retry_in_process_cap_seconds,
            on_attempt=on_attempt,
            sleep=sleep,
            health=get_health(),
        )
        return served.completion.content

    try:
        condensed = condense(
            work.content,
            max_chars=analysis.max_chars,
            chunk_chars=analysis.chunk_chars,
            max_words=analysis.summary_max_tokens,
            call=one_call,
        )
        note = condensed.note(model)
        content = condensed.text
    except (ProviderError, DeferredRetry) as exc:
        log.warning(
            "summarising long content failed; the analysis reads the start instead",
            extra={"job_id": work.job_id, "tier": tier.name, "model": model, "error": type(exc).__name__},
        )
        note = (
            f"{DEGRADED} ({type(exc).__name__}); analysed the first {analysis.max_chars}"
            f" of {len(work.content)} characters"
        )
        content = work.content[: analysis.max_chars]
    with lock:
        next_attempt = next(numbers)
    return dataclasses.replace(work, content=content, note=note), dataclasses.replace(claim, first_attempt=next_attempt)


def degraded(result: dict[str, Any]) -> bool:
    """Whether a JobResult fell back to truncation (such an answer is not worth caching)."""
    detail = result.get("detail")
    return isinstance(detail, str) and detail.startswith(DEGRADED)
