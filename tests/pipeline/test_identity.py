"""A job id belongs to the user who created it, and an idempotency key to the request it
was first used for."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from config import get_catalog, get_settings
from tasks.client import LitinkClient
from tests.pipeline.notifications import wait_for
from tests.waiting import wait_until

SECRET = "Alice's unpublished chapter about the orchard"


def another_producer() -> LitinkClient:
    """A separate service: its own Celery app, so nothing is cached from earlier answers."""
    return LitinkClient(get_settings().redis_url)


def row_of(db, job_id):
    return db.execute(
        text("SELECT user_id, status, result_content, request_sha256 FROM jobs WHERE id = :j"), {"j": job_id}
    ).one()


def test_another_users_finished_job_id_is_a_conflict_that_reveals_nothing(worker, client, faults, db, finished_runs):
    # Given Alice's finished job
    alice_id = client.submit_script("alice", SECRET)
    alice = client.result(alice_id, timeout=30)
    assert alice["status"] == "succeeded"
    before = row_of(db, alice_id)
    calls = len(faults.calls())
    # When Bob submits with Alice's job id
    bob_producer = another_producer()
    bob_producer.submit_script("bob", "Bob's own text.", job_id=alice_id, notify="bob.done")
    # Then Bob is told the id is taken (his notify task receives the answer), once
    finished_runs(alice_id, 2, task="litink.submit_script")  # Alice's submission and Bob's
    [bob] = wait_for(alice_id)
    # and learns nothing of Alice's job from the workers
    assert bob["status"] == "rejected" and bob["reason"] == "job_id_conflict"
    assert bob["content"] is None and bob["tier"] is None and bob["model_used"] is None
    assert bob["usage"]["total_tokens"] == 0
    for value in (alice["content"], "alice", SECRET, "orchard"):
        assert value not in str(bob)
    # And Alice's job is untouched, nothing ran for Bob, and Alice's stored answer is still hers
    # (the conflict is not stored under her id: anyone holding a job id and the Redis URL
    # can read its stored result, which is why job ids must be unguessable)
    assert row_of(db, alice_id) == before
    assert another_producer().result(alice_id, timeout=5) == alice
    assert len(faults.calls()) == calls
    assert client.job_status(alice_id)["content"] == alice["content"]


def test_bobs_content_never_runs_under_alices_unfinished_job_id(worker, client, faults, db, finished_runs):
    # Given Alice's job, still running (the provider is slow)
    faults.set_latency(1500)
    alice_id = client.submit_script("alice", SECRET)
    wait_until(
        lambda: db.execute(text("SELECT count(*) FROM jobs WHERE id = :j"), {"j": alice_id}).scalar(),
        timeout=10,
        what="Alice's jobs row",
    )
    # When Bob submits his own content with Alice's id
    another_producer().app.send_task(
        "litink.submit_script",
        kwargs={"user_id": "bob", "content": "BOB-ONLY words", "notify": "bob.done"},
        queue="intake",
        task_id=alice_id,
    )
    finished_runs(alice_id, 2, task="litink.submit_script")
    [bob] = wait_for(alice_id)
    assert bob["reason"] == "job_id_conflict" and bob["content"] is None
    # Then Alice's job finishes with her content, and the provider never saw Bob's
    faults.set_latency(0)
    alice = client.result(alice_id, timeout=30)
    assert alice["status"] == "succeeded" and row_of(db, alice_id).user_id == "alice"  # not Bob's conflict
    assert all("BOB-ONLY" not in str(call) for call in faults.calls())
    assert db.execute(text("SELECT count(*) FROM llm_calls WHERE job_id = :j"), {"j": alice_id}).scalar() == 1


def test_a_reused_idempotency_key_with_the_same_request_returns_the_original_job(worker, client, faults, db):
    first = client.result(client.submit_script("reader-1", "A fox counts.", idempotency_key="order-1"), timeout=30)
    calls = len(faults.calls())
    again = client.result(client.submit_script("reader-1", "A fox counts.", idempotency_key="order-1"), timeout=30)
    assert again == first and len(faults.calls()) == calls


def test_a_reused_idempotency_key_with_different_content_or_kind_is_a_conflict_naming_the_original(
    worker, client, faults, db
):
    # Given a job submitted with key order-2
    original = client.result(client.submit_script("reader-1", "A fox counts.", idempotency_key="order-2"), timeout=30)
    calls = len(faults.calls())
    # When the key is reused for other content, another script type, or an analysis
    other_content = client.result(
        client.submit_script("reader-1", "A fox sings.", idempotency_key="order-2"), timeout=30
    )
    other_type = client.result(
        client.submit_script("reader-1", "A fox counts.", script_type="narration", idempotency_key="order-2"),
        timeout=30,
    )
    other_kind = client.result(
        client.submit_analysis("reader-1", "A fox counts.", idempotency_key="order-2"), timeout=30
    )
    # Then each is rejected, naming the original job and showing nothing of it
    for answer in (other_content, other_type, other_kind):
        assert answer["status"] == "rejected" and answer["reason"] == "idempotency_conflict", answer
        assert answer["detail"]["original_job_id"] == original["job_id"]
        assert answer["job_id"] != original["job_id"] and answer["content"] is None
    assert len(faults.calls()) == calls
    # And the original still answers for its key
    assert client.result(client.submit_script("reader-1", "A fox counts.", idempotency_key="order-2"), 30) == original


def test_the_request_hash_is_recorded_and_a_redelivered_submission_is_the_same_job(worker, client, db, finished_runs):
    job_id = str(uuid.uuid4())
    kwargs = {"user_id": "reader-1", "content": "Same words."}
    first = client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id).get(timeout=30)
    redelivery = another_producer().app
    again = redelivery.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id).get(timeout=30)
    assert first == again and first["status"] == "succeeded"
    assert len(row_of(db, job_id).request_sha256) == 64
    # The same user reusing the id for a different request is a conflict too
    another_producer().app.send_task(
        "litink.submit_script",
        kwargs={**kwargs, "content": "Other words.", "notify": "producer.done"},
        queue="intake",
        task_id=job_id,
    )
    finished_runs(job_id, 3, task="litink.submit_script")
    [changed] = wait_for(job_id)
    assert changed["reason"] == "job_id_conflict" and changed["content"] is None
    assert row_of(db, job_id).status == "succeeded"


def test_a_tier_message_for_a_job_with_no_row_is_dropped_and_changes_nothing(worker, client, faults, db, caplog):
    # Given a producer that skips admission and sends the tier task directly, on the top
    # tier's queue, once with a job id of its own and once also naming a user and content
    top = get_catalog().tier("enterprise")
    job_id, forged_id = str(uuid.uuid4()), str(uuid.uuid4())
    producer = another_producer().app
    sent = producer.send_task(
        "litink.run_job", kwargs={"job_id": job_id}, task_id=job_id, queue=top.queue, priority=top.priority
    )
    forged = {"job_id": forged_id, "user_id": "intruder", "tier": top.name, "content": "Run me for free."}
    refused = producer.send_task(
        "litink.run_job", kwargs=forged, task_id=forged_id, queue=top.queue, priority=top.priority
    )
    # Then the worker drops the first with an error log
    wait_until(
        lambda: any(r.levelname == "ERROR" and getattr(r, "job_id", None) == job_id for r in caplog.records),
        timeout=15,
        what="the error log of the dropped message",
    )
    # And the second fails before any of our code runs: the tier task takes nothing but ids
    refused.get(timeout=15, propagate=False)
    assert refused.state == "FAILURE" and isinstance(refused.result, TypeError)
    assert "Run me" not in str(refused.result) and "Run me" not in (refused.traceback or "")
    # And nothing changed: no row, no call, no cost, no quota, no stored answer
    for table in ("jobs", "llm_calls", "quota_usage"):
        assert db.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    assert faults.calls() == []
    assert sent.state == "PENDING"
