"""The boundary's checks, without a worker: every malformed shape of a submission is an
``Invalid`` naming each bad field with what is allowed (never the value sent), and becomes a
rejected / invalid_input JobResult carrying that detail. test_boundary.py sends the same
shapes through a real worker."""

from __future__ import annotations

import hashlib
import json

import pytest

from config.prompts import analysis_types, script_types
from workers.pipeline.job_result import unrecorded_rejection
from workers.pipeline.validation import (
    Invalid,
    JobRequest,
    max_content_chars,
    notify_target,
    parse_notify,
    parse_submission,
    size_errors,
)

pytestmark = pytest.mark.unit

VALID = {"user_id": "reader-1", "content": "A lighthouse keeper's last night."}
SECRET = "SECRET-VALUE-42"

# A malformed shape, the one field it breaks, and words its detail must contain.
MALFORMED = [
    ({"user_id": "reader-1", "content": None}, "content", "must be a string"),
    ({"user_id": "reader-1", "content": 42}, "content", "must be a string"),
    ({"user_id": "reader-1", "content": ["a", "b"]}, "content", "must be a string"),
    ({"user_id": "reader-1", "content": {"text": "a"}}, "content", "must be a string"),
    ({"user_id": "reader-1", "content": b"bytes"}, "content", "must be a string"),
    ({"user_id": "reader-1", "content": ""}, "content", "other than whitespace"),
    ({"user_id": "reader-1", "content": " \n\t "}, "content", "other than whitespace"),
    ({"user_id": "reader-1", "content": "a\x00b"}, "content", "NUL"),
    ({"user_id": "reader-1", "content": "half a pair: \ud800"}, "content", "surrogates"),
    ({"user_id": "reader-1", "content": "x" * 400_001}, "content", "400001 characters"),
    ({**VALID, "idempotency_key": 42}, "idempotency_key", "printable ASCII"),
    ({**VALID, "idempotency_key": ""}, "idempotency_key", "printable ASCII"),
    ({**VALID, "idempotency_key": "has space"}, "idempotency_key", "without spaces"),
    ({**VALID, "idempotency_key": "key\x00"}, "idempotency_key", "printable ASCII"),
    ({**VALID, "idempotency_key": "ключ"}, "idempotency_key", "printable ASCII"),
    ({**VALID, "idempotency_key": "k" * 129}, "idempotency_key", "1-128"),
    ({**VALID, "notify": "t" * 199}, "notify", "task name"),
    ({**VALID, "notify": 7}, "notify", "task name"),
    ({**VALID, "notify": ["producer.done"]}, "notify", "task name"),
    ({**VALID, "notify": {"queue": "celery"}}, "notify", "task name"),
    ({**VALID, "notify": {"task": "producer.done", "extra": 1}}, "notify", "task name"),
    ({**VALID, "notify": {"task": "producer done"}}, "notify", "task name"),
    ({**VALID, "notify": {"task": "producer.done", "queue": "intake"}}, "notify", "queue must be one of: celery"),
    ({**VALID, "notify": {"task": "producer.done", "queue": "tier.enterprise"}}, "notify", "queue must be one of"),
    ({**VALID, "script_type": 7}, "script_type", "must be one of: cinematic"),
    ({**VALID, "script_type": "opera"}, "script_type", "must be one of: cinematic"),
    ({**VALID, "script_type": None}, "script_type", "must be one of"),
    ({**VALID, "user_id": "u1\n"}, "user_id", "letters, digits"),
    ({**VALID, "user_id": "u" * 65}, "user_id", "1-64 characters"),
    ({**VALID, "user_id": ""}, "user_id", "1-64 characters"),
    ({**VALID, "user_id": "bad id with spaces"}, "user_id", "letters, digits"),
    ({**VALID, "user_id": "-starts-with-dash"}, "user_id", "starting with a letter or digit"),
    ({**VALID, "user_id": 42}, "user_id", "must be a string"),
    ({**VALID, "user_id": None}, "user_id", "must be a string"),
    ({**VALID, "surprise": True}, "unknown_arguments", "'surprise' not accepted"),
    ({**VALID, "analysis_type": "summary"}, "unknown_arguments", "the arguments are: user_id, content, script_type"),
    ({"content": "no user"}, "user_id", "is required"),
    ({"user_id": "reader-1"}, "content", "is required"),
]


