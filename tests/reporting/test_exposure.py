"""Estimated cost (attempts whose worker died mid-call) is shown apart, as exposure, never
mixed into the provider-reported cost."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text

from tests.reporting.test_cost_report import add_call, add_job, at
from workers.reporting.html import render_html
from workers.reporting.report import build_report
from workers.reporting.text import render_text


def test_an_unknown_attempt_is_exposure_and_not_cost_in_every_view(db):
    # Given a job with one attempt lost with its worker (estimated) and one answered
    job_id = add_job(db, "free", "succeeded")
    db.execute(
        text(
            "INSERT INTO llm_calls (job_id, attempt, tier, model, cost_usd, cost_source, status, estimate_usd,"
            " created_at) VALUES (:j, 1, 'free', 'm', 0.005, 'estimate', 'unknown', 0.005, :at)"
        ),
        {"j": job_id, "at": at("2025-03-10")},
    )
    add_call(db, job_id, 2, "free", "m", "0.001")
    # When the report is built
    report = build_report(db, date(2025, 3, 1), date(2025, 3, 31))
    # Then the cost is what the provider reported, and the estimate is exposure
    assert Decimal(report["total_cost"]) == Decimal("0.001")
    assert report["cost_by_tier"]["free"] == "0.001"
    assert report["exposure"]["estimated_cost"] == "0.005"
    assert report["exposure"]["unknown_calls"] == 1
    assert report["exposure"]["by_tier"]["free"] == {"unknown_calls": 1, "estimated_cost": "0.005"}
    assert report["models"]["m"]["by_status"]["unknown"] == 1
    assert "exposure (not in cost): $0.00500000 estimated for 1 unknown call(s)" in render_text(report)
    assert "Exposure (estimated, not in cost)" in render_html(report)
