"""usage.cost is exact: prices times tokens, in Decimal, written with its own digits."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from emulator.catalog import CATALOG

pytestmark = pytest.mark.unit  # no Postgres, no Redis


@pytest.mark.parametrize("model_id", sorted(CATALOG))
def test_usage_cost_is_prices_times_tokens_to_the_last_digit(raw, model_id):
    # Given a model from the catalogue
    model = CATALOG[model_id]
    # When it answers a call
    answer = raw.chat(model=model_id, content="Summarise the chapter where the river floods the town")
    usage = answer.json(parse_float=Decimal)["usage"]
    # Then cost is exactly prompt_tokens * prompt price + completion_tokens * completion price
    prompt_cost = usage["prompt_tokens"] * model.prompt_price
    completion_cost = usage["completion_tokens"] * model.completion_price
    assert isinstance(usage["cost"], Decimal)
    assert usage["cost"] == prompt_cost + completion_cost
    assert usage["cost_details"]["upstream_inference_prompt_cost"] == prompt_cost
    assert usage["cost_details"]["upstream_inference_completions_cost"] == completion_cost


def test_cost_is_written_as_a_plain_number_without_exponent(raw):
    # Given the cheapest model, whose costs are tiny fractions of a dollar
    answer = raw.chat(model="google/gemini-flash-1.5-8b", content="hi")
    # Then the raw body holds the cost as positional digits, not 1.5E-7 or a rounded float
    match = re.search(r'"cost":([^,}]+)', answer.text)
    assert match is not None
    assert re.fullmatch(r"0\.\d+", match.group(1))
    usage = answer.json(parse_float=Decimal)["usage"]
    assert (
        Decimal(match.group(1))
        == Decimal("0.0000000375") * usage["prompt_tokens"] + Decimal("0.00000015") * usage["completion_tokens"]
    )


def test_running_totals_equal_the_sum_of_reported_costs(emu, raw):
    # Given calls to several models
    reported = []
    for model_id in ("openai/gpt-4o", "mistralai/mistral-7b-instruct", "anthropic/claude-3-opus-20240229"):
        reported.append(raw.chat(model=model_id).json(parse_float=Decimal)["usage"]["cost"])
    # Then the stats and the call log agree with the responses exactly
    assert Decimal(emu.control.stats()["cost_total"]) == sum(reported)
    assert [Decimal(call["cost"]) for call in emu.control.calls()] == reported
