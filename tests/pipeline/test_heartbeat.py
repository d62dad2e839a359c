"""The lease heartbeat: its own connection, bounded waits, and holds that only their own
delivery releases."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from sqlalchemy import exc, text

from config import get_settings
from db.session import get_engine, pool_size
from tests.pipeline.test_recovery import add_running_job
from workers.pipeline import heartbeat as heartbeat_module
from workers.pipeline.heartbeat import Heartbeat


def lease_left_s(db, job_id: str) -> float:
    return db.execute(
        text("SELECT extract(epoch FROM lease_until - now()) FROM jobs WHERE id = :j"), {"j": job_id}
    ).scalar_one()


def test_a_heartbeat_renews_on_time_while_every_pooled_connection_is_taken(db):
    # Given a running job whose lease has 2 s left, and a worker whose every pooled connection
    # is held (by threads waiting on Stripe, say) for longer than a lease
    job_id = str(uuid.uuid4())
    add_running_job(db, job_id, lease="2 seconds")
    beat = Heartbeat()
    beat.hold(job_id, 1)
    lease_s = get_settings().job_lease_seconds
    try:
        with ExitStack() as taken, ThreadPoolExecutor(1) as pool:
            while get_engine().pool.checkedout() < pool_size():  # the test's own `db` holds one
                taken.enter_context(get_engine().connect()).execute(text("SELECT 1"))
            # When the heartbeat beats, it renews within its own budget, not the pool's timeout
            renewed = pool.submit(beat.beat).result(timeout=lease_s)
        # Then the lease is a whole lease again
        assert renewed == 1
        assert lease_left_s(db, job_id) > lease_s - 5
    finally:
        beat.release(job_id, 1)


def test_a_beat_blocked_by_a_row_lock_gives_up_within_a_third_of_a_lease(db):
    # Given a running job whose row another transaction keeps locked
    job_id = str(uuid.uuid4())
    add_running_job(db, job_id, lease="1 minute")
    beat = Heartbeat()
    beat.hold(job_id, 1)
    budget_s = max(1, get_settings().job_lease_seconds // 3)
    try:
        with get_engine().connect() as locker, ThreadPoolExecutor(1) as pool:
            locker.execute(text("SELECT id FROM jobs WHERE id = :j FOR UPDATE"), {"j": job_id})
            # When the heartbeat beats, the statement is cancelled at its budget, so the next
            # beat can try again before the lease runs out
            with pytest.raises(exc.OperationalError, match="statement timeout"):
                pool.submit(beat.beat).result(timeout=budget_s * 3)
            locker.rollback()
        # And once the lock is gone the next beat renews
        assert beat.beat() == 1
    finally:
        beat.release(job_id, 1)


@pytest.mark.unit
def test_only_the_delivery_that_took_a_hold_releases_it():
    beat = Heartbeat()
    beat.hold("job-a", 2)  # delivery 2 took over after delivery 1's lease expired
    beat.release("job-a", 1)  # delivery 1 finishes late in the same process
    assert beat.held() == {"job-a": 2}
    beat.release("job-a", 2)
    assert beat.held() == {}


@pytest.mark.unit
def test_a_hold_past_the_task_time_limit_is_no_longer_renewed(monkeypatch):
    beat = Heartbeat()
    start = heartbeat_module.time.monotonic()
    beat.hold("job-b", 1)
    limit = get_settings().task_time_limit
    monkeypatch.setattr(heartbeat_module.time, "monotonic", lambda: start + limit - 1)
    assert beat.held() == {"job-b": 1}
    monkeypatch.setattr(heartbeat_module.time, "monotonic", lambda: start + limit + 1)
    assert beat.held() == {}
