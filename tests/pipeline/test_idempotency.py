"""The same user and idempotency key give the same job, and never a second LLM call."""

from sqlalchemy import text


def test_a_repeated_idempotency_key_returns_the_first_job_without_calling_the_model_again(worker, client, faults, db):
    # Given a job submitted with an idempotency key that has finished
    first_id = client.submit_script("reader-1", "A fox learns to count.", idempotency_key="order-77")
    first = client.result(first_id, timeout=30)
    calls = len(faults.calls())
    # When the producer submits again with the same key
    second = client.result(
        client.submit_script("reader-1", "A fox learns to count.", idempotency_key="order-77"), timeout=30
    )
    # Then it gets the first job's result, and the provider saw no new call
    assert second == first
    assert len(faults.calls()) == calls
    assert db.execute(text("SELECT count(*) FROM jobs")).scalar() == 1
    assert db.execute(text("SELECT count(*) FROM llm_calls")).scalar() == 1


def test_the_same_key_from_another_user_is_a_different_job(worker, client, faults):
    a = client.result(client.submit_script("reader-1", "Text.", idempotency_key="k"), timeout=30)
    b = client.result(client.submit_script("reader-2", "Text.", idempotency_key="k"), timeout=30)
    assert a["job_id"] != b["job_id"]
    assert a["status"] == b["status"] == "succeeded"
