"""Several analyses of one content in one provider call, with a per-type fallback."""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy import text

ALL_TYPES = ["summary", "keywords", "difficulty", "genre", "characters"]
CHAPTER = "Mara, the harbour master's daughter, counts the boats each dusk and waits for her brother's sail."


def rows_of(db, job_id):
    return db.execute(
        text("SELECT model, status, cost_usd FROM llm_calls WHERE job_id = :j ORDER BY attempt"), {"j": job_id}
    ).all()


def analyses_used(db, user):
    return db.execute(text("SELECT analyses_used FROM quota_usage WHERE user_id = :u"), {"u": user}).scalar()


def test_five_analyses_run_in_one_structured_call_and_take_five_units(worker, client, faults, db, subscribe):
    # Given a premium user, whose model supports structured outputs
    subscribe("editor", "premium")
    # When they ask for every analysis of a chapter at once
    result = client.result(client.submit_analysis("editor", CHAPTER, analysis_type=ALL_TYPES), timeout=60)
    # Then one provider call answered all five, each by type
    assert result["status"] == "succeeded", result
    assert len(faults.calls()) == 1
    assert result["type"] == ALL_TYPES
    assert set(result["answers"]) == set(ALL_TYPES) and all(result["answers"].values())
    assert json.loads(result["content"]) == result["answers"]
    assert [r.status for r in rows_of(db, result["job_id"])] == ["ok"]
    # And the quota counts one analysis per type
    assert analyses_used(db, "editor") == 5
    # And the same batch again is served from the response cache
    subscribe("editor-2", "premium")
    again = client.result(client.submit_analysis("editor-2", CHAPTER, analysis_type=ALL_TYPES), timeout=60)
    assert again["cache_hit"] is True and again["answers"] == result["answers"] and len(faults.calls()) == 1


def test_a_model_without_structured_outputs_falls_back_to_one_call_per_type(worker, client, faults, db):
    # Given a free user, whose primary model answers the batched request in prose
    types = ["summary", "genre", "characters"]
    result = client.result(client.submit_analysis("reader", CHAPTER, analysis_type=types), timeout=60)
    # Then the answers still come by type, from one call per type after the batched attempt
    assert result["status"] == "succeeded", result
    assert list(result["answers"]) == types
    assert "gave no structured answer; one call per type" in result["detail"]
    rows = rows_of(db, result["job_id"])
    assert len(rows) == 4 and all(r.status == "ok" for r in rows)
    # And every call is in the ledger at what the provider charged
    assert Decimal(result["usage"]["cost_usd"]) == sum(Decimal(c["cost"]) for c in faults.calls())
    # And the next batch on that model skips the unusable batched call
    again = client.result(client.submit_analysis("reader-2", CHAPTER + " Again.", analysis_type=types), timeout=60)
    assert list(again["answers"]) == types and len(rows_of(db, again["job_id"])) == 3


def test_a_batch_larger_than_the_allowance_left_is_refused_whole(worker, client, faults, db):
    client.result(client.submit_analysis("thrifty", "One."), timeout=60)
    db.execute(text("UPDATE quota_usage SET analyses_used = 18 WHERE user_id = 'thrifty'"))
    result = client.result(client.submit_analysis("thrifty", CHAPTER, analysis_type=ALL_TYPES[:3]), timeout=60)
    assert result["status"] == "rejected" and result["reason"] == "quota_exceeded"
    assert "This request needs 3" in result["detail"]["message"]
    assert analyses_used(db, "thrifty") == 18


def test_a_failed_batch_gives_every_unit_back(worker, client, faults, db):
    faults.inject("*", "bad_gateway", times=-1)
    result = client.result(client.submit_analysis("unlucky", CHAPTER, analysis_type=ALL_TYPES[:2]), timeout=60)
    assert result["status"] == "failed" and result["reason"] == "provider_error"
    assert analyses_used(db, "unlucky") == 0


def test_an_unknown_type_in_the_list_is_invalid_input(worker, client, faults):
    result = client.result(
        client.submit_analysis("reader", CHAPTER, analysis_type=["summary", "sentiment"]), timeout=30
    )
    assert result["status"] == "rejected" and result["reason"] == "invalid_input"
    assert "analysis_type" in result["detail"]


def test_a_nul_and_a_lone_surrogate_in_per_type_answers_are_replaced_and_the_detail_says_so(worker, client, faults, db):
    # Given a free user's batch (its primary model answers the batched request in prose, so
    # one call per type follows), and a provider whose answers hold a NUL and a lone surrogate
    faults.inject("*", "unstorable", times=-1)
    types = ["summary", "genre"]
    # When the batch runs
    result = client.result(client.submit_analysis("nul-editor", CHAPTER, analysis_type=types), timeout=60)
    # Then it succeeds with every answer made storable, and says what was replaced
    assert result["status"] == "succeeded", result
    assert list(result["answers"]) == types
    for answer in [result["content"], *result["answers"].values()]:
        assert "\x00" not in answer and not any("\ud800" <= ch <= "\udfff" for ch in answer), repr(answer)
    assert all("\ufffd" in answer for answer in result["answers"].values())
    assert "cannot be stored" in result["detail"]
    # And every attempt is recorded ok (none left pending), each part holding the storable text
    rows = db.execute(
        text("SELECT status, purpose, response_content FROM llm_calls WHERE job_id = :j ORDER BY attempt"),
        {"j": result["job_id"]},
    ).all()
    assert [r.status for r in rows] == ["ok"] * 3, rows
    assert all("\ufffd" in r.response_content for r in rows if r.purpose == "part")
