"""The response cache in the ledger, and single-flight across worker processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import text

from config import get_catalog

ESSAY = "The tide comes in twice a day, pulled by the moon, and the village plans its work around it."


def calls_of(db, job_id):
    return db.execute(
        text(
            "SELECT status, model, cost_usd, cost_source, saved_usd FROM llm_calls WHERE job_id = :j ORDER BY attempt"
        ),
        {"j": job_id},
    ).all()


def test_an_identical_analysis_is_served_from_the_cache_without_a_provider_call(worker, client, faults, db):
    # Given one user's analysis that was bought from the provider
    first = client.result(client.submit_analysis("reader-a", ESSAY, analysis_type="summary"), timeout=60)
    assert first["status"] == "succeeded" and first["cache_hit"] is False
    # When another user submits the same content for the same analysis
    second = client.result(client.submit_analysis("reader-b", ESSAY, analysis_type="summary"), timeout=60)
    # Then the answer is the same, marked as a cache hit, and the provider was called once
    assert second["status"] == "succeeded" and second["cache_hit"] is True
    assert second["content"] == first["content"] and second["model_used"] == first["model_used"]
    assert len(faults.calls()) == 1
    # And the ledger says what it cost (nothing) and what it saved (the original cost)
    original = Decimal(first["usage"]["cost_usd"])
    assert original > 0 and second["usage"]["cost_usd"] == "0"
    [hit] = calls_of(db, second["job_id"])
    assert (hit.status, hit.cost_usd, hit.cost_source, hit.saved_usd) == ("cache_hit", 0, "none", original)
    # And the hit took the user's quota unit, as docs/quotas.md says
    used = db.execute(text("SELECT analyses_used FROM quota_usage WHERE user_id = 'reader-b'")).scalar()
    assert used == 1


def test_a_different_type_different_content_or_a_script_is_bought_again(worker, client, faults, db):
    client.result(client.submit_analysis("reader-a", ESSAY, analysis_type="summary"), timeout=60)
    other_type = client.result(client.submit_analysis("reader-a", ESSAY, analysis_type="genre"), timeout=60)
    other_text = client.result(client.submit_analysis("reader-a", ESSAY + " ", analysis_type="summary"), timeout=60)
    # Scripts are creative: not cached unless a tier opts in
    scripts = [client.result(client.submit_script(f"writer-{i}", ESSAY), timeout=60) for i in range(2)]
    assert [r["cache_hit"] for r in (other_type, other_text, *scripts)] == [False] * 4
    assert len(faults.calls()) == 5


def test_an_expired_answer_is_not_served(worker, client, faults, db):
    client.result(client.submit_analysis("reader-a", ESSAY), timeout=60)
    db.execute(text("UPDATE response_cache SET expires_at = now() - interval '1 second'"))
    again = client.result(client.submit_analysis("reader-b", ESSAY), timeout=60)
    assert again["cache_hit"] is False and len(faults.calls()) == 2
    # And the fresh answer replaced the expired one
    assert db.execute(text("SELECT count(*) FROM response_cache WHERE expires_at > now()")).scalar() == 1


def test_twenty_identical_submissions_at_once_through_two_worker_processes_make_one_provider_call(
    spawn_worker, client, faults, db
):
    # Given two worker processes, and a provider slow enough that every job is in flight at once
    spawn_worker(concurrency=10)
    spawn_worker(concurrency=10)
    faults.set_latency(1000)
    # When twenty users submit the same analysis at the same moment
    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(lambda i: client.submit_analysis(f"crowd-{i}", ESSAY, analysis_type="keywords"), range(20)))
        results = list(pool.map(lambda job_id: client.result(job_id, timeout=90), ids))
    # Then the emulator saw exactly one call
    assert len(faults.calls()) == 1
    assert all(r["status"] == "succeeded" for r in results)
    assert len({r["content"] for r in results}) == 1
    # And the ledger holds one bought answer and nineteen hits, each saving its cost
    [bought] = [r for r in results if not r["cache_hit"]]
    cost = Decimal(bought["usage"]["cost_usd"])
    rows = db.execute(
        text("SELECT status, count(*) AS n, sum(saved_usd) AS saved FROM llm_calls GROUP BY status")
    ).all()
    assert {r.status: (r.n, r.saved) for r in rows} == {"ok": (1, 0), "cache_hit": (19, 19 * cost)}
    print(f"\n20 identical analyses: 1 provider call, spent ${cost}, saved ${19 * cost} (19 cache hits)")


@pytest.mark.unit
def test_scripts_are_cached_only_for_tiers_that_opt_in():
    catalog = get_catalog()
    free = catalog.tier("free")
    assert catalog.cache_ttl("analysis", free) > 0
    assert catalog.cache_ttl("script", free) == 0
    opted_in = free.model_copy(update={"cache_scripts": True})
    assert catalog.cache_ttl("script", opted_in) == catalog.cache.script_ttl_seconds


@pytest.mark.unit
def test_answers_are_shared_across_users_unless_the_catalog_keeps_them_per_user():
    from workers.llm.response_cache import key_for

    catalog = get_catalog()
    free = catalog.tier("free")
    shared = {key_for("analysis", "summary", free, ESSAY, user).digest for user in ("a", "b")}
    assert len(shared) == 1  # the default: identical content is one answer for everyone
    private = catalog.model_copy(update={"cache": catalog.cache.model_copy(update={"shared_across_users": False})})
    per_user = {key_for("analysis", "summary", free, ESSAY, user, catalog=private).digest for user in ("a", "b")}
    assert len(per_user) == 2


def test_the_beat_purge_on_a_worker_deletes_expired_answers_and_keeps_live_ones(worker, celery_app, db):
    from workers.llm import response_cache

    # Given five stored answers that have expired and two that are still live
    free = get_catalog().tier("free")
    keys = [response_cache.key_for("analysis", "summary", free, f"{ESSAY} #{i}") for i in range(7)]
    for i, key in enumerate(keys):
        answer = {"job_id": f"job-{i}", "content": f"answer {i}", "model_used": "m", "used_fallback": False}
        response_cache.store(db, key, {**answer, "usage": {"cost_usd": "0.0001"}})
    expired = {key.digest for key in keys[:5]}
    db.execute(
        text("UPDATE response_cache SET expires_at = now() - interval '1 second' WHERE key = ANY(:keys)"),
        {"keys": list(expired)},
    )
    # When beat's task runs on a worker, two rows per transaction
    outcome = celery_app.send_task("litink.purge_response_cache", kwargs={"batch": 2}).get(timeout=30)
    # Then the expired rows are gone, in three batches, and the live ones stay
    assert outcome == {"purged": 5, "batches": 3}
    left = {row.key for row in db.execute(text("SELECT key FROM response_cache"))}
    assert left == {key.digest for key in keys[5:]}
    # And a second run finds nothing to do
    assert celery_app.send_task("litink.purge_response_cache").get(timeout=30) == {"purged": 0, "batches": 1}


def test_the_purge_skips_an_expired_answer_being_renewed_without_waiting_for_it(worker, celery_app, db):
    from db.session import get_engine
    from workers.llm import response_cache

    # Given two expired answers, one of them locked by a worker storing a fresh answer over it
    free = get_catalog().tier("free")
    keys = [response_cache.key_for("analysis", "summary", free, f"{ESSAY} renewed {i}") for i in range(2)]
    for i, key in enumerate(keys):
        answer = {"job_id": f"job-{i}", "content": "old", "model_used": "m", "used_fallback": False}
        response_cache.store(db, key, {**answer, "usage": {"cost_usd": "0.0001"}})
    db.execute(text("UPDATE response_cache SET expires_at = now() - interval '1 second'"))
    renewing = keys[0].digest
    with get_engine().connect() as holder, holder.begin():
        holder.execute(text("SELECT 1 FROM response_cache WHERE key = :k FOR UPDATE"), {"k": renewing})
        # When the purge runs meanwhile
        outcome = celery_app.send_task("litink.purge_response_cache").get(timeout=30)
    # Then it returned at once with the other row purged, and left the locked one to its writer
    assert outcome == {"purged": 1, "batches": 1}
    assert [row.key for row in db.execute(text("SELECT key FROM response_cache"))] == [renewing]


@pytest.mark.unit
def test_the_cache_purge_runs_hourly_at_minute_45_utc():
    from tasks.schedule import beat_schedule

    entry = beat_schedule["purge-response-cache"]
    assert entry["task"] == "litink.purge_response_cache"
    assert entry["schedule"].minute == {45} and len(entry["schedule"].hour) == 24
    assert str(entry["schedule"].tz) == "UTC"  # the app's timezone (celeryconfig.py)
