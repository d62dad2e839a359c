"""Long content, condensed by a cheap model before an expensive analysis (map-reduce): split
into chunks at paragraph, sentence or word boundaries, condense each, join, and again (at most
``MAX_ROUNDS`` rounds) while the result is still longer than ``max_chars``; then cut.

The caller supplies ``condense(chunk, part, parts, words) -> str`` (one model call, with the
retry policy and the ledger rows), so this module is pure text handling and easy to test.
The tier settings: docs/cost-optimisations.md, "Long content, preprocessed by a cheap model".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

MAX_ROUNDS = 3
MAX_PARALLEL = 4  # chunk calls in flight per job
CHARS_PER_WORD = 6  # a rough English average, spaces included
_BOUNDARIES = ("\n\n", "\n", ". ", " ")

Condense = Callable[[str, int, int, int], str]


@dataclass(frozen=True)
class Condensed:
    """The text an analysis reads, and what was done to get it."""

    text: str
    original_chars: int
    chunks: int  # model calls made, over every round
    rounds: int
    cut: bool  # still too long after MAX_ROUNDS: the end was cut

    def note(self, model: str) -> str:
        note = (
            f"summarised {self.original_chars} characters in {self.chunks} chunks with {model}"
            f" ({self.rounds} round{'s' if self.rounds > 1 else ''});"
            f" the analysis read {len(self.text)} characters of summaries"
        )
        return note + ", cut to fit" if self.cut else note


def split(content: str, chunk_chars: int) -> list[str]:
    """Chunks of at most ``chunk_chars``, cut at the most natural boundary in each chunk's
    second half (a paragraph, a line, a sentence, a word), else mid-word."""
    chunks: list[str] = []
    rest = content.strip()
    while len(rest) > chunk_chars:
        window = rest[:chunk_chars]
        cut = next(
            (window.rfind(b) + len(b) for b in _BOUNDARIES if window.rfind(b) >= chunk_chars // 2),
            chunk_chars,
        )
        chunks.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        chunks.append(rest)
    return chunks


def condense(content: str, *, max_chars: int, chunk_chars: int, max_words: int, call: Condense) -> Condensed:
    """Map-reduce ``content`` down to at most ``max_chars`` characters with ``call``."""
    text, calls, rounds = content, 0, 0
    while len(text) > max_chars and rounds < MAX_ROUNDS:
        parts = split(text, chunk_chars)
        words = max(20, min(max_words, math.floor(max_chars / len(parts) / CHARS_PER_WORD)))
        numbered = [(chunk, i + 1, len(parts), words) for i, chunk in enumerate(parts)]
        with ThreadPoolExecutor(min(MAX_PARALLEL, len(parts))) as pool:
            summaries = list(pool.map(lambda job: call(*job), numbered))
        text = "\n\n".join(s.strip() for s in summaries)
        calls += len(parts)
        rounds += 1
    cut = len(text) > max_chars
    return Condensed(text[:max_chars], len(content), calls, rounds, cut)
