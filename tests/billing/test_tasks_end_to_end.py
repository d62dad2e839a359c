"""The billing tasks by name, through Redis, on a real worker: checkout, the contract event task,
processing from the inbox (once, however often delivered), failure and replay."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from celery.result import AsyncResult
from sqlalchemy import Connection, text

from tests.waiting import wait_until
from workers.app import app
from workers.billing import events as billing_events
from workers.billing import list_events, replay_event
from workers.billing.client import build_client
from workers.quotas.subscriptions import standing

from .conftest import PRICES, STRIPE_FIXTURES, Events, FakeStripe, sign
from .processes import Receiver, receiver_process

RESULT_TIMEOUT_S = 30
URLS = {"success_url": "https://litink.test/ok", "cancel_url": "https://litink.test/no"}
DELIVERIES = 5


@pytest.fixture(scope="module")
def receiver(services: None) -> Iterator[Receiver]:
    with receiver_process() as running:
        yield running


def _send(name: str, **kwargs: Any) -> AsyncResult:
    return app.send_task(name, kwargs=kwargs)  # routed by the workers' own configuration


def _keep(body: str) -> None:
    """Keep a verified body in the inbox, as the receiver does."""
    billing_events.receive(billing_events.verify(body, sign(body)), body)


def _state(db: Connection, event_id: str) -> str | None:
    return db.execute(text("SELECT state FROM stripe_events WHERE id = :id"), {"id": event_id}).scalar()


@pytest.mark.unit
def test_billing_tasks_are_routed_to_the_billing_queue() -> None:
    for name in ("litink.create_checkout_session", "litink.handle_stripe_event", "litink.process_stripe_event"):
        assert app.amqp.router.route({}, name)["queue"].name == "billing"
    assert app.amqp.router.route({}, "litink.submit_script")["queue"].name == "intake"


def test_the_checkout_task_returns_a_session_url_from_the_worker(worker: Any, fake_stripe: FakeStripe) -> None:
    # When a producer asks for a premium checkout by task name
    result = _send("litink.create_checkout_session", user_id="user-1", tier="premium", **URLS)

    # Then the worker answers with the session Stripe made, keyed to that task
    answer = result.get(timeout=RESULT_TIMEOUT_S)
    assert set(answer) == {"checkout_url", "session_id"}
    assert answer["checkout_url"].endswith(answer["session_id"])
    assert fake_stripe.requests[0]["params"]["metadata[user_id]"] == "user-1"


def test_a_checkout_task_retried_after_stripe_failed_creates_one_session(worker: Any, fake_stripe: FakeStripe) -> None:
    # Given Stripe fails the first request with a 503
    fake_stripe.failures.append(503)

    # When the task runs, fails, and is retried by Celery
    answer = _send("litink.create_checkout_session", user_id="user-1", tier="basic", **URLS).get(
        timeout=RESULT_TIMEOUT_S
    )

    # Then both attempts carried the same idempotency key, and one session exists
    first, retry = fake_stripe.requests
    assert first["idempotency_key"] == retry["idempotency_key"]
    assert fake_stripe.sessions_created == 1
    assert answer["session_id"].startswith("cs_test_")


def test_a_checkout_task_for_a_tier_without_a_price_fails_with_a_value_error(
    worker: Any, fake_stripe: FakeStripe
) -> None:
    result = _send("litink.create_checkout_session", user_id="user-1", tier="standard", **URLS)

    with pytest.raises(ValueError, match="STRIPE_PRICE_STANDARD"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert fake_stripe.requests == []


@pytest.mark.smoke
def test_the_contract_event_task_verifies_keeps_and_applies_an_event_once(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given a signed completed-checkout event, sent by a producer by task name (on intake, as before)
    body = events.checkout_completed("user-1", "professional")
    signature = sign(body)

    # When the task is sent twice
    first = app.send_task(
        "litink.handle_stripe_event", kwargs={"payload": body, "signature": signature}, queue="intake"
    )
    again = app.send_task("litink.handle_stripe_event", kwargs={"payload": body, "signature": signature})

    # Then it was kept in the inbox and applied once
    outcomes = sorted(r.get(timeout=RESULT_TIMEOUT_S)["outcome"] for r in (first, again))
    assert outcomes == ["duplicate", "provisioned"]
    assert _state(db, json.loads(body)["id"]) == "applied"
    assert db.execute(text("SELECT count(*) FROM subscription_changes")).scalar() == 1


def test_a_forged_event_sent_to_the_contract_task_changes_and_keeps_nothing(
    worker: Any, events: Events, db: Connection
) -> None:
    body = events.checkout_completed("user-6", "enterprise")

    outcome = _send("litink.handle_stripe_event", payload=body, signature=sign(body, secret="whsec_nope")).get(
        timeout=RESULT_TIMEOUT_S
    )

    assert outcome["event_id"] is None and outcome["outcome"].startswith("invalid_signature: ")
    assert db.execute(text("SELECT count(*) FROM stripe_events")).scalar() == 0
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0


def test_a_checkout_end_to_end_provisions_the_tier_its_subscriptions_price_buys(
    worker: Any, receiver: Receiver, fake_stripe: FakeStripe, db: Connection
) -> None:
    # Given a producer asked for a premium checkout, and the customer paid for it
    answer = _send("litink.create_checkout_session", user_id="user-e2e", tier="premium", **URLS).get(
        timeout=RESULT_TIMEOUT_S
    )
    sub = fake_stripe.complete(answer["session_id"])
    assert sub["items"]["data"][0]["price"]["id"] == PRICES["premium"]

    # When Stripe sends checkout.session.completed, carrying the session as Stripe holds it
    retrieved = build_client().v1.checkout.sessions.retrieve(answer["session_id"])
    session = json.loads(retrieved.last_response.body)  # as sent (the SDK turns decimals into Decimal)
    assert (session["status"], session["payment_status"], session["subscription"]) == ("complete", "paid", sub["id"])
    envelope = {**STRIPE_FIXTURES["event"], "id": "evt_e2e_checkout", "type": "checkout.session.completed"}
    body = json.dumps({**envelope, "created": int(time.time()), "data": {"object": session}})
    assert receiver.post(body, sign(body)).status_code == 200

    # Then the worker retrieved the subscription from Stripe and provisioned the tier its price buys
    wait_until(lambda: _state(db, "evt_e2e_checkout") == "applied", timeout=RESULT_TIMEOUT_S)
    assert f"/v1/subscriptions/{sub['id']}" in [r["path"] for r in fake_stripe.requests if r["method"] == "GET"]
    now = standing(db, "user-e2e", datetime.now(UTC))
    assert (now.tier.name, now.status) == ("premium", "active")
    row = db.execute(
        text("SELECT stripe_subscription_id, stripe_customer_id FROM subscriptions WHERE user_id = 'user-e2e'")
    ).one()
    assert tuple(row) == (sub["id"], sub["customer"])


def test_a_captured_body_replayed_past_the_tolerance_with_a_retries_header_is_refused(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given a genuine professional update, signed fifteen minutes ago (tolerance: 300 s), never kept
    body = events.subscription(
        "customer.subscription.updated", price="price_professional_test", user_id="user-8", subscription="sub_8"
    )
    captured = sign(body, at=int(time.time()) - 900)

    # When a producer replays it by task name, its message saying it is a retry
    result = app.send_task(
        "litink.handle_stripe_event", kwargs={"payload": body, "signature": captured}, retries=1
    ).get(timeout=RESULT_TIMEOUT_S)

    # Then it is refused for its age, and nothing is kept or granted
    assert result["event_id"] is None
    assert result["outcome"].startswith("invalid_signature: Timestamp outside the tolerance zone")
    assert db.execute(text("SELECT count(*) FROM stripe_events")).scalar() == 0
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0


def test_the_same_event_delivered_five_times_at_once_is_applied_once(
    worker: Any, receiver: Receiver, events: Events, db: Connection
) -> None:
    # Given one event, which Stripe delivers five times at the same moment
    body = events.checkout_completed("user-5", "premium", subscription="sub_5", customer="cus_5")
    event_id = json.loads(body)["id"]
    barrier, answers = threading.Barrier(DELIVERIES), []

    def deliver() -> None:
        barrier.wait()
        answers.append(receiver.post(body, sign(body)))

    # When all five reach the receiver together
    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then every delivery is answered 200, one of them stored it, and the worker applied it once
    assert [a.status_code for a in answers] == [200] * DELIVERIES
    assert Counter(a.json()["new"] for a in answers) == {True: 1, False: DELIVERIES - 1}
    wait_until(lambda: _state(db, event_id) == "applied", timeout=RESULT_TIMEOUT_S)
    rows = db.execute(text("SELECT from_tier, to_tier FROM subscription_changes WHERE user_id = 'user-5'")).all()
    assert [tuple(r) for r in rows] == [("free", "premium")]
    assert db.execute(text("SELECT count(*) FROM stripe_events")).scalar() == 1


def test_an_event_that_cannot_be_applied_is_failed_with_its_error_and_replayed_after_the_fix(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given a checkout event whose subscription Stripe does not know (yet: say, the wrong account key)
    body = events.checkout_completed("user-9", "basic", subscription="sub_9", customer="cus_9")
    event_id = json.loads(body)["id"]
    held = events.fake.subscriptions.pop("sub_9")

    # When it is processed
    result = _send("litink.handle_stripe_event", payload=body, signature=sign(body)).get(timeout=RESULT_TIMEOUT_S)

    # Then it is failed, with the error, and nothing changed
    assert result["outcome"].startswith("failed: StripeRejected")
    (listed,) = list_events(db, state="failed")
    assert (listed["event_id"], listed["state"]) == (event_id, "failed")
    assert "HTTP 404" in listed["error"]
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0

    # When the operator fixes the cause and replays it
    events.fake.subscriptions["sub_9"] = held
    replayed = replay_event(event_id)

    # Then it is applied
    assert replayed is not None and replayed.outcome == "provisioned"
    assert _state(db, event_id) == "applied"
    assert replay_event("evt_nobody_knows") is None


def test_an_event_whose_processing_meets_a_transient_error_stays_received_and_is_retried(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given Stripe answers the next call (retrieving the checkout's subscription) with a 503
    body = events.checkout_completed("user-7", "premium", subscription="sub_7", customer="cus_7")
    event_id = json.loads(body)["id"]
    events.fake.failures.append(503)

    # When the event is kept and its processing is queued, as the receiver does
    _keep(body)
    app.send_task("litink.process_stripe_event", kwargs={"event_id": event_id})

    # Then the first attempt is counted with its error, and the retry applies it
    wait_until(lambda: _state(db, event_id) == "applied", timeout=RESULT_TIMEOUT_S)
    row = db.execute(text("SELECT attempts, error FROM stripe_events WHERE id = :id"), {"id": event_id}).one()
    assert row.attempts == 1 and "StripeUnavailable" in row.error
    assert db.execute(text("SELECT tier FROM subscriptions WHERE user_id = 'user-7'")).scalar() == "premium"
