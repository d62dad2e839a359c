"""The report as plain text (``litink costs``, e-mails, logs): the same figures as the JSON,
money in its context's decimals, ratios to a tenth of a percent."""

from __future__ import annotations

import pytest

from tests.reporting.sample_report import sample_report
from workers.money import display_usd
from workers.reporting.text import render_text

pytestmark = pytest.mark.unit


def line_of(text: str, start: str) -> str:
    [line] = [line for line in text.splitlines() if line.strip("│ ").startswith(start + " ")]
    return line


def test_the_heading_gives_the_period_the_totals_and_the_exposure():
    report = sample_report()
    text = render_text(report)
    assert "Cost and margin, 2025-03-01 to 2025-03-03 (3 days)" in text
    assert "cost $15.25332000   revenue $42.20   margin 63.8%" in text  # 0.6385, half to even
    assert "exposure (not in cost): $0.00040000 estimated for 1 unknown call(s); 0 pending" in text


def test_each_tier_has_its_row_with_its_figures():
    report = sample_report()
    text = render_text(report, width=160)
    premium = line_of(text, "premium")
    for shown in (display_usd(report["cost_by_tier"]["premium"]), "$9.58", "-51.4%", "3"):
        assert shown in premium, (shown, premium)
    enterprise = line_of(text, "enterprise")
    assert "$0" in enterprise and "n/a" in enterprise  # custom price: no list revenue, no margin


def test_each_model_has_its_calls_failure_rate_and_latencies():
    text = render_text(sample_report(), width=160)
    mini = line_of(text, "openai/gpt-4o-mini")
    for shown in ("30", "10.0%", "$14.50000000", "420", "900"):
        assert shown in mini, (shown, mini)


def test_recommendations_are_listed_only_when_there_are_some():
    assert "Recommendations" not in render_text(sample_report())
    report = sample_report(
        recommendations=[
            {"kind": "negative_margin", "subject": "premium", "message": "Tier premium loses.", "figure": "-1"}
        ]
    )
    text = render_text(report)
    assert "Recommendations" in text and "  - Tier premium loses." in text


def test_the_text_has_no_colour_codes():
    assert "\x1b[" not in render_text(sample_report())
