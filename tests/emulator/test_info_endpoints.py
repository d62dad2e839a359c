"""/models, /key and /generation answer like OpenRouter's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulator.catalog import CATALOG
from emulator.exactjson import decimal_text

pytestmark = pytest.mark.unit  # no Postgres, no Redis

REQUIRED_MODELS = {
    "meta-llama/llama-3.2-3b-instruct",
    "google/gemini-flash-1.5-8b",
    "deepseek/deepseek-chat",
    "mistralai/mistral-7b-instruct",
    "anthropic/claude-3-haiku-20240307",
    "openai/gpt-3.5-turbo",
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-sonnet",
    "openai/gpt-4o",
    "anthropic/claude-3-opus-20240229",
}


def test_models_lists_every_model_with_prices_as_decimal_strings(raw):
    # When the model list is fetched (no key needed)
    answer = raw.get("/models", key=None)
    listed = {entry["id"]: entry for entry in answer.json()["data"]}
    # Then every catalogue model is there
    assert answer.status == 200
    assert set(listed) >= REQUIRED_MODELS
    # And its pricing is per-token decimal strings equal to the catalogue's
    for model_id, entry in listed.items():
        pricing = entry["pricing"]
        assert all(isinstance(pricing[field], str) for field in ("prompt", "completion", "request", "image"))
        assert Decimal(pricing["prompt"]) == CATALOG[model_id].prompt_price
        assert Decimal(pricing["completion"]) == CATALOG[model_id].completion_price
        assert entry["context_length"] == CATALOG[model_id].context_length
        assert entry["name"] and entry["top_provider"] and entry["architecture"]


def test_models_writes_gpt_4o_prices_without_exponent(raw):
    entry = next(e for e in raw.get("/models").json()["data"] if e["id"] == "openai/gpt-4o")
    assert entry["pricing"]["prompt"] == "0.0000025"
    assert entry["pricing"]["completion"] == "0.00001"


def test_key_reports_the_total_cost_so_far(raw):
    # Given two calls
    costs = [raw.chat(model="openai/gpt-4o").json(parse_float=Decimal)["usage"]["cost"] for _ in range(2)]
    # When the key is inspected
    data = raw.get("/key").json(parse_float=Decimal)["data"]
    # Then its usage is their sum, exactly, on an unlimited paid key
    assert data["usage"] == sum(costs)
    assert data["limit"] is None
    assert data["is_free_tier"] is False
    assert "requests" in data["rate_limit"]
    assert data["label"]


def test_key_needs_a_key(raw):
    assert raw.get("/key", key=None).status == 401


def test_generation_returns_what_the_call_cost(raw):
    # Given a completed call
    body = raw.chat(model="anthropic/claude-3.5-sonnet").json(parse_float=Decimal)
    # When its generation is looked up
    answer = raw.get(f"/generation?id={body['id']}")
    data = answer.json(parse_float=Decimal)["data"]
    # Then the stored facts match the response
    assert answer.status == 200
    assert data["id"] == body["id"]
    assert data["model"] == "anthropic/claude-3.5-sonnet"
    assert data["total_cost"] == body["usage"]["cost"]
    assert data["tokens_prompt"] == body["usage"]["prompt_tokens"]
    assert data["tokens_completion"] == body["usage"]["completion_tokens"]
    assert isinstance(data["latency"], int)
    assert data["created_at"]


def test_an_unknown_generation_is_a_404(raw):
    answer = raw.get("/generation?id=gen-0-doesnotexist")
    assert answer.status == 404
    assert answer.json()["error"]["code"] == 404


def test_generation_needs_a_key(raw):
    assert raw.get("/generation?id=gen-1", key=None).status == 401


def test_decimal_text_never_uses_exponents():
    assert decimal_text(Decimal("1.5E-8")) == "0.000000015"
    assert decimal_text(Decimal("0E-7")) == "0"
    assert decimal_text(Decimal("12.3400")) == "12.34"
