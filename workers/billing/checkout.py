"""Subscription-mode Checkout Sessions: the way a user buys a tier."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import text

from db.session import get_engine
from workers.billing.client import build_client, price_for, stripe_errors
from workers.billing.errors import AlreadySubscribed, BillingRequestError, StripeRejected
from workers.quotas.subscriptions import standing

# Without a scope (a direct call), the same request within this window sends the same
# idempotency key. The task passes its id as the scope instead: a retry or a redelivery
# (which may come a whole visibility timeout later) keeps its id, so it gets back the
# session Stripe already made, never a second one. Stripe keeps keys for 24 hours.
IDEMPOTENCY_WINDOW_S = 3600


@dataclass(frozen=True)
class CheckoutSession:
    """Where to send the user, and the session's id."""

    checkout_url: str
    session_id: str

    def as_dict(self) -> dict[str, str]:
        return {"checkout_url": self.checkout_url, "session_id": self.session_id}


def checkout_params(
    *, user_id: str, tier: str, price: str, success_url: str, cancel_url: str, customer_id: str | None
) -> dict[str, Any]:
    """The Checkout Session request. The metadata comes back on every webhook of the session
    and of the subscription it creates, and names the user without a lookup."""
    metadata = {"user_id": user_id, "tier": tier}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": user_id,
        "metadata": metadata,
        "subscription_data": {"metadata": dict(metadata)},
    }
    if customer_id:
        params["customer"] = customer_id  # a returning subscriber keeps one Stripe customer
    return params


def idempotency_key(params: dict[str, Any], *, scope: str | None, now: datetime) -> str:
    """The same parameters in the same scope (or, without one, the same window) give the same
    key. The parameters are part of the key, so one key never carries two different requests
    (which Stripe refuses)."""
    scope = scope or f"window:{int(now.timestamp()) // IDEMPOTENCY_WINDOW_S}"
    digest = hashlib.sha256(json.dumps([params, scope], sort_keys=True).encode()).hexdigest()
    return f"litink-checkout-{digest[:48]}"


def create_checkout_session(
    user_id: str,
    tier: str,
    success_url: str,
    cancel_url: str,
    *,
    idempotency_scope: str | None = None,
    now: datetime | None = None,
    client: stripe.StripeClient | None = None,
) -> CheckoutSession:
    """Create a Checkout Session for ``tier``, or get back the one already made for the same
    request in the same ``idempotency_scope`` (the task passes its id)."""
    now = now or datetime.now(UTC)
    for name, value in (("user_id", user_id), ("success_url", success_url), ("cancel_url", cancel_url)):
        if not isinstance(value, str) or not value.strip():
            raise BillingRequestError(f"{name} must be a non-empty string")
    price = price_for(tier)

    with get_engine().connect() as conn:
        current = standing(conn, user_id, now)
        customer_id = conn.execute(
            text("SELECT stripe_customer_id FROM subscriptions WHERE user_id = :u"), {"u": user_id}
        ).scalar()
    if current.status == "active" and current.tier.name == tier:
        raise AlreadySubscribed(f"user {user_id!r} already has an active {tier!r} subscription")

    params = checkout_params(
        user_id=user_id,
        tier=tier,
        price=price,
        success_url=success_url,
        cancel_url=cancel_url,
        customer_id=customer_id,
    )
    client = client or build_client()
    with stripe_errors():
        session = client.v1.checkout.sessions.create(
            params=params, options={"idempotency_key": idempotency_key(params, scope=idempotency_scope, now=now)}
        )
    answer = session.to_dict()  # a StripeObject is not a dict
    if not answer.get("url") or not answer.get("id"):
        raise StripeRejected(f"Checkout Session {answer.get('id')!r} came back without a url")
    return CheckoutSession(checkout_url=answer["url"], session_id=answer["id"])