@pytest.mark.parametrize(("kwargs", "field", "says"), MALFORMED)
def test_a_malformed_script_submission_names_the_one_field_that_is_wrong_and_what_is_allowed(kwargs, field, says):
    # When a script submission of this shape arrives
    parsed = parse_submission("script", "job-1", (), kwargs)
    # Then it is invalid for that field alone, and says what is allowed
    assert isinstance(parsed, Invalid), parsed
    assert set(parsed.errors) == {field}, parsed.errors
    assert says in parsed.errors[field]
    # And it becomes a rejected / invalid_input JobResult with that detail
    result = unrecorded_rejection(parsed.job_id, parsed.kind, parsed.type, None, "invalid_input", parsed.errors)
    assert (result["status"], result["reason"], result["detail"]) == ("rejected", "invalid_input", parsed.errors)
    assert result["job_id"] == "job-1" and result["content"] is None and result["usage"]["total_tokens"] == 0


@pytest.mark.parametrize(
    ("analysis_type", "parsed_type"),
    [
        ("summary", "summary"),
        (["summary", "keywords"], "summary+keywords"),
        (["genre", "genre"], "genre"),  # a repeated type is asked once
        (("difficulty", "characters"), "difficulty+characters"),
    ],
)
def test_an_analysis_type_is_one_known_type_or_a_list_of_them(analysis_type, parsed_type):
    parsed = parse_submission("analysis", "job-1", (), {**VALID, "analysis_type": analysis_type})
    assert isinstance(parsed, JobRequest) and parsed.type == parsed_type


@pytest.mark.parametrize("analysis_type", ["sentiment", [], ["summary", "sentiment"], 3, None, "summary+sentiment"])
def test_an_unknown_or_empty_analysis_type_lists_the_known_ones(analysis_type):
    parsed = parse_submission("analysis", "job-1", (), {**VALID, "analysis_type": analysis_type})
    assert isinstance(parsed, Invalid) and set(parsed.errors) == {"analysis_type"}
    assert parsed.errors["analysis_type"] == f"must be one of: {', '.join(analysis_types())}, or a list of them"
    assert parsed.type is None


def test_positional_arguments_are_refused_and_the_required_ones_still_named():
    parsed = parse_submission("analysis", "job-1", ("reader-1", "Some text."), {})
    assert isinstance(parsed, Invalid)
    assert set(parsed.errors) == {"arguments", "user_id", "content"}
    assert parsed.errors["arguments"] == (
        "positional arguments are not accepted; send keyword arguments: "
        "user_id, content, analysis_type, idempotency_key, notify"
    )


def test_every_bad_field_is_named_at_once_and_no_value_is_echoed():
    kwargs = {
        "user_id": f"bad {SECRET}",
        "content": None,
        "script_type": f"opera-{SECRET}",
        "idempotency_key": f"{SECRET} key",
        "notify": {"task": f"{SECRET} task"},
        f"{SECRET}": 1,
    }
    parsed = parse_submission("script", f"id {SECRET}", (), kwargs)
    assert isinstance(parsed, Invalid)
    assert set(parsed.errors) == {
        "job_id",
        "user_id",
        "content",
        "script_type",
        "idempotency_key",
        "notify",
        "unknown_arguments",
    }
    assert SECRET not in json.dumps(parsed.errors)


def test_unknown_argument_names_that_do_not_look_like_names_are_only_counted():
    kwargs = {**VALID, "colour": 1, "x" * 41: 2, "a b": 3, "<script>": 4}
    parsed = parse_submission("script", "job-1", (), kwargs)
    assert isinstance(parsed, Invalid)
    assert parsed.errors["unknown_arguments"].startswith("'colour', 3 other argument name(s) not accepted")


@pytest.mark.parametrize("job_id", ["x" * 65, "has\x00nul", "spaces are not allowed", "ümlaut", "", None, 42, "-dash"])
def test_a_task_id_a_job_row_cannot_hold_is_invalid_and_not_recordable(job_id):
    parsed = parse_submission("script", job_id, (), VALID)
    assert isinstance(parsed, Invalid) and set(parsed.errors) == {"job_id"}
    assert "1-64 characters" in parsed.errors["job_id"]
    assert parsed.user_id == "reader-1" and not parsed.recordable
    # answered under the id the producer chose, whatever it is
    assert unrecorded_rejection(job_id, "script", "cinematic", None, "invalid_input", parsed.errors)["job_id"] == job_id


