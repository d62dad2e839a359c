"""Running one claimed job to its final state: the answer (from the response cache, a batch, or
the model chain), then its settlement (workers/pipeline/settlement.py).

The ledger rule, as this module keeps it:
- every provider call has its ``pending`` llm_calls row, committed before the request leaves
  (the first one is written by the claim itself), completed when the answer arrives
  (workers/pipeline/attempts.py);
- the successful attempt's row, with the answer, is committed as soon as the answer arrives;
  settlement follows and is retried in process for ``SETTLE_RETRY_SECONDS``; a later delivery
  that finds an ``ok`` attempt settles from it without calling the provider;
- any exception that is not a provider error or a database outage ends the job ``failed`` /
  ``internal_error`` with its unit refunded: a job is never left ``running`` by an exception.

A database outage (``db.errors.UNAVAILABLE``) is not the job's fault: it propagates, and the
task retries the delivery, which takes its own claim back. When the outage struck before the
first attempt's request left (the cache lookup, a retarget), the retry withdraws that
attempt's row (``Claim.unsent_call_id``): it announced a call that was never made.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from config import get_catalog, get_settings
from config.prompts import is_batch, prompt
from config.tiers import Tier
from db.errors import UNAVAILABLE
from workers.errors import ClaimLost, DeferredRetry, FallbackError, FatalProviderError, RetryableError
from workers.pipeline import batch, jobs, long_content, response_reuse, settlement
from workers.pipeline.attempts import ANSWER, Attempts
from workers.pipeline.heartbeat import heartbeat
from workers.pipeline.job_result import JobResult
from workers.pipeline.settlement import Answered, notes
from workers.storable import replacement_note

# Raised past the job: the task retries the delivery (an outage, a long Retry-After), or the
# delivery that holds the job answers (a lost claim).
NOT_THE_JOBS_FAULT = (ClaimLost, DeferredRetry, *UNAVAILABLE)
PROVIDER_FAILURES = (RetryableError, FallbackError, FatalProviderError)


def run(claim: jobs.Claim, sleep: Callable[[float], None] = time.sleep) -> JobResult | None:
    """Run a claimed job to its final state. Returns the JobResult, or None when this delivery
    lost its claim on the way (the delivery that holds it answers the producer)."""
    tier = get_catalog().tier(claim.tier)
    heartbeat.hold(claim.job_id, claim.delivery)
    try:
        if claim.delivery > get_settings().max_deliveries:
            return settlement.poison(claim, tier)
        if claim.answered_id is not None:
            return settlement.settle_from_answer(claim, tier)
        with response_reuse.looked_up(claim, tier) as reuse:
            if reuse.hit is not None:
                return settlement.settle_hit(claim, tier, reuse.hit)
            result = _call_and_settle(claim, tier, sleep)
            reuse.keep(result)
            return result
    except ClaimLost:
        return None
    except (DeferredRetry, *UNAVAILABLE):
        raise
    except Exception as exc:  # settlement itself failed (a DataError, a bug): never leave it running
        return settlement.fail_internal(claim, tier, exc, None)
    finally:
        heartbeat.release(claim.job_id, claim.delivery)


def _call_and_settle(claim: jobs.Claim, tier: Tier, sleep: Callable[[float], None]) -> JobResult | None:
    attempts: Attempts | None = None
    note: str | None = None
    try:
        claim = long_content.prepare(claim, tier, sleep)  # condense long analyses first
        if is_batch(claim.kind, claim.type):  # several analyses in one call: rows written as they come
            return settlement.settle(claim, tier, batch.run(claim, tier, sleep))
        messages, max_tokens, temperature, note = prompt(claim.kind, claim.type, claim.content, tier)
        attempts = Attempts(claim, tier, sleep, first_call_id=claim.call_id)
        served = attempts.chain(tier.models, messages, max_tokens=max_tokens, temperature=temperature, purpose=ANSWER)
    except PROVIDER_FAILURES as exc:
        return settlement.settle_failure(claim, tier, exc, notes(claim.detail, note))
    except NOT_THE_JOBS_FAULT:
        raise
    except Exception as exc:  # a bug, an encoding error in the SDK: never leave the job running
        return settlement.fail_internal(claim, tier, exc, attempts.in_flight if attempts else None)

    replaced = served.completion.replaced  # the client made the text storable
    answered = Answered(
        content=served.completion.content,
        model_used=served.completion.usage.model_served or served.model,
        used_fallback=served.used_fallback,
        detail=notes(claim.detail, note, replacement_note("the answer", replaced) if replaced else None),
        answer=attempts.answer,
    )
    try:
        return settlement.settle_success(claim, tier, answered)
    except NOT_THE_JOBS_FAULT:
        raise
    except Exception as exc:
        attempts.record_answer()
        return settlement.fail_internal(claim, tier, exc, None)
