"""Each fault kind answers with OpenRouter's status, error body and headers."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from emulator.faults import FAULT_KINDS

pytestmark = pytest.mark.unit  # no Postgres, no Redis

EXPECTED_STATUS = {
    "timeout": 408,
    "rate_limit": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "gateway_timeout": 504,
    "in_flight_budget": 402,
    "credits": 402,
    "key_limit": 402,
    "unauthorized": 401,
    "moderation": 403,
    "context_length": 400,
    "bad_request": 400,
    "no_providers": 404,
}
WITH_RETRY_AFTER = {"rate_limit", "in_flight_budget"}


def test_every_error_kind_has_an_expected_status():
    # The table above covers every error-type fault the emulator knows
    assert set(EXPECTED_STATUS) | {"hang", "finish_error", "non_json", "unstorable"} == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", sorted(EXPECTED_STATUS))
def test_an_error_fault_answers_its_status_in_the_error_shape(emu, raw, kind):
    # Given a fault queued for the model
    emu.control.inject("openai/gpt-4o-mini", kind)
    # When the model is called
    answer = raw.chat(model="openai/gpt-4o-mini")
    # Then the status and body follow OpenRouter's error shape
    assert answer.status == EXPECTED_STATUS[kind]
    error = answer.json()["error"]
    assert error["code"] == EXPECTED_STATUS[kind]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["metadata"], dict)
    # And only the retryable waits carry a Retry-After header by default
    assert ("Retry-After" in answer.headers) == (kind in WITH_RETRY_AFTER)
    # And the call is in the log with that status and no charge
    call = emu.control.calls()[-1]
    assert (call["status"], call["fault"], Decimal(call["cost"])) == (EXPECTED_STATUS[kind], kind, 0)


def test_rate_limit_sends_the_chosen_retry_after(emu, raw):
    # Given a rate limit asking for a 7 second wait
    emu.control.inject("openai/gpt-4o-mini", "rate_limit", retry_after=7)
    # Then the header says 7
    answer = raw.chat()
    assert (answer.status, answer.headers["Retry-After"]) == (429, "7")


def test_in_flight_budget_is_a_402_with_its_reason_and_retry_after(emu, raw):
    # Given an in-flight budget fault
    emu.control.inject("openai/gpt-4o-mini", "in_flight_budget", retry_after=2)
    answer = raw.chat()
    # Then it is the retryable kind of 402
    assert answer.status == 402
    assert answer.json()["error"]["metadata"]["reason"] == "in_flight_budget_exhausted"
    assert answer.headers["Retry-After"] == "2"


@pytest.mark.parametrize("kind", ["credits", "key_limit"])
def test_the_final_402s_do_not_claim_the_in_flight_reason(emu, raw, kind):
    # Given a credits or key-limit fault
    emu.control.inject("openai/gpt-4o-mini", kind)
    error = raw.chat().json()["error"]
    # Then its metadata has no in_flight_budget_exhausted reason
    assert error["metadata"].get("reason") != "in_flight_budget_exhausted"
    assert ("credits" in error["message"].lower()) == (kind == "credits")


def test_moderation_reports_reasons_and_the_flagged_input(emu, raw):
    emu.control.inject("openai/gpt-4o-mini", "moderation")
    # When flagged content is sent
    metadata = raw.chat(content="something the filter dislikes").json()["error"]["metadata"]
    # Then the metadata says why and what
    assert metadata["reasons"]
    assert metadata["flagged_input"] == "something the filter dislikes"


def test_context_length_says_maximum_context_length(emu, raw):
    emu.control.inject("openai/gpt-4o-mini", "context_length")
    error = raw.chat().json()["error"]
    assert error["code"] == 400
    assert "maximum context length" in error["message"]


def test_no_providers_is_a_404_that_means_fall_back(emu, raw):
    emu.control.inject("openai/gpt-4o-mini", "no_providers")
    answer = raw.chat()
    assert answer.status == 404
    assert "No allowed providers are available for the selected model" in answer.json()["error"]["message"]


def test_the_openai_sdk_sees_a_rate_limit_with_its_header(emu, client):
    # Given a rate limit
    emu.control.inject("openai/gpt-4o-mini", "rate_limit", retry_after=3)
    # When the SDK calls (its retries off)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    # Then the error carries the status, the body and the Retry-After header
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["code"] == 429


def test_finish_error_is_a_200_whose_choice_failed(emu, raw):
    # Given a finish_error fault
    emu.control.inject("openai/gpt-4o-mini", "finish_error")
    answer = raw.chat()
    body = answer.json(parse_float=Decimal)
    choice = body["choices"][0]
    # Then HTTP says 200, but the choice finished with "error", empty, carrying an error object
    assert answer.status == 200
    assert choice["finish_reason"] == "error"
    assert choice["message"]["content"] == ""
    assert choice["error"]["message"]
    # And usage is still there (the prompt was processed and is charged)
    assert body["usage"]["completion_tokens"] == 0
    assert body["usage"]["cost"] > 0
    assert emu.control.calls()[-1]["fault"] == "finish_error"


def test_non_json_is_a_200_with_an_html_body(emu, raw):
    # Given a non_json fault
    emu.control.inject("openai/gpt-4o-mini", "non_json")
    answer = raw.chat()
    # Then the answer is 200 text/html that does not parse as JSON
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        answer.json()
    assert emu.control.calls()[-1]["status"] == 200


def test_an_unknown_fault_kind_is_refused_by_the_control_api(emu):
    from emulator.control import EmulatorControlError

    with pytest.raises(EmulatorControlError) as caught:
        emu.control.inject("openai/gpt-4o-mini", "meteor_strike")
    assert caught.value.status == 400
