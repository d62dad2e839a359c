"""Every malformed submission, whatever its shape, is a JobResult rejected / invalid_input
whose detail names each bad field, stored under the task id. Cases found by fuzzing (test_fuzz_submissions.py)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from workers.pipeline.validation import Invalid, JobRequest, parse_submission

VALID = {"user_id": "reader-1", "content": "A lighthouse keeper's last night."}


def rejected(job, timeout: float = 30) -> dict:
    result = job.get(timeout=timeout)
    assert result["status"] == "rejected" and result["reason"] == "invalid_input", result
    assert result["job_id"] == job.id
    return result


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"user_id": "reader-1", "content": None}, "content"),
        ({"user_id": "reader-1", "content": 42}, "content"),
        ({"user_id": "reader-1", "content": ["a", "b"]}, "content"),
        ({"user_id": "reader-1", "content": "a\x00b"}, "content"),
        ({"user_id": "reader-1", "content": "half a pair: \ud800"}, "content"),
        ({"user_id": "reader-1", "content": "x" * 400_001}, "content"),
        ({**VALID, "idempotency_key": 42}, "idempotency_key"),
        ({**VALID, "idempotency_key": "key\x00"}, "idempotency_key"),
        ({**VALID, "idempotency_key": "k" * 129}, "idempotency_key"),
        ({**VALID, "notify": "t" * 199}, "notify"),
        ({**VALID, "notify": {"task": "producer.done", "queue": "intake"}}, "notify"),
        ({**VALID, "notify": {"task": "producer.done", "extra": 1}}, "notify"),
        ({**VALID, "script_type": 7}, "script_type"),
        ({**VALID, "user_id": "u1\n"}, "user_id"),
        ({**VALID, "user_id": "u" * 65}, "user_id"),
        ({**VALID, "surprise": True}, "unknown_arguments"),
        ({"content": "no user"}, "user_id"),
        ({"user_id": "reader-1"}, "content"),
    ],
)
def test_a_malformed_field_is_a_job_result_naming_it(worker, client, db, kwargs, field):
    # When a stock producer sends it by name
    job = client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake")
    # Then the answer is a JobResult that names the field and what is allowed, not an exception
    result = rejected(job)
    assert set(result["detail"]) == {field}, result["detail"]
    assert (
        "must" in result["detail"][field]
        or "not accepted" in result["detail"][field]
        or "is " in result["detail"][field]
    )
    # And nothing was admitted: no provider call, no quota unit
    assert db.execute(text("SELECT count(*) FROM llm_calls")).scalar() == 0
    assert db.execute(text("SELECT count(*) FROM jobs WHERE status <> 'rejected'")).scalar() == 0


def test_positional_arguments_are_answered_like_any_other_malformed_submission(worker, client):
    job = client.app.send_task("litink.submit_analysis", args=["reader-1", "Some text."], queue="intake")
    result = rejected(job)
    assert "positional" in result["detail"]["arguments"]
    assert set(result["detail"]) == {"arguments", "user_id", "content"}  # and the required ones are missing


def test_every_bad_field_is_named_at_once_without_echoing_values(worker, client):
    job = client.app.send_task(
        "litink.submit_script",
        kwargs={"user_id": "bad user", "content": None, "script_type": "opera-SECRET", "idempotency_key": 3},
        queue="intake",
    )
    result = rejected(job)
    assert set(result["detail"]) == {"user_id", "content", "script_type", "idempotency_key"}
    assert "SECRET" not in str(result)


@pytest.mark.parametrize("task_id", ["x" * 65, "has\x00nul", "spaces are not allowed", "ümlaut"])
def test_a_task_id_that_cannot_be_a_job_id_still_gets_its_answer_under_that_id(worker, client, db, task_id):
    # When a producer chooses a task id jobs.id cannot hold
    job = client.app.send_task("litink.submit_script", kwargs=VALID, queue="intake", task_id=task_id)
    # Then AsyncResult(task_id).get() returns the rejection, and no row was written
    result = rejected(job)
    assert "job_id" in result["detail"]
    assert db.execute(text("SELECT count(*) FROM jobs")).scalar() == 0


def test_a_malformed_submission_with_a_valid_id_and_user_is_recorded_once(worker, client, db):
    job_id = str(uuid.uuid4())
    kwargs = {"user_id": "reader-1", "content": None}
    first = rejected(client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id))
    # A redelivery of the same message gives the same answer and writes nothing new
    again = rejected(client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id))
    assert first == again
    row = db.execute(text("SELECT status, reason, idempotency_key FROM jobs WHERE id = :j"), {"j": job_id}).one()
    assert tuple(row) == ("rejected", "invalid_input", None)
    assert client.job_status(job_id)["reason"] == "invalid_input"


@pytest.mark.unit
def test_validation_needs_no_database_and_checks_size_before_anything_else():
    # parse_submission is pure: it runs before any lookup
    huge = parse_submission("script", "job-1", (), {"user_id": "u", "content": "\x00" * 500_000})
    assert isinstance(huge, Invalid) and "500000 characters" in huge.errors["content"]
    ok = parse_submission("analysis", "job-2", (), {"user_id": "u", "content": "text", "notify": "producer.done"})
    assert isinstance(ok, JobRequest) and ok.notify == {"task": "producer.done", "queue": "celery"}
    assert ok.type == "summary"


STOCK_PRODUCER = """
import json, sys
from celery import Celery
app = Celery("stock", broker=sys.argv[1], backend=sys.argv[1])  # kombu's own json, nothing of ours
answers = []
for kwargs in ({"user_id": "r-1", "content": float("nan")}, {"user_id": 2**70, "content": "x"},
               {"user_id": "r-1", "content": "half \\ud800"}):
    answers.append(app.send_task("litink.submit_script", kwargs=kwargs, queue="intake").get(timeout=30))
print(json.dumps([[a["status"], a["reason"], sorted(a["detail"])] for a in answers]))
"""


def test_a_stock_producers_json_that_orjson_refuses_is_still_answered(worker):
    import subprocess
    import sys

    from config import get_settings

    # Given a stock producer in its own process: kombu's json writes NaN, big integers and
    # unpaired surrogate escapes, which orjson (the workers' codec) refuses to read
    out = subprocess.run(
        [sys.executable, "-c", STOCK_PRODUCER, get_settings().redis_url],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    # Then each is answered at the boundary
    assert json.loads(out) == [
        ["rejected", "invalid_input", ["content"]],
        ["rejected", "invalid_input", ["user_id"]],
        ["rejected", "invalid_input", ["content"]],
    ]
