"""A plan change is paid before it is granted: an upgrade whose charge fails leaves the user on
the tier they paid for, and the new tier arrives with the payment."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from config import get_catalog, get_settings
from config.tiers import CATALOG_PATH
from workers.billing import AlreadySubscribed, create_checkout_session
from workers.quotas.subscriptions import standing

from .conftest import PRICES, T0, Events, FakeStripe

UPDATED = "customer.subscription.updated"
SUCCESS, CANCEL = "https://litink.test/ok", "https://litink.test/no"
BEYOND_GRACE = timedelta(days=8)  # PAST_DUE_GRACE_DAYS is 7


def _as_stripe_sends(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(obj))


def _history(db: Connection) -> list[tuple[str, str]]:
    rows = db.execute(text("SELECT from_tier, to_tier FROM subscription_changes ORDER BY id"))
    return [(row.from_tier, row.to_tier) for row in rows]


def _basic_subscriber(fake: FakeStripe, events: Events) -> dict[str, Any]:
    sub = fake.put_subscription("sub_up", tier="basic", customer="cus_up", user_id="user-up", created=T0)
    assert events.deliver(events.event("customer.subscription.created", sub, created=T0))["outcome"] == "updated"
    return sub


def test_an_upgrade_whose_payment_fails_keeps_the_old_tier_until_the_invoice_is_paid(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given a basic subscriber whose card now declines
    _basic_subscriber(fake_stripe, events)
    fake_stripe.declining.add("cus_up")

    # When they upgrade to premium, and the charge for the difference fails
    answer = create_checkout_session("user-up", "premium", SUCCESS, CANCEL)
    assert answer.subscription_id == "sub_up"
    held = fake_stripe.subscriptions["sub_up"]
    unpaid = fake_stripe.invoices[held["latest_invoice"]]
    assert unpaid["status"] == "open"

    # And Stripe reports the subscription as it now stands, and the failed charge
    t1 = T0 + timedelta(days=1)
    updated = events.deliver(events.event(UPDATED, _as_stripe_sends(held), created=t1), now=t1)
    failed = events.deliver(events.event("invoice.payment_failed", _as_stripe_sends(unpaid), created=t1), now=t1)

    # Then the user keeps basic, with no grace period running out on them
    for moment in (t1, t1 + BEYOND_GRACE):
        now = standing(db, "user-up", moment)
        assert (now.tier.name, now.status) == ("basic", "active")
    assert (updated["outcome"], failed["outcome"]) == ("updated", "plan_change_unpaid")

    # When the customer pays the invoice (a new card) and Stripe applies the change
    t2 = T0 + timedelta(days=2)
    paid = fake_stripe.pay("sub_up")
    renewed = events.deliver(events.event("invoice.paid", paid, created=t2), now=t2)
    # (a proration runs to the period's end: the billing period does not start again)
    assert standing(db, "user-up", t2).period_start == T0
    applied = events.deliver(
        events.event(UPDATED, _as_stripe_sends(fake_stripe.subscriptions["sub_up"]), created=t2), now=t2
    )

    # Then premium applies, and the history shows the one upgrade, when it was paid for
    assert (renewed["outcome"], applied["outcome"]) == ("renewed", "updated")
    assert standing(db, "user-up", t2).tier.name == "premium"
    assert _history(db) == [("free", "basic"), ("basic", "premium")]


def test_an_upgrade_that_is_paid_applies_at_once(fake_stripe: FakeStripe, events: Events, db: Connection) -> None:
    _basic_subscriber(fake_stripe, events)

    create_checkout_session("user-up", "premium", SUCCESS, CANCEL)

    held = fake_stripe.subscriptions["sub_up"]
    assert fake_stripe.invoices[held["latest_invoice"]]["status"] == "paid"
    t1 = T0 + timedelta(days=1)
    events.deliver(events.event(UPDATED, _as_stripe_sends(held), created=t1), now=t1)
    assert standing(db, "user-up", t1).tier.name == "premium"


def test_a_price_raised_elsewhere_without_payment_grants_no_grace_on_the_higher_tier(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given a basic subscriber whose card declines
    sub = _basic_subscriber(fake_stripe, events)
    fake_stripe.declining.add("cus_up")

    # When the price is raised with Stripe's default payment behaviour (say, in the dashboard):
    # the new price applies at once and the subscription falls past due
    fake_stripe.answer(
        "POST",
        "/v1/subscriptions/sub_up",
        {},
        f"items[0][id]={sub['items']['data'][0]['id']}&items[0][price]={PRICES['professional']}"
        "&proration_behavior=always_invoice",
    )
    held = _as_stripe_sends(fake_stripe.subscriptions["sub_up"])
    assert (held["status"], held["items"]["data"][0]["price"]["id"]) == ("past_due", PRICES["professional"])
    t1 = T0 + timedelta(days=1)
    events.deliver(events.event(UPDATED, held, created=t1), now=t1)

    # Then the grace period keeps the tier paid for (basic), never professional
    assert standing(db, "user-up", t1).tier.name == "basic"
    assert _history(db) == [("free", "basic")]

    # When it is paid, Stripe's update says active: professional applies
    t2 = T0 + timedelta(days=2)
    fake_stripe.pay("sub_up")
    events.deliver(events.event(UPDATED, _as_stripe_sends(fake_stripe.subscriptions["sub_up"]), created=t2), now=t2)
    assert standing(db, "user-up", t2).tier.name == "professional"


# A downgrade waits for the end of the period already paid for (the catalog's billing.downgrade).


def _premium_subscriber(fake: FakeStripe, events: Events) -> None:
    sub = fake.put_subscription("sub_down", tier="premium", customer="cus_down", user_id="user-down", created=T0)
    assert events.deliver(events.event("customer.subscription.created", sub, created=T0))["outcome"] == "updated"


def test_a_downgrade_takes_effect_when_the_period_paid_for_ends(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given a premium subscriber, in the first day of a thirty-day period
    _premium_subscriber(fake_stripe, events)

    # When they ask for basic
    answer = create_checkout_session("user-down", "basic", SUCCESS, CANCEL)

    # Then Stripe keeps the premium price for the period paid for, and the user keeps premium
    assert answer.subscription_id == "sub_down"
    held = _as_stripe_sends(fake_stripe.subscriptions["sub_down"])
    assert held["items"]["data"][0]["price"]["id"] == PRICES["premium"]
    t1 = T0 + timedelta(days=1)
    events.deliver(events.event(UPDATED, held, created=t1), now=t1)  # Stripe reports the schedule attached
    assert standing(db, "user-down", t1).tier.name == "premium"

    # When the period ends, the cheaper price starts with the next one
    ended = T0 + timedelta(days=30)
    renewed = fake_stripe.end_period("sub_down")
    assert events.deliver(events.event(UPDATED, renewed, created=ended), now=ended)["outcome"] == "updated"

    # Then the user is on basic from then on
    assert standing(db, "user-down", ended).tier.name == "basic"
    assert _history(db) == [("free", "premium"), ("premium", "basic")]


def test_an_upgrade_after_a_scheduled_downgrade_cancels_the_downgrade(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given a premium subscriber with a downgrade to basic scheduled for the period's end
    _premium_subscriber(fake_stripe, events)
    create_checkout_session("user-down", "basic", SUCCESS, CANCEL)
    assert fake_stripe.subscriptions["sub_down"]["schedule"] is not None

    # When they upgrade to professional instead (and pay for it)
    create_checkout_session("user-down", "professional", SUCCESS, CANCEL)
    t1 = T0 + timedelta(days=1)
    events.deliver(events.event(UPDATED, _as_stripe_sends(fake_stripe.subscriptions["sub_down"]), created=t1), now=t1)
    assert standing(db, "user-down", t1).tier.name == "professional"

    # Then the period's end does not bring the downgrade back
    ended = T0 + timedelta(days=30)
    events.deliver(events.event(UPDATED, fake_stripe.end_period("sub_down"), created=ended), now=ended)
    assert standing(db, "user-down", ended).tier.name == "professional"


def test_a_catalog_that_says_immediately_downgrades_at_once(
    fake_stripe: FakeStripe, events: Events, db: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the catalog says a downgrade applies immediately
    catalog = tmp_path / "tiers.toml"
    catalog.write_text(CATALOG_PATH.read_text().replace('downgrade = "period_end"', 'downgrade = "immediately"'))
    monkeypatch.setenv("TIER_CATALOG_PATH", str(catalog))
    get_settings.cache_clear()
    get_catalog.cache_clear()
    try:
        assert get_catalog().billing.downgrade == "immediately"
        _premium_subscriber(fake_stripe, events)

        # When a premium subscriber asks for basic
        create_checkout_session("user-down", "basic", SUCCESS, CANCEL)

        # Then the price changes now, with no schedule
        held = fake_stripe.subscriptions["sub_down"]
        assert held["items"]["data"][0]["price"]["id"] == PRICES["basic"]
        assert fake_stripe.schedules == {}
    finally:
        get_catalog.cache_clear()


def test_asking_for_the_current_tier_calls_off_a_scheduled_downgrade(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given a premium subscriber with a downgrade to basic scheduled for the period's end
    _premium_subscriber(fake_stripe, events)
    create_checkout_session("user-down", "basic", SUCCESS, CANCEL)

    # When they ask for premium again, the schedule is released
    answer = create_checkout_session("user-down", "premium", SUCCESS, CANCEL)
    assert (answer.session_id, answer.subscription_id) == (None, "sub_down")
    assert fake_stripe.subscriptions["sub_down"]["schedule"] is None

    # And the period's end keeps them on premium
    ended = T0 + timedelta(days=30)
    events.deliver(events.event(UPDATED, fake_stripe.end_period("sub_down"), created=ended), now=ended)
    assert standing(db, "user-down", ended).tier.name == "premium"

    # Asked again, with nothing to call off, it is the caller's mistake
    with pytest.raises(AlreadySubscribed):
        create_checkout_session("user-down", "premium", SUCCESS, CANCEL)
