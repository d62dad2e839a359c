"""Buying a tier: a subscription-mode Checkout Session, or a plan change for a subscriber.

One subscription per user. A user who already has a live subscription is not sent to a second
checkout (which would leave the first one charging): their subscription's price is changed
through the API instead, and they are sent straight to ``success_url``. An upgrade is a pending
update, invoiced at once: its new price applies only once that invoice is paid (see
:func:`workers.billing.client.change_subscription_price`). A downgrade is scheduled for the end
of the period already paid for, unless the catalog's ``billing.downgrade`` says ``immediately``.
The tier itself moves when Stripe's ``customer.subscription.updated`` arrives with the new price,
like every other tier move. (The Billing Portal would do the same change, but needs a portal
configured in the dashboard and a second round trip by the user; a product that wants a
confirmation step shows it before calling this.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import stripe
from sqlalchemy import text

from config import get_catalog
from db.session import get_engine
from workers.billing import payloads
from workers.billing.client import (
    build_client,
    change_subscription_price,
    price_for,
    release_schedule,
    retrieve_subscription,
    schedule_subscription_price,
    stripe_errors,
)
from workers.billing.errors import AlreadySubscribed, BillingRequestError, StripeRejected
from workers.quotas.subscriptions import direction, standing

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

# Without a scope (a direct call), the same request within this window sends the same
# idempotency key. The task passes its id as the scope instead: a retry or a redelivery
# (which may come a whole visibility timeout later) keeps its id, so it gets back the
# session Stripe already made, never a second one. Stripe keeps keys for 24 hours.
IDEMPOTENCY_WINDOW_S = 3600


LIVE_STATUSES = ("active", "past_due")  # subscriptions.status of a subscription Stripe still charges
STRIPE_LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid")


@dataclass(frozen=True)
class CheckoutSession:
    """Where to send the user, and the session's id; or, for a plan change, no session and the
    subscription whose price was changed."""

    checkout_url: str
    session_id: str | None
    subscription_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        answer = {"checkout_url": self.checkout_url, "session_id": self.session_id}
        if self.subscription_id is not None:
            answer["subscription_id"] = self.subscription_id
        return answer


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
    request in the same ``idempotency_scope`` (the task passes its id). For a user with a live
    subscription, change its price instead (see the module docstring)."""
    now = now or datetime.now(UTC)
    for name, value in (("user_id", user_id), ("success_url", success_url), ("cancel_url", cancel_url)):
        if not isinstance(value, str) or not value.strip():
            raise BillingRequestError(f"{name} must be a non-empty string")
    price = price_for(tier)

    with get_engine().connect() as conn:
        current = standing(conn, user_id, now)
        row = conn.execute(
            text(
                "SELECT stripe_customer_id, stripe_subscription_id, status, tier FROM subscriptions WHERE user_id = :u"
            ),
            {"u": user_id},
        ).first()
    live = row is not None and row.stripe_subscription_id and row.status in LIVE_STATUSES
    if current.status == "active" and current.tier.name == tier and not live:
        raise AlreadySubscribed(f"user {user_id!r} already has an active {tier!r} subscription")
    customer_id = row.stripe_customer_id if row else None
    client = client or build_client()

    if live:
        assert row is not None
        if row.tier == tier:
            # Asking for the tier they have: a downgrade scheduled since is called off.
            if _call_off_downgrade(row.stripe_subscription_id, client=client):
                return CheckoutSession(
                    checkout_url=success_url, session_id=None, subscription_id=row.stripe_subscription_id
                )
            raise AlreadySubscribed(f"user {user_id!r} already has a {row.status} {tier!r} subscription")
        changed = _change_plan(
            row.stripe_subscription_id,
            user_id=user_id,
            tier=tier,
            upgrade=direction(row.tier, tier) == "upgrade",
            price=price,
            success_url=success_url,
            scope=idempotency_scope,
            now=now,
            client=client,
        )
        if changed is not None:
            return changed

    params = checkout_params(
        user_id=user_id,
        tier=tier,
        price=price,
        success_url=success_url,
        cancel_url=cancel_url,
        customer_id=customer_id,
    )
    with stripe_errors():
        session = client.v1.checkout.sessions.create(
            params=cast("SessionCreateParams", params),
            options={"idempotency_key": idempotency_key(params, scope=idempotency_scope, now=now)},
        )
    answer = session.to_dict()  # a StripeObject is not a dict
    if not answer.get("url") or not answer.get("id"):
        raise StripeRejected(f"Checkout Session {answer.get('id')!r} came back without a url")
    return CheckoutSession(checkout_url=answer["url"], session_id=answer["id"])


def _call_off_downgrade(subscription_id: str, *, client: stripe.StripeClient) -> bool:
    """Release the subscription's schedule, if it has one (a downgrade waiting for the period's
    end). True if there was one."""
    schedule = payloads.ref(retrieve_subscription(subscription_id, client=client).get("schedule"))
    if schedule is None:
        return False
    release_schedule(schedule, client=client)
    return True


def _change_plan(
    subscription_id: str,
    *,
    user_id: str,
    tier: str,
    upgrade: bool,
    price: str,
    success_url: str,
    scope: str | None,
    now: datetime,
    client: stripe.StripeClient,
) -> CheckoutSession | None:
    """Move the user's live subscription to ``price``. None if Stripe says it has ended (our row
    lags behind an event): then a new checkout is the right answer."""
    sub = retrieve_subscription(subscription_id, client=client)
    items = (sub.get("items") or {}).get("data") or []
    if sub.get("status") not in STRIPE_LIVE_STATUSES or not items:
        return None
    if len(items) != 1:
        raise StripeRejected(f"subscription {subscription_id!r} has {len(items)} items; litink sells one")
    metadata = {"user_id": user_id, "tier": tier}
    key_params = {"subscription": subscription_id, "item": items[0]["id"], "price": price, "metadata": metadata}
    key = idempotency_key(key_params, scope=scope, now=now).replace("checkout", "plan-change")
    scheduled = payloads.ref(sub.get("schedule"))
    if not upgrade and get_catalog().billing.downgrade == "period_end":
        # The period is paid for at the higher price: it keeps that tier, the next one is cheaper.
        schedule_subscription_price(sub, price=price, metadata=metadata, idempotency_key=key, client=client)
        return CheckoutSession(checkout_url=success_url, session_id=None, subscription_id=subscription_id)
    if scheduled is not None:
        release_schedule(scheduled, client=client)  # else its next phase would undo this change
    change_subscription_price(
        subscription_id,
        item_id=items[0]["id"],
        price=price,
        metadata=metadata,
        idempotency_key=key,
        upgrade=upgrade,
        client=client,
    )
    return CheckoutSession(checkout_url=success_url, session_id=None, subscription_id=subscription_id)
