"""The billing tasks by name, through Redis, on a real worker; and a webhook all the way in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import text

from workers.app import app
from workers.ops.webhook_server import create_app
from workers.quotas.subscriptions import standing

from .conftest import running_receiver, sign

RESULT_TIMEOUT_S = 30
URLS = {"success_url": "https://litink.test/ok", "cancel_url": "https://litink.test/no"}


def _send(name: str, **kwargs):
    return app.send_task(name, kwargs=kwargs, queue="intake")


def test_the_checkout_task_returns_a_session_url_from_the_worker(worker, fake_stripe):
    # When a producer asks for a premium checkout by task name
    result = _send("litink.create_checkout_session", user_id="user-1", tier="premium", **URLS)

    # Then the worker answers with the session Stripe made, keyed to that task
    answer = result.get(timeout=RESULT_TIMEOUT_S)
    assert set(answer) == {"checkout_url", "session_id"}
    assert answer["checkout_url"].endswith(answer["session_id"])
    assert fake_stripe.requests[0]["params"]["metadata[user_id]"] == "user-1"


def test_a_checkout_task_retried_after_stripe_failed_creates_one_session(worker, fake_stripe):
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


def test_a_checkout_task_for_a_tier_without_a_price_fails_with_a_value_error(worker, fake_stripe):
    result = _send("litink.create_checkout_session", user_id="user-1", tier="standard", **URLS)

    with pytest.raises(ValueError, match="STRIPE_PRICE_STANDARD"):
        result.get(timeout=RESULT_TIMEOUT_S)
    assert fake_stripe.requests == []


def test_the_event_task_applies_an_event_once_however_often_it_is_sent(worker, events, db):
    # Given a signed completed-checkout event
    body = events.checkout_completed("user-1", "professional")
    signature = sign(body)

    # When the task is sent twice by name
    first = _send("litink.handle_stripe_event", payload=body, signature=signature).get(timeout=RESULT_TIMEOUT_S)
    again = _send("litink.handle_stripe_event", payload=body, signature=signature).get(timeout=RESULT_TIMEOUT_S)

    # Then it was applied once
    assert first["outcome"] == "provisioned" and again["outcome"] == "duplicate"
    assert first["event_id"] == again["event_id"]
    assert db.execute(text("SELECT count(*) FROM subscription_changes")).scalar() == 1


def test_a_webhook_posted_to_the_receiver_is_applied_by_the_worker(worker, events, db):
    # Given the receiver in front of the real queues
    with running_receiver(create_app(celery_app=app)) as receiver:
        body = events.checkout_completed("user-5", "premium")

        # When Stripe posts a completed checkout
        answer = requests.post(
            f"{receiver.url}/stripe/webhook", data=body, headers={"Stripe-Signature": sign(body)}, timeout=10
        )

    # Then it is accepted at once, and the worker provisions the tier
    assert answer.status_code == 202
    outcome = app.AsyncResult(answer.json()["task_id"]).get(timeout=RESULT_TIMEOUT_S)
    assert outcome["outcome"] == "provisioned"
    assert standing(db, "user-5", datetime.now(UTC)).tier.name == "premium"


def test_a_forged_webhook_reaches_the_worker_and_changes_nothing(worker, events, db):
    body = events.checkout_completed("user-6", "enterprise")

    outcome = _send("litink.handle_stripe_event", payload=body, signature=sign(body, secret="whsec_nope")).get(
        timeout=RESULT_TIMEOUT_S
    )

    assert outcome["event_id"] is None and outcome["outcome"].startswith("invalid_signature: ")
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0
