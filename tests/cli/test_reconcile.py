"""`litink reconcile` finds, to the last digit, what the provider charged for calls the ledger
never saw: calls abandoned at a read timeout, and a call in flight on a worker killed outright.

Everything is real: worker processes (`celery worker`), Redis, Postgres, the emulator as
OpenRouter, the snapshot beat task run by a worker, and the `litink` command.
"""

from __future__ import annotations

import importlib.util
import signal
from decimal import Decimal

import pytest
from sqlalchemy import text

from cli.main import _reconcile_text
from tests.waiting import wait_until

FREE_PRIMARY = "meta-llama/llama-3.2-3b-instruct"


def take_snapshot(celery_app) -> str:
    """Run the beat task on a worker, as beat would; its taken_at is a window edge."""
    return celery_app.send_task("litink.snapshot_provider_usage").get(timeout=30)["taken_at"]


def abandoned_cost(db, emulator_calls: list[dict]) -> Decimal:
    """What the provider charged for calls whose generation the ledger does not hold."""
    known = set(db.execute(text("SELECT generation_id FROM llm_calls WHERE generation_id IS NOT NULL")).scalars())
    return sum((Decimal(c["cost"]) for c in emulator_calls if c["id"] not in known), Decimal(0))


def finish_after_a_kill(celery_app, client, job_id: str) -> dict:
    """Wait for the job as its producer would. Where the ledger's recovery loop exists
    (``litink.recover_jobs``), run it every second as beat would, since then it is the job's
    lease running out, not the broker's visibility timeout, that brings the job back."""
    recovery = "litink.recover_jobs" if importlib.util.find_spec("workers.pipeline.recovery") else None
    result = celery_app.AsyncResult(job_id)

    def finished() -> bool:
        if recovery and not result.ready():
            celery_app.send_task(recovery)
        return result.ready()

    wait_until(finished, timeout=60, interval=1, what="the killed worker's job to finish elsewhere")
    return client.result(job_id, timeout=5)


def ledger(db, estimated: bool) -> Decimal:
    op = "=" if estimated else "<>"
    return db.execute(
        text(f"SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls WHERE cost_source {op} 'estimate'")
    ).scalar()


def assert_drift_is_exactly(report: dict, db, abandoned: Decimal, charged: Decimal) -> None:
    drift = {k: Decimal(v) for k, v in report["drift"].items()}
    # The provider's spend between the snapshots is every call it charged
    assert Decimal(report["provider"]["spend_usd"]) == charged
    # Recorded and estimated are the ledger's own sums
    assert drift["recorded_usd"] == ledger(db, estimated=False)
    assert drift["estimated_usd"] == ledger(db, estimated=True)
    # And what the ledger misses is exactly the abandoned calls' cost: unexplained, or estimated
    assert charged - drift["recorded_usd"] == abandoned
    assert drift["unexplained_usd"] == abandoned - drift["estimated_usd"]


def test_reconcile_reports_calls_abandoned_at_a_read_timeout_as_drift(
    spawn_worker, celery_app, client, faults, db, litink
):
    # Given a worker whose provider reads give up after 0.5 s, and three calls that hang 1.5 s
    spawn_worker(concurrency=4, env={"OPENROUTER_READ_TIMEOUT": "0.5"})
    opening = take_snapshot(celery_app)
    faults.inject(FREE_PRIMARY, "hang", times=3, delay_s=1.5)
    # When four jobs run (the hung calls time out and are retried)
    jobs = [client.submit_analysis(f"reader-{i}", f"Chapter {i}: the tide comes in.") for i in range(4)]
    assert all(client.result(job, timeout=60)["status"] == "succeeded" for job in jobs)
    closing = take_snapshot(celery_app)
    calls = faults.calls()
    # Then the provider charged the three abandoned calls, which no llm_calls row prices
    hung = [c for c in calls if c["fault"] == "hang"]
    assert len(hung) == 3 and all(Decimal(c["cost"]) > 0 for c in hung)
    abandoned = abandoned_cost(db, calls)
    assert abandoned == sum(Decimal(c["cost"]) for c in hung)
    # And `litink reconcile` reports exactly that as drift
    report = litink("reconcile", "--from", opening, "--to", closing, "--json")
    assert (report["measured"]["opening_snapshot"], report["measured"]["closing_snapshot"]) == (opening, closing)
    assert_drift_is_exactly(report, db, abandoned, charged=sum(Decimal(c["cost"]) for c in calls))


def test_reconcile_reports_the_call_of_a_worker_killed_mid_call_as_drift(
    spawn_worker, celery_app, client, faults, db, litink
):
    # Given a slow provider and a worker whose jobs come back 3 s after it stops (its messages
    # 3 s after fetch; with the ledger's leases, 3 s after its last heartbeat)
    env = {"VISIBILITY_TIMEOUT": "3", "JOB_LEASE_SECONDS": "3", "RECOVERY_GRACE_SECONDS": "5"}
    first = spawn_worker(concurrency=2, env=env)
    opening = take_snapshot(celery_app)
    faults.set_latency(3000)
    job_id = client.submit_script("crash-user", "The last train.")
    wait_until(faults.calls, timeout=20, what="the call to reach (and be charged by) the provider")
    # When that worker is killed outright mid-call and another finishes the job
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    faults.set_latency(0)
    spawn_worker(concurrency=2, env=env)
    assert finish_after_a_kill(celery_app, client, job_id)["status"] == "succeeded"
    closing = take_snapshot(celery_app)
    calls = faults.calls()
    # Then the killed worker's call is the abandoned cost, and reconcile finds exactly it
    abandoned = abandoned_cost(db, calls)
    assert len(calls) == 2 and abandoned == Decimal(calls[0]["cost"]) > 0
    report = litink("reconcile", "--from", opening, "--to", closing, "--json")
    assert_drift_is_exactly(report, db, abandoned, charged=sum(Decimal(c["cost"]) for c in calls))


@pytest.mark.unit
def test_the_text_output_names_each_figure_and_what_is_unknown():
    report = {
        "window": {"from": "2026-11-27T00:00:00+00:00", "to": "2026-11-28T00:00:00+00:00"},
        "measured": {"from": None, "to": None, "closing_source": None, "missing": ["opening"]},
        "provider": {"spend_usd": None},
        "ledger": {"in_flight": 2, "by_source": {"provider": Decimal("0.25"), "estimate": Decimal("0.5")}},
        "drift": {"recorded_usd": Decimal("0.25"), "estimated_usd": Decimal("0.5"), "unexplained_usd": None},
        "call_checks": None,
    }
    text = _reconcile_text(report)
    assert "no opening snapshot: the provider's spend is unknown" in text
    assert "recorded:        $0.25000000  (provider $0.25000000, estimate $0.50000000)" in text
    assert "unexplained:     n/a" in text and "2 calls still in flight" in text
