"""The receiver verifies at the door: what it cannot verify costs nothing, what it can is kept.

The receiver runs as its own process (``python -m workers.ops.webhook_server``); no worker runs
in this module, so whatever was queued is still on the broker to be seen.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import Connection, text

from .conftest import Events, sign
from .processes import Receiver, queued_messages, receiver_process

TOLERANCE_S = 300  # STRIPE_WEBHOOK_TOLERANCE in these tests


@pytest.fixture(scope="module")
def receiver(services: None) -> Iterator[Receiver]:
    with receiver_process() as running:
        yield running


def _inbox(db: Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.execute(text("SELECT id, state FROM stripe_events ORDER BY id"))]


def _nothing_kept_or_queued(db: Connection) -> bool:
    return _inbox(db) == [] and queued_messages("billing", "intake") == []


@pytest.mark.parametrize(
    ("case", "signature"),
    [
        ("forged with another secret", lambda body: sign(body, secret="whsec_forged")),
        ("unsigned", lambda body: None),
        ("a garbage header", lambda body: "garbage"),
        ("signed too long ago", lambda body: sign(body, at=int(time.time()) - TOLERANCE_S - 30)),
        ("signed for another body", lambda body: sign(body.replace("premium", "enterprise"))),
    ],
)
def test_a_webhook_that_fails_verification_gets_400_and_is_neither_kept_nor_queued(
    receiver: Receiver, events: Events, db: Connection, case: str, signature: Callable[[str], str | None]
) -> None:
    # Given a genuine-looking event, with a signature that does not prove it
    body = events.checkout_completed("user-1", "premium")

    # When it is posted to the receiver
    answer = receiver.post(body, signature(body))

    # Then it is refused, and nothing was stored or published
    assert answer.status_code == 400, case
    assert answer.json()["received"] is False
    assert _nothing_kept_or_queued(db)


def test_a_flood_of_large_forged_bodies_fills_nothing(receiver: Receiver, db: Connection) -> None:
    # Given a flood of bodies just under the size cap, each with a garbage signature
    body = json.dumps({"id": "evt_x", "pad": "x" * 262_000})

    # When three are posted
    statuses = [receiver.post(body, "garbage").status_code for _ in range(3)]

    # Then each costs one HMAC and is refused; neither Postgres nor Redis holds anything
    assert statuses == [400, 400, 400]
    assert _nothing_kept_or_queued(db)


def test_a_body_over_the_cap_gets_413_declared_or_not(receiver: Receiver, db: Connection) -> None:
    too_big = b"y" * (256 * 1024 + 1)

    declared = receiver.post(too_big, "t=1,v1=00")
    chunked = receiver.post(iter([too_big[: 128 * 1024], too_big[128 * 1024 :]]), "t=1,v1=00")

    assert (declared.status_code, chunked.status_code) == (413, 413)
    assert _nothing_kept_or_queued(db)


def test_a_verified_webhook_is_kept_before_the_answer_and_queued_by_id_on_billing(
    receiver: Receiver, events: Events, db: Connection
) -> None:
    # Given a genuine event
    body = events.checkout_completed("user-1", "premium")
    event_id = json.loads(body)["id"]

    # When Stripe posts it
    answer = receiver.post(body, sign(body))

    # Then the answer comes after the event is in the inbox, raw, state received
    assert answer.status_code == 200
    assert answer.json() == {
        "received": True,
        "event_id": event_id,
        "type": "checkout.session.completed",
        "state": "received",
        "new": True,
        "queued": True,
    }
    row = db.execute(text("SELECT state, payload, received_at FROM stripe_events")).one()
    assert (row.state, row.payload) == ("received", body) and row.received_at is not None
    # And one message waits on billing, carrying only the event id; intake has nothing
    (message,) = queued_messages("billing")
    assert message["headers"]["task"] == "litink.process_stripe_event"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {"event_id": event_id})
    assert queued_messages("intake") == []


def test_a_delivery_repeated_by_stripe_is_answered_again_and_kept_once(
    receiver: Receiver, events: Events, db: Connection
) -> None:
    body = events.checkout_completed("user-1", "premium")

    first, again = receiver.post(body, sign(body)), receiver.post(body, sign(body))

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["new"], again.json()["new"]) == (True, False)
    assert len(_inbox(db)) == 1


def test_health_reports_the_database_and_the_broker(receiver: Receiver) -> None:
    answer = requests.get(f"{receiver.url}/health", timeout=10)

    assert answer.status_code == 200
    assert {k: answer.json()[k] for k in ("status", "database", "broker")} == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }
    assert answer.json()["checked_at"] is not None
