"""What each Stripe event type changes, through the one path that changes a subscription.

Every handler takes ``(conn, event, now)`` inside the event's transaction and returns its
outcome. Ordering (``stale``), foreign subscriptions (``other_subscription``) and the tier
history are handled once, in :func:`_transition`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from config import get_catalog
from workers.billing import payloads, state
from workers.billing.client import tier_for_prices
from workers.billing.state import SubscriptionState
from workers.billing.webhooks import Event
from workers.quotas.subscriptions import record_change

# Stripe subscription status -> ours. "incomplete" (first payment pending) maps to nothing.
STATUSES = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
    "paused": "canceled",
}


# The one path that changes a subscription.

Decision = SubscriptionState | str  # a new state, or the outcome of changing nothing
Decide = Callable[[SubscriptionState | None], Decision]


def _transition(
    conn: Connection, event: Event, now: datetime, user_id: str | None, applied: str, decide: Decide
) -> str:
    """Lock the user's row, refuse stale events, apply ``decide`` and record a tier move."""
    if not user_id:
        return "unmatched"
    current = state.lock(conn, user_id)
    if current is not None and current.state_at is not None and event.created < current.state_at:
        return "stale"
    decision = decide(current)
    if isinstance(decision, str):
        return decision
    new = replace(decision, state_at=event.created)
    # "Before" is the tier as of the last applied event: a grace period that ran out since then
    # is a move too, and is recorded now, with the first event that sees it.
    before = state.effective_tier(current, (current.state_at if current else None) or now)
    after = state.effective_tier(new, now)
    state.save(conn, user_id, new, now)
    record_change(conn, user_id, before, after, "stripe")
    return applied


def _foreign(current: SubscriptionState | None, subscription_id: str | None) -> bool:
    """The event is about a subscription other than the user's current, unended one."""
    return (
        current is not None
        and current.subscription_id is not None
        and subscription_id != current.subscription_id
        and current.status != "canceled"
    )


def _kept(current: SubscriptionState | None, subscription_id: str | None, field: str) -> Any:
    """A stored field, kept only while the event is about the same subscription."""
    if current is None or current.subscription_id != subscription_id:
        return None
    return getattr(current, field)


# Handlers: (conn, event, now) -> outcome.


def _checkout_completed(conn: Connection, event: Event, now: datetime) -> str:
    session = event.obj
    if session.get("mode") != "subscription":
        return "ignored"
    if session.get("payment_status") == "unpaid":
        return "awaiting_payment"  # a delayed payment method; async_payment_succeeded follows
    meta = payloads.metadata(session)
    tier = meta.get("tier")
    if tier not in get_catalog().tiers:
        return "unknown_tier"
    subscription_id, customer_id = payloads.ref(session.get("subscription")), payloads.ref(session.get("customer"))
    user_id = meta.get("user_id") or session.get("client_reference_id")

    def decide(current: SubscriptionState | None) -> Decision:
        return SubscriptionState(
            tier=tier,
            status="active",
            customer_id=customer_id or (current.customer_id if current else None),
            subscription_id=subscription_id,
            period_start=_kept(current, subscription_id, "period_start"),
            period_end=_kept(current, subscription_id, "period_end"),
            past_due_since=None,
            state_at=None,
        )

    return _transition(conn, event, now, user_id, "provisioned", decide)


def _subscription_changed(conn: Connection, event: Event, now: datetime) -> str:
    sub = event.obj
    status = STATUSES.get(sub.get("status", ""))
    if status is None:
        return f"ignored_status: {sub.get('status')}"
    tier = tier_for_prices(payloads.subscription_price_ids(sub))
    if tier is None:
        return "unknown_price"
    subscription_id, customer_id = payloads.ref(sub.get("id")), payloads.ref(sub.get("customer"))
    start, end = payloads.subscription_period(sub)
    user_id = state.find_user(
        conn,
        user_id=payloads.metadata(sub).get("user_id"),
        subscription_id=subscription_id,
        customer_id=customer_id,
    )
    adopts = event.type == "customer.subscription.created"

    def decide(current: SubscriptionState | None) -> Decision:
        if _foreign(current, subscription_id) and not adopts:
            return "other_subscription"
        past_due_since = None
        if status == "past_due":
            past_due_since = _kept(current, subscription_id, "past_due_since") or event.created
        return SubscriptionState(
            tier=tier,
            status=status,
            customer_id=customer_id or (current.customer_id if current else None),
            subscription_id=subscription_id,
            period_start=start or _kept(current, subscription_id, "period_start"),
            period_end=end or _kept(current, subscription_id, "period_end"),
            past_due_since=past_due_since,
            state_at=None,
        )

    return _transition(conn, event, now, user_id, "updated", decide)


