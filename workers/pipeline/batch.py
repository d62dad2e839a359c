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

The batch answers; the runner settles the job with what ``run`` returns.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from config import get_catalog
from config.prompts import analysis_messages, batch_messages, batch_response_format
from config.tiers import Tier
from workers.errors import FallbackError, FatalProviderError, ProviderError, RetryableError
from workers.llm.capabilities import lacks_structured_outputs, remember_no_structured_outputs
from workers.llm.model_chain import Served
from workers.ops import metrics
from workers.pipeline import jobs
from workers.pipeline.attempts import Attempts
from workers.pipeline.batch_types import is_batch, known, normalise, parse, types_of, units
from workers.pipeline.settlement import Answered, Outcome, ProviderFailed
from workers.storable import replacement_note, storable

__all__ = ["is_batch", "known", "normalise", "parse", "run", "types_of", "units"]

log = logging.getLogger(__name__)


def run(claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """Answer every type of a batched analysis: the answers, or the provider failure that
    ended it. Every call is in the ledger by the time it returns."""
    analysis = get_catalog().analysis
    types = types_of(claim.type)
    notes = [claim.detail] if isinstance(claim.detail, str) and claim.detail else []
    content = claim.content
    if len(content) > analysis.max_chars:
        notes.append(f"analysed the first {analysis.max_chars} of {len(content)} characters")
        content = content[: analysis.max_chars]
    # The claim's pending row (written for the chain's first model) carries the first call.
    attempts = Attempts(claim, tier, sleep, first_call_id=claim.call_id)
    answers: dict[str, str] | None = None
    served: Served | None = None
    replaced = 0  # characters that cannot be stored, replaced in the answers used
    if lacks_structured_outputs(tier.models[0]):
        notes.append(f"{tier.models[0]} gives no structured answers; one call per type")
    else:
        try:
            served = attempts.chain(
                tier.models,
                batch_messages(types, content),
                max_tokens=analysis.max_tokens * len(types),
                temperature=analysis.temperature,
                purpose="batch",
                response_format=batch_response_format(types),
            )
            answers = parse(served.completion.content, types)
            if answers is None:
                remember_no_structured_outputs(served.model)
                notes.append(f"{served.model} gave no structured answer; one call per type")
            else:
                replaced = served.completion.replaced
        except FatalProviderError as exc:
            return ProviderFailed(exc, "; ".join(notes) or None)
        except (RetryableError, FallbackError) as exc:
            notes.append(f"the batched call failed ({type(exc).__name__}); one call per type")
    mode = "batched"
    if answers is None:
        try:
            answers, served, replaced = _one_call_per_type(attempts, tier, types, content)
        except ProviderError as exc:
            return ProviderFailed(exc, "; ".join(notes) or None)
        mode = "per_type"
    assert served is not None
    # The provider's text is storable already, but a JSON answer may escape what is not
    # ("\u0000"): each decoded answer passes the same sanitizer.
    for type_, answer in answers.items():
        answers[type_], count = storable(answer)
        replaced += count
    if replaced:
        notes.append(replacement_note("the answers", replaced))
    metrics.batched_analyses.labels(tier=tier.name, mode=mode).inc()
    return Answered(
        content=json.dumps(answers),
        model_used=served.completion.usage.model_served or served.model,
        used_fallback=served.used_fallback,
        detail="; ".join(notes) or None,
    )


def _one_call_per_type(
    attempts: Attempts, tier: Tier, types: list[str], content: str
) -> tuple[dict[str, str], Served, int]:
    """The answers by type, the last call served, and how many characters the client replaced."""
    analysis = get_catalog().analysis
    answers: dict[str, str] = {}
    served: Served | None = None
    replaced = 0
    for type_ in types:
        served = attempts.chain(
            tier.models,
            analysis_messages(type_, content),
            max_tokens=analysis.max_tokens,
            temperature=analysis.temperature,
            purpose="part",  # one part of the answer: never settled from on its own
        )
        answers[type_] = served.completion.content
        replaced += served.completion.replaced
    assert served is not None
    return answers, served, replaced
