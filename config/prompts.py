"""Prompts for the script and analysis types, kept as data in ``prompts.toml``, and the
request (messages, max_tokens, temperature) a job is sent with."""

from __future__ import annotations

import hashlib
import json
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from config.tiers import Tier, get_catalog

PROMPTS_PATH = Path(__file__).with_name("prompts.toml")

Message = dict[str, str]
# The user messages below are built in code: bump this when their wording changes, so the
# response cache's key (template_version) changes with them.
USER_MESSAGE_VERSION = "1"
# A batched analysis travels as one job type, its analysis types joined: "summary+keywords".
BATCH_SEPARATOR = "+"


@lru_cache(maxsize=1)
def _prompts() -> dict:
    return tomllib.loads(PROMPTS_PATH.read_text())


def script_types() -> tuple[str, ...]:
    return tuple(_prompts()["script"])


def analysis_types() -> tuple[str, ...]:
    return tuple(k for k, v in _prompts()["analysis"].items() if isinstance(v, dict))


def script_messages(script_type: str, content: str) -> list[Message]:
    system = _prompts()["script"][script_type]["system"]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Write a {script_type} script from this material:\n\n{content}"},
    ]


def analysis_messages(analysis_type: str, content: str) -> list[Message]:
    section = _prompts()["analysis"]
    return [
        {"role": "system", "content": section["system"]},
        {"role": "user", "content": f"{section[analysis_type]['instruction']}\n\nMaterial:\n{content}"},
    ]


def preprocess_messages(chunk: str, part: int, parts: int, words: int) -> list[Message]:
    """Messages asking the cheap model to condense one chunk of long content."""
    section = _prompts()["preprocess"]
    instruction = section["chunk"]["instruction"].format(part=part, parts=parts, words=words)
    return [
        {"role": "system", "content": section["system"]},
        {"role": "user", "content": f"{instruction}\n\nMaterial:\n{chunk}"},
    ]


def batch_messages(types: list[str], content: str) -> list[Message]:
    """Messages asking for several analyses at once, one JSON key per type."""
    section = _prompts()["analysis"]
    requests = "\n".join(f"- {t}: {section[t]['instruction']}" for t in types)
    return [
        {"role": "system", "content": _prompts()["batch"]["system"]},
        {"role": "user", "content": f"Requests:\n{requests}\n\nMaterial:\n{content}"},
    ]


def batch_response_format(types: list[str]) -> dict:
    """The ``response_format`` (a strict JSON schema) of a batched analysis."""
    section = _prompts()["analysis"]
    schema = {
        "type": "object",
        "properties": {t: {"type": "string", "description": section[t]["instruction"]} for t in types},
        "required": list(types),
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "analyses", "strict": True, "schema": schema}}


def template_version(kind: str, type_: str) -> str:
    """A short hash of the prompt template a job of ``kind``/``type_`` is sent with: editing a
    prompt changes it, so cached answers to the old prompt are never served for the new one."""
    section = _prompts()[kind]
    if is_batch(kind, type_):  # a batch: every type's template and the batch's own
        template = {"batch": _prompts()["batch"], "types": [section[t] for t in types_of(type_)]}
    else:
        template = {"system": section.get("system"), "type": section[type_]}
    canonical = json.dumps([USER_MESSAGE_VERSION, template], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def types_of(type_: str) -> list[str]:
    return type_.split(BATCH_SEPARATOR)


def is_batch(kind: str, type_: Any) -> bool:
    return kind == "analysis" and isinstance(type_, str) and BATCH_SEPARATOR in type_


def prompt(kind: str, type_: str, content: str, tier: Tier) -> tuple[list[Message], int, float, str | None]:
    """Messages, max_tokens, temperature, and a note when the content was cut."""
    if kind == "script":
        return script_messages(type_, content), tier.max_tokens, tier.temperature, None
    analysis = get_catalog().analysis
    note = None
    if len(content) > analysis.max_chars:
        note = f"analysed the first {analysis.max_chars} of {len(content)} characters"
    if is_batch(kind, type_):  # several analyses in one call: one answer budget per type
        types = types_of(type_)
        messages = batch_messages(types, content[: analysis.max_chars])
        return messages, analysis.max_tokens * len(types), analysis.temperature, note
    return analysis_messages(type_, content[: analysis.max_chars]), analysis.max_tokens, analysis.temperature, note
