"""A webhook is trusted only with a valid, recent signature over its exact body."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from workers.billing import BillingNotConfigured, handle_event

from .conftest import sign


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
