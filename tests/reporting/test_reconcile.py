"""Reconciliation figures: the provider's spend between bracketing snapshots against the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from config import Settings
from workers.llm.openrouter import OpenRouterClient
from workers.llm.provider_account import ProviderAccount
from workers.reporting.provider_usage import Snapshot, store_snapshot
from workers.reporting.reconcile import check_drift, previous_utc_day, reconcile

T0 = datetime(2025, 3, 15, 0, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def snapshot(db, minutes: int, usage: str) -> None:
    store_snapshot(db, Snapshot(at(minutes), Decimal(usage), Decimal(0), Decimal(0)))


def call_row(db, attempt: int, minutes: float, cost: str, source: str, generation_id: str | None = None) -> None:
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars) VALUES"
            " ('job-1', 'u', 'script', 'cinematic', 'basic', 'succeeded', 10) ON CONFLICT DO NOTHING"
        )
    )
    db.execute(
        text(
            "INSERT INTO llm_calls (job_id, attempt, tier, model, cost_usd, cost_source, status, latency_ms,"
            " generation_id, created_at)"
            " VALUES ('job-1', :a, 'basic', 'deepseek/deepseek-chat', :c, :s, 'ok', 100, :g, :at)"
        ),
        {"a": attempt, "c": Decimal(cost), "s": source, "g": generation_id, "at": T0 + timedelta(minutes=minutes)},
    )


def test_drift_is_provider_spend_less_recorded_and_estimated_over_the_bracketing_snapshots(db):
    # Given snapshots every 10 minutes and calls priced by the provider and by the catalog
    snapshot(db, 0, "1.00")
    snapshot(db, 10, "1.30")
    snapshot(db, 20, "1.45")
    call_row(db, 1, 1, "0.25", "provider")
    call_row(db, 2, 12, "0.0375", "catalog")
    call_row(db, 3, 25, "9.99", "provider")  # after the closing snapshot: not in the span
    # When a window inside [00:00, 00:20) is reconciled
    report = reconcile(db, at(5), at(15))
    # Then both sides are measured between the snapshots that bracket it, exactly
    assert (report["measured"]["from"], report["measured"]["to"]) == (at(0).isoformat(), at(20).isoformat())
    assert report["provider"]["spend_usd"] == Decimal("0.45")
    assert report["ledger"]["by_source"] == {"catalog": Decimal("0.0375"), "provider": Decimal("0.25")}
    assert report["drift"] == {
        "recorded_usd": Decimal("0.2875"),
        "estimated_usd": Decimal(0),
        "unexplained_usd": Decimal("0.1625"),
    }
    assert report["call_checks"] is None


def test_a_window_on_snapshot_times_measures_exactly_that_window(db):
    snapshot(db, 0, "1.00")
    snapshot(db, 10, "1.30")
    call_row(db, 1, 0, "0.30", "provider")
    report = reconcile(db, at(0), at(10))
    assert report["provider"]["spend_usd"] == Decimal("0.30")
    assert report["drift"]["unexplained_usd"] == 0


def test_without_a_snapshot_before_the_window_the_provider_side_is_unknown(db):
    snapshot(db, 10, "1.30")
    report = reconcile(db, at(5), at(10))
    assert report["measured"]["missing"] == ["opening"]
    assert report["provider"]["spend_usd"] is None and report["drift"]["unexplained_usd"] is None


def test_a_live_reading_closes_a_window_that_ends_now(db):
    snapshot(db, 0, "1.00")
    live = Snapshot(at(7), Decimal("1.10"), Decimal(0), Decimal(0))
    report = reconcile(db, at(0), at(7), live=live)
    assert report["measured"]["closing_source"] == "live"
    assert report["provider"]["spend_usd"] == Decimal("0.10")


def test_estimated_cost_is_kept_apart_from_recorded_cost(db):
    snapshot(db, 0, "1.00")
    snapshot(db, 10, "1.50")
    call_row(db, 1, 1, "0.20", "provider")
    try:
        call_row(db, 2, 2, "0.25", "estimate")
    except IntegrityError:
        pytest.skip("llm_calls does not accept cost_source 'estimate' before the ledger migration")
    report = reconcile(db, at(0), at(10))
    assert report["drift"] == {
        "recorded_usd": Decimal("0.20"),
        "estimated_usd": Decimal("0.25"),
        "unexplained_usd": Decimal("0.05"),
    }


def test_calls_not_priced_by_the_provider_are_checked_against_generation(db, faults):
    # Given two real calls, one recorded at a catalog price a little off, one at the exact price
    client = OpenRouterClient(Settings())
    messages = [{"role": "user", "content": "A kite over the dunes."}]
    off, exact = (client.complete("openai/gpt-4o-mini", messages, max_tokens=64, temperature=0).usage for _ in "ab")
    snapshot(db, 0, "0")
    snapshot(db, 10, "1")
    call_row(db, 1, 1, str(off.cost - Decimal("0.0000001")), "catalog", off.generation_id)
    call_row(db, 2, 2, str(exact.cost), "config", exact.generation_id)
    call_row(db, 3, 3, "0.5", "provider", "gen-provider-priced-not-checked")
    call_row(db, 4, 4, "0.01", "catalog", "gen-0-unknown")
    # When reconciled with the provider at hand
    checks = reconcile(db, at(0), at(10), account=ProviderAccount())["call_checks"]
    # Then the catalog-priced call's exact difference is reported, and the unknown id named
    assert (checks["checked"], checks["matched"], checks["skipped"]) == (3, 1, 0)
    assert checks["difference_usd"] == Decimal("0.0000001")
    [mismatch] = checks["mismatched"]
    assert (mismatch["generation_id"], mismatch["provider_usd"]) == (off.generation_id, off.cost)
    assert checks["not_found"] == ["gen-0-unknown"]


def test_unexplained_drift_past_the_threshold_raises_one_alert_either_way(db):
    settings = Settings(reconcile_drift_alert_usd=Decimal("0.10"), alert_webhook_url=None)
    snapshot(db, 0, "1.00")
    snapshot(db, 24 * 60, "1.50")
    call_row(db, 1, 60, "0.30", "provider")
    start, end = previous_utc_day(T0 + timedelta(days=1, hours=0, minutes=25))
    report = reconcile(db, start, end)
    first, second = check_drift(db, report, settings=settings), check_drift(db, report, settings=settings)
    assert first == {
        "period": "2025-03-15",
        "threshold": "0.10",
        "unexplained_usd": "0.20",
        "beyond_estimates_usd": "0.20",
        "exceeded": True,
        "raised": True,
    }
    assert (second["exceeded"], second["raised"]) == (True, False)
    rows = db.execute(text("SELECT kind, subject, period, value FROM alerts")).all()
    assert [tuple(r) for r in rows] == [("cost_drift", "system", "2025-03-15", Decimal("0.20"))]
    # And a ledger that holds more than the provider charged is drift too (already alerted today)
    call_row(db, 2, 61, "0.50", "provider")
    over = check_drift(db, reconcile(db, start, end), settings=settings)
    assert (over["unexplained_usd"], over["beyond_estimates_usd"], over["exceeded"]) == ("-0.30", "-0.30", True)


def test_a_gap_within_the_estimated_exposure_is_expected_and_raises_nothing(db):
    # Given the provider charged $0.10 more than recorded, and unknown attempts estimated at $0.60
    snapshot(db, 0, "1.00")
    snapshot(db, 10, "1.30")
    call_row(db, 1, 1, "0.20", "provider")
    try:
        call_row(db, 2, 2, "0.60", "estimate")
    except IntegrityError:
        pytest.skip("llm_calls does not accept cost_source 'estimate' before the ledger migration")
    # Then the unexplained drift is negative (estimates are maxima) and nothing is beyond them
    outcome = check_drift(db, reconcile(db, at(0), at(10)), settings=Settings(reconcile_drift_alert_usd=Decimal("0.1")))
    assert (outcome["unexplained_usd"], outcome["beyond_estimates_usd"]) == ("-0.50", "0")
    assert (outcome["exceeded"], outcome["raised"]) == (False, False)


def test_drift_within_the_threshold_raises_nothing(db):
    snapshot(db, 0, "1.00")
    snapshot(db, 10, "1.05")
    outcome = check_drift(db, reconcile(db, at(0), at(10)), settings=Settings(reconcile_drift_alert_usd=Decimal(1)))
    assert (outcome["exceeded"], outcome["raised"]) == (False, False)
    assert db.execute(text("SELECT COUNT(*) FROM alerts")).scalar() == 0
