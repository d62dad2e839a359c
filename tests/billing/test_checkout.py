"""Creating Checkout Sessions against a local fake of the Stripe API."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from workers.billing import (
    AlreadySubscribed,
    StripeRejected,
    StripeUnavailable,
    TierNotForSale,
    UnknownTier,
    create_checkout_session,
)

from .conftest import PRICES, T0

SUCCESS, CANCEL = "https://litink.test/billing/success", "https://litink.test/billing/cancel"


def test_a_checkout_session_is_a_subscription_for_the_tiers_price_with_the_user_in_its_metadata(fake_stripe):
    # Given premium has a price
    # When a session is created for user-7
    session = create_checkout_session("user-7", "premium", SUCCESS, CANCEL, now=T0)

    # Then Stripe was asked for a subscription of that price, naming the user three ways
    assert session.as_dict() == {
        "checkout_url": f"https://checkout.stripe.test/c/pay/{session.session_id}",
        "session_id": session.session_id,
    }
    (request,) = fake_stripe.requests
    assert request["authorization"] == "Bearer sk_test_litink"
    assert request["params"] == {
        "mode": "subscription",
        "line_items[0][price]": PRICES["premium"],
        "line_items[0][quantity]": "1",
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "client_reference_id": "user-7",
        "metadata[user_id]": "user-7",
        "metadata[tier]": "premium",
        "subscription_data[metadata][user_id]": "user-7",
        "subscription_data[metadata][tier]": "premium",
    }
    # And it carried an idempotency key
    assert request["idempotency_key"].startswith("litink-checkout-")


def test_the_same_request_in_the_same_scope_gets_the_same_session_back(fake_stripe):
    # Given a session created in the scope of one task id
    first = create_checkout_session("user-7", "premium", SUCCESS, CANCEL, idempotency_scope="task-1")

    # When the same task asks again (a retry, a redelivery), and another task asks too
    again = create_checkout_session("user-7", "premium", SUCCESS, CANCEL, idempotency_scope="task-1")
    other = create_checkout_session("user-7", "premium", SUCCESS, CANCEL, idempotency_scope="task-2")

    # Then the retry sent the same key and got the same session; the other task got its own
    keys = [r["idempotency_key"] for r in fake_stripe.requests]
    assert keys[0] == keys[1] != keys[2]
    assert again == first != other
    assert fake_stripe.sessions_created == 2


def test_without_a_scope_the_key_is_stable_within_the_hour_and_changes_after(fake_stripe):
    # When the same request is made twice in one hour, then again two hours later
    for moment in (T0, T0.replace(minute=30), T0.replace(hour=T0.hour + 2)):
        create_checkout_session("user-7", "basic", SUCCESS, CANCEL, now=moment)

    # Then the first two share a key
    keys = [r["idempotency_key"] for r in fake_stripe.requests]
    assert keys[0] == keys[1] != keys[2]


def test_a_tier_without_a_price_is_refused_naming_the_setting_to_set(fake_stripe):
    # Given standard has no STRIPE_PRICE_STANDARD
    # When a session is asked for
    with pytest.raises(TierNotForSale, match="STRIPE_PRICE_STANDARD") as caught:
        create_checkout_session("user-7", "standard", SUCCESS, CANCEL)

    # Then it is a caller error, and Stripe was never called
    assert isinstance(caught.value, ValueError)
    assert fake_stripe.requests == []


def test_the_free_tier_and_unknown_tiers_are_not_for_sale(fake_stripe):
    with pytest.raises(TierNotForSale, match="STRIPE_PRICE_FREE"):
        create_checkout_session("user-7", "free", SUCCESS, CANCEL)
    with pytest.raises(UnknownTier, match="unknown tier 'platinum'"):
        create_checkout_session("user-7", "platinum", SUCCESS, CANCEL)
    assert fake_stripe.requests == []


def test_a_returning_customer_keeps_their_stripe_customer(fake_stripe, db):
    # Given user-7 once subscribed, as Stripe customer cus_old
    db.execute(
        text(
            "INSERT INTO subscriptions (user_id, tier, status, stripe_customer_id)"
            " VALUES ('user-7', 'basic', 'canceled', 'cus_old')"
        )
    )

    # When they buy premium
    create_checkout_session("user-7", "premium", SUCCESS, CANCEL)

    # Then the session is for that customer
    assert fake_stripe.requests[0]["params"]["customer"] == "cus_old"


def test_a_user_already_on_the_tier_is_refused(fake_stripe, db):
    # Given user-7 has an active premium subscription
    db.execute(text("INSERT INTO subscriptions (user_id, tier, status) VALUES ('user-7', 'premium', 'active')"))

    # When they try to buy premium again
    with pytest.raises(AlreadySubscribed):
        create_checkout_session("user-7", "premium", SUCCESS, CANCEL)

    # Then nobody was charged twice
    assert fake_stripe.requests == []


@pytest.mark.parametrize(
    ("status", "error"), [(503, StripeUnavailable), (500, StripeUnavailable), (400, StripeRejected)]
)
def test_stripe_failures_are_translated_into_retryable_or_permanent_errors(fake_stripe, status, error):
    # Given Stripe answers the next request with an error
    fake_stripe.failures.append(status)

    # When a session is asked for, then the SDK's error arrives translated
    with pytest.raises(error, match=f"HTTP {status}"):
        create_checkout_session("user-7", "premium", SUCCESS, CANCEL)
