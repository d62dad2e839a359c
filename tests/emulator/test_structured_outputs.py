"""response_format json_schema: honoured by the models that support structured outputs."""

from __future__ import annotations

import json
from decimal import Decimal

from emulator.catalog import find_model

STORY = [{"role": "user", "content": "A lighthouse keeper finds a letter in a bottle"}]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "analyses",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}, "genre": {"type": "string"}},
            "required": ["summary", "genre"],
            "additionalProperties": False,
        },
    },
}


def test_a_model_with_structured_outputs_answers_one_json_object_with_every_property(client, emu):
    response = client.chat.completions.create(model="openai/gpt-4o-mini", messages=STORY, response_format=SCHEMA)
    answer = json.loads(response.choices[0].message.content)
    assert set(answer) == {"summary", "genre"} and all(isinstance(v, str) and v for v in answer.values())
    # And it is charged for every token it wrote
    model = find_model("openai/gpt-4o-mini")
    [call] = emu.control.calls()
    assert Decimal(call["cost"]) == model.cost(response.usage.prompt_tokens, response.usage.completion_tokens)


def test_a_model_without_structured_outputs_ignores_the_schema_and_answers_in_prose(client):
    response = client.chat.completions.create(
        model="meta-llama/llama-3.2-3b-instruct", messages=STORY, response_format=SCHEMA
    )
    assert not response.choices[0].message.content.startswith("{")


def test_a_structured_answer_cut_by_max_tokens_is_not_valid_json(client):
    response = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=STORY, response_format=SCHEMA, max_tokens=5
    )
    assert response.choices[0].finish_reason == "length"
    try:
        json.loads(response.choices[0].message.content)
        parsed = True
    except ValueError:
        parsed = False
    assert not parsed
