"""Without usage.cost, a call is priced from model_prices, else from the tier catalog."""

from decimal import Decimal

from sqlalchemy import text

from config import get_catalog
from workers.errors import CallUsage
from workers.llm.costs import catalog_prices, price


def test_the_cost_source_falls_back_from_provider_to_catalog_to_config(db):
    tier = get_catalog().tier("free")
    catalog_prices.invalidate()
    usage = CallUsage(prompt_tokens=1000, completion_tokens=500, model_served="m/listed")
    # No provider cost and no catalog price: the tier's configured price
    assert price(db, usage, "m/listed", tier) == (1000 * tier.price.prompt + 500 * tier.price.completion, "config")
    # With the model in model_prices: the catalog price, exactly
    db.execute(
        text(
            "INSERT INTO model_prices (model, prompt_price, completion_price, listed, synced_at)"
            " VALUES ('m/listed', 0.000000123, 0.000000456, true, now())"
        )
    )
    catalog_prices.invalidate()
    assert price(db, usage, "m/listed", tier) == (Decimal("0.000351"), "catalog")
    # The provider's own figure always wins, to the digit
    reported = CallUsage(1000, 500, cost=Decimal("0.000000000123456789"))
    assert price(db, reported, "m/listed", tier) == (Decimal("0.000000000123456789"), "provider")
    # A failed call that reported nothing cost nothing
    assert price(db, CallUsage(), "m/listed", tier) == (Decimal(0), "none")
    catalog_prices.invalidate()
