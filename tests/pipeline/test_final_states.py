"""A job is never left running: unstorable text, a fault of ours and a job that keeps killing
its workers each end in a final state with a reason, the quota unit given back when it failed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from config import get_catalog, get_settings
from tests.waiting import wait_until


def row_count(db, job_id: str) -> int:
    return db.execute(text("SELECT count(*) FROM jobs WHERE id = :j"), {"j": job_id}).scalar()


def unit_and_reservation(db, user_id: str) -> tuple[int, int, object]:
    row = db.execute(
        text("SELECT scripts_used, analyses_used, reserved_usd FROM quota_usage WHERE user_id = :u"), {"u": user_id}
    ).one()
    return row.scripts_used, row.analyses_used, row.reserved_usd


def test_a_nul_and_a_lone_surrogate_in_the_answer_are_replaced_and_the_detail_says_so(worker, client, faults, db):
    # Given a provider whose answer holds a NUL byte and a lone surrogate
    faults.inject("*", "unstorable")
    # When a job runs
    result = client.result(client.submit_analysis("nul-reader", "The quiet river."), timeout=30)
    # Then it succeeds with the text made storable, and says what was replaced
    assert result["status"] == "succeeded", result
    # (two asserts: pytest explains a passing `not in` inside an `and` as "is contained here")
    assert "\x00" not in result["content"]
    assert "\ufffd" in result["content"]
    assert "cannot be stored" in result["detail"]
    # And the one faulty answer the emulator gave was this job's (nothing left over took it)
    assert len(faults.calls()) == 1, faults.calls()
    stored = db.execute(text("SELECT result_content FROM jobs WHERE id = :j"), {"j": result["job_id"]}).scalar()
    assert stored == result["content"]
    assert unit_and_reservation(db, "nul-reader")[1:] == (1, 0)


def test_a_lone_surrogate_in_the_content_never_leaves_a_job_running(worker, client, faults, db):
    # Given content a producer sent with a lone surrogate (valid JSON: "\ud800")
    job_id = client.submit_analysis("surrogate-reader", "Half a character: \ud800 and a NUL \x00.")
    # When it is submitted
    result = client.result(job_id, timeout=30)
    # Then the boundary rejects it (workers/pipeline/validation.py) before anything is reserved,
    # and nothing stays running
    assert result["status"] == "rejected" and result["reason"] == "invalid_input", result
    assert "surrogates" in result["detail"]["content"]
    assert db.execute(text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")).scalar() == 0
    assert db.execute(text("SELECT count(*) FROM quota_usage WHERE user_id = 'surrogate-reader'")).scalar() == 0


def test_an_exception_in_the_tier_task_fails_the_job_as_internal_error_and_refunds_its_unit(worker, client, faults, db):
    # Given an admitted job whose row makes the tier task raise (an unknown type: a bug)
    from workers.app import app

    app.control.cancel_consumer("tier.free", reply=True)
    try:
        job_id = client.submit_script("bug-reader", "A story the code cannot handle.")
        wait_until(lambda: row_count(db, job_id), timeout=10, what="the admitted job's row")
        db.execute(text("UPDATE jobs SET type = 'no-such-type' WHERE id = :j"), {"j": job_id})
    finally:
        app.control.add_consumer("tier.free", reply=True)
    # When the tier task runs it
    result = client.result(job_id, timeout=30)
    # Then the job is failed / internal_error, its unit given back, its reservation released
    assert (result["status"], result["reason"]) == ("failed", "internal_error"), result
    assert unit_and_reservation(db, "bug-reader") == (0, 0, 0)
    assert faults.calls() == []


def test_a_job_claimed_more_than_max_deliveries_times_ends_as_poison(worker, client, faults, db):
    # Given a job whose workers died MAX_DELIVERIES times while running it
    from workers.app import app

    limit = get_settings().max_deliveries
    app.control.cancel_consumer("tier.free", reply=True)
    try:
        job_id = client.submit_script("poison-reader", "The page that crashes.")
        wait_until(lambda: row_count(db, job_id), timeout=10, what="the admitted job's row")
        db.execute(
            text(
                "UPDATE jobs SET status = 'running', deliveries = :n, lease_until = now() - interval '1 second'"
                " WHERE id = :j"
            ),
            {"j": job_id, "n": limit},
        )
    finally:
        app.control.add_consumer("tier.free", reply=True)
    # When it is delivered once more
    result = client.result(job_id, timeout=30)
    # Then it is failed / poison without another call, its unit back
    assert (result["status"], result["reason"]) == ("failed", "poison"), result
    assert result["detail"]["deliveries"] == limit + 1
    assert unit_and_reservation(db, "poison-reader") == (0, 0, 0)
    assert faults.calls() == []


def test_a_tier_message_for_a_job_with_no_row_is_dropped(worker, client, faults, db, finished_runs):
    # Given a tier message whose job does not exist
    free = get_catalog().tier("free")
    sent = client.app.send_task(
        "litink.run_job", kwargs={"job_id": "no-such-job"}, task_id="no-such-job", queue=free.queue
    )
    # Then, once the worker has run it, nothing was called, no row written and no result stored
    finished_runs("no-such-job", 1, task="litink.run_job")
    assert faults.calls() == []
    assert db.execute(text("SELECT count(*) FROM jobs")).scalar() == 0
    assert sent.state == "PENDING"


def test_a_settlement_that_fails_with_a_bug_still_records_the_paid_answer(worker, client, faults, db):
    # Given a settlement that raises (a bug, not an outage) when it would complete the answer
    from workers.pipeline import jobs

    real, raised = jobs.settle, []

    def settle_with_a_bug(conn, claim, **kwargs):
        if kwargs.get("answer") is not None and not raised:
            raised.append(claim.job_id)
            raise RuntimeError("a bug in settlement")
        return real(conn, claim, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "settle", settle_with_a_bug)
        job_id = client.submit_script("settle-bug-reader", "A story whose answer was paid for.")
        result = client.result(job_id, timeout=30)
    # Then the job fails internal_error with its unit back, and the call it paid for is in the
    # ledger as ok at the provider's cost, once
    assert raised == [job_id]
    assert (result["status"], result["reason"]) == ("failed", "internal_error"), result
    assert unit_and_reservation(db, "settle-bug-reader") == (0, 0, 0)
    rows = db.execute(
        text("SELECT status, cost_source, cost_usd, response_content FROM llm_calls WHERE job_id = :j"), {"j": job_id}
    ).all()
    assert len(faults.calls()) == 1 and len(rows) == 1
    assert (rows[0].status, rows[0].cost_source) == ("ok", "provider") and rows[0].cost_usd > 0
    assert rows[0].response_content
    job_cost = db.execute(text("SELECT cost_usd FROM jobs WHERE id = :j"), {"j": job_id}).scalar()
    assert job_cost == rows[0].cost_usd
