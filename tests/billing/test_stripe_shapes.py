"""The handlers meet Stripe's own object shapes, not only the ones this project writes.

The objects come from Stripe's published fixtures (``fixtures/stripe_fixtures3.json``, a trimmed
copy of ``openapi/fixtures3.json`` in github.com/stripe/openapi; its ``_source`` says which
commit). Each test sets only the fields its scenario depends on (ids, the price, the status,
the periods, our metadata) and keeps every other field as Stripe published it. Each event is
signed with the SDK's own helper and handled by the contract's entry point.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy import Connection, text

from workers.billing import handle_event
from workers.quotas.subscriptions import standing

from .conftest import PRICES, STRIPE_FIXTURES, T0, WEBHOOK_SECRET, FakeStripe, unix

FIXTURES = STRIPE_FIXTURES
API_VERSION = "2026-07-29.dahlia"  # the version those fixtures were published for
USER, CUSTOMER = "user-fx", FIXTURES["customer"]["id"]
SUB = FIXTURES["subscription"]["id"]
START, END = T0, T0 + timedelta(days=30)


def _fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(FIXTURES[name])


def subscription(*, price: str, status: str = "active", created: int = unix(T0)) -> dict[str, Any]:
    sub = _fixture("subscription")
    sub.update(status=status, customer=CUSTOMER, created=created, metadata={"user_id": USER})
    item = sub["items"]["data"][0]
    item["price"]["id"] = price
    item.update(current_period_start=unix(START), current_period_end=unix(END))
    return sub


def invoice(*, paid: bool) -> dict[str, Any]:
    inv = _fixture("invoice")
    inv.update(
        customer=CUSTOMER,
        billing_reason="subscription_cycle",
        status="paid" if paid else "open",
        amount_paid=inv["amount_due"] if paid else 0,
    )
    # A subscription's invoice names it under parent.subscription_details (API 2025-03-31+).
    inv["parent"] = {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"subscription": SUB, "metadata": {"user_id": USER}},
    }
    line = inv["lines"]["data"][0]
    line["period"] = {"start": unix(END), "end": unix(END + timedelta(days=30))}
    line["parent"]["type"] = "subscription_item_details"
    line["parent"]["subscription_item_details"]["subscription"] = SUB
    # The generated fixture omits price_details, which a subscription line carries.
    line["pricing"]["price_details"] = {"price": PRICES["premium"], "product": "prod_QXg1hqf4jFNsqG"}
    return inv


def checkout_session() -> dict[str, Any]:
    session = _fixture("checkout.session")
    session.update(
        mode="subscription",
        status="complete",
        payment_status="paid",
        customer=CUSTOMER,
        subscription=SUB,
        client_reference_id=USER,
        metadata={"user_id": USER, "tier": "premium"},
        payment_intent=None,
    )
    return session


def deliver(type_: str, obj: dict[str, Any], *, created: int, event_id: str) -> dict[str, Any]:
    """Wrap ``obj`` in Stripe's event envelope, sign it with the SDK's helper, handle it."""
    event = _fixture("event")
    event.update(id=event_id, type=type_, created=created, api_version=API_VERSION, data={"object": obj})
    body = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    return handle_event(body, header, now=T0 + timedelta(seconds=created - unix(T0))).as_dict()


def _row(db: Connection) -> Any:
    return db.execute(text("SELECT * FROM subscriptions WHERE user_id = :u"), {"u": USER}).one()


def test_subscription_created_updated_and_deleted_in_stripes_shapes(db: Connection) -> None:
    t = unix(T0)
    created = deliver(
        "customer.subscription.created", subscription(price=PRICES["basic"]), created=t, event_id="evt_fx_1"
    )
    assert created["outcome"] == "updated"
    row = _row(db)
    assert (row.tier, row.status, row.stripe_subscription_id, row.stripe_customer_id) == (
        "basic",
        "active",
        SUB,
        CUSTOMER,
    )
    assert (row.current_period_start, row.current_period_end) == (START, END)

    updated = deliver(
        "customer.subscription.updated",
        subscription(price=PRICES["professional"]),
        created=t + 60,
        event_id="evt_fx_2",
    )
    assert updated["outcome"] == "updated"
    assert standing(db, USER, T0 + timedelta(minutes=1)).tier.name == "professional"

    deleted = deliver(
        "customer.subscription.deleted",
        subscription(price=PRICES["professional"], status="canceled"),
        created=t + 120,
        event_id="evt_fx_3",
    )
    assert deleted["outcome"] == "canceled"
    assert standing(db, USER, T0 + timedelta(minutes=2)).tier.name == "free"
    history = db.execute(text("SELECT from_tier, to_tier FROM subscription_changes ORDER BY id")).all()
    assert [tuple(r) for r in history] == [("free", "basic"), ("basic", "professional"), ("professional", "free")]


def test_checkout_session_completed_in_stripes_shape_provisions_the_retrieved_subscriptions_price(
    fake_stripe: FakeStripe, db: Connection
) -> None:
    # Stripe holds the subscription the session created, in its own shape
    fake_stripe.subscriptions[SUB] = subscription(price=PRICES["premium"])

    result = deliver("checkout.session.completed", checkout_session(), created=unix(T0), event_id="evt_fx_4")

    assert result["outcome"] == "provisioned"
    assert (_row(db).tier, _row(db).stripe_subscription_id) == ("premium", SUB)
    assert [r["path"] for r in fake_stripe.requests] == [f"/v1/subscriptions/{SUB}"]


def test_invoice_payment_failed_then_paid_in_stripes_shapes(db: Connection) -> None:
    t = unix(T0)
    deliver("customer.subscription.created", subscription(price=PRICES["premium"]), created=t, event_id="evt_fx_5")

    failed = deliver("invoice.payment_failed", invoice(paid=False), created=unix(END), event_id="evt_fx_6")
    assert failed["outcome"] == "past_due"
    assert (_row(db).status, _row(db).past_due_since) == ("past_due", END)

    paid = deliver("invoice.paid", invoice(paid=True), created=unix(END) + 3600, event_id="evt_fx_7")
    assert paid["outcome"] == "renewed"
    row = _row(db)
    assert (row.tier, row.status, row.past_due_since) == ("premium", "active", None)
    assert (row.current_period_start, row.current_period_end) == (END, END + timedelta(days=30))


@pytest.mark.parametrize("type_", ["customer.created", "customer.updated"])
def test_a_customer_event_in_stripes_shape_is_kept_and_ignored(db: Connection, type_: str) -> None:
    customer = _fixture("customer")
    customer["metadata"] = {"user_id": USER}

    result = deliver(type_, customer, created=unix(T0), event_id=f"evt_fx_{type_}")

    assert result["outcome"] == "ignored"
    assert db.execute(text("SELECT type, state FROM stripe_events")).one() == (type_, "ignored")
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0
