"""Reading the notify messages the workers publish to a producer's queue (no worker consumes it
in the tests), as a producer's own Celery worker would receive them."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from config import get_settings
from tests.waiting import wait_until

QUEUE = "celery"


def published(queue: str = QUEUE) -> list[tuple[str, list[Any]]]:
    """(task name, args) of every message waiting on ``queue``, oldest first."""
    r = redis.Redis.from_url(get_settings().redis_url)
    messages = []
    for raw in reversed(r.lrange(queue, 0, -1)):  # kombu LPUSHes, consumers BRPOP
        message = json.loads(raw)
        args, _kwargs, _ = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


def results_for(job_id: str, queue: str = QUEUE) -> list[dict[str, Any]]:
    return [args[0] for _, args in published(queue) if args and args[0].get("job_id") == job_id]


def wait_for(job_id: str, count: int = 1, timeout: float = 15, queue: str = QUEUE) -> list[dict[str, Any]]:
    """The notifications of ``job_id`` once ``count`` have arrived. A duplicate can only come
    from a run still going: to assert "once", wait for the runs first (``finished_runs``)."""
    wait_until(
        lambda: len(results_for(job_id, queue)) >= count, timeout=timeout, what=f"{count} notification(s) of {job_id}"
    )
    return results_for(job_id, queue)
