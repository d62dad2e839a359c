"""The broker is a transport that may lose everything: Postgres is the ledger.

Each test runs its own Redis (keeping nothing on disk), worker processes with an embedded
beat (so recovery runs every second here), and a producer waiting on every job.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import text

from tasks.client import LitinkClient
from tests.servers import redis_server, workers

FAST_RECOVERY = {"job_lease_seconds": 3, "recovery_interval_seconds": 1, "recovery_grace_seconds": 3}


def wait_for_all(client: LitinkClient, job_ids: list[str], timeout: float) -> dict[str, Any]:
    """Every producer waits on its own job, as producers do, in parallel."""
    results: dict[str, Any] = {}

    def wait(job_id: str) -> None:
        try:
            results[job_id] = client.result(job_id, timeout=timeout)
        except Exception as exc:  # recorded and asserted by the caller
            results[job_id] = exc

    threads = [threading.Thread(target=wait, args=(j,)) for j in job_ids]
    [t.start() for t in threads]
    [t.join(timeout + 5) for t in threads]
    return results


def wait_until_final(db, job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unfinished = db.execute(
            text("SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND status IN ('queued', 'running')"),
            {"ids": job_ids},
        ).scalar()
        if not unfinished:
            return
        time.sleep(0.5)
    raise AssertionError(f"{unfinished} jobs still unfinished")


def assert_ledger_balanced(db, job_ids: list[str], user_ids: list[str]) -> None:
    statuses = dict(db.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
    assert set(statuses) <= {"succeeded", "failed", "rejected"}, statuses
    # one ok attempt per succeeded job: the answer was bought once
    doubled = db.execute(
        text("SELECT job_id FROM llm_calls WHERE status = 'ok' GROUP BY job_id HAVING count(*) > 1")
    ).all()
    assert doubled == []
    units = db.execute(
        text("SELECT coalesce(sum(scripts_used), 0) FROM quota_usage WHERE user_id = ANY(:u)"), {"u": user_ids}
    ).scalar()
    assert units == statuses.get("succeeded", 0)
    reserved = db.execute(text("SELECT coalesce(sum(reserved_usd), 0) FROM quota_usage")).scalar()
    assert reserved == 0


def test_a_redis_flushed_mid_run_still_finishes_every_admitted_job_and_answers_every_producer(emulator, faults, db):
    # Given 60 jobs in flight on a Redis that then loses all its data
    faults.set_latency(300)
    with redis_server() as broker, workers(broker.url(), **FAST_RECOVERY) as running:
        running.spawn(concurrency=10, beat=True)
        running.spawn(concurrency=10)
        client = LitinkClient(broker.url())
        users = [f"flush-{i}" for i in range(30)]
        job_ids = [client.submit_script(users[i % 30], f"Chapter {i}: the lighthouse.") for i in range(60)]
        deadline = time.monotonic() + 30
        while db.execute(text("SELECT count(*) FROM jobs")).scalar() < 30:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # When Redis is flushed mid-run
        broker.client().flushall()
        # Then every job admitted before the flush is final and its producer got its JobResult
        # (intake messages not yet admitted are gone with Redis: their producers resubmit)
        admitted = db.execute(text("SELECT id FROM jobs")).scalars().all()
        assert set(admitted) <= set(job_ids)
        results = wait_for_all(client, admitted, timeout=60)
        assert [r for r in results.values() if not (isinstance(r, dict) and r["status"] == "succeeded")] == []
        wait_until_final(db, admitted, 10)
        assert_ledger_balanced(db, admitted, users)
        assert all(running.alive())


def test_a_redis_restarted_without_persistence_mid_run_loses_no_admitted_job_and_no_worker(emulator, faults, db):
    # Given 60 jobs in flight on a Redis that keeps nothing on disk
    faults.set_latency(500)
    with redis_server() as broker, workers(broker.url(), **FAST_RECOVERY) as running:
        running.spawn(concurrency=10, beat=True)
        running.spawn(concurrency=10)
        running.spawn(concurrency=10)
        client = LitinkClient(broker.url())
        users = [f"restart-{i}" for i in range(30)]
        job_ids = [client.submit_script(users[i % 30], f"Chapter {i}: the orchard.") for i in range(60)]
        deadline = time.monotonic() + 30
        while db.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'")).scalar() < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # When Redis restarts (everything it held is gone)
        broker.restart(down_seconds=1)
        # Then every worker process is still running, and every admitted job finished once
        admitted = db.execute(text("SELECT id FROM jobs")).scalars().all()
        results = wait_for_all(client, admitted, timeout=60)
        assert [r for r in results.values() if not (isinstance(r, dict) and r["status"] == "succeeded")] == []
        wait_until_final(db, admitted, 10)
        assert_ledger_balanced(db, admitted, users)
        assert all(running.alive()), running.alive()
        assert len(job_ids) == 60
