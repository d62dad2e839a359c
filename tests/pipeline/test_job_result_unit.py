"""The JobResult every producer receives: built from its fields or from a jobs row, its money
an exact decimal string, and its repr (what events, Flower and logs show) free of content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from workers.ops.json_codec import dumps
from workers.pipeline.job_result import FINISHED, build, job_result, quiet, summary, unrecorded_rejection

pytestmark = pytest.mark.unit

SECRET = "zqx-the-users-own-words"


def row(**fields) -> SimpleNamespace:
    """A jobs row as ``SELECT JOB_COLUMNS`` returns it (attribute access, like a Row)."""
    values = {
        "id": "job-1",
        "user_id": "reader-1",
        "kind": "script",
        "type": "cinematic",
        "tier": "basic",
        "status": "succeeded",
        "reason": None,
        "detail": None,
        "retry_after": None,
        "result_content": "INT. LIGHTHOUSE - NIGHT",
        "model_used": "deepseek/deepseek-chat",
        "used_fallback": False,
        "prompt_tokens": 120,
        "completion_tokens": 480,
        "cost_usd": Decimal("0.000123450"),
        "quota_period": "2025-03",
        "notify": None,
        "created_at": datetime(2025, 3, 10, tzinfo=UTC),
        "request_sha256": "0" * 64,
        "cache_hit": False,
    }
    values.update(fields)
    return SimpleNamespace(**values)


def test_a_built_result_has_every_field_of_the_contract_and_totals_its_tokens():
    result = build("job-1", "succeeded", kind="script", prompt_tokens=3, completion_tokens=4, cost_usd=Decimal("1E-7"))
    assert set(result) == {
        "job_id",
        "status",
        "reason",
        "cache_hit",
        "detail",
        "retry_after",
        "kind",
        "type",
        "tier",
        "content",
        "model_used",
        "used_fallback",
        "usage",
    }
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost_usd": "0.0000001"}


def test_a_result_without_a_cost_costs_zero_as_a_string():
    assert build("job-1", "rejected", reason="quota_exceeded")["usage"]["cost_usd"] == "0"


def test_a_rows_result_keeps_every_digit_of_its_cost_and_its_fields():
    result = job_result(row())
    assert result["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 480,
        "total_tokens": 600,
        "cost_usd": "0.000123450",  # the trailing zero the provider sent is kept
    }
    assert (result["job_id"], result["status"], result["tier"], result["kind"], result["type"]) == (
        "job-1",
        "succeeded",
        "basic",
        "script",
        "cinematic",
    )
    assert result["content"] == "INT. LIGHTHOUSE - NIGHT" and result["model_used"] == "deepseek/deepseek-chat"
    assert result["used_fallback"] is False and result["cache_hit"] is False
    assert "answers" not in result


def test_a_rejection_whose_type_was_invalid_has_no_type():
    result = job_result(
        row(status="rejected", reason="invalid_input", detail={"script_type": "must be one of: ..."}, type="")
    )
    assert result["type"] is None and result["detail"] == {"script_type": "must be one of: ..."}


def test_a_batched_analysis_lists_its_types_and_its_answers_by_type():
    answers = {"summary": "A keeper's last night.", "keywords": "lighthouse, night"}
    result = job_result(row(kind="analysis", type="summary+keywords", result_content=json.dumps(answers)))
    assert result["type"] == ["summary", "keywords"]
    assert result["answers"] == answers


def test_a_failed_batched_analysis_has_its_types_and_no_answers():
    result = job_result(row(kind="analysis", type="summary+genre", status="failed", result_content=None))
    assert result["type"] == ["summary", "genre"] and result["answers"] is None


def test_a_script_type_is_never_split():
    assert job_result(row(kind="script", type="cinematic"))["type"] == "cinematic"


def test_nullable_flags_of_a_row_read_as_false():
    result = job_result(row(used_fallback=None, cache_hit=None))
    assert result["used_fallback"] is False and result["cache_hit"] is False


def test_a_rejection_without_a_row_is_answered_under_the_id_the_producer_chose():
    result = unrecorded_rejection("not a valid id", "script", None, None, "invalid_input", {"job_id": "must be ..."})
    assert result["job_id"] == "not a valid id"
    assert (result["status"], result["reason"], result["tier"], result["content"]) == (
        "rejected",
        "invalid_input",
        None,
        None,
    )


def test_the_final_statuses_are_the_three_a_producer_waits_for():
    assert frozenset({"succeeded", "failed", "rejected"}) == FINISHED


def test_the_repr_a_task_returns_is_a_summary_without_content():
    result = quiet(job_result(row(result_content=SECRET)))
    # the whole JobResult travels
    assert result["content"] == SECRET and dict(result) == job_result(row(result_content=SECRET))
    assert json.loads(dumps(result))["content"] == SECRET
    # but what events, Flower and logs print is the summary
    assert SECRET not in repr(result) and SECRET not in str(result)
    assert repr(result) == ("JobResult(job_id=job-1, status=succeeded, reason=None, tokens=600, cost_usd=0.000123450)")


def test_the_summary_never_prints_an_id_that_is_not_a_valid_job_id():
    # a producer's task id can be anything: it is not printed
    assert summary({"job_id": f"{SECRET} with spaces", "status": "rejected"}).startswith(
        "JobResult(job_id=<invalid id>, status=rejected"
    )
    assert summary({"job_id": None}) == "JobResult(job_id=<invalid id>, status=None, reason=None, tokens=0, cost_usd=0)"


def test_quiet_wraps_once():
    once = quiet(build("job-1", "succeeded"))
    assert quiet(once) is once
    assert len(once) == len(build("job-1", "succeeded"))
