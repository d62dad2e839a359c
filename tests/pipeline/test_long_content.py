"""Long analyses condensed by the catalog's cheap model, each call in the ledger with its cost."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text

from config import get_catalog

CHEAP = get_catalog().analysis.preprocess_model
PREMIUM_MODEL = "openai/gpt-4o-mini"
CHAPTER = "\n\n".join(f"Scene {i}. Mara walks the harbour wall at dusk and counts the boats. " * 12 for i in range(24))


def rows_of(db, job_id):
    return db.execute(
        text("SELECT model, status, purpose, cost_usd FROM llm_calls WHERE job_id = :j ORDER BY attempt"),
        {"j": job_id},
    ).all()


def test_a_long_analysis_on_a_summarising_tier_reads_cheap_summaries_and_records_their_cost(
    worker, client, faults, db, subscribe
):
    # Given a premium user (long_content = "summarize") and a chapter far over 3000 characters
    subscribe("novelist", "premium")
    assert len(CHAPTER) > 3 * 6000
    # When they ask for its genre
    result = client.result(client.submit_analysis("novelist", CHAPTER, analysis_type="genre"), timeout=60)
    # Then the chunks were condensed by the cheap model, then analysed by the tier's model
    assert result["status"] == "succeeded", result
    rows = rows_of(db, result["job_id"])
    pre = [r for r in rows if r.purpose == "preprocess"]
    assert len(pre) == 4 and all(r.model == CHEAP and r.status == "ok" and r.cost_usd > 0 for r in pre)
    assert [r.model for r in rows if r.purpose == "answer"] == [PREMIUM_MODEL]
    # And the job's cost is every call's, to the last digit of what the provider reported
    assert Decimal(result["usage"]["cost_usd"]) == sum(Decimal(c["cost"]) for c in faults.calls())
    assert len(faults.calls()) == 5
    # And the detail says what was done
    assert f"summarised {len(CHAPTER)} characters in 4 chunks with {CHEAP}" in result["detail"]


def test_when_summarising_fails_the_analysis_falls_back_to_reading_the_start(worker, client, faults, db, subscribe):
    subscribe("novelist", "premium")
    faults.inject(CHEAP, "bad_request", times=-1)
    result = client.result(client.submit_analysis("novelist", CHAPTER, analysis_type="summary"), timeout=60)
    assert result["status"] == "succeeded", result
    assert "summarising failed (FallbackError); analysed the first 3000" in result["detail"]
    rows = rows_of(db, result["job_id"])
    assert [r.status for r in rows if r.purpose == "preprocess"]
    assert [r.model for r in rows if r.purpose == "answer"] == [PREMIUM_MODEL]
    # And a degraded answer is not cached: the next identical request tries to summarise again
    assert db.execute(text("SELECT count(*) FROM response_cache")).scalar() == 0


def test_the_free_tier_keeps_the_seeds_truncation(worker, client, faults, db):
    result = client.result(client.submit_analysis("reader", CHAPTER, analysis_type="summary"), timeout=60)
    assert f"analysed the first 3000 of {len(CHAPTER)} characters" in result["detail"]
    assert len(faults.calls()) == 1
