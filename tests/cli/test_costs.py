"""`litink costs`: the report an operator reads, in text, JSON and HTML."""

from decimal import Decimal


def test_costs_reports_cost_by_tier_and_model_revenue_and_margin_after_real_jobs(
    worker, client, faults, subscribe, litink, tmp_path
):
    # Given jobs on two tiers and a paying subscriber
    subscribe("payer", "premium")
    for user in ("payer", "freeloader"):
        assert client.result(client.submit_script(user, "A parade."), timeout=30)["status"] == "succeeded"
    reported = sum(Decimal(c["cost"]) for c in faults.calls())
    # When the operator asks for the report
    report = litink("costs", "--json")
    # Then cost is split by tier and model, summing to what the provider reported, with revenue and margin
    assert Decimal(report["total_cost"]) == reported
    assert Decimal(report["cost_by_tier"]["premium"]) + Decimal(report["cost_by_tier"]["free"]) == reported
    assert set(report["cost_by_model"]) >= {"openai/gpt-4o-mini", "meta-llama/llama-3.2-3b-instruct"}
    assert Decimal(report["total_revenue"]) > 0 and report["profit_margin"] is not None
    html = tmp_path / "costs.html"
    litink("costs", "--html", str(html))
    assert html.read_text().lstrip().lower().startswith("<!doctype html>")
    assert report["total_cost"] in html.read_text()
    assert "By tier" in litink("costs")
