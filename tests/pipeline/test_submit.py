"""A job's way from a producer, through intake and its tier queue, back to the producer."""

from decimal import Decimal

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.smoke

STORY = "The lighthouse keeper counted ships every night until one evening a ship counted him back."


def test_a_script_job_returns_its_final_job_result_under_the_id_it_was_given(worker, client, faults, db):
    # Given a free user, when they submit a script through the thin client
    job_id = client.submit_script("reader-1", STORY, script_type="narration")
    # Then the producer's id resolves to the tier task's final JobResult (replace kept the id)
    result = client.result(job_id, timeout=30)
    assert result["job_id"] == job_id
    assert result["status"] == "succeeded", result
    assert result["kind"] == "script" and result["type"] == "narration" and result["tier"] == "free"
    assert result["model_used"] == "meta-llama/llama-3.2-3b-instruct"
    assert result["used_fallback"] is False
    assert result["content"]
    # And the usage in the result is what the provider reported, to the digit
    call = faults.calls()[-1]
    assert Decimal(result["usage"]["cost_usd"]) == Decimal(call["cost"])
    assert result["usage"]["prompt_tokens"] == call["prompt_tokens"]
    row = db.execute(text("SELECT status, cost_usd FROM jobs WHERE id = :j"), {"j": job_id}).one()
    assert row.status == "succeeded" and row.cost_usd == Decimal(call["cost"])


def test_an_analysis_runs_at_analysis_settings_and_says_when_the_content_was_cut(worker, client, faults):
    # Given content longer than the 3000 characters an analysis reads
    long_text = "word " * 1500
    # When an analysis is submitted
    result = client.result(client.submit_analysis("reader-2", long_text, analysis_type="keywords"), timeout=30)
    # Then it succeeds, and the detail says the content was cut
    assert result["status"] == "succeeded", result
    assert result["kind"] == "analysis" and result["type"] == "keywords"
    assert "first 3000 of 7500 characters" in result["detail"]


def test_job_status_reads_the_job_from_postgres(worker, client, faults):
    job_id = client.submit_script("reader-3", STORY)
    final = client.result(job_id, timeout=30)
    # When a producer asks for the job's status
    status = client.job_status(job_id)
    # Then it is the stored JobResult
    assert status == final
