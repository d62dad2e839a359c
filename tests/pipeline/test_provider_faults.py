"""What the emulator's faults do to a job: retry, fall back, or fail, and what is recorded."""

from decimal import Decimal

from sqlalchemy import text

from tests.waiting import wait_until

FREE_PRIMARY = "meta-llama/llama-3.2-3b-instruct"
FREE_FALLBACK = "google/gemini-flash-1.5-8b"


def calls_of(db, job_id):
    return db.execute(
        text(
            "SELECT attempt, model, status, error_class, http_status, cost_usd, cost_source FROM llm_calls"
            " WHERE job_id = :j ORDER BY attempt"
        ),
        {"j": job_id},
    ).all()


def test_a_503_on_the_primary_falls_back_and_says_so(worker, client, faults, db):
    # Given the primary model answers 503 for every attempt
    faults.inject(FREE_PRIMARY, "unavailable", times=-1)
    # When a job runs
    result = client.result(client.submit_script("reader-1", "A bridge of paper."), timeout=60)
    # Then the fallback served it, after the tier's three attempts on the primary
    assert result["status"] == "succeeded", result
    assert result["used_fallback"] is True and result["model_used"] == FREE_FALLBACK
    rows = calls_of(db, result["job_id"])
    assert [(r.model, r.status, r.http_status) for r in rows] == [
        (FREE_PRIMARY, "retry", 503),
        (FREE_PRIMARY, "retry", 503),
        (FREE_PRIMARY, "retry", 503),
        (FREE_FALLBACK, "ok", None),
    ]


def test_a_429_with_retry_after_is_retried_on_the_same_model(worker, client, faults, db):
    faults.inject(FREE_PRIMARY, "rate_limit", times=1, retry_after=1)
    result = client.result(client.submit_script("reader-1", "A bridge of paper."), timeout=60)
    assert result["status"] == "succeeded" and result["used_fallback"] is False
    assert [(r.model, r.status) for r in calls_of(db, result["job_id"])] == [
        (FREE_PRIMARY, "retry"),
        (FREE_PRIMARY, "ok"),
    ]


def test_a_retry_after_longer_than_the_in_process_cap_gives_the_slot_back_and_retries_later(worker, client, faults, db):
    # Given a 429 asking for 4 s, over the tests' 3 s in-process cap
    faults.inject(FREE_PRIMARY, "rate_limit", times=1, retry_after=4)
    result = client.result(client.submit_script("reader-1", "Snow in April."), timeout=60)
    # Then the job still succeeds on the same model, in a later delivery
    assert result["status"] == "succeeded" and result["used_fallback"] is False
    assert db.execute(text("SELECT deliveries FROM jobs WHERE id = :j"), {"j": result["job_id"]}).scalar() == 2
    assert [r.status for r in calls_of(db, result["job_id"])] == ["retry", "ok"]


def test_a_401_fails_the_job_after_a_single_call_and_refunds_the_unit(worker, client, faults, db):
    faults.inject(FREE_PRIMARY, "unauthorized", times=-1)
    result = client.result(client.submit_script("reader-1", "A door."), timeout=60)
    assert result["status"] == "failed" and result["reason"] == "provider_auth"
    assert len(faults.calls()) == 1
    assert [r.status for r in calls_of(db, result["job_id"])] == ["fatal"]
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = 'reader-1'")).scalar() == 0


def test_credits_exhausted_fails_without_fallback_but_the_in_flight_budget_is_retried(worker, client, faults, db):
    faults.inject(FREE_PRIMARY, "credits", times=1)
    failed = client.result(client.submit_script("reader-1", "A door."), timeout=60)
    assert failed["status"] == "failed" and failed["reason"] == "insufficient_credits"

    faults.inject(FREE_PRIMARY, "in_flight_budget", times=1, retry_after=0)
    ok = client.result(client.submit_script("reader-1", "A window."), timeout=60)
    assert ok["status"] == "succeeded" and ok["used_fallback"] is False


def test_answers_that_cannot_be_used_fall_back_without_retrying(worker, client, faults, db):
    for fault in ("no_providers", "context_length", "bad_request", "moderation", "finish_error", "non_json"):
        faults.inject(FREE_PRIMARY, fault, times=1)
        result = client.result(client.submit_script(f"reader-{fault}", f"Case {fault}."), timeout=60)
        assert result["status"] == "succeeded" and result["used_fallback"] is True, (fault, result)
        assert [r.status for r in calls_of(db, result["job_id"])] == ["fallback", "ok"], fault


def test_a_hang_past_the_read_timeout_is_retried(worker, client, faults, db):
    faults.inject(FREE_PRIMARY, "hang", times=1, delay_s=7)
    result = client.result(client.submit_script("reader-1", "Slow river."), timeout=60)
    assert result["status"] == "succeeded" and result["used_fallback"] is False
    assert [(r.status, r.error_class) for r in calls_of(db, result["job_id"])] == [
        ("retry", "ProviderTimeout"),
        ("ok", None),
    ]
    # The hung call still completes on the provider's side later; let it land before the next test
    wait_until(lambda: len(faults.calls()) >= 2, timeout=15, interval=0.1, what="the hung call to land")


def test_every_model_failing_fails_the_job_and_gives_the_unit_back(worker, client, faults, db):
    faults.inject("*", "bad_gateway", times=-1)
    result = client.result(client.submit_script("reader-1", "Nothing works."), timeout=60)
    assert result["status"] == "failed" and result["reason"] == "provider_error"
    assert len(calls_of(db, result["job_id"])) == 6
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = 'reader-1'")).scalar() == 0


def test_recorded_cost_equals_what_the_provider_reported_to_the_last_digit(worker, client, faults, db):
    # Given a mix of jobs, one of which pays for a finish_reason error before its fallback
    faults.inject(FREE_PRIMARY, "finish_error", times=1)
    ids = [client.submit_script(f"reader-{i}", f"Story number {i}, " * (i + 1)) for i in range(6)]
    ids += [client.submit_analysis("reader-9", "An essay on tides.", analysis_type=t) for t in ("summary", "genre")]
    for job_id in ids:
        assert client.result(job_id, timeout=60)["status"] == "succeeded"
    # Then the sum of llm_calls equals the sum of usage.cost the provider reported
    reported = sum(Decimal(c["cost"]) for c in faults.calls())
    recorded = db.execute(text("SELECT sum(cost_usd) FROM llm_calls")).scalar()
    assert recorded == reported
    assert db.execute(text("SELECT sum(cost_usd) FROM jobs")).scalar() == reported
    assert (
        db.execute(text("SELECT count(*) FROM llm_calls WHERE cost_source <> 'provider' AND cost_usd > 0")).scalar()
        == 0
    )
