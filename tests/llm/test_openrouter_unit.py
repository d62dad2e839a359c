"""How each OpenRouter answer is classified, and what the tier's chain then does with it:
retry the same model, fall back to the next, or end the job. Status by status, from the
HTTP error or the 200 body, with the chain's sleep injected (nothing really sleeps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from config.tiers import RetryPolicy
from workers.errors import (
    BadResponse,
    CallUsage,
    DeferredRetry,
    FallbackError,
    InsufficientCredits,
    ProviderAuthError,
    ProviderError,
    RetryableError,
)
from workers.llm.model_chain import run_chain
from workers.llm.openrouter import (
    IN_FLIGHT_BUDGET,
    Completion,
    error_body,
    parse_completion,
    retry_after_seconds,
    translate,
)

pytestmark = pytest.mark.unit

OK = Completion("text", CallUsage(1, 1), latency_ms=1)
POLICY = RetryPolicy(attempts=3, seconds=60)


def error(code: int | str | None = None, message: str = "upstream said no", **metadata) -> dict:
    return {"code": code, "message": message, **({"metadata": metadata} if metadata else {})}


# -- translate: an HTTP error status to the error tree --------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 520, 524, 529])
def test_timeouts_rate_limits_and_server_errors_are_retried(status):
    exc = translate(status, error(status), None)
    assert type(exc) is RetryableError and exc.status == status


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_a_request_this_model_cannot_serve_falls_back(status):
    # 400 invalid request or context length, 403 moderation, 404 no allowed providers, ...
    exc = translate(status, error(status), None)
    assert type(exc) is FallbackError and exc.status == status


def test_404_no_allowed_providers_falls_back_with_the_providers_message():
    exc = translate(404, {"code": 404, "message": "No allowed providers are available for the selected model."}, None)
    assert type(exc) is FallbackError
    assert str(exc) == "No allowed providers are available for the selected model." and exc.code == 404


def test_401_is_a_key_problem_that_ends_the_job():
    exc = translate(401, error(401, "No auth credentials found"), None)
    assert type(exc) is ProviderAuthError and exc.reason == "provider_auth"


def test_402_without_a_reason_is_exhausted_credits_that_end_the_job():
    exc = translate(402, error(402, "Insufficient credits"), None)
    assert type(exc) is InsufficientCredits and exc.reason == "insufficient_credits"


def test_402_in_flight_budget_exhausted_is_only_a_wait():
    exc = translate(402, error(402, "Too many requests in flight", reason=IN_FLIGHT_BUDGET), 1.5)
    assert type(exc) is RetryableError and exc.status == 402 and exc.retry_after == 1.5


@pytest.mark.parametrize("metadata", [{"reason": "something_else"}, "in_flight_budget_exhausted", None])
def test_402_with_any_other_metadata_is_exhausted_credits(metadata):
    exc = translate(402, {"code": 402, "message": "no", "metadata": metadata}, None)
    assert type(exc) is InsufficientCredits


def test_an_error_keeps_its_code_its_retry_after_and_the_usage_it_still_reported():
    usage = CallUsage(prompt_tokens=10, cost=Decimal("0.00001"))
    exc = translate(429, error("rate_limited"), 2.0, usage)
    assert (exc.code, exc.retry_after, exc.usage) == ("rate_limited", 2.0, usage)


def test_an_error_without_a_message_says_its_status():
    assert str(translate(503, {}, None)) == "HTTP 503"


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.25", 0.25), ("0", 0.0), ("-5", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date_is_the_seconds_until_then():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27 <= retry_after_seconds(later) <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(earlier) == 0.0


# -- a 200 answer's body ---------------------------------------------------------------------


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_a_completion_reads_its_text_and_every_digit_of_its_cost():
    content = b'{"id": "gen-1", "model": "deepseek/deepseek-chat", "choices": [{"message": {"content": "Hi"},'
    content += (
        b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "cost": 0.0000123450}}'
    )
    text, usage = parse_completion(content)
    assert text == "Hi"
    assert usage == CallUsage(3, 5, Decimal("0.0000123450"), "deepseek/deepseek-chat", "gen-1")


def test_a_completion_without_usage_costs_nothing_known():
    text, usage = parse_completion(body(choices=[{"message": {"content": "Hi"}}]))
    assert text == "Hi" and usage == CallUsage()


def test_200_with_finish_reason_error_falls_back_and_keeps_what_was_spent():
    content = body(
        id="gen-2",
        choices=[{"message": {"content": ""}, "finish_reason": "error", "error": {"message": "provider crashed"}}],
        usage={"prompt_tokens": 7, "completion_tokens": 0, "cost": 0.00002},
    )
    with pytest.raises(FallbackError) as raised:
        parse_completion(content)
    assert type(raised.value) is FallbackError and raised.value.status == 200
    assert str(raised.value) == "finish_reason error: provider crashed"
    assert raised.value.usage.prompt_tokens == 7 and raised.value.usage.cost == Decimal("0.00002")


def test_200_with_finish_reason_error_and_no_detail_still_says_why():
    with pytest.raises(FallbackError, match="the provider stopped with an error"):
        parse_completion(body(choices=[{"message": {"content": None}, "finish_reason": "error"}]))


@pytest.mark.parametrize(
    ("code", "kind"),
    [(429, RetryableError), (404, FallbackError), (402, InsufficientCredits), ("server_error", RetryableError)],
)
def test_200_carrying_an_error_object_is_classified_by_its_code(code, kind):
    # OpenRouter streams a 200 first and may end it with an error: a code that is no status is a 502
    with pytest.raises(ProviderError) as raised:
        parse_completion(body(error={"code": code, "message": "mid-stream failure"}, usage={"prompt_tokens": 4}))
    assert type(raised.value) is kind
    assert raised.value.status == (code if isinstance(code, int) else 502)
    assert raised.value.usage.prompt_tokens == 4


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"<html>Bad gateway</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body(id="gen-3"), "no choices"),
        (body(choices=[]), "no choices"),
        (body(choices="none"), "no choices"),
        (body(choices=[{"message": {"content": None}, "finish_reason": "stop"}]), "no message content"),
        (body(choices=[{"message": {"content": 42}}]), "no message content"),
        (body(choices=[{}]), "no message content"),
    ],
)
def test_a_body_that_is_no_completion_is_a_bad_response_and_falls_back(content, says):
    with pytest.raises(BadResponse, match=says):
        parse_completion(content)
    assert issubclass(BadResponse, FallbackError)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"error": {"code": 429, "message": "slow down"}}', {"code": 429, "message": "slow down"}),
        (b'{"error": "a string"}', {}),
        (b"[]", {}),
        (b"not json", {}),
    ],
)
def test_the_error_object_of_an_error_response_or_nothing(content, expected):
    assert error_body(SimpleNamespace(content=content)) == expected
    assert error_body(object()) == {}


# -- what the chain does with each ------------------------------------------------------------


def run(first_model_errors: list[ProviderError], cap: float = 10.0):
    """Chain (a, b): model a answers with ``first_model_errors`` then OK; model b answers OK."""
    answers = {"a": [*first_model_errors, OK], "b": [OK]}
    calls, slept = [], []

    def call(model: str) -> Completion:
        calls.append(model)
        outcome = answers[model].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    served = run_chain(
        ("a", "b"), call, policy=POLICY, in_process_cap=cap, on_attempt=lambda *_: None, sleep=slept.append
    )
    return served, calls, slept


@pytest.mark.parametrize(
    "failure",
    [
        translate(429, error(429), None),
        translate(503, error(503), None),
        translate(408, error(408), None),
        translate(402, error(402, reason=IN_FLIGHT_BUDGET), None),
    ],
    ids=["429", "503", "408", "402-in-flight"],
)
def test_a_retryable_answer_is_tried_again_on_the_same_model(failure):
    served, calls, slept = run([failure])
    assert calls == ["a", "a"] and served.model == "a" and not served.used_fallback
    assert len(slept) == 1


@pytest.mark.parametrize(
    "failure",
    [
        translate(404, error(404, "No allowed providers"), None),
        translate(400, error(400, "context length exceeded"), None),
        translate(403, error(403, "flagged by moderation"), None),
        FallbackError("finish_reason error: boom", status=200),
        BadResponse("the response has no choices"),
    ],
    ids=["404", "400", "403", "finish-reason-error", "bad-response"],
)
def test_an_answer_this_model_cannot_give_moves_to_the_next_model_at_once(failure):
    served, calls, slept = run([failure])
    assert calls == ["a", "b"] and served.model == "b" and served.used_fallback
    assert slept == []


@pytest.mark.parametrize(
    "failure",
    [translate(401, error(401), None), translate(402, error(402), None)],
    ids=["401", "402"],
)
def test_a_key_or_credit_problem_ends_the_chain_without_the_next_model(failure):
    with pytest.raises(type(failure)):
        run([failure])


def test_the_providers_retry_after_is_the_wait():
    _, _, slept = run([translate(429, error(429), retry_after_seconds("2"))])
    assert slept == [2.0]


def test_a_retry_after_of_zero_means_no_wait():
    _, calls, slept = run([translate(429, error(429), retry_after_seconds("0"))])
    assert calls == ["a", "a"] and slept == [0.0]


def test_a_retry_after_up_to_the_cap_is_waited_in_process_and_beyond_it_is_deferred():
    _, _, slept = run([translate(429, error(429), 10.0)], cap=10.0)
    assert slept == [10.0]
    with pytest.raises(DeferredRetry) as raised:
        run([translate(429, error(429), 10.5)], cap=10.0)
    assert raised.value.countdown == 10.5 and isinstance(raised.value.cause, RetryableError)


def test_retries_stop_at_the_tiers_attempts_then_the_next_model_serves():
    failures = [translate(503, error(503), None)] * POLICY.attempts
    served, calls, slept = run(failures)
    assert calls == ["a"] * POLICY.attempts + ["b"] and served.used_fallback
    assert len(slept) == POLICY.attempts - 1  # no wait after the last attempt of a model
