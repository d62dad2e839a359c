"""Fault rules queue per model, count down their times, and "*" matches any model."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit  # no Postgres, no Redis


def _statuses(raw, model, count):
    return [raw.chat(model=model).status for _ in range(count)]


def test_a_fault_answers_times_calls_and_then_stops(emu, raw):
    # Given a 503 for the next two calls
    emu.control.inject("openai/gpt-4o-mini", "unavailable", times=2)
    # Then exactly two calls fail and the third succeeds
    assert _statuses(raw, "openai/gpt-4o-mini", 3) == [503, 503, 200]
    assert emu.control.pending_faults() == []


def test_times_minus_one_fails_forever_until_cleared(emu, raw):
    # Given a fault with times=-1
    emu.control.inject("openai/gpt-4o-mini", "server_error", times=-1)
    # Then every call fails
    assert _statuses(raw, "openai/gpt-4o-mini", 5) == [500] * 5
    # And after clear, calls succeed
    assert emu.control.clear() == 1
    assert raw.chat(model="openai/gpt-4o-mini").status == 200


def test_a_fault_for_one_model_leaves_the_others_alone(emu, raw):
    # Given a fault on gpt-4o only
    emu.control.inject("openai/gpt-4o", "bad_gateway")
    # Then another model is unaffected and gpt-4o still gets its fault
    assert raw.chat(model="openai/gpt-4o-mini").status == 200
    assert raw.chat(model="openai/gpt-4o").status == 502


def test_a_star_fault_hits_whichever_model_is_called(emu, raw):
    # Given two faults for any model
    emu.control.inject("*", "timeout", times=2)
    # Then they hit the next two calls, whatever the model
    assert raw.chat(model="deepseek/deepseek-chat").status == 408
    assert raw.chat(model="anthropic/claude-3.5-sonnet").status == 408
    assert raw.chat(model="openai/gpt-4o").status == 200


def test_faults_for_a_model_run_in_order_before_star_faults(emu, raw):
    # Given a "*" fault, then two model faults queued in order
    emu.control.inject("*", "gateway_timeout")
    emu.control.inject("openai/gpt-4o", "rate_limit")
    emu.control.inject("openai/gpt-4o", "unavailable")
    # Then the model's own queue is used first, in FIFO order, and then the "*" one
    assert _statuses(raw, "openai/gpt-4o", 4) == [429, 503, 504, 200]


def test_faulted_calls_are_logged_with_their_status(emu, raw):
    # Given one fault then a normal call
    emu.control.inject("openai/gpt-4o-mini", "rate_limit")
    raw.chat()
    raw.chat()
    # Then the log and the stats record both outcomes
    calls = emu.control.calls()
    assert [(c["status"], c["fault"]) for c in calls] == [(429, "rate_limit"), (200, None)]
    assert emu.control.stats()["by_status"] == {"200": 1, "429": 1}
