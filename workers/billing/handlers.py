"""What each Stripe event type changes, through the one path that changes a subscription.

Every handler takes ``(conn, event, now)`` inside the event's transaction and returns its
outcome. Ordering (``stale``), a second subscription, the grace period and the tier history are
handled once, in :func:`_transition` and :func:`_second_subscription`.

The tier is what the customer pays for: the subscription item's price id, mapped through
``STRIPE_PRICE_<TIER>``. Metadata only names the user and is a cross-check of the tier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from config import get_catalog
from workers.billing import client, payloads, state
from workers.billing.client import tier_for_prices
from workers.billing.state import SubscriptionState
from workers.billing.webhooks import Event

logger = logging.getLogger(__name__)

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
LIVE = ("active", "past_due")  # ours: a subscription Stripe still charges for
# Refused transitions: each is answered `ignored` with one of these reasons (see docs/billing.md).
CANCELED_FINAL = "canceled_final"  # an event would bring back a subscription that has ended
PLAN_CHANGE_UNPAID = "plan_change_unpaid"  # the charge for a plan change failed: nothing changes


# The one path that changes a subscription.


@dataclass(frozen=True)
class Move:
    """A new state, and a note for the history when it is more than a tier move."""

    state: SubscriptionState
    note: str | None = None


Decision = Move | str  # a new state, or the outcome of changing nothing
Decide = Callable[[SubscriptionState | None], Decision]


def _transition(
    conn: Connection,
    event: Event,
    now: datetime,
    user_id: str | None,
    applied: str,
    decide: Decide,
    *,
    subscription_id: str | None,
) -> str:
    """Lock the user's row, refuse what the state machine refuses, apply ``decide`` and record
    the tier move. ``subscription_id`` is the subscription the event is about."""
    if not user_id:
        return _refused(event, "unmatched")
    current = state.lock(conn, user_id)
    if state.is_stale(current, event.created):
        return _refused(event, "stale")
    if current is not None and _ended(conn, current, subscription_id):
        # Stripe never reactivates a canceled subscription, so any later event that reads
        # otherwise (same-second reordering, a plan change racing a cancel) is refused.
        return _refused(event, CANCELED_FINAL, subscription_id=subscription_id)
    if current is not None:
        # A grace period that ran out since the last event is a move of its own, recorded first.
        current = state.record_grace_end(conn, user_id, current, now)
    decision = decide(current)
    if isinstance(decision, str):
        return _refused(event, decision)
    new = replace(decision.state, state_at=event.created, grace_recorded_at=_grace_kept(current, decision.state))
    before, after = state.effective_tier(current, now), state.effective_tier(new, now)
    if state.grace_ended(new, now) and new.grace_recorded_at is None:
        new = replace(new, grace_recorded_at=now)  # this very move records the loss
    state.save(conn, user_id, new, now)
    state.record_change(conn, user_id, before, after, now, note=decision.note)
    return applied


def _refused(event: Event, reason: str, *, subscription_id: str | None = None) -> str:
    """Log a transition the state machine refuses; the reason is the event's outcome."""
    level = logging.WARNING if reason == CANCELED_FINAL else logging.INFO
    logger.log(
        level,
        "Stripe event %s (%s) changes nothing: %s%s",
        event.id,
        event.type,
        reason,
        f" ({subscription_id} has ended)" if reason == CANCELED_FINAL else "",
        extra={"event_id": event.id, "event_type": event.type, "outcome": reason},
    )
    return reason


def _ended(conn: Connection, current: SubscriptionState, subscription_id: str | None) -> bool:
    """The event is about the user's subscription, which has ended for good.

    Our ``canceled`` also stands for Stripe's ``paused``, which can resume; every other way to
    get there (deleted, canceled, incomplete_expired) is final in Stripe too.
    """
    if current.status != "canceled" or subscription_id is None or current.subscription_id != subscription_id:
        return False
    return state.last_stripe_status(conn, subscription_id) != "paused"


def _grace_kept(current: SubscriptionState | None, new: SubscriptionState) -> datetime | None:
    """The grace period's recorded end stays with the same past-due episode only."""
    if current is None or new.status != "past_due":
        return None
    same = current.subscription_id == new.subscription_id and current.past_due_since == new.past_due_since
    return current.grace_recorded_at if same else None


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


