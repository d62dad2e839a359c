"""The provider account client reads /key, /generation and /credits exactly, and fails only
with the project's own errors."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from pydantic import SecretStr

from config import Settings
from devtools.embedded import free_port
from workers import errors
from workers.llm.openrouter import OpenRouterClient
from workers.llm.provider_account import ProviderAccount

pytestmark = pytest.mark.unit  # the emulator only: no Postgres, no Redis

MESSAGES = [{"role": "user", "content": "A lighthouse in the fog."}]


def call(model: str = "openai/gpt-4o-mini"):
    """One real chat completion through the workers' own OpenRouter client."""
    return OpenRouterClient(Settings()).complete(model, MESSAGES, max_tokens=64, temperature=0.7)


def test_key_reports_what_the_key_spent_to_the_last_digit(faults):
    # Given two calls on the workers' key
    costs = [call().usage.cost, call("openai/gpt-4o").usage.cost]
    # When the account is read
    key = ProviderAccount().key()
    # Then each usage figure is their exact sum, as Decimal
    assert key.usage == key.usage_daily == key.usage_weekly == key.usage_monthly == sum(costs)
    assert isinstance(key.usage, Decimal) and key.limit is None and key.is_free_tier is False


def test_generation_gives_a_calls_cost_and_tokens(faults):
    completion = call()
    generation = ProviderAccount().generation(completion.usage.generation_id)
    assert generation.total_cost == completion.usage.cost
    assert (generation.tokens_prompt, generation.tokens_completion) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    assert generation.model == "openai/gpt-4o-mini"


def test_an_unknown_generation_is_generation_not_found(faults):
    with pytest.raises(errors.GenerationNotFound):
        ProviderAccount().generation("gen-0-unknown")


def test_credits_need_a_configured_management_key(faults):
    cost = call().usage.cost
    assert ProviderAccount().credits() is None
    credits = ProviderAccount(Settings(openrouter_management_key=SecretStr("sk-or-mgmt-ops"))).credits()
    assert credits is not None and credits.total_usage == cost


def test_a_missing_key_is_a_provider_auth_error(emulator):
    with pytest.raises(errors.ProviderAuthError):
        ProviderAccount(Settings(openrouter_api_key=None)).key()


def test_a_provider_that_is_down_is_provider_unavailable():
    settings = Settings(openrouter_base_url=f"http://127.0.0.1:{free_port()}/api/v1")
    with pytest.raises(errors.ProviderUnavailable):
        ProviderAccount(settings).key()


def test_a_provider_that_never_answers_is_a_timeout_not_a_hang():
    # Given a server that accepts connections and never answers
    with socket.create_server(("127.0.0.1", 0)) as silent:
        settings = Settings(openrouter_base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1")
        # Then the read gives up at its timeout with the project's error
        with pytest.raises(errors.ProviderTimeout):
            ProviderAccount(settings, read_timeout=0.3).key()
