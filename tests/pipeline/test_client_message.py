"""The thin client's message shows a summary where Flower and task events look, never the
content. No worker runs in this module: the message waits in intake to be read."""

from __future__ import annotations

import json
import uuid

import redis

from config import get_settings


def test_the_thin_clients_message_carries_a_summary_not_the_content(client):
    # Given no worker consuming intake, a submission from the thin client waits there
    marker = f"zqxclient{uuid.uuid4().hex[:10]}"
    job_id = client.submit_script("reader-1", f"{marker} words", idempotency_key="order-9", notify="producer.done")
    r = redis.Redis.from_url(get_settings().redis_url)
    [raw] = [m for m in r.lrange("intake", 0, -1) if job_id.encode() in m]
    headers = json.loads(raw)["headers"]
    # Then what Flower and a task-sent event would show is the summary
    assert marker not in headers["kwargsrepr"] and marker not in headers["argsrepr"]
    assert "'content': '<" in headers["kwargsrepr"] and "'user_id': 'reader-1'" in headers["kwargsrepr"]
    assert "order-9" not in headers["kwargsrepr"]
