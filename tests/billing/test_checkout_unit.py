"""What a Checkout Session asks Stripe for, and its idempotency key, without Stripe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.billing.checkout import IDEMPOTENCY_WINDOW_S, CheckoutSession, checkout_params, idempotency_key

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def params(**overrides) -> dict:
    fields = {
        "user_id": "user-1",
        "tier": "premium",
        "price": "price_premium_test",
        "success_url": "https://app.example/ok",
        "cancel_url": "https://app.example/cancel",
        "customer_id": None,
    }
    fields.update(overrides)
    return checkout_params(**fields)


def test_a_session_buys_one_subscription_to_the_price_and_names_the_user_everywhere():
    p = params()
    assert p["mode"] == "subscription"
    assert p["line_items"] == [{"price": "price_premium_test", "quantity": 1}]
    assert p["client_reference_id"] == "user-1"
    # the metadata comes back on the session's webhooks and on the subscription's
    assert p["metadata"] == {"user_id": "user-1", "tier": "premium"}
    assert p["subscription_data"]["metadata"] == p["metadata"]
    assert p["subscription_data"]["metadata"] is not p["metadata"]
    assert "customer" not in p


def test_a_returning_subscriber_keeps_their_stripe_customer():
    assert params(customer_id="cus_42")["customer"] == "cus_42"


def test_the_same_request_in_the_same_window_has_the_same_key():
    window_start = datetime.fromtimestamp((int(NOW.timestamp()) // IDEMPOTENCY_WINDOW_S) * IDEMPOTENCY_WINDOW_S, tz=UTC)
    key = idempotency_key(params(), scope=None, now=window_start)
    assert key.startswith("litink-checkout-") and len(key) == len("litink-checkout-") + 48
    assert idempotency_key(params(), scope=None, now=window_start + timedelta(seconds=IDEMPOTENCY_WINDOW_S - 1)) == key
    assert idempotency_key(params(), scope=None, now=window_start + timedelta(seconds=IDEMPOTENCY_WINDOW_S)) != key


def test_another_request_or_another_scope_has_another_key():
    key = idempotency_key(params(), scope="order-1", now=NOW)
    assert idempotency_key(params(), scope="order-1", now=NOW + timedelta(days=1)) == key  # a scope ignores time
    assert idempotency_key(params(), scope="order-2", now=NOW) != key
    assert idempotency_key(params(tier="basic", price="price_basic_test"), scope="order-1", now=NOW) != key
    assert idempotency_key(params(customer_id="cus_42"), scope="order-1", now=NOW) != key


def test_a_plan_change_answers_with_its_subscription_and_no_session():
    assert CheckoutSession("https://checkout", "cs_1").as_dict() == {
        "checkout_url": "https://checkout",
        "session_id": "cs_1",
    }
    assert CheckoutSession("https://app.example/ok", None, "sub_1").as_dict() == {
        "checkout_url": "https://app.example/ok",
        "session_id": None,
        "subscription_id": "sub_1",
    }
