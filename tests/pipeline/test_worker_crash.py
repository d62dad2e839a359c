"""A worker killed mid-job (SIGKILL) loses nothing: after the visibility timeout another
worker takes the message, the job finishes once, and is charged once."""

import signal

from sqlalchemy import text

from tests.waiting import wait_until


def test_a_job_whose_worker_was_killed_finishes_on_another_worker_after_the_visibility_timeout(
    spawn_worker, client, faults, db
):
    # Given a worker whose messages come back 3 s after fetch, and a slow provider
    env = {"VISIBILITY_TIMEOUT": "3"}
    faults.set_latency(2000)
    first = spawn_worker(concurrency=2, env=env)
    job_id = client.submit_script("crash-user", "The last train.")
    status = text("SELECT status FROM jobs WHERE id = :j")
    wait_until(lambda: db.execute(status, {"j": job_id}).scalar() == "running", timeout=20, what="the job to run")
    # When that worker is killed outright while its call is in flight
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    faults.set_latency(0)
    spawn_worker(concurrency=2, env=env)
    # Then another worker finishes the job, once
    result = client.result(job_id, timeout=60)
    assert result["status"] == "succeeded", result
    job = db.execute(text("SELECT deliveries, status FROM jobs WHERE id = :j"), {"j": job_id}).one()
    assert job.deliveries == 2
    rows = db.execute(text("SELECT status FROM llm_calls WHERE job_id = :j"), {"j": job_id}).scalars().all()
    assert rows == ["ok"]
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = 'crash-user'")).scalar() == 1
