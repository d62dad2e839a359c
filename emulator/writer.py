"""Deterministic "model output" and token counting.

Tests need replies they can predict and relate to their input, so the reply is built
from a hash of the model and messages plus words taken from the user's own content.
One word of the reply counts as one completion token; the prompt costs one token per
four characters, rounded up, like a rough real tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Reply", "compose_reply", "compose_structured", "count_prompt_tokens", "message_text", "reply_tag"]

_WORD = re.compile(r"\w+", re.UNICODE)
_FALLBACK_WORDS = ["litink", "scene", "story", "frame", "light", "voice", "moment", "page"]
_MIN_WORDS = 12
_EXTRA_WORDS = 29  # natural replies are 12 to 40 words long


@dataclass(frozen=True)
class Reply:
    """A composed reply: its text, its token count and why it stopped."""

    content: str
    words: list[str]
    finish_reason: str  # "stop", or "length" when max_tokens cut it short

    @property
    def completion_tokens(self) -> int:
        return len(self.words)


def message_text(message: Any) -> str:
    """The text of one chat message, whether its content is a string or a list of parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return ""


def count_prompt_tokens(messages: list[Any]) -> int:
    """ceil(characters / 4) over every message's text, at least 1."""
    characters = sum(len(message_text(message)) for message in messages)
    return max(1, math.ceil(characters / 4))


def reply_tag(model: str, messages: list[Any]) -> str:
    """The hash-derived first word of every reply for this model and these messages."""
    return f"emu-{_digest(model, messages)[:8]}"


def compose_reply(model: str, messages: list[Any], max_tokens: int | None) -> Reply:
    """The reply the emulated ``model`` gives to ``messages``, at most ``max_tokens`` words."""
    digest = _digest(model, messages)
    source = _source_words(messages)
    natural = _MIN_WORDS + int(digest[8:12], 16) % _EXTRA_WORDS
    offset = int(digest[12:20], 16) % len(source)
    words = [f"emu-{digest[:8]}"]
    words += [source[(offset + index) % len(source)] for index in range(natural - 1)]
    finish_reason = "stop"
    if max_tokens is not None and max_tokens < len(words):
        words = words[:max_tokens]
        finish_reason = "length"
    return Reply(content=" ".join(words), words=words, finish_reason=finish_reason)


def compose_structured(model: str, messages: list[Any], schema: dict[str, Any], max_tokens: int | None) -> Reply:
    """A JSON object answering ``schema``: one composed reply per string property, in order.
    One word is one completion token, plus one per property for the JSON around it; cut by
    ``max_tokens`` the JSON is left unterminated, as a real model's would be."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    answer: dict[str, str] = {}
    words: list[str] = []
    for name in properties:
        reply = compose_reply(model, [*messages, {"role": "user", "content": str(name)}], None)
        answer[str(name)] = reply.content
        words += [*reply.words, "{json}"]
    content = json.dumps(answer)
    if max_tokens is not None and max_tokens < len(words):
        kept = max_tokens / len(words)
        return Reply(content=content[: int(len(content) * kept)], words=words[:max_tokens], finish_reason="length")
    return Reply(content=content, words=words, finish_reason="stop")


def _digest(model: str, messages: list[Any]) -> str:
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{model}\n{canonical}".encode()).hexdigest()


def _source_words(messages: list[Any]) -> list[str]:
    """Words of the last user message (else of any message), else a fixed vocabulary."""
    user_texts = [message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    for text in reversed(user_texts):
        words = _WORD.findall(text)
        if words:
            return words
    words = _WORD.findall(" ".join(message_text(m) for m in messages))
    return words or list(_FALLBACK_WORDS)
