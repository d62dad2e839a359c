"""One subscription per user, priced by what Stripe says: a plan change never bills twice, the
tier is the price paid for, and the history matches what users got."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text

from db.session import transaction
from tests.waiting import wait_until
from workers.app import app
from workers.billing import create_checkout_session
from workers.billing.state import expire_grace_periods
from workers.quotas.subscriptions import standing

from .conftest import PRICES, T0, Events, FakeStripe, sign
from .processes import Receiver, receiver_process

RESULT_TIMEOUT_S = 30
URLS = {"success_url": "https://litink.test/ok", "cancel_url": "https://litink.test/no"}
GRACE = timedelta(days=7)


@pytest.fixture(scope="module")
def receiver(services: None) -> Iterator[Receiver]:
    with receiver_process() as running:
        yield running


def _history(db: Connection, user_id: str) -> list[tuple[Any, ...]]:
    rows = db.execute(
        text("SELECT from_tier, to_tier, note FROM subscription_changes WHERE user_id = :u ORDER BY id"),
        {"u": user_id},
    )
    return [tuple(r) for r in rows]


def _deliver_and_wait(receiver: Receiver, db: Connection, body: str) -> str:
    """Stripe posts ``body``; the worker applies it. Returns the stored outcome."""
    assert receiver.post(body, sign(body)).status_code == 200
    event_id = json.loads(body)["id"]
    query = text("SELECT outcome FROM stripe_events WHERE id = :id AND state <> 'received'")
    return wait_until(lambda: db.execute(query, {"id": event_id}).scalar(), timeout=RESULT_TIMEOUT_S)


def test_upgrading_a_subscribed_user_changes_the_price_of_their_one_subscription(
    worker: Any, receiver: Receiver, fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given user-up bought basic through checkout, paid, and Stripe told us
    bought = app.send_task("litink.create_checkout_session", kwargs={"user_id": "user-up", "tier": "basic", **URLS})
    session = bought.get(timeout=RESULT_TIMEOUT_S)
    sub = fake_stripe.complete(session["session_id"], created=T0)
    completed = events.event(
        "checkout.session.completed",
        {
            "id": session["session_id"],
            "object": "checkout.session",
            "mode": "subscription",
            "payment_status": "paid",
            "client_reference_id": "user-up",
            "customer": sub["customer"],
            "subscription": sub["id"],
            "metadata": {"user_id": "user-up", "tier": "basic"},
        },
        created=T0,
    )
    assert _deliver_and_wait(receiver, db, completed) == "provisioned"

    # When they buy premium
    answer = app.send_task(
        "litink.create_checkout_session", kwargs={"user_id": "user-up", "tier": "premium", **URLS}
    ).get(timeout=RESULT_TIMEOUT_S)

    # Then no second checkout was opened: their subscription's price was changed, prorated
    assert answer == {"checkout_url": URLS["success_url"], "session_id": None, "subscription_id": sub["id"]}
    assert fake_stripe.sessions_created == 1
    (live,) = fake_stripe.live_subscriptions(sub["customer"])
    assert len(fake_stripe.subscriptions) == 1
    assert live["id"] == sub["id"]
    assert live["items"]["data"][0]["price"]["id"] == PRICES["premium"]
    assert live["proration_behavior"] == "always_invoice"

    # When Stripe reports the change
    updated = events.event(
        "customer.subscription.updated", json.loads(json.dumps(live)), created=T0 + timedelta(minutes=1)
    )
    assert _deliver_and_wait(receiver, db, updated) == "updated"

    # Then the user is premium on the one subscription, and the history shows both moves
    assert standing(db, "user-up", T0 + timedelta(minutes=1)).tier.name == "premium"
    assert db.execute(text("SELECT stripe_subscription_id FROM subscriptions")).scalar() == sub["id"]
    assert _history(db, "user-up") == [("free", "basic", None), ("basic", "premium", None)]


def test_a_checkout_whose_metadata_says_enterprise_but_whose_price_is_basic_provisions_basic(
    worker: Any, receiver: Receiver, events: Events, db: Connection
) -> None:
    # Given a checkout paid at the basic price, with metadata claiming enterprise (which has no price)
    body = events.checkout_completed("user-meta", "enterprise", price=PRICES["basic"], subscription="sub_m")

    # When Stripe reports it
    outcome = _deliver_and_wait(receiver, db, body)

    # Then the user gets what they paid for
    assert outcome == "provisioned"
    assert standing(db, "user-meta", T0).tier.name == "basic"


def test_a_price_that_maps_to_no_tier_is_ignored_as_unknown_price_with_an_error_log(
    events: Events, db: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    body = events.checkout_completed("user-x", "premium", price="price_from_another_product", subscription="sub_x")

    with caplog.at_level(logging.ERROR, logger="workers.billing"):
        result = events.deliver(body)

    assert result["outcome"] == "unknown_price"
    assert db.execute(text("SELECT state, outcome FROM stripe_events")).one() == ("ignored", "unknown_price")
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0
    assert any("price_from_another_product maps to no tier" in r.getMessage() for r in caplog.records)


def test_a_second_newer_subscription_wins_and_the_older_one_is_cancelled_through_the_api(
    events: Events, db: Connection
) -> None:
    # Given user-1 subscribed to basic as sub_a
    events.deliver(events.checkout_completed("user-1", "basic", subscription="sub_a", created=T0))

    # When a premium sub_b, made an hour later in the dashboard, is reported
    later = T0 + timedelta(hours=1)
    result = events.deliver(
        events.subscription("customer.subscription.created", tier="premium", subscription="sub_b", created=later)
    )

    # Then sub_b is the user's, sub_a was cancelled at Stripe, and the history says so
    assert result["outcome"] == "updated"
    assert events.fake.subscriptions["sub_a"]["status"] == "canceled"
    assert [s["id"] for s in events.fake.live_subscriptions()] == ["sub_b"]
    assert standing(db, "user-1", later).tier.name == "premium"
    assert _history(db, "user-1") == [
        ("free", "basic", None),
        ("basic", "premium", "second subscription: kept sub_b, canceled sub_a"),
    ]

    # And sub_a's own cancellation event, when it comes, changes nothing
    gone = events.deliver(
        events.subscription(
            "customer.subscription.deleted", tier="basic", subscription="sub_a", status="canceled", created=later
        )
    )
    assert gone["outcome"] == "other_subscription"
    assert standing(db, "user-1", later).tier.name == "premium"


def test_an_older_second_subscription_is_the_one_cancelled(events: Events, db: Connection) -> None:
    # Given user-1 is on premium sub_new, made at T0 + 1 h
    events.deliver(
        events.checkout_completed("user-1", "premium", subscription="sub_new", created=T0 + timedelta(hours=1))
    )
    # And Stripe also holds an older live basic sub_old (made at T0), that we never heard of
    events.fake.put_subscription("sub_old", tier="basic", created=T0)

    # When an event about sub_old arrives
    result = events.deliver(
        events.subscription(
            "customer.subscription.updated", tier="basic", subscription="sub_old", created=T0 + timedelta(hours=2)
        )
    )

    # Then sub_new stands, sub_old is cancelled, and the history records it as a lateral move
    assert result["outcome"] == "other_subscription"
    assert events.fake.subscriptions["sub_old"]["status"] == "canceled"
    assert events.fake.subscriptions["sub_new"]["status"] == "active"
    assert _history(db, "user-1")[-1] == ("premium", "premium", "second subscription: kept sub_new, canceled sub_old")


def test_checkout_for_a_subscriber_whose_subscription_stripe_has_ended_opens_a_new_checkout(
    fake_stripe: FakeStripe, events: Events, db: Connection
) -> None:
    # Given our row still says active, but Stripe already ended the subscription
    events.deliver(events.checkout_completed("user-1", "basic", subscription="sub_gone", created=T0))
    fake_stripe.subscriptions["sub_gone"]["status"] = "canceled"

    # When the user buys premium
    session = create_checkout_session("user-1", "premium", URLS["success_url"], URLS["cancel_url"])

    # Then they get a checkout, for their Stripe customer
    assert session.session_id is not None and fake_stripe.sessions_created == 1
    assert fake_stripe.requests[-1]["params"]["customer"] == "cus_1"


def test_the_end_of_a_grace_period_is_written_to_the_history_when_it_happens(events: Events, db: Connection) -> None:
    # Given a premium subscriber whose renewal failed
    events.deliver(events.checkout_completed("user-1", "premium", subscription="sub_1", created=T0))
    failed_at = T0 + timedelta(days=30)
    events.deliver(events.invoice("invoice.payment_failed", created=failed_at), now=failed_at)

    # When beat looks during the grace period, then after it, then again
    with transaction() as conn:
        during = expire_grace_periods(conn, failed_at + GRACE - timedelta(hours=1))
    with transaction() as conn:
        after = expire_grace_periods(conn, failed_at + GRACE + timedelta(minutes=5))
    with transaction() as conn:
        again = expire_grace_periods(conn, failed_at + GRACE + timedelta(minutes=15))

    # Then the downgrade is written once, dated when the grace period ended
    assert (during, after, again) == ([], ["user-1"], [])
    assert _history(db, "user-1") == [("free", "premium", None), ("premium", "free", "past-due grace period ended")]
    changed_at = db.execute(text("SELECT max(changed_at) FROM subscription_changes")).scalar()
    assert changed_at == failed_at + GRACE

    # And Stripe's later cancellation does not write the downgrade a second time
    later = failed_at + timedelta(days=20)
    events.deliver(events.subscription("customer.subscription.deleted", status="canceled", created=later), now=later)
    assert len(_history(db, "user-1")) == 2
