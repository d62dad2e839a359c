"""Flower's view of a job: the events a real worker sends for it, and none that nothing reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.waiting import wait_until
from workers.app import app


@pytest.fixture
def events() -> Iterator[list[dict]]:
    """Every task event on the broker while the test runs, as Flower's receiver sees them."""
    seen: list[dict] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": seen.append})
        thread = threading.Thread(target=receiver.capture, kwargs={"limit": None, "wakeup": False}, daemon=True)
        thread.start()
        yield seen
        receiver.should_stop = True
        thread.join(timeout=5)


def test_flower_sees_every_state_of_a_job_and_no_task_sent_event(spawn_worker, client, subscribe, events):
    # Given a real worker, whose heartbeats show the receiver is listening, and a subscribed user
    spawn_worker()
    wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in events), timeout=15)
    subscribe("events-1", "professional")
    # When a job runs to the end
    job = client.submit_script("events-1", "A lighthouse keeper hears a song.")
    assert client.result(job, timeout=60)["status"] == "succeeded"
    # Then the job's events include received, started and succeeded (intake and tier task share its id)
    wait_until(lambda: "task-succeeded" in {e["type"] for e in events if e.get("uuid") == job}, timeout=15)
    types = {e["type"] for e in events if e.get("uuid") == job}
    assert {"task-received", "task-started", "task-succeeded"} <= types
    # And no task-sent event: nothing reads it
    assert "task-sent" not in types
