"""Chat completions: deterministic content, the response shape, auth and validation."""

from __future__ import annotations

import re

import pytest

from emulator.writer import reply_tag

pytestmark = pytest.mark.unit  # no Postgres, no Redis

STORY = [{"role": "user", "content": "A lighthouse keeper finds a letter in a bottle"}]


def test_the_same_request_always_gets_the_same_content(client):
    # Given one model and one set of messages
    # When they are sent twice
    first = client.chat.completions.create(model="openai/gpt-4o-mini", messages=STORY)
    second = client.chat.completions.create(model="openai/gpt-4o-mini", messages=STORY)
    # Then the content and token counts are identical, but the generation ids differ
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.completion_tokens == second.usage.completion_tokens
    assert first.id != second.id


def test_the_content_is_derived_from_the_model_and_the_user_words(client):
    # Given a user message with distinctive words
    content = client.chat.completions.create(model="deepseek/deepseek-chat", messages=STORY)
    text = content.choices[0].message.content
    words = text.split()
    # Then the reply opens with a tag hashed from model and messages
    assert words[0] == reply_tag("deepseek/deepseek-chat", STORY)
    # And every other word comes from the user's own content
    source = set(re.findall(r"\w+", STORY[0]["content"]))
    assert set(words[1:]) <= source
    # And another model answers differently to the same messages
    other = client.chat.completions.create(model="openai/gpt-4o", messages=STORY)
    assert other.choices[0].message.content != text


def test_max_tokens_caps_the_reply_and_says_length(client):
    # Given a max_tokens smaller than the natural reply
    response = client.chat.completions.create(model="openai/gpt-4o-mini", messages=STORY, max_tokens=4)
    # Then the reply has exactly that many tokens and stopped for length
    assert response.usage.completion_tokens == 4
    assert len(response.choices[0].message.content.split()) == 4
    assert response.choices[0].finish_reason == "length"


def test_a_normal_reply_looks_like_openrouters(raw):
    # When a completion is requested
    answer = raw.chat(model="anthropic/claude-3-haiku-20240307")
    body = answer.json()
    # Then it carries OpenRouter's fields
    assert answer.status == 200
    assert body["id"].startswith("gen-")
    assert answer.headers["X-Generation-Id"] == body["id"]
    assert body["object"] == "chat.completion"
    assert body["model"] == "anthropic/claude-3-haiku-20240307"
    assert body["provider"] == "Anthropic"
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert choice["native_finish_reason"] == "end_turn"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["is_byok"] is False
    for detail in ("prompt_tokens_details", "completion_tokens_details", "cost_details"):
        assert isinstance(usage[detail], dict)


def test_prompt_tokens_are_a_quarter_of_the_characters_rounded_up(client):
    # Given messages totalling 45 characters
    messages = [{"role": "system", "content": "x" * 20}, {"role": "user", "content": "y" * 25}]
    # When they are sent
    response = client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    # Then the prompt costs ceil(45 / 4) tokens
    assert response.usage.prompt_tokens == 12


def test_served_as_makes_the_response_name_another_model(emu, client):
    # Given a router that serves gpt-4o requests with gpt-4o-mini
    emu.control.serve_as("openai/gpt-4o", "openai/gpt-4o-mini")
    # When gpt-4o is requested
    response = client.chat.completions.create(model="openai/gpt-4o", messages=STORY)
    # Then the response names the model that served, and the log remembers both
    assert response.model == "openai/gpt-4o-mini"
    call = emu.control.calls()[-1]
    assert (call["model"], call["requested_model"]) == ("openai/gpt-4o-mini", "openai/gpt-4o")
    # And clearing it restores the requested id
    emu.control.serve_as("openai/gpt-4o", None)
    assert client.chat.completions.create(model="openai/gpt-4o", messages=STORY).model == "openai/gpt-4o"


def test_a_call_without_a_key_is_refused_with_401(raw):
    # When the Authorization header is missing
    answer = raw.chat(key=None)
    # Then the emulator answers 401 in the error shape
    assert answer.status == 401
    assert answer.json()["error"]["code"] == 401


def test_an_unknown_model_is_a_400_in_the_error_shape(raw):
    # When a model the catalogue does not list is requested
    answer = raw.chat(model="acme/imaginary-1")
    # Then it is a 400 naming the model
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == 400
    assert "acme/imaginary-1" in error["message"]


def test_a_malformed_body_is_a_400(raw):
    # When the body has no messages, or a bad max_tokens
    no_messages = raw.request("POST", "/chat/completions", {"model": "openai/gpt-4o"})
    bad_max = raw.chat(max_tokens=0)
    # Then both are refused as bad requests
    assert no_messages.status == 400
    assert bad_max.status == 400
    assert no_messages.json()["error"]["code"] == 400


def test_attribution_headers_are_kept_in_the_call_log(emu, raw):
    # When a call carries HTTP-Referer and X-Title
    raw.chat(headers={"HTTP-Referer": "https://litink.example", "X-Title": "Litink workers"})
    # Then the call log shows them
    call = emu.control.calls()[-1]
    assert call["referer"] == "https://litink.example"
    assert call["title"] == "Litink workers"
