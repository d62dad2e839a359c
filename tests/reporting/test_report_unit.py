"""The report's pure parts: its window, its revenue and margin arithmetic, and the rules that
turn its figures into recommendations. No database: the figures are given."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from config import get_catalog
from tests.reporting.sample_report import sample_report
from workers.reporting.report import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    margin,
    months_in,
    recommendations,
    resolve_window,
    revenue_by_tier,
    tier_order,
)

pytestmark = pytest.mark.unit

# -- the window ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "months"),
    [
        (date(2025, 3, 1), date(2025, 3, 31), Fraction(1)),
        (date(2025, 4, 1), date(2025, 4, 15), Fraction(1, 2)),
        (date(2025, 2, 1), date(2025, 2, 28), Fraction(1)),  # not a leap year
        (date(2024, 2, 1), date(2024, 2, 14), Fraction(14, 29)),  # a leap year
        (date(2025, 1, 15), date(2025, 2, 14), Fraction(17, 31) + Fraction(14, 28)),
        (date(2024, 12, 31), date(2025, 1, 1), Fraction(1, 31) + Fraction(1, 31)),  # across a year
        (date(2024, 1, 1), date(2024, 12, 31), Fraction(12)),
        (date(2025, 3, 10), date(2025, 3, 10), Fraction(1, 31)),  # one day
    ],
)
def test_a_window_counts_each_month_by_the_share_of_its_days_it_covers(first, last, months):
    assert months_in(first, last) == months


def test_without_dates_the_window_is_the_month_to_date():
    assert resolve_window(None, None, today=date(2025, 3, 20)) == (date(2025, 3, 1), date(2025, 3, 20))


def test_without_a_start_the_window_starts_on_the_first_of_the_end_month():
    assert resolve_window(None, date(2025, 2, 10), today=date(2025, 6, 1)) == (date(2025, 2, 1), date(2025, 2, 10))


def test_an_explicit_window_is_kept_and_a_one_day_window_is_allowed():
    assert resolve_window(date(2025, 1, 5), date(2025, 2, 3)) == (date(2025, 1, 5), date(2025, 2, 3))
    assert resolve_window(date(2025, 1, 5), date(2025, 1, 5)) == (date(2025, 1, 5), date(2025, 1, 5))


def test_a_window_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="date_from 2025-03-02 is after date_to 2025-03-01"):
        resolve_window(date(2025, 3, 2), date(2025, 3, 1))


# -- revenue and margin ----------------------------------------------------------------------


def test_revenue_is_active_subscriptions_times_the_list_price_for_the_months_covered():
    revenue = revenue_by_tier(["basic", "premium"], {"basic": 3, "premium": 1}, Fraction(1, 2))
    # basic: 3 x $19 x 0.5; premium: $99 x 0.5, half to even at the cent
    assert revenue["basic"] == {"active_subscriptions": 3, "price_monthly": "19", "revenue": "28.50"}
    assert revenue["premium"]["revenue"] == "49.50"


def test_revenue_is_rounded_half_to_even_at_the_cent_without_floats():
    # $19 x 1/31 = 0.612903...; $19 x 1/8 = 2.375, a tie: to the even cent 2.38 (not 2.37)
    assert revenue_by_tier(["basic"], {"basic": 1}, Fraction(1, 31))["basic"]["revenue"] == "0.61"
    assert revenue_by_tier(["basic"], {"basic": 1}, Fraction(1, 8))["basic"]["revenue"] == "2.38"
    # 0.125 x 99 x 3 = 37.125, a tie: to the even cent 37.12
    assert revenue_by_tier(["premium"], {"premium": 3}, Fraction(1, 8))["premium"]["revenue"] == "37.12"


def test_a_custom_price_a_free_tier_and_an_unknown_tier_bring_no_list_revenue():
    revenue = revenue_by_tier(["enterprise", "free", "legacy-gold"], {"enterprise": 4, "free": 9, "legacy-gold": 2}, 1)
    assert revenue["enterprise"] == {"active_subscriptions": 4, "price_monthly": None, "revenue": "0"}
    assert revenue["free"] == {"active_subscriptions": 9, "price_monthly": "0", "revenue": "0"}
    assert revenue["legacy-gold"] == {"active_subscriptions": 2, "price_monthly": None, "revenue": "0"}


def test_a_tier_without_subscribers_has_zero_revenue():
    assert revenue_by_tier(["standard"], {}, Fraction(1))["standard"] == {
        "active_subscriptions": 0,
        "price_monthly": "49",
        "revenue": "0",
    }


@pytest.mark.parametrize(
    ("revenue", "cost", "expected"),
    [
        ("100", "25", "0.7500"),
        ("99", "150", "-0.5152"),  # a loss: (99 - 150) / 99
        ("3", "1", "0.6667"),  # four places, half to even
        ("10", "10", "0"),  # a zero is written without places, as every zero of the report
        ("10", "0.0000001", "1.0000"),
        ("0", "5", None),  # no revenue, no margin
        ("0", "0", None),
    ],
)
def test_the_margin_is_revenue_less_cost_over_revenue(revenue, cost, expected):
    assert margin(Decimal(revenue), Decimal(cost)) == expected


def test_tiers_come_in_catalog_rank_order_then_unknown_ones_by_name():
    known = [t.name for t in sorted(get_catalog().tiers.values(), key=lambda t: t.rank)]
    assert tier_order(set()) == known
    assert tier_order({"zeta", "basic", "alpha"}) == [*known, "alpha", "zeta"]


# -- recommendations -------------------------------------------------------------------------


def model(calls: int, failures: int, cost: str = "1") -> dict:
    rate = None if not calls else str((Decimal(failures) / calls).quantize(Decimal("0.0001")))
    return {"calls": calls, "failures": failures, "failure_rate": rate, "cost": cost}


def fallbacks(finished: int, fallback: int) -> dict:
    rate = None if not finished else str((Decimal(fallback) / finished).quantize(Decimal("0.0001")))
    return {"finished_jobs": finished, "fallback_jobs": fallback, "rate": rate}


def healthy_report(**overrides) -> dict:
    """A report where no rule fires: models reliable, every margin positive, few fallbacks."""
    report = sample_report(
        models={"a/m": model(100, 1)},
        margin_by_tier={"basic": "0.5000", "free": None},
        profit_margin="0.5000",
        fallback_rate={"overall": fallbacks(100, 0), "by_tier": {"basic": fallbacks(100, 0)}},
    )
    report.update(overrides)
    return report


def kinds(found: list[dict]) -> list[tuple[str, str]]:
    return [(r["kind"], r["subject"]) for r in found]


def test_a_healthy_report_recommends_nothing():
    assert recommendations(healthy_report(), {}) == []


@pytest.mark.parametrize(
    ("calls", "failures", "fires"),
    [
        (20, 3, True),  # 15 % of 20
        (20, 2, False),  # exactly 10 %: not above the threshold
        (19, 10, False),  # a sample too small, however bad
        (1000, 101, True),
        (1000, 100, False),
    ],
)
def test_a_model_failing_more_than_its_threshold_over_enough_calls_is_named(calls, failures, fires):
    found = recommendations(healthy_report(models={"x/flaky": model(calls, failures)}), {})
    assert kinds(found) == ([("model_failure_rate", "x/flaky")] if fires else [])
    if fires:
        assert found[0]["figure"] == model(calls, failures)["failure_rate"]
        assert f"of {calls} calls" in found[0]["message"] and "(threshold 10%)" in found[0]["message"]


def test_a_tier_losing_money_and_a_whole_report_losing_money_are_each_named():
    report = healthy_report(
        margin_by_tier={"basic": "0.5000", "premium": "-0.5152", "free": None},
        profit_margin="-0.1000",
        cost_by_tier={"basic": "1", "premium": "150", "free": "0"},
        revenue_by_tier={
            "basic": {"revenue": "2.00"},
            "premium": {"revenue": "99.00"},
            "free": {"revenue": "0"},
        },
        total_cost="151",
        total_revenue="101.00",
    )
    found = {(r["kind"], r["subject"]): r for r in recommendations(report, {})}
    assert set(found) == {("negative_margin", "premium"), ("negative_margin", "all")}
    premium = found[("negative_margin", "premium")]
    assert premium["figure"] == "-0.5152"
    assert "$150.00000000" in premium["message"] and "$99.00" in premium["message"]
    assert "-51.52%" in premium["message"]
    assert found[("negative_margin", "all")]["figure"] == "-0.1000"
    assert "$151.00000000" in found[("negative_margin", "all")]["message"]


def test_a_zero_margin_or_a_tier_without_revenue_is_not_a_loss():
    report = healthy_report(margin_by_tier={"basic": "0.0000", "free": None}, profit_margin="0.0000")
    assert recommendations(report, {}) == []


@pytest.mark.parametrize(
    ("finished", "fallback", "fires"),
    [(20, 5, True), (20, 4, False), (19, 19, False), (40, 9, True)],
)
def test_a_tier_whose_jobs_fall_back_too_often_is_named(finished, fallback, fires):
    report = healthy_report(
        fallback_rate={"overall": fallbacks(0, 0), "by_tier": {"basic": fallbacks(finished, fallback)}}
    )
    found = recommendations(report, {})
    assert kinds(found) == ([("fallback_rate", "basic")] if fires else [])
    if fires:
        assert found[0]["figure"] == fallbacks(finished, fallback)["rate"]


def test_thresholds_are_the_callers():
    strict = Thresholds(failure_rate=Decimal("0.01"), min_calls=5, fallback_rate=Decimal("0.05"), min_jobs=5)
    report = healthy_report(
        models={"a/m": model(10, 1)}, fallback_rate={"overall": fallbacks(0, 0), "by_tier": {"basic": fallbacks(10, 1)}}
    )
    assert recommendations(report, {}) == []
    assert kinds(recommendations(report, {}, strict)) == [("model_failure_rate", "a/m"), ("fallback_rate", "basic")]


# The cheaper-model rule reads the basic tier's chain: deepseek first, then mistral.
FIRST, SECOND = get_catalog().tier("basic").models[:2]


def test_a_later_model_cheaper_per_success_and_as_reliable_is_recommended_with_its_saving():
    # deepseek: 20 calls, 18 ok, $0.020; mistral: 20 calls, 19 ok, $0.010
    stats = {("basic", FIRST): (20, 18, Decimal("0.020")), ("basic", SECOND): (20, 19, Decimal("0.010"))}
    [found] = recommendations(healthy_report(), stats)
    assert (found["kind"], found["subject"]) == ("cheaper_model", f"basic:{SECOND}")
    assert found["figure"] == "0.0005847953"  # 0.020 / 18 - 0.010 / 19, to 1e-10
    assert FIRST in found["message"] and "consider putting it first" in found["message"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((20, 18, "0.020"), (20, 19, "0.030")),  # dearer per success
        ((20, 19, "0.020"), (20, 18, "0.010")),  # cheaper but less reliable
        ((20, 18, "0.020"), (19, 19, "0.001")),  # too few calls of the later model
        ((20, 0, "0.020"), (20, 20, "0.001")),  # no success to compare per success
        ((20, 18, "0.018"), (20, 18, "0.018")),  # the same cost per success is no saving
    ],
)
def test_no_cheaper_model_is_recommended_without_a_saving_a_fair_comparison_or_enough_calls(first, second):
    stats = {
        ("basic", FIRST): (first[0], first[1], Decimal(first[2])),
        ("basic", SECOND): (second[0], second[1], Decimal(second[2])),
    }
    assert recommendations(healthy_report(), stats) == []


def test_a_cheaper_model_is_compared_within_one_tier_only():
    # Both models' records come from different tiers: no comparison is fair
    stats = {("basic", FIRST): (20, 18, Decimal("0.020")), ("premium", SECOND): (20, 20, Decimal("0.001"))}
    assert recommendations(healthy_report(), stats) == []


def test_every_recommendation_has_the_four_fields_and_a_figure_from_the_report():
    report = healthy_report(models={"x/flaky": model(50, 25)}, margin_by_tier={"basic": "-0.2000"})
    report["cost_by_tier"] = {"basic": "12"}
    report["revenue_by_tier"] = {"basic": {"revenue": "10.00"}}
    found = recommendations(report, {}, DEFAULT_THRESHOLDS)
    assert kinds(found) == [("model_failure_rate", "x/flaky"), ("negative_margin", "basic")]
    assert all(set(r) == {"kind", "subject", "message", "figure"} for r in found)
    assert [r["figure"] for r in found] == ["0.5000", "-0.2000"]
