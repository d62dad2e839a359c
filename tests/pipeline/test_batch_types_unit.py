"""A batched analysis's types as they travel (``"summary+keywords"``), the quota units it
takes, and its structured answer read back; and how an analysis that fell back to truncation
is recognised. No worker: test_batched_analyses.py runs batches end to end."""

from __future__ import annotations

import json

import pytest

from config.prompts import analysis_types
from workers.pipeline import batch_types as batch
from workers.pipeline.long_content import DEGRADED, degraded

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "job_type"),
    [
        ("summary", "summary"),
        (["summary"], "summary"),
        (["summary", "keywords"], "summary+keywords"),
        (("keywords", "summary", "keywords"), "keywords+summary"),  # order kept, repeats dropped
        ([], ""),
        (7, 7),  # not a list: left for validation to refuse
        (None, None),
    ],
)
def test_a_list_of_types_becomes_one_job_type(given, job_type):
    assert batch.normalise(given) == job_type


def test_a_job_type_never_outgrows_its_column():
    every = list(analysis_types()) * 3 + [f"type-{i}" for i in range(20)]
    assert len(batch.normalise(every)) <= batch.MAX_TYPE_CHARS


@pytest.mark.parametrize(
    ("job_type", "known"),
    [
        ("summary", True),
        ("summary+keywords+genre", True),
        ("+".join(analysis_types()), True),
        ("sentiment", False),
        ("summary+sentiment", False),
        ("summary+", False),
        ("", False),
        (None, False),
        (["summary"], False),
    ],
)
def test_a_job_type_is_known_when_every_analysis_it_names_is(job_type, known):
    assert batch.known(job_type) is known


@pytest.mark.parametrize(
    ("kind", "job_type", "units", "is_batch"),
    [
        ("analysis", "summary", 1, False),
        ("analysis", "summary+keywords", 2, True),
        ("analysis", "summary+keywords+genre+difficulty+characters", 5, True),
        ("script", "cinematic", 1, False),
        ("script", "a+b", 1, False),  # only analyses are batched
    ],
)
def test_a_batch_takes_one_unit_per_type(kind, job_type, units, is_batch):
    assert batch.units(kind, job_type) == units
    assert batch.is_batch(kind, job_type) is is_batch


def test_the_structured_answer_is_read_back_by_type():
    types = ["summary", "keywords"]
    content = json.dumps({"summary": "A keeper's last night.", "keywords": "lighthouse", "extra": "ignored"})
    assert batch.parse(content, types) == {"summary": "A keeper's last night.", "keywords": "lighthouse"}


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        json.dumps({"summary": "only one"}),
        json.dumps({"summary": "x", "keywords": ""}),  # an empty answer is no answer
        json.dumps({"summary": "x", "keywords": ["a", "b"]}),
    ],
)
def test_an_answer_that_is_not_the_object_asked_for_is_none(content):
    assert batch.parse(content, ["summary", "keywords"]) is None


def test_an_analysis_that_fell_back_to_truncation_is_recognised_by_its_detail():
    assert degraded({"detail": f"{DEGRADED} (ProviderTimeout); analysed the first 3000 of 9000 characters"})
    assert not degraded({"detail": "condensed 9000 characters into 3 summaries"})
    assert not degraded({"detail": None}) and not degraded({}) and not degraded({"detail": {"content": DEGRADED}})