def test_a_rejection_keeps_the_fields_that_passed_so_it_can_be_recorded_and_notified():
    parsed = parse_submission("script", "job-1", (), {**VALID, "content": None, "notify": "producer.done"})
    assert isinstance(parsed, Invalid) and parsed.recordable
    assert (parsed.user_id, parsed.type, parsed.notify) == (
        "reader-1",
        "cinematic",
        {"task": "producer.done", "queue": "celery"},
    )
    # an invalid user cannot be recorded (the row would belong to nobody valid)
    bad_user = parse_submission("script", "job-1", (), {**VALID, "user_id": "no spaces please"})
    assert isinstance(bad_user, Invalid) and bad_user.user_id is None and not bad_user.recordable


def test_a_valid_submission_is_a_request_with_defaults():
    script = parse_submission("script", "job-1", (), VALID)
    assert script == JobRequest("job-1", "script", "cinematic", "reader-1", VALID["content"])
    analysis = parse_submission("analysis", "job-2", (), VALID)
    assert isinstance(analysis, JobRequest) and analysis.type == "summary"
    full = parse_submission(
        "script",
        "a1.b2:c3@d4-e_5",
        (),
        {**VALID, "script_type": script_types()[-1], "idempotency_key": "order-1!~", "notify": None},
    )
    assert isinstance(full, JobRequest) and (full.idempotency_key, full.notify) == ("order-1!~", None)


def test_content_at_the_largest_tiers_limit_passes_and_one_more_character_does_not():
    limit = max_content_chars()
    assert isinstance(parse_submission("script", "j", (), {**VALID, "content": "a" * limit}), JobRequest)
    over = parse_submission("script", "j", (), {**VALID, "content": "a" * (limit + 1)})
    assert isinstance(over, Invalid)
    assert over.errors["content"] == f"is {limit + 1} characters; at most {limit} are accepted on any tier"


def test_a_tiers_own_size_limit_is_checked_apart_and_names_the_tier():
    assert size_errors("a" * 20_000, 20_000, "free") == {}
    assert size_errors("a" * 20_001, 20_000, "free") == {
        "content": "is 20001 characters; the free tier accepts at most 20000"
    }


def test_the_request_hash_covers_kind_type_and_content_only():
    base = JobRequest("j1", "script", "cinematic", "u1", "Same words.")
    expected = hashlib.sha256(b"script\x00cinematic\x00Same words.").hexdigest()
    assert base.request_sha256 == expected
    # another id, user, key or notify target asks for the same thing
    assert (
        JobRequest(
            "j2", "script", "cinematic", "u2", "Same words.", "k", {"task": "t", "queue": "celery"}
        ).request_sha256
        == expected
    )
    assert JobRequest("j1", "script", "narration", "u1", "Same words.").request_sha256 != expected
    assert JobRequest("j1", "analysis", "cinematic", "u1", "Same words.").request_sha256 != expected
    assert JobRequest("j1", "script", "cinematic", "u1", "Other words.").request_sha256 != expected


@pytest.mark.parametrize(
    ("notify", "target"),
    [
        (None, None),
        ("producer.done", {"task": "producer.done", "queue": "celery"}),
        ({"task": "producer.done"}, {"task": "producer.done", "queue": "celery"}),
        ({"task": "_private:task-1", "queue": "celery"}, {"task": "_private:task-1", "queue": "celery"}),
    ],
)
def test_a_notify_option_is_a_task_and_an_allowed_queue(notify, target):
    assert parse_notify(notify) == (target, None)


def test_a_stored_notify_target_is_checked_again_against_the_allow_list_as_it_stands(monkeypatch):
    from config import get_settings

    stored = json.dumps({"task": "producer.done", "queue": "producer-events"})
    assert notify_target(json.dumps({"task": "producer.done", "queue": "celery"})) == ("producer.done", "celery")
    assert notify_target({"task": "producer.done", "queue": "celery"}) == ("producer.done", "celery")
    assert notify_target(stored) is None  # not allowed now
    assert notify_target(None) is None
    assert notify_target("{not json") is None
    monkeypatch.setenv("NOTIFY_QUEUES", "celery,producer-events")
    get_settings.cache_clear()
    try:
        assert notify_target(stored) == ("producer.done", "producer-events")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
