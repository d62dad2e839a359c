"""The retry and fallback policy, with an injected sleep: these tests never really sleep."""

import pytest

from config.tiers import RetryPolicy
from workers.errors import (
    CallUsage,
    DeferredRetry,
    FallbackError,
    InsufficientCredits,
    ProviderAuthError,
    RetryableError,
)
from workers.llm.model_chain import BACKOFF_MAX, run_chain
from workers.llm.openrouter import Completion

pytestmark = pytest.mark.unit  # no Postgres, no Redis

POLICY = RetryPolicy(attempts=3, seconds=60)
OK = Completion("text", CallUsage(1, 1), latency_ms=1)


def scripted(answers):
    """A provider that answers each call with the next scripted outcome, per model."""
    calls = []

    def call(model):
        calls.append(model)
        outcome = answers[model].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return call, calls


def chain(answers, cap=10.0):
    call, calls = scripted(answers)
    slept, attempts = [], []
    served = run_chain(
        ("a", "b"),
        call,
        policy=POLICY,
        in_process_cap=cap,
        sleep=slept.append,
        on_attempt=lambda m, e, c: attempts.append((m, type(e).__name__ if e else "ok")),
    )
    return served, calls, slept, attempts


def test_retry_after_is_honoured_on_the_same_model():
    served, calls, slept, _ = chain({"a": [RetryableError("429", status=429, retry_after=2.5), OK]})
    assert served.model == "a" and not served.used_fallback
    assert calls == ["a", "a"] and slept == [2.5]


def test_without_retry_after_the_backoff_is_jittered_and_bounded():
    _, _, slept, _ = chain({"a": [RetryableError("503"), RetryableError("503"), OK]})
    assert len(slept) == 2 and all(0 <= s <= BACKOFF_MAX for s in slept)


def test_after_the_tiers_attempts_the_next_model_serves():
    served, calls, _, attempts = chain({"a": [RetryableError("503")] * 3, "b": [OK]})
    assert served.model == "b" and served.used_fallback
    assert calls == ["a", "a", "a", "b"]
    assert [a[1] for a in attempts] == ["RetryableError"] * 3 + ["ok"]


def test_a_fallback_error_moves_on_without_retrying():
    served, calls, slept, _ = chain({"a": [FallbackError("404 no allowed providers")], "b": [OK]})
    assert calls == ["a", "b"] and slept == [] and served.used_fallback


@pytest.mark.parametrize("fatal", [ProviderAuthError("401"), InsufficientCredits("402")])
def test_a_fatal_error_ends_the_chain_at_once(fatal):
    with pytest.raises(type(fatal)):
        chain({"a": [fatal], "b": [OK]})


def test_a_retry_after_beyond_the_cap_gives_the_slot_back():
    with pytest.raises(DeferredRetry) as raised:
        chain({"a": [RetryableError("429", retry_after=120)]}, cap=10)
    assert raised.value.countdown == 120


def test_when_every_model_fails_the_last_error_is_raised():
    with pytest.raises(RetryableError):
        chain({"a": [RetryableError("502")] * 3, "b": [RetryableError("502")] * 3})
