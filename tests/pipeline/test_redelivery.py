"""A message delivered twice never calls the model twice, charges twice or loses a row."""

from sqlalchemy import text

from config import get_catalog


def test_a_redelivered_tier_message_for_a_finished_job_returns_the_stored_result(
    worker, client, faults, db, finished_runs
):
    # Given a job that finished
    job_id = client.submit_script("reader-1", "The clock that ran backwards.")
    first = client.result(job_id, timeout=30)
    finished_runs(job_id, 2)  # intake (replaced) and the tier task
    calls = len(faults.calls())
    # When the very same tier-task message is delivered again (the job id is the whole message)
    free = get_catalog().tier("free")
    kwargs = {"job_id": job_id, "queued_at": None}
    again = client.app.send_task(
        "litink.run_job", kwargs=kwargs, task_id=job_id, queue=free.queue, priority=free.priority
    )
    finished_runs(job_id, 3)
    # Then it answered the stored JobResult, made no call and wrote no row
    assert again.get(timeout=10) == first
    assert len(faults.calls()) == calls
    assert db.execute(text("SELECT count(*) FROM llm_calls WHERE job_id = :j"), {"j": job_id}).scalar() == 1


def test_a_redelivered_intake_message_takes_one_unit_and_makes_one_call(worker, client, faults, db, finished_runs):
    # Given the same intake message (same task id) delivered twice
    kwargs = {"user_id": "reader-2", "content": "Two moons."}
    first = client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake")
    result = first.get(timeout=30)
    client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake", task_id=first.id)
    finished_runs(first.id, 3)
    # Then there is one job, one unit taken and one provider call
    assert result["status"] == "succeeded"
    assert db.execute(text("SELECT count(*) FROM jobs")).scalar() == 1
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = 'reader-2'")).scalar() == 1
    assert len(faults.calls()) == 1
