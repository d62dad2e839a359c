"""/key and /credits keep the provider's own figures, counting calls the client abandoned."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest

from emulator.spend import SpendBook
from tests.waiting import wait_until

pytestmark = pytest.mark.unit  # no Postgres, no Redis

MESSAGES = [{"role": "user", "content": "Describe the harbour at night"}]
KEY_FIELDS = {
    "label",
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "limit",
    "limit_remaining",
    "limit_reset",
    "is_free_tier",
    "is_provisioning_key",
    "is_management_key",
    "rate_limit",
}


def key_data(raw, key: str = "test") -> dict:
    answer = raw.get("/key", key=key)
    assert answer.status == 200
    return answer.json(parse_float=Decimal)["data"]


def test_key_has_openrouters_shape_with_usage_of_today_this_week_and_this_month(raw):
    # Given two calls on one key
    costs = [raw.chat(model="openai/gpt-4o").json(parse_float=Decimal)["usage"]["cost"] for _ in range(2)]
    # When the key is read
    data = key_data(raw)
    # Then every documented field is there, and each usage figure is their exact sum
    assert set(data) >= KEY_FIELDS
    assert data["usage"] == data["usage_daily"] == data["usage_weekly"] == data["usage_monthly"] == sum(costs)
    assert all(isinstance(data[f], Decimal) for f in ("usage", "usage_daily", "usage_weekly", "usage_monthly"))
    assert (data["limit"], data["limit_remaining"], data["is_free_tier"]) == (None, None, False)


def test_each_key_sees_only_its_own_spend(raw):
    # Given a call on each of two keys
    first = raw.chat(key="sk-or-first-key-0001").json(parse_float=Decimal)["usage"]["cost"]
    second = raw.chat(key="sk-or-second-key-002", content="Another story").json(parse_float=Decimal)["usage"]["cost"]
    # Then each key's usage is its own call's cost, and a fresh key has spent nothing
    assert key_data(raw, "sk-or-first-key-0001")["usage"] == first
    assert key_data(raw, "sk-or-second-key-002")["usage"] == second
    assert key_data(raw, "sk-or-never-used-003")["usage"] == 0


def test_a_call_the_client_abandoned_is_charged_at_once_and_has_a_generation(emu, raw):
    # Given a hang far longer than the client's read timeout
    emu.control.inject("openai/gpt-4o-mini", "hang", delay_s=1)
    client = openai.OpenAI(base_url=emu.base_url, api_key="test", max_retries=0, timeout=0.3)
    # When the client gives up
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    # Then, before the hang has even ended, the key is charged for the call
    [call] = emu.control.calls()
    assert call["fault"] == "hang" and Decimal(call["cost"]) > 0
    assert key_data(raw)["usage"] == Decimal(call["cost"])
    # And /generation gives its cost and tokens, as OpenRouter would for an abandoned generation
    data = raw.get(f"/generation?id={call['id']}").json(parse_float=Decimal)["data"]
    assert (data["id"], data["model"], data["total_cost"]) == (call["id"], "openai/gpt-4o-mini", Decimal(call["cost"]))
    assert (data["tokens_prompt"], data["tokens_completion"]) == (call["prompt_tokens"], call["completion_tokens"])
    # (the hang then ends, unread: wait for it, so no handler is left running at shutdown)
    wait_until(lambda: emu.control.calls()[0]["latency_ms"] >= 1000, timeout=5, what="the hang to end")


def test_failed_calls_cost_nothing(emu, raw):
    emu.control.inject("openai/gpt-4o-mini", "server_error")
    assert raw.chat().status == 500
    assert key_data(raw)["usage"] == 0


def test_daily_weekly_and_monthly_usage_restart_at_utc_boundaries():
    book = SpendBook()

    def at(*args: int) -> float:
        return datetime(*args, tzinfo=UTC).timestamp()

    # Given spend on Friday 28 Feb and Sunday 2 Mar 2025 (UTC)
    book.charge("k", Decimal("0.1"), at(2025, 2, 28, 12))
    book.charge("k", Decimal("0.02"), at(2025, 3, 2, 23, 59, 59))
    # Then on Sunday the week holds Friday's and Sunday's, the month only Sunday's
    sunday = book.figures("k", at(2025, 3, 2, 23, 59, 59))
    assert (sunday.usage_daily, sunday.usage_weekly, sunday.usage_monthly) == (
        Decimal("0.02"),
        Decimal("0.12"),
        Decimal("0.02"),
    )
    # And after a charge at midnight on Monday, the day and the week hold only Monday's
    book.charge("k", Decimal("0.003"), at(2025, 3, 3, 0, 0, 0))
    monday = book.figures("k", at(2025, 3, 3, 9))
    assert monday.usage == Decimal("0.123")
    assert (monday.usage_daily, monday.usage_weekly, monday.usage_monthly) == (
        Decimal("0.003"),
        Decimal("0.003"),
        Decimal("0.023"),
    )


def test_credits_need_a_management_key_and_count_every_key(raw):
    first = raw.chat(key="sk-or-first-key-0001").json(parse_float=Decimal)["usage"]["cost"]
    second = raw.chat(key="sk-or-second-key-002").json(parse_float=Decimal)["usage"]["cost"]
    # An inference key is refused
    assert raw.get("/credits").status == 403
    # A management key reads the whole account
    data = raw.get("/credits", key="sk-or-mgmt-ops").json(parse_float=Decimal)["data"]
    assert data["total_usage"] == first + second
    assert data["total_credits"] > 0
