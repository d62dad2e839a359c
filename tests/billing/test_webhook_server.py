"""The webhooks process: checks the envelope, queues the body, answers at once."""

from __future__ import annotations

import base64
import json

import pytest
import redis
import requests
from celery import Celery

from config import get_settings
from workers.app import app
from workers.ops.webhook_server import create_app

from .conftest import running_receiver, sign

LIMIT = 8 * 1024


@pytest.fixture(scope="module")
def receiver():
    with running_receiver(create_app(celery_app=app, max_body_bytes=LIMIT)) as running:
        yield running


def _intake_messages() -> list[dict]:
    client = redis.Redis.from_url(get_settings().require_redis_url())
    return [json.loads(raw) for raw in client.lrange("intake", 0, -1)]


def test_a_signed_webhook_is_queued_on_intake_and_answered_with_202(receiver, events):
    # Given a Stripe event and its signature
    body = events.checkout_completed("user-1", "premium")
    signature = sign(body)

    # When Stripe posts it
    answer = requests.post(
        f"{receiver.url}/stripe/webhook",
        data=body.encode(),
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        timeout=10,
    )

    # Then it is accepted for processing, as one message for the event task on queue intake
    assert answer.status_code == 202
    assert answer.json() == {"queued": True, "task_id": answer.json()["task_id"]}
    (message,) = _intake_messages()
    assert message["headers"]["task"] == "litink.handle_stripe_event"
    assert message["headers"]["id"] == answer.json()["task_id"]
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {"payload": body, "signature": signature})
    # And neither the body nor the signature shows in what Flower and task events display
    assert body not in message["headers"]["kwargsrepr"] and signature not in message["headers"]["kwargsrepr"]


def test_a_webhook_without_a_signature_header_is_refused_with_400(receiver, events):
    answer = requests.post(f"{receiver.url}/stripe/webhook", data=events.checkout_completed("u", "basic"), timeout=10)

    assert answer.status_code == 400
    assert answer.json()["error"] == "missing Stripe-Signature header"
    assert _intake_messages() == []


def test_a_declared_oversize_body_is_refused_with_413(receiver):
    body = b"x" * (LIMIT + 1)

    answer = requests.post(
        f"{receiver.url}/stripe/webhook", data=body, headers={"Stripe-Signature": "t=1,v1=00"}, timeout=10
    )

    assert answer.status_code == 413
    assert _intake_messages() == []


def test_an_oversize_body_without_a_length_is_cut_off_with_413(receiver):
    # Given a chunked body, so no Content-Length announces its size
    def chunks():
        for _ in range(4):
            yield b"y" * (LIMIT // 2)

    answer = requests.post(
        f"{receiver.url}/stripe/webhook", data=chunks(), headers={"Stripe-Signature": "t=1,v1=00"}, timeout=10
    )

    assert answer.status_code == 413
    assert _intake_messages() == []


def test_a_body_that_is_not_utf8_is_refused_with_400(receiver):
    answer = requests.post(
        f"{receiver.url}/stripe/webhook", data=b"\xff\xfe\x00", headers={"Stripe-Signature": "t=1"}, timeout=10
    )

    assert answer.status_code == 400


def test_health_answers_200_and_reports_the_broker(receiver):
    answer = requests.get(f"{receiver.url}/health", timeout=10)

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "broker": "ok"}


def test_without_a_broker_a_webhook_gets_503_so_stripe_retries_it(events):
    # Given a receiver whose broker is down
    dead = Celery("dead", broker="redis://127.0.0.1:1/0", broker_connection_retry_on_startup=False)
    dead.conf.broker_transport_options = {"max_retries": 0}
    with running_receiver(create_app(celery_app=dead, max_body_bytes=LIMIT)) as down:
        body = events.checkout_completed("user-1", "premium")

        # When Stripe posts, and an operator checks health
        answer = requests.post(
            f"{down.url}/stripe/webhook", data=body, headers={"Stripe-Signature": sign(body)}, timeout=30
        )
        health = requests.get(f"{down.url}/health", timeout=30)

    # Then Stripe is told to come back, and health says why
    assert answer.status_code == 503
    assert health.status_code == 200 and health.json()["broker"] == "unreachable"
