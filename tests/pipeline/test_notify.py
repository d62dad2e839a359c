"""`notify` sends the final JobResult to the producer's own task and queue."""

import json
import time

import redis


def test_the_final_job_result_is_sent_to_the_notify_task_on_its_queue(worker, client, faults):
    # Given a producer listening on its own queue
    r = redis.Redis.from_url(client.app.conf.broker_url)
    # When it submits with notify
    job_id = client.submit_script("notified", "A letter.", notify={"task": "producer.job_done", "queue": "celery"})
    result = client.result(job_id, timeout=30)
    # Then a message for producer.job_done with the JobResult waits on queue celery (in NOTIFY_QUEUES by default)
    deadline = time.monotonic() + 10
    while not (raw := r.lpop("celery")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    message = json.loads(raw)
    assert message["headers"]["task"] == "producer.job_done"
    args, _kwargs, _ = json.loads(__import__("base64").b64decode(message["body"]))
    assert args == [result]
