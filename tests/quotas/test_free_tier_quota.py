"""A free user's monthly allowance end to end: using it up, refunds and an upgrade."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from tasks.status import usage


@pytest.mark.smoke
def test_six_scripts_at_once_from_a_free_user_give_two_successes_and_four_quota_rejections(worker, client, faults, db):
    # When a free user (2 videos a month) submits 6 scripts at once
    ids = [client.submit_script("free-reader", f"Chapter {i}.") for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda j: client.result(j, timeout=60), ids))
    # Then 2 succeed and 4 are rejected with used, limit and an upgrade hint
    assert sorted(r["status"] for r in results) == ["rejected"] * 4 + ["succeeded"] * 2
    rejected = [r for r in results if r["status"] == "rejected"]
    assert all(r["reason"] == "quota_exceeded" for r in rejected)
    assert rejected[0]["detail"]["used"] == 2 and rejected[0]["detail"]["limit"] == 2
    assert "Upgrade" in rejected[0]["detail"]["message"]
    # And their usage shows 2 used, 0 remaining
    report = usage.apply(kwargs={"user_id": "free-reader"}).get()
    assert report["used"] == 2 and report["remaining"] == 0 and report["can_generate"] is False


def test_after_an_upgrade_the_next_job_runs_on_the_new_tier(worker, client, faults, subscribe):
    for i in range(2):
        assert client.result(client.submit_script("mover", f"Part {i}."), timeout=60)["status"] == "succeeded"
    assert client.result(client.submit_script("mover", "Part 3."), timeout=60)["reason"] == "quota_exceeded"
    # When an operator moves the user to basic
    subscribe("mover", "basic")
    result = client.result(client.submit_script("mover", "Part 3."), timeout=60)
    # Then the job runs on basic, with basic's model, and the allowance is basic's
    assert result["status"] == "succeeded" and result["tier"] == "basic"
    assert result["model_used"] == "deepseek/deepseek-chat"
    assert usage.apply(kwargs={"user_id": "mover"}).get()["remaining"] == 7


def test_a_failed_job_gives_its_unit_back_and_a_successful_one_does_not(worker, client, faults, db):
    faults.inject("*", "unavailable", times=-1)
    failed = client.result(client.submit_script("unlucky", "Try."), timeout=60)
    faults.clear()
    ok = client.result(client.submit_script("unlucky", "Again."), timeout=60)
    assert failed["status"] == "failed" and ok["status"] == "succeeded"
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = 'unlucky'")).scalar() == 1


def test_a_spent_cap_rejects_with_spend_cap_reached(worker, client, faults, db):
    # Given a free user whose settled spend this month is at the cap
    client.result(client.submit_analysis("spender", "One."), timeout=60)
    db.execute(text("UPDATE quota_usage SET spend_usd = 0.50 WHERE user_id = 'spender'"))
    # When they submit again
    result = client.result(client.submit_analysis("spender", "Two."), timeout=60)
    # Then it is refused for the spend cap
    assert result["status"] == "rejected" and result["reason"] == "spend_cap_reached"
    assert result["detail"]["spend_cap_usd"] == "0.50"


def test_crossing_the_soft_spend_threshold_raises_one_alert_per_period(worker, client, faults, db):
    # Given a free user just under 80% of the 0.50 cap
    client.result(client.submit_analysis("near-cap", "One."), timeout=60)
    db.execute(text("UPDATE quota_usage SET spend_usd = 0.3999999 WHERE user_id = 'near-cap'"))
    # When two more jobs settle
    for text_ in ("Two.", "Three."):
        assert client.result(client.submit_analysis("near-cap", text_), timeout=60)["status"] == "succeeded"
    # Then exactly one soft-cap alert exists for the user and period
    rows = db.execute(text("SELECT kind, subject FROM alerts")).all()
    assert [(r.kind, r.subject) for r in rows] == [("spend_soft_cap", "near-cap")]
