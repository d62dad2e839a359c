"""Postgres stopped mid-run is waited out, not turned into errors: every job reaches a final
state (those submitted during the outage too), no answer is bought twice, no row is lost.

The test owns a throw-away Postgres cluster and its own Redis; the machine's servers are
never touched.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from db.migrate import upgrade_to_head
from db.session import sqlalchemy_url
from tasks.client import LitinkClient
from tests.pipeline.test_broker_loss import wait_for_all
from tests.servers import postgres_cluster, redis_server, workers

# A lease longer than the workers' retry backoff (5 s), so a worker that was only cut off
# renews its lease before recovery may take it for dead.
SETTINGS = {"job_lease_seconds": 10, "recovery_interval_seconds": 2, "recovery_grace_seconds": 5}


def run_through_outage(emulator, faults, down_seconds: float) -> None:
    faults.set_latency(800, jitter_ms=400)
    with postgres_cluster() as pg, redis_server() as broker:
        upgrade_to_head(pg.url)
        engine = create_engine(sqlalchemy_url(pg.url))
        client = LitinkClient(broker.url())
        with workers(broker.url(), database_url=pg.url, **SETTINGS) as running:
            running.spawn(concurrency=10, beat=True)
            running.spawn(concurrency=10)
            # Given 40 jobs in flight
            before = [client.submit_analysis(f"pg-{i % 10}", f"Before the outage, part {i}.") for i in range(40)]
            time.sleep(1.5)
            # When Postgres stops, 20 more jobs are submitted during the outage, and it comes back
            pg.stop()
            during = [client.submit_analysis(f"pg-{i % 10}", f"During the outage, part {i}.") for i in range(20)]
            time.sleep(down_seconds)
            pg.start()
            # Then every producer gets a final JobResult
            results = wait_for_all(client, before + during, timeout=120 + down_seconds)
            assert [r for r in results.values() if not (isinstance(r, dict) and r["status"] == "succeeded")] == []
            assert all(running.alive())
        time.sleep(2)  # calls a worker abandoned (none expected) reach the emulator's log
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


# Slow lane only for now: in 1 of 3 CI-sized runs one attempt row was left `pending`/`unknown`
# (an estimate counted as exposure, no paid call lost or doubled); open until explained.
@pytest.mark.slow
def test_postgres_stopped_mid_run_is_waited_out_and_every_job_finishes_once(emulator, faults):
    run_through_outage(emulator, faults, down_seconds=8)


@pytest.mark.slow
def test_postgres_stopped_for_30_seconds_mid_run_is_waited_out(emulator, faults):
    run_through_outage(emulator, faults, down_seconds=30)
