"""Streaming: processing comments, content deltas, a final usage chunk, then [DONE]."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from emulator.catalog import CATALOG

pytestmark = pytest.mark.unit  # no Postgres, no Redis

MESSAGES = [{"role": "user", "content": "Narrate the opening of a mountain expedition"}]


def _events(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block]


def test_a_stream_starts_with_processing_comments_and_ends_with_usage_and_done(raw):
    # When a streamed completion is requested
    answer = raw.chat(model="openai/gpt-4o", content=MESSAGES[0]["content"], stream=True)
    events = _events(answer.text)
    # Then it is an event stream that opens with OpenRouter's keep-alive comment
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert events[0] == ": OPENROUTER PROCESSING"
    # And it ends with [DONE], just after a chunk carrying finish_reason and usage
    assert events[-1] == "data: [DONE]"
    final = json.loads(events[-2][len("data: ") :], parse_float=Decimal)
    assert final["choices"][0]["finish_reason"] == "stop"
    usage = final["usage"]
    model = CATALOG["openai/gpt-4o"]
    expected = usage["prompt_tokens"] * model.prompt_price + usage["completion_tokens"] * model.completion_price
    assert usage["cost"] == expected
    # And every data event in between is a chunk with a content delta
    chunks = [json.loads(e[len("data: ") :]) for e in events if e.startswith("data: {")]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_the_streamed_content_equals_the_unstreamed_content(client):
    # Given the same request, streamed and not
    whole = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    stream = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, stream=True)
    # When the SDK reassembles the stream (it skips the comment lines itself)
    pieces, usage, finish = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    # Then the text, finish reason and usage match the non-streamed answer
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "stop"
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_a_streamed_call_is_logged_as_streamed(emu, raw):
    raw.chat(stream=True)
    call = emu.control.calls()[-1]
    assert (call["stream"], call["status"]) == (True, 200)


def test_an_error_fault_on_a_stream_is_an_http_error_before_any_event(emu, raw):
    # Given a 503 fault
    emu.control.inject("openai/gpt-4o-mini", "unavailable")
    # When a stream is requested
    answer = raw.chat(stream=True)
    # Then the failure is a plain JSON error, not an event stream
    assert answer.status == 503
    assert answer.json()["error"]["code"] == 503


def test_finish_error_on_a_stream_ends_with_an_error_choice(emu, raw):
    emu.control.inject("openai/gpt-4o-mini", "finish_error")
    events = _events(raw.chat(stream=True).text)
    final = json.loads(events[-2][len("data: ") :])
    assert final["choices"][0]["finish_reason"] == "error"
    assert final["choices"][0]["error"]["message"]
    assert "usage" in final
