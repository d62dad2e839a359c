"""A webhook is trusted only with a valid, recent signature over its exact body."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from workers.billing import BillingNotConfigured, handle_event
from workers.billing.events import receive
from workers.billing.webhooks import verify_signature

from .conftest import WEBHOOK_SECRET, sign


def _nothing_changed(db) -> bool:
    return (
        db.execute(text("SELECT count(*) FROM stripe_events")).scalar() == 0
        and db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0
    )


def test_a_forged_signature_changes_nothing_and_says_why(events, db):
    # Given an event signed with someone else's secret
    body = events.checkout_completed("user-1", "premium")

    # When it is handled
    result = handle_event(body, sign(body, secret="whsec_forged"))

    # Then it is refused, unrecorded, and the reason is given
    assert result.event_id is None and result.type is None
    assert result.outcome.startswith("invalid_signature: ")
    assert "expected signature" in result.outcome
    assert _nothing_changed(db)


def test_a_body_changed_after_signing_is_refused(events, db):
    body = events.checkout_completed("user-1", "basic")
    signature = sign(body)

    result = handle_event(body.replace('"basic"', '"enterprise"'), signature)

    assert result.outcome.startswith("invalid_signature: ")
    assert _nothing_changed(db)


def test_a_signature_older_than_the_tolerance_changes_nothing(events, db):
    # Given a correctly signed event, signed ten minutes ago (tolerance: 300 s)
    body = events.checkout_completed("user-1", "premium")
    old = int(time.time()) - 600

    # When it is handled now
    result = handle_event(body, sign(body, at=old))

    # Then it is refused as outside the tolerance
    assert result.outcome.startswith("invalid_signature: ")
    assert "tolerance" in result.outcome
    assert _nothing_changed(db)


def _kept(event_id: str, db, *, ago_s: int) -> None:
    """The inbox kept the event ``ago_s`` seconds ago (the receiver took it; no worker has yet)."""
    db.execute(
        text("UPDATE stripe_events SET received_at = now() - make_interval(secs => :s) WHERE id = :id"),
        {"s": ago_s, "id": event_id},
    )


def test_a_later_run_measures_the_age_against_the_time_the_inbox_kept_the_event(events, db):
    # Given an event signed fifteen minutes ago and kept by the receiver ten seconds after
    body = events.subscription("customer.subscription.created", tier="premium")
    signature = sign(body, at=int(time.time()) - 900)
    event = verify_signature(body, signature, secret=WEBHOOK_SECRET)[0]
    receive(event, body)
    _kept(event.id, db, ago_s=890)

    # When the contract task handles it now, long after its tolerance
    result = handle_event(body, signature)

    # Then its age is the 10 s it had when it was kept: applied
    assert result.outcome == "updated"


def test_a_signature_already_too_old_when_the_inbox_kept_the_event_is_refused(events, db):
    # Given a body signed fifteen minutes ago, whose event the inbox kept (from another delivery,
    # signed later) only 100 s ago
    body = events.subscription("customer.subscription.created", tier="premium")
    old = sign(body, at=int(time.time()) - 900)
    receive(verify_signature(body, old, secret=WEBHOOK_SECRET)[0], body)
    _kept(json.loads(body)["id"], db, ago_s=100)

    # When the old signature is presented
    result = handle_event(body, old)

    # Then it is refused: it was 800 s old when the event was kept
    assert result.outcome.startswith("invalid_signature: Timestamp outside the tolerance zone")
    assert db.execute(text("SELECT state FROM stripe_events")).scalar() == "received"
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0


@pytest.mark.parametrize("header", ["", "garbage", "t=123", "v1=abc"])
def test_a_missing_or_malformed_header_changes_nothing(events, db, header):
    result = handle_event(events.checkout_completed("user-1", "premium"), header)

    assert result.outcome.startswith("invalid_signature: ")
    assert _nothing_changed(db)


def test_a_signed_body_that_is_not_an_event_is_an_invalid_payload(db):
    for body in ("not json", "[1, 2]", '{"id": "evt_1"}'):
        result = handle_event(body, sign(body))
        assert result.outcome.startswith("invalid_payload: ")
    assert _nothing_changed(db)


def test_without_a_webhook_secret_the_handler_refuses_loudly(events, monkeypatch):
    # Given STRIPE_WEBHOOK_SECRET is unset: every event would look forged
    from config import get_settings

    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    get_settings.cache_clear()

    # Then handling raises instead of quietly dropping real events
    body = events.checkout_completed("user-1", "premium")
    with pytest.raises(BillingNotConfigured, match="STRIPE_WEBHOOK_SECRET"):
        handle_event(body, sign(body))
