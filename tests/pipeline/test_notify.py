"""`notify` sends the final JobResult to the producer's own task and queue."""

import json

import redis

from tests.waiting import wait_until


def test_the_final_job_result_is_sent_to_the_notify_task_on_its_queue(worker, client, faults):
    # Given a producer listening on its own queue
    r = redis.Redis.from_url(client.app.conf.broker_url)
    # When it submits with notify
    job_id = client.submit_script(
        "notified", "A letter.", notify={"task": "producer.job_done", "queue": "producer-events"}
    )
    result = client.result(job_id, timeout=30)
    # Then a message for producer.job_done with the JobResult waits on producer-events
    raw = wait_until(lambda: r.lpop("producer-events"), timeout=10, what="the notify message")
    message = json.loads(raw)
    assert message["headers"]["task"] == "producer.job_done"
    args, _kwargs, _ = json.loads(__import__("base64").b64decode(message["body"]))
    assert args == [result]