def _subscription_deleted(conn: Connection, event: Event, now: datetime) -> str:
    sub = event.obj
    subscription_id, customer_id = payloads.ref(sub.get("id")), payloads.ref(sub.get("customer"))
    user_id = state.find_user(
        conn,
        user_id=payloads.metadata(sub).get("user_id"),
        subscription_id=subscription_id,
        customer_id=customer_id,
    )

    def decide(current: SubscriptionState | None) -> Decision:
        if _foreign(current, subscription_id):
            return "other_subscription"
        # Even with no row yet, a canceled row is written: its state_at makes an older
        # "created" that arrives later stale, instead of granting the tier.
        tier = tier_for_prices(payloads.subscription_price_ids(sub)) or (
            current.tier if current else get_catalog().default.name
        )
        start, end = payloads.subscription_period(sub)
        return SubscriptionState(
            tier=tier,
            status="canceled",
            customer_id=customer_id or (current.customer_id if current else None),
            subscription_id=subscription_id,
            period_start=start or _kept(current, subscription_id, "period_start"),
            period_end=end or _kept(current, subscription_id, "period_end"),
            past_due_since=None,
            state_at=None,
        )

    return _transition(conn, event, now, user_id, "canceled", decide)


def _invoice_user(conn: Connection, invoice: dict[str, Any], subscription_id: str) -> str | None:
    return state.find_user(
        conn,
        user_id=payloads.invoice_metadata(invoice).get("user_id"),
        subscription_id=subscription_id,
        customer_id=payloads.ref(invoice.get("customer")),
    )


def _invoice_paid(conn: Connection, event: Event, now: datetime) -> str:
    invoice = event.obj
    subscription_id = payloads.invoice_subscription_id(invoice)
    if subscription_id is None:
        return "ignored"  # a one-off invoice, not a subscription's
    start, end = payloads.invoice_period(invoice)

    def decide(current: SubscriptionState | None) -> Decision:
        if _foreign(current, subscription_id):
            return "other_subscription"
        same = current is not None and current.subscription_id == subscription_id
        if same and current.status == "canceled":
            return "ignored"  # a late payment never revives an ended subscription
        # The tier moves with customer.subscription.updated; the invoice names it only for a
        # subscription we have not seen yet.
        tier = current.tier if same else tier_for_prices(payloads.invoice_price_ids(invoice))
        if tier is None:
            return "unknown_price"
        return SubscriptionState(
            tier=tier,
            status="active",
            customer_id=payloads.ref(invoice.get("customer")) or (current.customer_id if current else None),
            subscription_id=subscription_id,
            period_start=start or _kept(current, subscription_id, "period_start"),
            period_end=end or _kept(current, subscription_id, "period_end"),
            past_due_since=None,
            state_at=None,
        )

    return _transition(conn, event, now, _invoice_user(conn, invoice, subscription_id), "renewed", decide)


def _invoice_payment_failed(conn: Connection, event: Event, now: datetime) -> str:
    invoice = event.obj
    subscription_id = payloads.invoice_subscription_id(invoice)
    if subscription_id is None:
        return "ignored"

    def decide(current: SubscriptionState | None) -> Decision:
        if current is None:
            return "unmatched"  # nothing was provisioned, so nothing is past due
        if _foreign(current, subscription_id):
            return "other_subscription"
        if current.status == "canceled":
            return "ignored"
        # The grace period counts from the first failure, not the latest retry.
        since = current.past_due_since if current.status == "past_due" else None
        return replace(
            current, status="past_due", subscription_id=subscription_id, past_due_since=since or event.created
        )

    return _transition(conn, event, now, _invoice_user(conn, invoice, subscription_id), "past_due", decide)


HANDLERS: dict[str, Callable[[Connection, Event, datetime], str]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
}
