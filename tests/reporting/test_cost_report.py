"""The cost and margin report, from rows written straight into Postgres."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from itertools import count

import pytest
from sqlalchemy import text

from tests.reporting.sample_report import sample_report
from workers.reporting.report import build_report, months_in

_ids = count(1)


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def add_job(db, tier: str, status: str, *, when: str = "2025-03-10", fallback: bool = False) -> str:
    job_id = f"job-{next(_ids)}"
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, used_fallback, created_at)"
            " VALUES (:id, 'u', 'script', 'cinematic', :tier, :status, 100, :fb, :at)"
        ),
        {"id": job_id, "tier": tier, "status": status, "fb": fallback, "at": at(when)},
    )
    return job_id


def add_call(
    db,
    job_id: str,
    attempt: int,
    tier: str,
    model: str,
    cost: str,
    status: str = "ok",
    *,
    latency: int = 100,
    when: str = "2025-03-10",
) -> None:
    db.execute(
        text(
            "INSERT INTO llm_calls"
            " (job_id, attempt, tier, model, cost_usd, cost_source, status, latency_ms, created_at)"
            " VALUES (:j, :a, :tier, :model, :cost, 'provider', :status, :lat, :at)"
        ),
        {
            "j": job_id,
            "a": attempt,
            "tier": tier,
            "model": model,
            "cost": Decimal(cost),
            "status": status,
            "lat": latency,
            "at": at(when),
        },
    )


def add_subscription(db, user_id: str, tier: str, status: str = "active") -> None:
    db.execute(
        text("INSERT INTO subscriptions (user_id, tier, status) VALUES (:u, :t, :s)"),
        {"u": user_id, "t": tier, "s": status},
    )


def add_change(db, from_tier: str, to_tier: str, direction: str, when: str = "2025-03-05") -> None:
    db.execute(
        text(
            "INSERT INTO subscription_changes (user_id, from_tier, to_tier, direction, source, changed_at)"
            " VALUES ('u', :f, :t, :d, 'stripe', :at)"
        ),
        {"f": from_tier, "t": to_tier, "d": direction, "at": at(when)},
    )


@pytest.fixture
def march(db):
    """A small month: three tiers of jobs, a fallback, a failure, four subscriptions."""
    j1 = add_job(db, "basic", "succeeded")
    add_call(db, j1, 1, "basic", "deepseek/deepseek-chat", "0.000123", latency=100)
    j2 = add_job(db, "basic", "succeeded", fallback=True)
    add_call(db, j2, 1, "basic", "deepseek/deepseek-chat", "0.000010", "fallback", latency=200)
    add_call(db, j2, 2, "basic", "mistralai/mistral-7b-instruct", "0.000020", latency=300)
    j3 = add_job(db, "basic", "failed")
    add_call(db, j3, 1, "basic", "deepseek/deepseek-chat", "0", "fatal", latency=50)
    add_job(db, "basic", "rejected")
    j5 = add_job(db, "premium", "succeeded")
    add_call(db, j5, 1, "premium", "openai/gpt-4o-mini", "0.0004", latency=400, when="2025-03-11")
    j6 = add_job(db, "free", "succeeded")
    add_call(db, j6, 1, "free", "meta-llama/llama-3.2-3b-instruct", "0.0000001", latency=80)
    late = add_job(db, "basic", "succeeded", when="2025-04-02")
    add_call(db, late, 1, "basic", "deepseek/deepseek-chat", "1.00", when="2025-04-02")
    for user, tier, status in [
        ("a", "basic", "active"),
        ("b", "basic", "active"),
        ("c", "premium", "active"),
        ("d", "enterprise", "active"),
        ("e", "standard", "canceled"),
    ]:
        add_subscription(db, user, tier, status)
    add_change(db, "free", "basic", "upgrade")
    add_change(db, "free", "basic", "upgrade")
    add_change(db, "premium", "basic", "downgrade")
    add_change(db, "basic", "premium", "upgrade", when="2025-04-01")
    return db


def test_the_report_adds_every_call_cost_in_the_window_exactly(march):
    # Given a month of calls and one call after it
    # When the report covers March
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    # Then the totals are exact decimal strings, April's call excluded
    assert report["total_cost"] == "0.0005531"
    assert Decimal(report["total_cost"]) == Decimal("0.000123") + Decimal("0.000010") + Decimal("0.000020") + Decimal(
        "0.0004"
    ) + Decimal("0.0000001")
    assert report["cost_by_tier"]["basic"] == "0.000153"
    assert report["cost_by_tier"]["premium"] == "0.0004"
    assert report["cost_by_tier"]["free"] == "0.0000001"  # never "1E-7"
    assert report["cost_by_tier"]["enterprise"] == "0"
    assert report["cost_by_model"]["deepseek/deepseek-chat"] == "0.000133"
    assert sum(Decimal(v) for v in report["cost_by_tier"].values()) == Decimal(report["total_cost"])
    assert sum(Decimal(v) for v in report["cost_by_model"].values()) == Decimal(report["total_cost"])


def test_the_report_is_plain_json_with_every_section(march):
    # Given a month of data
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    # When it is serialised without any custom encoder
    decoded = json.loads(json.dumps(report))
    # Then nothing was lost and every section is there
    assert decoded == report
    assert set(report) >= {
        "period",
        "total_cost",
        "total_revenue",
        "profit_margin",
        "cost_by_tier",
        "cost_by_model",
        "cost_by_day",
        "cost_per_job_by_tier",
        "jobs_by_tier",
        "fallback_rate",
        "models",
        "revenue_by_tier",
        "margin_by_tier",
        "subscription_changes",
        "recommendations",
    }


def test_the_unit_tests_sample_report_has_the_shape_of_a_real_one(march):
    # The HTML and recommendation unit tests read an in-memory report: it must stay this shape
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    sample = sample_report()

    def keys(node, *path):
        for key in path:
            node = node[key]
        return set(node)

    assert keys(sample) == keys(report)
    for path in [
        ("period",),
        ("exposure",),
        ("fallback_rate",),
        ("fallback_rate", "overall"),
        ("fallback_rate", "by_tier", "basic"),
        ("models", "deepseek/deepseek-chat"),
        ("models", "deepseek/deepseek-chat", "by_status"),
        ("revenue_by_tier", "basic"),
        ("cost_per_job_by_tier", "basic"),
        ("jobs_by_tier", "basic"),
        ("subscription_changes",),
        ("savings",),
        ("savings", "cache"),
        ("savings", "cache", "total"),
        ("savings", "cache", "by_tier", "basic"),
        ("savings", "preprocessing"),
        ("thresholds",),
    ]:
        assert keys(sample, *path) == keys(report, *path), path
    assert keys(sample["cost_by_day"][0]) == keys(report["cost_by_day"][0])
    assert list(sample["cost_by_tier"]) == list(report["cost_by_tier"])  # every catalog tier, in rank order


def test_cost_by_day_has_every_day_and_tier_and_adds_up_to_the_total(march):
    # Given calls on the 10th and the 11th
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    days = {d["day"]: d for d in report["cost_by_day"]}
    # Then every day of the window is there, zero-filled
    assert len(days) == 31 and days["2025-03-01"]["total"] == "0"
    assert days["2025-03-10"]["by_tier"]["basic"] == "0.000153"
    assert days["2025-03-11"]["by_tier"]["premium"] == "0.0004"
    assert sum(Decimal(d["total"]) for d in report["cost_by_day"]) == Decimal(report["total_cost"])


def test_jobs_fallbacks_and_cost_per_job_count_the_jobs_of_the_window(march):
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    # Then jobs are counted by tier and status
    assert report["jobs_by_tier"]["basic"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "rejected": 1,
        "total": 4,
    }
    # And the fallback rate is over finished jobs only (the rejected one is not finished)
    assert report["fallback_rate"]["by_tier"]["basic"] == {"finished_jobs": 3, "fallback_jobs": 1, "rate": "0.3333"}
    assert report["fallback_rate"]["overall"] == {"finished_jobs": 5, "fallback_jobs": 1, "rate": "0.2000"}
    assert report["fallback_rate"]["by_tier"]["enterprise"]["rate"] is None
    # And a succeeded job costs all its attempts, the failed one included
    assert report["cost_per_job_by_tier"]["basic"] == {
        "succeeded_jobs": 2,
        "cost": "0.000153",
        "average": "0.0000765000",
    }
    assert report["cost_per_job_by_tier"]["standard"]["average"] is None


def test_models_report_failure_rates_and_latencies(march):
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    deepseek = report["models"]["deepseek/deepseek-chat"]
    # Then anything but "ok" is a failure
    assert deepseek["calls"] == 3 and deepseek["failures"] == 2
    assert deepseek["by_status"] == {"ok": 1, "retry": 0, "fallback": 1, "fatal": 1, "unknown": 0, "pending": 0}
    assert deepseek["failure_rate"] == "0.6667"
    assert deepseek["avg_latency_ms"] == 117  # (100 + 200 + 50) / 3, rounded
    assert deepseek["p95_latency_ms"] == 200


def test_p95_latency_is_a_latency_that_really_happened(db):
    # Given twenty calls of 10, 20, ... 200 ms
    job = add_job(db, "standard", "succeeded")
    for i in range(1, 21):
        add_call(db, job, i, "standard", "openai/gpt-3.5-turbo", "0.001", latency=i * 10)
    # When the report is built
    model = build_report(db, date(2025, 3, 1), date(2025, 3, 31))["models"]["openai/gpt-3.5-turbo"]
    # Then p95 is the nearest-rank value and the average is exact
    assert model["p95_latency_ms"] == 190
    assert model["avg_latency_ms"] == 105
    assert model["cost"] == "0.020"


def test_revenue_counts_active_list_prices_for_the_months_of_the_window(march):
    # Given two basic subscribers, one premium, one enterprise (custom) and one canceled
    # When the report covers a full calendar month
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    # Then revenue is one month of each list price, custom and canceled left out
    assert report["period"]["months"] == "1.0000"
    assert report["revenue_by_tier"]["basic"] == {"active_subscriptions": 2, "price_monthly": "19", "revenue": "38.00"}
    assert report["revenue_by_tier"]["premium"]["revenue"] == "99.00"
    assert report["revenue_by_tier"]["enterprise"] == {"active_subscriptions": 1, "price_monthly": None, "revenue": "0"}
    assert report["revenue_by_tier"]["standard"]["active_subscriptions"] == 0
    assert report["total_revenue"] == "137.00"
    # And the margin needs revenue
    assert report["margin_by_tier"]["basic"] == "1.0000"
    assert report["margin_by_tier"]["free"] is None
    assert report["margin_by_tier"]["enterprise"] is None
    expected = (Decimal("137.00") - Decimal("0.0005531")) / Decimal("137.00")
    assert report["profit_margin"] == str(expected.quantize(Decimal("0.0001")))


def test_a_window_is_prorated_by_the_share_of_each_month_it_covers(db):
    # Given two basic subscribers
    add_subscription(db, "a", "basic")
    add_subscription(db, "b", "basic")
    # When the window is the first half of April (15 of 30 days)
    report = build_report(db, date(2025, 4, 1), date(2025, 4, 15))
    # Then it counts half a month
    assert report["period"] == {"from": "2025-04-01", "to": "2025-04-15", "days": 15, "months": "0.5000"}
    assert report["revenue_by_tier"]["basic"]["revenue"] == "19.00"
    # And a window across months adds each month's share
    assert months_in(date(2025, 1, 15), date(2025, 2, 14)) == Fraction(17, 31) + Fraction(14, 28)
    assert months_in(date(2024, 1, 1), date(2024, 12, 31)) == 12


def test_without_dates_the_report_covers_the_month_to_date(db):
    # When no dates are given
    report = build_report(db, None, None, today=date(2025, 3, 20))
    # Then the window is the first of the month to today
    assert report["period"]["from"] == "2025-03-01" and report["period"]["to"] == "2025-03-20"
    assert report["total_cost"] == "0" and report["profit_margin"] is None


def test_a_window_that_ends_before_it_starts_is_refused(db):
    with pytest.raises(ValueError, match="after"):
        build_report(db, date(2025, 3, 2), date(2025, 3, 1))


def test_upgrades_and_downgrades_are_counted_in_the_window(march):
    changes = build_report(march, date(2025, 3, 1), date(2025, 3, 31))["subscription_changes"]
    # Then April's upgrade is not counted
    assert (changes["upgrades"], changes["downgrades"], changes["lateral"]) == (2, 1, 0)
    assert changes["paths"][0] == {"from": "free", "to": "basic", "direction": "upgrade", "count": 2}


def test_recommendations_follow_failures_margins_fallbacks_and_cheaper_models(db):
    # Given a premium tier that costs more than its only subscriber pays
    add_subscription(db, "p", "premium")
    pricey = add_job(db, "premium", "succeeded")
    add_call(db, pricey, 1, "premium", "openai/gpt-4o-mini", "150")
    # And, in basic, 20 finished jobs of which 5 fell back
    jobs = [add_job(db, "basic", "succeeded", fallback=i < 5) for i in range(20)]
    # And deepseek (first in basic's chain): 20 calls, 2 failed (10 %, not above), $0.001 each
    for i, job in enumerate(jobs):
        add_call(db, job, 1, "basic", "deepseek/deepseek-chat", "0.001", "fallback" if i < 2 else "ok")
    # And mistral (second): 20 calls, 1 failed, $0.0005 each: cheaper and more reliable
    for i, job in enumerate(jobs):
        add_call(db, job, 2, "basic", "mistralai/mistral-7b-instruct", "0.0005", "retry" if i < 1 else "ok")
    # And llama in free: 20 calls, 3 failed (15 %)
    free_job = add_job(db, "free", "succeeded")
    for i in range(20):
        add_call(db, free_job, i + 1, "free", "meta-llama/llama-3.2-3b-instruct", "0", "retry" if i < 3 else "ok")

    # When the report is built
    report = build_report(db, date(2025, 3, 1), date(2025, 3, 31))
    found = {(r["kind"], r["subject"]): r for r in report["recommendations"]}

    # Then each rule fired once, with its figure
    assert found[("model_failure_rate", "meta-llama/llama-3.2-3b-instruct")]["figure"] == "0.1500"
    assert ("model_failure_rate", "deepseek/deepseek-chat") not in found
    assert found[("negative_margin", "premium")]["figure"] == "-0.5152"  # (99 - 150) / 99
    assert found[("negative_margin", "all")]["figure"] == report["profit_margin"]
    assert found[("fallback_rate", "basic")]["figure"] == "0.2500"
    cheaper = found[("cheaper_model", "basic:mistralai/mistral-7b-instruct")]
    assert cheaper["figure"] == "0.0005847953"  # 0.020 / 18 - 0.010 / 19 per successful call
    assert "deepseek/deepseek-chat" in cheaper["message"]
    assert all(set(r) == {"kind", "subject", "message", "figure"} for r in report["recommendations"])


def test_small_samples_make_no_recommendation(march):
    # Given a month with a few calls, high failure and fallback rates among them
    report = build_report(march, date(2025, 3, 1), date(2025, 3, 31))
    # Then no rule fires below its minimum sample
    assert report["recommendations"] == []
