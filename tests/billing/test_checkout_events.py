"""checkout.session.completed provisions the tier bought; every event id counts once."""

from __future__ import annotations

from sqlalchemy import text

from workers.quotas.subscriptions import standing

from .conftest import T0


def _history(db) -> list[tuple[str, str, str, str]]:
    rows = db.execute(text("SELECT from_tier, to_tier, direction, source FROM subscription_changes ORDER BY id"))
    return [tuple(row) for row in rows]


def test_a_completed_checkout_makes_the_user_premium(events, db):
    # Given user-1 is on the free tier
    assert standing(db, "user-1", T0).tier.name == "free"

    # When Stripe reports the completed premium checkout
    result = events.deliver(events.checkout_completed("user-1", "premium", subscription="sub_9", customer="cus_9"))

    # Then the user is premium, with Stripe's ids stored, and the upgrade is in the history
    assert result["outcome"] == "provisioned"
    assert result["type"] == "checkout.session.completed"
    now = standing(db, "user-1", T0)
    assert (now.tier.name, now.status) == ("premium", "active")
    row = db.execute(text("SELECT stripe_customer_id, stripe_subscription_id, state_at FROM subscriptions")).one()
    assert tuple(row) == ("cus_9", "sub_9", T0)
    assert _history(db) == [("free", "premium", "upgrade", "stripe")]


def test_a_replayed_event_is_a_duplicate_and_changes_nothing_more(events, db):
    # Given a completed checkout was applied
    body = events.checkout_completed("user-1", "premium")
    first = events.deliver(body)

    # When the very same event arrives again (a Stripe retry, a redelivered task)
    again = events.deliver(body)

    # Then it is recognised by its id and nothing is applied twice
    assert (first["outcome"], again["outcome"]) == ("provisioned", "duplicate")
    assert again["event_id"] == first["event_id"]
    assert db.execute(text("SELECT id, outcome FROM stripe_events")).all() == [(first["event_id"], "provisioned")]
    assert len(_history(db)) == 1


def test_a_checkout_that_is_not_for_a_subscription_is_ignored_but_recorded(events, db):
    result = events.deliver(events.checkout_completed("user-1", "premium", mode="payment"))

    assert result["outcome"] == "ignored"
    assert db.execute(text("SELECT outcome FROM stripe_events")).scalar() == "ignored"
    assert standing(db, "user-1", T0).tier.name == "free"


def test_an_unpaid_checkout_waits_for_its_delayed_payment(events, db):
    # Given a checkout paid by a delayed method: complete, but not paid yet
    waiting = events.deliver(events.checkout_completed("user-1", "basic", payment_status="unpaid"))
    assert waiting["outcome"] == "awaiting_payment"
    assert standing(db, "user-1", T0).tier.name == "free"

    # When the payment succeeds
    body = events.checkout_completed("user-1", "basic", payment_status="paid")
    paid = events.deliver(body.replace("checkout.session.completed", "checkout.session.async_payment_succeeded"))

    # Then the tier is provisioned
    assert paid["outcome"] == "provisioned"
    assert standing(db, "user-1", T0).tier.name == "basic"


def test_event_types_we_do_not_handle_are_recorded_as_ignored(events, db):
    result = events.deliver(events.event("customer.created", {"id": "cus_1", "object": "customer"}))

    assert result["outcome"] == "ignored"
    assert db.execute(text("SELECT type, outcome FROM stripe_events")).one() == ("customer.created", "ignored")
