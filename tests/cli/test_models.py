"""`litink models sync|list`: OpenRouter's price list, per token, in Decimal."""

from decimal import Decimal

from sqlalchemy import text

from emulator import find_model


def test_models_sync_stores_exact_prices_and_list_shows_every_tier_model(emulator, litink, db):
    # When an operator syncs the catalog from the provider
    summary = litink("models", "sync", "--json")
    assert summary["priced"] >= 10 and summary["delisted"] == 0
    # Then prices are stored exactly as the provider's strings
    row = db.execute(
        text("SELECT prompt_price, completion_price, context_length FROM model_prices WHERE model = 'openai/gpt-4o'")
    ).one()
    listed = find_model("openai/gpt-4o")
    assert row.prompt_price == Decimal(str(listed.prompt_price)) and row.context_length == listed.context_length
    # And the list shows each tier's chain with availability
    rows = litink("models", "list", "--json")
    assert {(r["tier"], r["role"], r["model"]) for r in rows} >= {
        ("free", "primary", "meta-llama/llama-3.2-3b-instruct"),
        ("enterprise", "fallback 1", "anthropic/claude-3-opus-20240229"),
    }
    assert all(r["listed"] for r in rows)


def test_a_model_that_disappears_from_the_list_is_marked_unlisted(emulator, db):
    from workers.llm import model_catalog
    from workers.quotas.periods import utcnow

    db.execute(
        text(
            "INSERT INTO model_prices (model, prompt_price, completion_price, listed, synced_at)"
            " VALUES ('retired/model', 0.000001, 0.000002, true, now() - interval '1 day')"
        )
    )
    summary = model_catalog.sync(db, model_catalog.fetch_models(), utcnow())
    assert summary["delisted"] == 1
    assert db.execute(text("SELECT listed FROM model_prices WHERE model = 'retired/model'")).scalar() is False
