"""Bad input is a JobResult `rejected` / `invalid_input`, with field-level detail."""

import pytest


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"user_id": "reader-1", "content": "   "}, "content"),
        ({"user_id": "reader-1", "content": "x", "script_type": "opera"}, "script_type"),
        ({"user_id": "bad id with spaces", "content": "x"}, "user_id"),
        ({"user_id": "", "content": "x"}, "user_id"),
        ({"user_id": 42, "content": "x"}, "user_id"),
    ],
)
def test_a_malformed_script_submission_is_rejected_with_the_field_that_is_wrong(worker, client, kwargs, field):
    # When a producer sends a malformed submission by name
    job = client.app.send_task("litink.submit_script", kwargs=kwargs, queue="intake")
    # Then the JobResult names the field, and nothing ran
    result = job.get(timeout=30)
    assert result["status"] == "rejected" and result["reason"] == "invalid_input"
    assert field in result["detail"]
    assert result["job_id"] == job.id


def test_an_unknown_analysis_type_lists_the_known_ones(worker, client):
    result = client.result(client.submit_analysis("reader-1", "text", analysis_type="sentiment"), timeout=30)
    assert result["reason"] == "invalid_input"
    assert "summary" in result["detail"]["analysis_type"]


def test_content_over_the_tiers_size_limit_is_rejected(worker, client, subscribe):
    # Given a free user (20,000 characters at most) and a basic user (50,000)
    subscribe("reader-basic", "basic")
    text = "a" * 30_000
    # Then the free user's job is rejected and the basic user's is not
    free = client.result(client.submit_script("reader-free", text), timeout=30)
    assert free["reason"] == "invalid_input" and "20000" in free["detail"]["content"]
    basic = client.result(client.submit_script("reader-basic", text), timeout=30)
    assert basic["status"] == "succeeded", basic
