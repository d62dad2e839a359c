"""How a batched analysis's types travel (``"summary+keywords"``), checked and counted.
Dependency-free, so validation and admission can use it (the batch itself: batch.py)."""

from __future__ import annotations

import json
from typing import Any

from config.prompts import BATCH_SEPARATOR as SEPARATOR
from config.prompts import analysis_types, is_batch, types_of

__all__ = ["SEPARATOR", "is_batch", "known", "normalise", "parse", "types_of", "units"]

MAX_TYPE_CHARS = 64  # jobs.type


def normalise(analysis_type: Any) -> Any:
    """A list of analysis types as one job type (``"summary+keywords"``); anything else as given."""
    if not isinstance(analysis_type, list | tuple):
        return analysis_type
    types = list(dict.fromkeys(str(t) for t in analysis_type))
    if not types:
        return ""  # refused by validation
    return types[0] if len(types) == 1 else SEPARATOR.join(types)[:MAX_TYPE_CHARS]


def known(type_: Any) -> bool:
    """Whether an analysis job type (plain or batched) names only known analyses."""
    return isinstance(type_, str) and bool(type_) and all(t in analysis_types() for t in types_of(type_))


def units(kind: str, type_: Any) -> int:
    """Quota units a job takes: one per analysis type of a batch, else one."""
    return len(types_of(type_)) if is_batch(kind, type_) else 1


def parse(content: str, types: list[str]) -> dict[str, str] | None:
    """The answers by type, or None when the content is not the object the schema asked for."""
    try:
        answer = json.loads(content)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not all(isinstance(answer.get(t), str) and answer[t] for t in types):
        return None
    return {t: answer[t] for t in types}
