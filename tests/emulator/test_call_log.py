"""The call log stays bounded while the running totals stay exact; the control API reads it."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from emulator.calllog import CallLog, CallRecord

pytestmark = pytest.mark.unit  # no Postgres, no Redis


def _record(index: int, cost: str) -> CallRecord:
    return CallRecord(
        id=f"gen-{index}",
        model="openai/gpt-4o",
        requested_model="openai/gpt-4o",
        status=200,
        fault=None,
        prompt_tokens=3,
        completion_tokens=5,
        cost=Decimal(cost),
        stream=False,
        at=time.time(),
        latency_ms=0,
        finish_reason="stop",
        provider="OpenAI",
    )


def test_the_log_forgets_old_calls_but_the_totals_do_not():
    # Given a log that keeps only 3 calls
    log = CallLog(capacity=3)
    # When 10 calls are added
    for index in range(10):
        log.add(_record(index, "0.0000001"))
    # Then only the last 3 remain, but the totals count all 10 exactly
    assert [r.id for r in log.recent()] == ["gen-7", "gen-8", "gen-9"]
    assert log.get("gen-0") is None
    stats = log.stats()
    assert stats["calls"] == 10
    assert stats["cost_total"] == "0.000001"
    assert stats["prompt_tokens"] == 30


def test_calls_can_be_filtered_by_model_and_limited(emu, raw):
    # Given calls to two models
    for model in ("openai/gpt-4o", "deepseek/deepseek-chat", "openai/gpt-4o"):
        raw.chat(model=model)
    # Then the control API filters and limits them
    assert len(emu.control.calls(model="openai/gpt-4o")) == 2
    assert [c["model"] for c in emu.control.calls(limit=1)] == ["openai/gpt-4o"]


def test_reset_calls_empties_the_log_and_the_totals(emu, raw):
    # Given a call on record
    raw.chat()
    # When the calls are reset
    emu.control.reset_calls()
    # Then nothing is logged and the totals are zero, including the key's usage
    assert emu.control.calls() == []
    assert emu.control.stats()["calls"] == 0
    assert emu.control.stats()["cost_total"] == "0"
    assert raw.get("/key").json()["data"]["usage"] == 0


def test_a_logged_call_has_the_documented_fields(emu, raw):
    raw.chat()
    call = emu.control.calls()[-1]
    documented = {"id", "model", "status", "prompt_tokens", "completion_tokens", "cost", "stream", "at"}
    assert documented <= set(call)
    assert isinstance(call["cost"], str)
