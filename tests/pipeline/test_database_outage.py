"""Postgres stopped mid-run is waited out, not turned into errors: every job reaches a final
state (those submitted during the outage too), no answer is bought twice, no row is lost, and
no attempt row is left for a call that was never made.

The outage tests own a throw-away Postgres cluster and their own Redis; the machine's servers
are never touched.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from config import get_catalog
from db.migrate import upgrade_to_head
from db.session import sqlalchemy_url
from tasks.client import LitinkClient
from tests.pipeline.test_broker_loss import wait_for_all
from tests.servers import postgres_cluster, redis_server, workers
from tests.waiting import wait_until
from workers.llm import response_cache

# A lease longer than the workers' retry backoff (5 s), so a worker that was only cut off
# renews its lease before recovery may take it for dead.
SETTINGS = {"job_lease_seconds": 10, "recovery_interval_seconds": 2, "recovery_grace_seconds": 5}


def running_jobs(engine) -> int:
    with engine.connect() as db:
        return db.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'")).scalar()


def run_through_outage(emulator, faults, down_seconds: float) -> None:
    faults.set_latency(800, jitter_ms=400)
    with postgres_cluster() as pg, redis_server() as broker:
        upgrade_to_head(pg.url)
        # Pre-ping: the connection pooled before the outage is dead after it
        engine = create_engine(sqlalchemy_url(pg.url), pool_pre_ping=True)
        client = LitinkClient(broker.url())
        with workers(broker.url(), database_url=pg.url, **SETTINGS) as running:
            running.spawn(concurrency=10, beat=True)
            running.spawn(concurrency=10)
            # Given 40 jobs in flight
            before = [client.submit_analysis(f"pg-{i % 10}", f"Before the outage, part {i}.") for i in range(40)]
            wait_until(lambda: running_jobs(engine) >= 10, timeout=30, what="jobs running when Postgres stops")
            # When Postgres stops, 20 more jobs are submitted during the outage, and it comes back
            pg.stop()
            during = [client.submit_analysis(f"pg-{i % 10}", f"During the outage, part {i}.") for i in range(20)]
            time.sleep(down_seconds)
            pg.start()
            # Then every producer gets a final JobResult
            results = wait_for_all(client, before + during, timeout=120 + down_seconds)
            assert [r for r in results.values() if not (isinstance(r, dict) and r["status"] == "succeeded")] == []
            assert all(running.alive())
        # calls a worker abandoned (none expected) are answered and logged by the emulator
        wait_until(lambda: faults.stats()["in_flight"] == 0, timeout=30, what="the emulator to answer every call")
        calls = faults.calls()
        with engine.connect() as db:
            assert db.execute(text("SELECT count(*) FROM jobs WHERE status = 'succeeded'")).scalar() == 60
            # one paid answer per job, and every call the provider received has its row
            assert db.execute(text("SELECT count(*) FROM llm_calls WHERE status = 'ok'")).scalar() == 60
            recorded = set(db.execute(text("SELECT generation_id FROM llm_calls WHERE status = 'ok'")).scalars())
            assert [c for c in calls if c["status"] == 200 and c["id"] not in recorded] == []
            unrecorded = text("SELECT count(*) FROM llm_calls WHERE status IN ('pending', 'unknown')")
            assert db.execute(unrecorded).scalar() == 0
            units = db.execute(text("SELECT sum(analyses_used), sum(reserved_usd) FROM quota_usage")).one()
            assert units == (60, 0)
        engine.dispose()


def test_postgres_stopped_mid_run_is_waited_out_and_every_job_finishes_once(emulator, faults):
    run_through_outage(emulator, faults, down_seconds=8)


@pytest.mark.slow
def test_postgres_stopped_for_30_seconds_mid_run_is_waited_out(emulator, faults):
    run_through_outage(emulator, faults, down_seconds=30)


def test_a_database_error_before_the_request_leaves_leaves_no_row_for_a_call_never_made(worker, client, faults, db):
    # Given Postgres drops the connection once after a job's claim, before its request leaves
    # (the claim has written the first attempt's pending row; the cache lookup fails)
    real, failed = response_cache.lookup, []

    def lookup_once_cut_off(conn, key):
        if not failed:
            failed.append(key)
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        return real(conn, key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(response_cache, "lookup", lookup_once_cut_off)
        job_id = client.submit_analysis("reader-outage", "A lighthouse keeper counts the ships.")
        # When the delivery is retried and takes its claim back
        result = client.result(job_id, timeout=60)
    # Then the job made one call and has one row, its answer: no unknown estimate for the call
    # the first try never made
    assert failed and result["status"] == "succeeded"
    assert len(faults.calls()) == 1
    rows = db.execute(text("SELECT status FROM llm_calls WHERE job_id = :j"), {"j": job_id}).scalars().all()
    assert rows == ["ok"]


def test_a_retry_withdraws_only_its_own_unsent_row(worker, client, faults, db):
    # Given a finished job, and an unsent row of an earlier try that a later claim made unknown
    job_id = client.submit_analysis("reader-outage", "Two moons over the harbour.")
    first = client.result(job_id, timeout=30)
    ok_id = db.execute(text("SELECT id FROM llm_calls WHERE job_id = :j"), {"j": job_id}).scalar()
    unsent_id = db.execute(
        text(
            "INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd, cost_usd)"
            " SELECT job_id, 2, tier, model, 'unknown', 'estimate', estimate_usd, estimate_usd"
            " FROM llm_calls WHERE id = :id RETURNING id"
        ),
        {"id": ok_id},
    ).scalar()
    calls = len(faults.calls())
    # When that try's retry arrives (the job was finished by another delivery meanwhile), and a
    # message naming the answered row as unsent arrives too
    free = get_catalog().tier("free")
    for unsent in (unsent_id, ok_id):
        kwargs = {"job_id": job_id, "unsent_call": unsent}
        again = client.app.send_task("litink.run_job", kwargs=kwargs, queue=free.queue, priority=free.priority)
        assert again.get(timeout=30) == first
    # Then the unsent row is gone, the answered one is kept, and nothing was called again
    rows = db.execute(text("SELECT id, status FROM llm_calls WHERE job_id = :j"), {"j": job_id}).all()
    assert [tuple(r) for r in rows] == [(ok_id, "ok")]
    assert len(faults.calls()) == calls


def test_postgres_lost_between_settlement_and_notification_still_answers_the_job(worker, client, faults, db):
    # Given a job that asked to be notified, and Postgres dropping the connection once right
    # after it settled (at its notify mark)
    from tasks import generation

    real, failed = generation.notify_job, []

    def notify_once_cut_off(app, job_id, result):
        if not failed:
            failed.append(job_id)
            raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
        return real(app, job_id, result)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generation, "notify_job", notify_once_cut_off)
        job_id = client.submit_analysis("reader-outage", "The tide tables of a small port.", notify="producer.done")
        # When the delivery is retried
        result = client.result(job_id, timeout=60)
    # Then the producer gets the succeeded JobResult (not a SystemFault), bought once
    assert failed == [job_id]
    assert isinstance(result, dict) and result["status"] == "succeeded"
    assert len(faults.calls()) == 1