def _second_subscription(
    conn: Connection, user_id: str, current: SubscriptionState, other_id: str, now: datetime
) -> tuple[str, str | None]:
    """Which of the user's current subscription and ``other_id`` stands: one subscription per user.

    Stripe is asked for both. A subscription it no longer charges for loses without a call; of
    two live ones the newer (Stripe's ``created``) wins and the older is cancelled through the
    API. Returns who stands, ``"other"`` (the caller adopts ``other_id``) or ``"current"``, and
    the id cancelled, if any. A cancellation is written to ``subscription_changes``: here when the
    current one stands, by the caller's move when ``other_id`` does.
    """
    assert current.subscription_id is not None
    mine = client.retrieve_subscription(current.subscription_id)
    theirs = client.retrieve_subscription(other_id)
    live = [s for s in (mine, theirs) if STATUSES.get(s.get("status", "")) in LIVE]
    if theirs not in live:
        return "current", None
    if mine not in live:
        return "other", None  # our row lags behind Stripe; nothing to cancel
    newer, older = sorted(live, key=lambda s: (s.get("created") or 0, s.get("id") or ""), reverse=True)
    client.cancel_subscription(older["id"])
    logger.warning(
        "User %s had two live Stripe subscriptions: kept %s, canceled %s",
        user_id,
        newer["id"],
        older["id"],
        extra={"user_id": user_id, "subscription_id": newer["id"], "canceled_subscription_id": older["id"]},
    )
    if newer is mine:
        tier = state.effective_tier(current, now)
        state.record_change(conn, user_id, tier, tier, now, note=_replaced(newer["id"], older["id"]))
        return "current", older["id"]
    return "other", older["id"]


def _replaced(kept: str, canceled: str) -> str:
    return f"second subscription: kept {kept}, canceled {canceled}"[:200]


def _rank(tier: str) -> int:
    return get_catalog().tier(tier).rank


def _tier_paid_for(event: Event, sub: dict[str, Any], metadata_tier: str | None) -> str | None:
    """The tier the subscription's prices buy; metadata only cross-checks it."""
    prices = payloads.subscription_price_ids(sub)
    tier = tier_for_prices(prices)
    if tier is None:
        logger.error(
            "Stripe event %s: price %s maps to no tier (STRIPE_PRICE_<TIER>); nothing provisioned",
            event.id,
            ", ".join(prices) or "(none)",
            extra={"event_id": event.id, "event_type": event.type},
        )
    elif metadata_tier and metadata_tier != tier:
        logger.warning(
            "Stripe event %s: metadata says %r but the price paid for is %r; the price wins",
            event.id,
            metadata_tier,
            tier,
            extra={"event_id": event.id, "event_type": event.type, "tier": tier},
        )
    return tier


def _apply_subscription(
    conn: Connection, event: Event, now: datetime, sub: dict[str, Any], user_id: str | None, applied: str
) -> str:
    """A subscription as Stripe describes it (in the event, or retrieved) becomes the user's."""
    status = STATUSES.get(sub.get("status", ""))
    if status is None:
        return f"ignored_status: {sub.get('status')}"
    tier = _tier_paid_for(event, sub, payloads.metadata(sub).get("tier"))
    if tier is None:
        return "unknown_price"
    subscription_id, customer_id = payloads.ref(sub.get("id")), payloads.ref(sub.get("customer"))
    start, end = payloads.subscription_period(sub)

    def decide(current: SubscriptionState | None) -> Decision:
        note = None
        if _foreign(current, subscription_id):
            assert current is not None and user_id is not None and subscription_id is not None
            if status == "canceled":
                return "other_subscription"
            stands, canceled = _second_subscription(conn, user_id, current, subscription_id, now)
            if stands == "current":
                return "other_subscription"
            note = _replaced(subscription_id, canceled) if canceled else None
        past_due_since = None
        if status == "past_due":
            past_due_since = _kept(current, subscription_id, "past_due_since") or event.created
        granted = tier
        paid_for = _kept(current, subscription_id, "tier")
        if status == "past_due" and paid_for and _rank(tier) > _rank(paid_for):
            # A price raised without a successful payment (a change made with Stripe's default
            # allow_incomplete, e.g. in the dashboard): the grace period keeps the tier paid for,
            # never the one asked for. The new tier comes with the update that says "active".
            logger.warning(
                "Stripe event %s: %s moved to %s but is past due; %s stands until it is paid",
                event.id,
                subscription_id,
                tier,
                paid_for,
                extra={"event_id": event.id, "event_type": event.type, "tier": paid_for},
            )
            granted = paid_for
        new = SubscriptionState(
            tier=granted,
            status=status,
            customer_id=customer_id or (current.customer_id if current else None),
            subscription_id=subscription_id,
            period_start=start or _kept(current, subscription_id, "period_start"),
            period_end=end or _kept(current, subscription_id, "period_end"),
            past_due_since=past_due_since,
            state_at=None,
        )
        return Move(new, note)

    return _transition(conn, event, now, user_id, applied, decide, subscription_id=subscription_id)


# Handlers: (conn, event, now) -> outcome.


