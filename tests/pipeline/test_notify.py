"""`notify` sends the final JobResult to the producer's own task and queue: only to an
allow-listed queue, once per final outcome, rejections included."""

import inspect
import json
import uuid

import pytest
import redis
from sqlalchemy import text

from config import get_catalog, get_settings
from tasks.client import LitinkClient
from tasks.generation import run_job
from tests.pipeline.notifications import published, wait_for
from tests.waiting import wait_until


def test_the_final_job_result_is_sent_to_the_notify_task_on_its_queue(worker, client, faults):
    # Given a producer listening on its own queue
    r = redis.Redis.from_url(client.app.conf.broker_url)
    # When it submits with notify
    job_id = client.submit_script("notified", "A letter.", notify={"task": "producer.job_done", "queue": "celery"})
    result = client.result(job_id, timeout=30)
    # Then a message for producer.job_done with the JobResult waits on queue celery (in NOTIFY_QUEUES by default)
    raw = wait_until(lambda: r.lpop("celery"), timeout=10, what="the notify message")
    message = json.loads(raw)
    assert message["headers"]["task"] == "producer.job_done"
    args, _kwargs, _ = json.loads(__import__("base64").b64decode(message["body"]))
    assert args == [result]


@pytest.mark.parametrize("queue", ["intake", "tier.enterprise", "producer-events"])
def test_a_notify_queue_outside_the_allow_list_is_invalid_input_and_nothing_is_published(
    worker, client, finished_runs, queue
):
    r = redis.Redis.from_url(get_settings().redis_url)
    before = {q: r.llen(q) for q in get_catalog().queues()}
    job_id = client.submit_script("reader-1", "A letter.", notify={"task": "litink.run_job", "queue": queue})
    result = client.result(job_id, timeout=30)
    assert result["reason"] == "invalid_input" and "celery" in result["detail"]["notify"]
    # The rejection is stored before its task ends: once it has ended, anything it sent is queued
    finished_runs(job_id, 1)
    assert {q: r.llen(q) for q in get_catalog().queues()} == before
    assert r.llen(queue) == 0 and published() == []


def test_a_recorded_rejection_is_notified_once_and_recorded_in_its_row(worker, client, db, finished_runs):
    job_id = str(uuid.uuid4())
    kwargs = {"user_id": "reader-1", "content": None, "notify": "producer.done"}
    client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id).get(timeout=30)
    # The same message delivered again
    LitinkClient(get_settings().redis_url).app.send_task(
        "litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id
    ).get(timeout=30)
    finished_runs(job_id, 2)  # both deliveries ended: a second notification would be queued by now
    [notified] = wait_for(job_id)
    assert notified["reason"] == "invalid_input"
    assert db.execute(text("SELECT notified_at IS NOT NULL FROM jobs WHERE id = :j"), {"j": job_id}).scalar()


def test_a_rejection_without_a_row_is_notified_once(worker, client, db, finished_runs):
    job_id = str(uuid.uuid4())
    kwargs = {"user_id": "not a valid id", "content": "Text.", "notify": "producer.done"}
    for _ in range(2):
        LitinkClient(get_settings().redis_url).app.send_task(
            "litink.submit_script", kwargs=kwargs, queue="intake", task_id=job_id
        ).get(timeout=30)
    finished_runs(job_id, 2)
    [notified] = wait_for(job_id)
    assert notified["reason"] == "invalid_input" and "user_id" in notified["detail"]
    assert db.execute(text("SELECT count(*) FROM jobs")).scalar() == 0


def test_a_quota_rejection_is_notified(worker, client, finished_runs):
    # Given a free user who used the month's allowance
    allowance = get_catalog().tier("free").allowance("script")
    for n in range(allowance):
        assert client.result(client.submit_script("spent", f"Part {n}."), timeout=30)["status"] == "succeeded"
    # When one more is submitted with notify
    job_id = client.submit_script("spent", "One more.", notify="producer.done")
    result = client.result(job_id, timeout=30)
    # Then the rejection is the notification
    assert result["reason"] == "quota_exceeded", result
    finished_runs(job_id, 1)
    assert wait_for(job_id) == [result]


def test_every_final_outcome_is_notified_once_even_when_its_messages_are_delivered_again(
    worker, client, db, faults, finished_runs
):
    # Given a job that succeeded with notify
    content = "The clock that ran backwards."
    job_id = client.submit_script("reader-1", content, notify="producer.done")
    result = client.result(job_id, timeout=30)
    finished_runs(job_id, 2)
    assert wait_for(job_id) == [result]
    # When its intake message and its tier message are delivered again
    LitinkClient(get_settings().redis_url).app.send_task(
        "litink.submit_script",
        kwargs={"user_id": "reader-1", "content": content, "notify": "producer.done"},
        queue="intake",
        task_id=job_id,
    )
    free = get_catalog().tier("free")
    message = {
        "job_id": job_id,
        "user_id": "reader-1",
        "kind": "script",
        "type": "cinematic",
        "tier": "free",
        "content": content,
        "notify": {"task": "producer.done", "queue": "celery"},
        "queued_at": None,
    }
    accepted = inspect.signature(run_job.run).parameters  # whatever the tier task's message holds
    client.app.send_task(
        "litink.run_job",
        kwargs={k: v for k, v in message.items() if k in accepted},
        task_id=job_id,
        queue=free.queue,
        priority=free.priority,
    )
    finished_runs(job_id, 4)
    # Then the producer was notified once
    assert wait_for(job_id) == [result]


def test_a_failed_job_is_notified_once(worker, client, faults, finished_runs):
    faults.inject("meta-llama/llama-3.2-3b-instruct", "unauthorized", times=-1)
    job_id = client.submit_script("reader-1", "Words.", notify="producer.done")
    result = client.result(job_id, timeout=30)
    assert result["status"] == "failed"
    finished_runs(job_id, 2)  # intake and the tier task
    assert wait_for(job_id) == [result]
