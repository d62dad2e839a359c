"""The emulator's own model catalogue: names, context windows and per-token prices.

Prices are USD per token as Decimals, so the cost the emulator reports is exact and
tests can recompute it digit for digit. The figures are realistic list prices; they
are the emulator's fixed table, not a live copy of anyone's price list.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["CATALOG", "STRUCTURED_OUTPUTS", "ModelInfo", "find_model"]


@dataclass(frozen=True)
class ModelInfo:
    """One model as the emulator serves it."""

    id: str
    name: str
    prompt_price: Decimal  # USD per prompt token
    completion_price: Decimal  # USD per completion token
    context_length: int
    max_completion_tokens: int | None
    provider: str  # the upstream provider name reported on responses
    tokenizer: str
    created: int  # unix seconds, as listed on /models

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """Exact USD cost of a call with these token counts."""
        return prompt_tokens * self.prompt_price + completion_tokens * self.completion_price


def _model(id_, name, prompt, completion, context, max_out, provider, tokenizer, created):
    return ModelInfo(
        id=id_,
        name=name,
        prompt_price=Decimal(prompt),
        completion_price=Decimal(completion),
        context_length=context,
        max_completion_tokens=max_out,
        provider=provider,
        tokenizer=tokenizer,
        created=created,
    )


_MODELS = [
    _model(
        "meta-llama/llama-3.2-3b-instruct",
        "Meta: Llama 3.2 3B Instruct",
        "0.00000006",
        "0.00000006",
        131072,
        16384,
        "DeepInfra",
        "Llama3",
        1727222400,
    ),
    _model(
        "google/gemini-flash-1.5-8b",
        "Google: Gemini 1.5 Flash 8B",
        "0.0000000375",
        "0.00000015",
        1000000,
        8192,
        "Google AI Studio",
        "Gemini",
        1727913600,
    ),
    _model(
        "deepseek/deepseek-chat",
        "DeepSeek: DeepSeek V3",
        "0.00000014",
        "0.00000028",
        64000,
        8192,
        "DeepSeek",
        "DeepSeek",
        1735241584,
    ),
    _model(
        "mistralai/mistral-7b-instruct",
        "Mistral: Mistral 7B Instruct",
        "0.00000003",
        "0.000000055",
        32768,
        8192,
        "Together",
        "Mistral",
        1716768000,
    ),
    _model(
        "anthropic/claude-3-haiku-20240307",
        "Anthropic: Claude 3 Haiku",
        "0.00000025",
        "0.00000125",
        200000,
        4096,
        "Anthropic",
        "Claude",
        1710288000,
    ),
    _model(
        "openai/gpt-3.5-turbo",
        "OpenAI: GPT-3.5 Turbo",
        "0.0000005",
        "0.0000015",
        16385,
        4096,
        "OpenAI",
        "GPT",
        1685232000,
    ),
    _model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        "0.00000015",
        "0.0000006",
        128000,
        16384,
        "OpenAI",
        "GPT",
        1721260800,
    ),
    _model(
        "anthropic/claude-3.5-sonnet",
        "Anthropic: Claude 3.5 Sonnet",
        "0.000003",
        "0.000015",
        200000,
        8192,
        "Anthropic",
        "Claude",
        1729555200,
    ),
    _model("openai/gpt-4o", "OpenAI: GPT-4o", "0.0000025", "0.00001", 128000, 16384, "OpenAI", "GPT", 1715558400),
    _model(
        "anthropic/claude-3-opus-20240229",
        "Anthropic: Claude 3 Opus",
        "0.000015",
        "0.000075",
        200000,
        4096,
        "Anthropic",
        "Claude",
        1709596800,
    ),
]

CATALOG: dict[str, ModelInfo] = {model.id: model for model in _MODELS}

# Models that honour ``response_format: {"type": "json_schema"}`` (structured outputs). The
# others ignore it and answer in prose, as many real providers do.
STRUCTURED_OUTPUTS = frozenset(m.id for m in _MODELS if m.id.startswith(("openai/", "google/")))


def find_model(model_id: str | None) -> ModelInfo | None:
    """The catalogue entry for ``model_id``, or None when the emulator does not serve it."""
    if not model_id:
        return None
    return CATALOG.get(model_id)
