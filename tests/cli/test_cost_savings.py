"""`litink costs` shows what the response cache saved; `litink models health` shows shared health."""

from decimal import Decimal

from workers.money import display_usd

FREE_PRIMARY = "meta-llama/llama-3.2-3b-instruct"


def test_costs_show_cache_hits_hit_rate_and_money_saved_by_tier_and_kind(worker, client, faults, litink, tmp_path):
    # Given an analysis bought once and then served from the cache
    text_ = "A lighthouse keeper writes letters to the sea."
    first = client.result(client.submit_analysis("keeper-1", text_), timeout=30)
    second = client.result(client.submit_analysis("keeper-2", text_), timeout=30)
    assert second["cache_hit"] is True
    # When the operator asks for the report
    report = litink("costs", "--json")
    # Then the free tier's analyses show one hit of two, saving what the first one cost
    entry = report["savings"]["cache"]["by_tier"]["free"]["analysis"]
    assert entry == {
        "succeeded_jobs": 2,
        "hits": 1,
        "hit_rate": "0.5000",
        "saved_usd": first["usage"]["cost_usd"],
    }
    assert Decimal(report["savings"]["cache"]["total"]["saved_usd"]) == Decimal(first["usage"]["cost_usd"])
    # And the hit is not counted as a model call
    assert report["models"][FREE_PRIMARY]["calls"] == 1
    # And the text and HTML views show the same figures
    assert f"saved {display_usd(first['usage']['cost_usd'])}" in litink("costs")
    html = tmp_path / "costs.html"
    litink("costs", "--html", str(html))
    page = html.read_text()
    assert "Response cache savings" in page and 'data-metric="savings"' in page and 'data-value="0.5000"' in page


def test_models_health_lists_every_catalog_model_with_its_state(worker, client, faults, litink):
    # Given the free primary failing long enough to be marked
    faults.inject(FREE_PRIMARY, "unavailable", times=-1)
    for i in range(2):
        assert client.result(client.submit_script(f"health-{i}", f"Outage {i}."), timeout=60)["status"] == "succeeded"
    # When the operator asks
    report = litink("models", "health", "--json")
    rows = {r["model"]: r for r in report["models"]}
    # Then the primary is unhealthy, with its reason and the tiers it serves, and the others are healthy
    assert rows[FREE_PRIMARY]["state"] == "unhealthy" and rows[FREE_PRIMARY]["used_by"] == ["free"]
    assert "consecutive failures" in rows[FREE_PRIMARY]["reason"]
    assert rows["google/gemini-flash-1.5-8b"]["healthy"] is True
    assert "unhealthy" in litink("models", "health")
