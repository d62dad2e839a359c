"""A verified event is never lost: not to a Postgres outage at the door, not to a backlog that
outlasts the signature's tolerance, not to a broker that cannot take the message.

The receiver runs as its own process; a real worker consumes the real queues.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from config import get_settings
from tests.waiting import wait_until
from workers.app import app

from .conftest import Events, sign, unix
from .processes import TcpProxy, receiver_process

APPLY_TIMEOUT_S = 30


def _row(db: Connection, event_id: str) -> Any:
    return db.execute(
        text("SELECT state, outcome, error, attempts FROM stripe_events WHERE id = :id"), {"id": event_id}
    ).first()


def _applied(db: Connection, event_id: str) -> bool:
    row = _row(db, event_id)
    return row is not None and row.state == "applied"


def _tier_moves(db: Connection, user_id: str) -> list[tuple[Any, ...]]:
    rows = db.execute(
        text("SELECT from_tier, to_tier FROM subscription_changes WHERE user_id = :u ORDER BY id"), {"u": user_id}
    )
    return [tuple(r) for r in rows]


def test_with_postgres_down_the_receiver_answers_503_and_the_retry_is_kept_and_applied_once(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given a receiver whose Postgres sits behind a proxy we can cut
    direct = make_url(get_settings().require_database_url())
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    through_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with receiver_process(env={"DATABASE_URL": through_proxy}) as receiver:
            body = events.checkout_completed("user-pg", "premium", subscription="sub_pg", customer="cus_pg")
            event_id = json.loads(body)["id"]
            # (its pool holds a live connection, which the cut will break)
            assert requests.get(f"{receiver.url}/health", timeout=10).json()["database"] == "ok"

            # When Postgres stops and Stripe delivers the event
            proxy.cut()
            refused = receiver.post(body, sign(body))

            # Then Stripe is told to come back, and nothing was kept
            assert refused.status_code == 503
            assert refused.json() == {"received": False, "error": "database unavailable"}
            assert _row(db, event_id) is None

            # When Postgres is back and Stripe retries (twice, as it may)
            proxy.restore()
            accepted = receiver.post(body, sign(body))
            again = receiver.post(body, sign(body))
    finally:
        proxy.close()

    # Then the retry is kept and applied, once
    assert accepted.status_code == 200 and again.status_code == 200
    wait_until(lambda: _applied(db, event_id), timeout=APPLY_TIMEOUT_S)
    assert _tier_moves(db, "user-pg") == [("free", "premium")]


def test_an_event_processed_ten_minutes_after_signing_is_applied_not_dropped(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given an event Stripe signed ten minutes ago, received while it was five seconds old
    # (the receiver's clock is frozen at that moment), whose processing then waited behind a backlog
    signed_at = datetime.now(UTC) - timedelta(minutes=10)
    body = events.checkout_completed("user-late", "basic", subscription="sub_late", customer="cus_late")
    event_id = json.loads(body)["id"]
    with receiver_process(frozen_at=signed_at + timedelta(seconds=5)) as receiver:
        answer = receiver.post(body, sign(body, at=unix(signed_at)))
    assert answer.status_code == 200

    # When a worker processes it now, six hundred seconds after signing (tolerance: 300)
    # Then it is applied from the stored row
    wait_until(lambda: _applied(db, event_id), timeout=APPLY_TIMEOUT_S)
    assert _row(db, event_id).outcome == "provisioned"
    assert _tier_moves(db, "user-late") == [("free", "basic")]


def test_with_the_broker_down_the_event_is_kept_and_the_sweep_queues_it(
    worker: Any, events: Events, db: Connection
) -> None:
    # Given a receiver that can reach Postgres but not the broker
    body = events.checkout_completed("user-br", "premium", subscription="sub_br", customer="cus_br")
    event_id = json.loads(body)["id"]
    with receiver_process(env={"REDIS_URL": "redis://127.0.0.1:1/0"}) as receiver:
        # When Stripe delivers the event
        answer = receiver.post(body, sign(body))

    # Then Stripe has its 200: the event is kept, though not queued
    assert answer.status_code == 200
    assert (answer.json()["state"], answer.json()["queued"]) == ("received", False)

    # When more than a minute has passed and beat runs the sweep
    db.execute(text("UPDATE stripe_events SET received_at = received_at - interval '2 minutes'"))
    swept = app.send_task("litink.sweep_stripe_events").get(timeout=APPLY_TIMEOUT_S)

    # Then the event is queued again and applied
    assert swept == {"queued": 1}
    wait_until(lambda: _applied(db, event_id), timeout=APPLY_TIMEOUT_S)
    assert _tier_moves(db, "user-br") == [("free", "premium")]