def _checkout_completed(conn: Connection, event: Event, now: datetime) -> str:
    session = event.obj
    if session.get("mode") != "subscription":
        return "ignored"
    if session.get("payment_status") == "unpaid":
        return "awaiting_payment"  # a delayed payment method; async_payment_succeeded follows
    subscription_id = payloads.ref(session.get("subscription"))
    if subscription_id is None:
        return "ignored"
    # The session does not carry what was bought: Stripe's subscription does.
    sub = client.retrieve_subscription(subscription_id)
    meta = payloads.metadata(session)
    if meta.get("tier") and not payloads.metadata(sub).get("tier"):
        sub = {**sub, "metadata": {**payloads.metadata(sub), "tier": meta["tier"]}}  # cross-check only
    user_id = meta.get("user_id") or session.get("client_reference_id")
    return _apply_subscription(conn, event, now, sub, user_id, "provisioned")


def _subscription_changed(conn: Connection, event: Event, now: datetime) -> str:
    sub = event.obj
    user_id = state.find_user(
        conn,
        user_id=payloads.metadata(sub).get("user_id"),
        subscription_id=payloads.ref(sub.get("id")),
        customer_id=payloads.ref(sub.get("customer")),
    )
    return _apply_subscription(conn, event, now, sub, user_id, "updated")


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
        return Move(
            SubscriptionState(
                tier=tier,
                status="canceled",
                customer_id=customer_id or (current.customer_id if current else None),
                subscription_id=subscription_id,
                period_start=start or _kept(current, subscription_id, "period_start"),
                period_end=end or _kept(current, subscription_id, "period_end"),
                past_due_since=None,
                state_at=None,
            )
        )

    return _transition(conn, event, now, user_id, "canceled", decide, subscription_id=subscription_id)


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
    if invoice.get("billing_reason") == "subscription_update":
        # A plan change's proration runs from the change to the end of the current period: the
        # billing period itself (and with it a billing-period quota) does not start again.
        start = end = None
    user_id = _invoice_user(conn, invoice, subscription_id)

    def decide(current: SubscriptionState | None) -> Decision:
        note = None
        if _foreign(current, subscription_id):
            # A second subscription is being paid for: one of the two must go.
            assert current is not None and user_id is not None
            stands, canceled = _second_subscription(conn, user_id, current, subscription_id, now)
            if stands == "current":
                return "other_subscription"
            note = _replaced(subscription_id, canceled) if canceled else None
        same = current is not None and current.subscription_id == subscription_id
        # The tier moves with customer.subscription.updated; the invoice names it only for a
        # subscription we have not seen yet.
        tier = current.tier if same and current is not None else tier_for_prices(payloads.invoice_price_ids(invoice))
        if tier is None:
            logger.error(
                "Stripe event %s: invoice prices map to no tier; nothing provisioned",
                event.id,
                extra={"event_id": event.id, "event_type": event.type},
            )
            return "unknown_price"
        return Move(
            SubscriptionState(
                tier=tier,
                status="active",
                customer_id=payloads.ref(invoice.get("customer")) or (current.customer_id if current else None),
                subscription_id=subscription_id,
                period_start=start or _kept(current, subscription_id, "period_start"),
                period_end=end or _kept(current, subscription_id, "period_end"),
                past_due_since=None,
                state_at=None,
            ),
            note,
        )

    return _transition(conn, event, now, user_id, "renewed", decide, subscription_id=subscription_id)


def _invoice_payment_failed(conn: Connection, event: Event, now: datetime) -> str:
    invoice = event.obj
    subscription_id = payloads.invoice_subscription_id(invoice)
    if subscription_id is None:
        return "ignored"
    if invoice.get("billing_reason") == "subscription_update":
        # The charge for a plan change failed. The subscription is not behind on what it had
        # already paid for (a pending update left it as it was); any change to its status comes
        # with its own customer.subscription.updated.
        return _refused(event, PLAN_CHANGE_UNPAID)

    def decide(current: SubscriptionState | None) -> Decision:
        if current is None:
            return "unmatched"  # nothing was provisioned, so nothing is past due
        if _foreign(current, subscription_id):
            return "other_subscription"
        if current.status == "canceled":
            return "ignored"  # a paused subscription's invoice: nothing to fall behind on
        # The grace period counts from the first failure, not the latest retry.
        since = current.past_due_since if current.status == "past_due" else None
        return Move(
            replace(current, status="past_due", subscription_id=subscription_id, past_due_since=since or event.created)
        )

    return _transition(
        conn,
        event,
        now,
        _invoice_user(conn, invoice, subscription_id),
        "past_due",
        decide,
        subscription_id=subscription_id,
    )


HANDLERS: dict[str, Callable[[Connection, Event, datetime], str]] = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
}

# Outcomes that changed a subscription; every other outcome leaves the event `ignored`.
APPLIED_OUTCOMES = frozenset({"provisioned", "updated", "canceled", "renewed", "past_due"})
