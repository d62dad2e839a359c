"""Long analyses on tiers with ``long_content = "summarize"``: the content is condensed by the
catalog's cheap model first (workers/llm/preprocess.py), and the analysis reads the summaries.

Every preprocessing call is an attempt of the job in ``llm_calls`` (``purpose = 'preprocess'``),
written ``pending`` before it leaves and completed with its cost, so the job's totals include it. If condensing
fails for any reason, the analysis falls back to truncation at ``max_chars`` and says so; it never
fails the job by itself. A redelivered job condenses again.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from config import get_catalog
from config.prompts import preprocess_messages
from config.tiers import Tier
from workers.errors import DeferredRetry, ProviderError
from workers.llm.preprocess import condense
from workers.pipeline import jobs
from workers.pipeline.attempts import Attempts

log = logging.getLogger(__name__)

DEGRADED = "summarising failed"  # starts the note of an analysis that fell back to truncation
TOKENS_PER_WORD = 2  # headroom: a word is 1-2 tokens, and a summary cut short is still usable


def prepare(claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None] = time.sleep) -> jobs.Claim:
    """The claim as the analysis should see it: its content condensed and a note in its detail.
    Unchanged unless the tier summarises long analyses."""
    analysis = get_catalog().analysis
    if claim.kind != "analysis" or tier.long_content != "summarize" or len(claim.content) <= analysis.max_chars:
        return claim
    model = analysis.preprocess_model
    attempts = Attempts(claim, tier, sleep)

    def one_call(chunk: str, part: int, parts: int, words: int) -> str:
        served = attempts.chain(
            (model,),
            preprocess_messages(chunk, part, parts, words),
            max_tokens=words * TOKENS_PER_WORD,
            temperature=analysis.temperature,
            purpose="preprocess",
        )
        return served.completion.content

    try:
        condensed = condense(
            claim.content,
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
            extra={"job_id": claim.job_id, "tier": tier.name, "model": model, "error": type(exc).__name__},
        )
        note = (
            f"{DEGRADED} ({type(exc).__name__}); analysed the first {analysis.max_chars}"
            f" of {len(claim.content)} characters"
        )
        content = claim.content[: analysis.max_chars]
    detail = "; ".join(n for n in (claim.detail, note) if isinstance(n, str) and n)
    return dataclasses.replace(claim, content=content, detail=detail)


def degraded(result: dict[str, Any]) -> bool:
    """Whether a JobResult fell back to truncation (such an answer is not worth caching)."""
    detail = result.get("detail")
    return isinstance(detail, str) and DEGRADED in detail
