"""Prompts for the script and analysis types, kept as data in ``prompts.toml``."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

PROMPTS_PATH = Path(__file__).with_name("prompts.toml")

Message = dict[str, str]


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
