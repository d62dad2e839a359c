"""A primary model outage through real worker processes: with shared model health the first
jobs retry and fall back, the rest skip the primary at once."""

from __future__ import annotations

import statistics

import pytest
from sqlalchemy import text

FREE_PRIMARY = "meta-llama/llama-3.2-3b-instruct"
FREE_FALLBACK = "google/gemini-flash-1.5-8b"
JOBS = 10


def run_outage(spawn_worker, client, faults, db, *, health: bool) -> dict:
    """Two worker processes, the primary answering 503 to every call; jobs one after another.
    Returns the p50 job latency (created -> finished, from Postgres) and the calls made."""
    env = {"MODEL_HEALTH_ENABLED": "true" if health else "false", "MODEL_HEALTH_CONSECUTIVE_FAILURES": "5"}
    spawn_worker(concurrency=4, env=env)
    spawn_worker(concurrency=4, env=env)
    faults.inject(FREE_PRIMARY, "unavailable", times=-1)
    ids = []
    for i in range(JOBS):
        job_id = client.submit_script(f"outage-{health}-{i}", f"Chapter {i}: the lights went out.")
        assert client.result(job_id, timeout=60)["status"] == "succeeded"
        ids.append(job_id)
    rows = db.execute(
        text(
            "SELECT id, extract(epoch FROM finished_at - created_at) * 1000 AS ms,"
            " (SELECT count(*) FROM llm_calls c WHERE c.job_id = j.id AND c.model = :p) AS primary_calls"
            " FROM jobs j WHERE id = ANY(:ids)"
        ),
        {"ids": ids, "p": FREE_PRIMARY},
    ).all()
    by_id = {r.id: r for r in rows}
    return {
        "p50_ms": statistics.median(float(r.ms) for r in rows),
        "primary_calls": [by_id[j].primary_calls for j in ids],
    }


def test_during_a_primary_outage_later_jobs_skip_the_primary_at_once(spawn_worker, client, faults, db):
    # Given the free tier's primary answering 503 to every call, and two worker processes
    outcome = run_outage(spawn_worker, client, faults, db, health=True)
    calls = outcome["primary_calls"]
    print(f"\noutage with shared model health: p50 {outcome['p50_ms']:.0f} ms, primary calls per job {calls}")
    # Then the first jobs retried the primary (3 attempts each) until 5 failures marked it...
    assert calls[:2] == [3, 2]
    # ...and every later job went straight to the fallback without trying it
    assert calls[2:] == [0] * (JOBS - 2)
    assert sum(calls) == 5
    # And the change is visible to operators
    health = {row["model"]: row for row in _health_rows()}
    assert health[FREE_PRIMARY]["state"] == "unhealthy" and health[FREE_FALLBACK]["healthy"]


@pytest.mark.slow
def test_outage_latency_without_shared_model_health_for_comparison(spawn_worker, client, faults, db):
    # The baseline: every job waits out the primary's retries before falling back
    outcome = run_outage(spawn_worker, client, faults, db, health=False)
    print(f"\noutage without model health: p50 {outcome['p50_ms']:.0f} ms, primary calls {outcome['primary_calls']}")
    assert outcome["primary_calls"] == [3] * JOBS


def _health_rows() -> list[dict]:
    from config import get_settings
    from workers.llm.model_health import ModelHealth, policy_from_settings

    board = ModelHealth(get_settings().require_redis_url(), policy_from_settings())
    return board.snapshot([FREE_PRIMARY, FREE_FALLBACK])
