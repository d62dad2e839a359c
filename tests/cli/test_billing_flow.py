"""A signed Stripe checkout makes a user premium as `litink usage` sees it; cancelling
brings them back to free; a forged signature and a replay change nothing."""

import hashlib
import hmac
import json
import time

import pytest

from config import get_settings
from workers.billing import handle_event

SECRET = "whsec_cli_flow"


@pytest.fixture
def stripe_settings(monkeypatch):
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("STRIPE_PRICE_PREMIUM", "price_premium_cli")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def signed(event: dict, secret: str = SECRET) -> tuple[str, str]:
    body, t = json.dumps(event), int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return body, f"t={t},v1={digest}"


def event(event_id: str, type_: str, obj: dict) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "api_version": "2025-03-31.basil",
        "data": {"object": obj},
    }


def test_checkout_then_cancel_moves_the_user_up_and_back_down(stripe_settings, litink):
    # The subscription a checkout creates; its price (not metadata) decides the tier. (A
    # checkout.session.completed would make the worker ask Stripe for the subscription.)
    completed = event(
        "evt_cli_1",
        "customer.subscription.created",
        {
            "id": "sub_cli",
            "object": "subscription",
            "status": "active",
            "customer": "cus_cli",
            "metadata": {"user_id": "buyer", "tier": "premium"},
            "items": {"data": [{"price": {"id": "price_premium_cli"}}]},
        },
    )
    # A forged signature changes nothing
    body, _ = signed(completed)
    forged = handle_event(body, signed(completed, "whsec_wrong")[1]).as_dict()
    assert forged["outcome"].startswith("invalid_signature")
    assert litink("usage", "buyer", "--json")["tier"] == "free"
    # A signed customer.subscription.created makes the user premium
    assert handle_event(*signed(completed)).as_dict()["outcome"] == "updated"
    assert litink("usage", "buyer", "--json")["tier"] == "premium"
    # A replay is reported as a duplicate
    assert handle_event(*signed(completed)).as_dict()["outcome"] == "duplicate"
    # A later customer.subscription.deleted brings the user back to free
    time.sleep(1.1)  # Stripe's `created` has one-second resolution; the deletion is newer
    deleted = event(
        "evt_cli_2",
        "customer.subscription.deleted",
        {
            "id": "sub_cli",
            "object": "subscription",
            "status": "canceled",
            "customer": "cus_cli",
            "metadata": {"user_id": "buyer"},
            "items": {"data": [{"price": {"id": "price_premium_cli"}}]},
        },
    )
    assert handle_event(*signed(deleted)).as_dict()["outcome"] == "canceled"
    assert litink("usage", "buyer", "--json")["tier"] == "free"
