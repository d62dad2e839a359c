"""Every tier's job is handed to its own queue, at its own message priority."""

import threading

import pytest
from celery.signals import before_task_publish

from config import get_catalog


@pytest.fixture
def handovers():
    """Tier-task messages as they are published: (kwarg names, routing key, priority, id)."""
    seen, lock = [], threading.Lock()

    def record(sender=None, body=None, routing_key=None, properties=None, headers=None, **_):
        if sender == "litink.run_job":
            kwargs = body[1] if isinstance(body, (list, tuple)) else {}
            with lock:
                seen.append((tuple(sorted(kwargs)), routing_key, (properties or {}).get("priority"), headers["id"]))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


@pytest.mark.parametrize("tier", [t.name for t in get_catalog().by_priority()])
def test_each_tier_is_handed_to_its_queue_at_its_priority(worker, client, faults, subscribe, handovers, tier):
    # Given a user on the tier
    user = f"user-{tier}"
    if tier != "free":
        subscribe(user, tier)
    # When they submit a script
    job_id = client.submit_script(user, "A short story about a kite.")
    result = client.result(job_id, timeout=30)
    # Then the hand-over went to tier.<tier> at the catalog's priority, under the same id,
    # carrying only the job id (the jobs row is the whole job: no content in the message)
    expected = get_catalog().tier(tier)
    assert result["status"] == "succeeded" and result["tier"] == tier
    assert (("job_id", "queued_at"), expected.queue, expected.priority, job_id) in handovers
    assert result["model_used"] == expected.models[0]


@pytest.mark.unit
def test_higher_tiers_have_strictly_higher_redis_priority():
    # On Redis 0 is the highest priority: intake first, then tiers by rank
    catalog = get_catalog()
    by_rank = sorted(catalog.tiers.values(), key=lambda t: t.rank, reverse=True)
    priorities = [t.priority for t in by_rank]
    assert priorities == sorted(priorities) and len(set(priorities)) == len(priorities)
    assert min(priorities) > 0
    assert catalog.queues()[0] == "intake"
