"""Splitting and map-reducing long content, with a stand-in for the cheap model's call."""

from __future__ import annotations

import pytest

from workers.llm.preprocess import condense, split

pytestmark = pytest.mark.unit  # no Postgres, no Redis


def test_chunks_are_cut_at_paragraph_boundaries_and_never_exceed_the_size():
    paragraphs = [f"Paragraph {i}. " + "word " * 150 for i in range(10)]
    content = "\n\n".join(paragraphs)
    chunks = split(content, 2000)
    assert all(len(c) <= 2000 for c in chunks)
    assert all(c.startswith("Paragraph") for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(content.split())  # nothing lost


def test_content_without_any_boundary_is_still_split():
    chunks = split("x" * 5000, 2000)
    assert [len(c) for c in chunks] == [2000, 2000, 1000]


def test_long_content_is_condensed_to_the_budget_with_one_call_per_chunk():
    calls = []

    def call(chunk: str, part: int, parts: int, words: int) -> str:
        calls.append((part, parts, words))
        return " ".join(["gist"] * words)

    result = condense("story " * 3000, max_chars=3000, chunk_chars=6000, max_words=200, call=call)
    # 18000 characters -> 3 chunks, each allowed its share of the 3000-character budget
    assert [c[:2] for c in sorted(calls)] == [(1, 3), (2, 3), (3, 3)]
    assert result.chunks == 3 and result.rounds == 1 and not result.cut
    assert len(result.text) <= 3000
    assert "summarised 18000 characters in 3 chunks with cheap" in result.note("cheap")


def test_summaries_still_too_long_are_condensed_again_then_cut():
    def verbose(chunk: str, part: int, parts: int, words: int) -> str:
        return chunk[: len(chunk) * 3 // 4]  # a model that ignores the word budget

    result = condense("a" * 20000, max_chars=3000, chunk_chars=6000, max_words=200, call=verbose)
    assert result.rounds == 3 and result.cut and len(result.text) == 3000


def test_short_content_is_left_alone():
    result = condense("short", max_chars=3000, chunk_chars=6000, max_words=200, call=lambda *a: "never")
    assert result.text == "short" and result.chunks == 0
