"""The ``subscriptions`` row as Stripe events see it: find, lock, save, and its history rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from config import get_catalog, get_settings
from workers.quotas.subscriptions import direction, effective_tier_name

_LOCK_NAMESPACE = b"litink.subscriptions:"


@dataclass(frozen=True)
class SubscriptionState:
    """One user's subscription, as stored."""

    tier: str
    status: str  # active, past_due or canceled
    customer_id: str | None
    subscription_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    past_due_since: datetime | None
    state_at: datetime | None  # event.created of the newest Stripe event applied
    grace_recorded_at: datetime | None = None  # the grace period's end is in subscription_changes


def is_stale(current: SubscriptionState | None, event_created: datetime) -> bool:
    """Stripe delivers out of order: an event older than the newest one applied changes nothing.
    One of the same second is applied (``created`` has one-second resolution)."""
    return current is not None and current.state_at is not None and event_created < current.state_at


def effective_tier(state: SubscriptionState | None, now: datetime) -> str:
    if state is None:
        return get_catalog().default.name
    return effective_tier_name(state.status, state.tier, state.past_due_since, now)


def find_user(
    conn: Connection, *, user_id: str | None, subscription_id: str | None, customer_id: str | None
) -> str | None:
    """The user an event is about: our own metadata first, then the Stripe ids we stored."""
    if user_id:
        return user_id
    if subscription_id:
        found = conn.execute(
            text("SELECT user_id FROM subscriptions WHERE stripe_subscription_id = :s"), {"s": subscription_id}
        ).scalar()
        if found:
            return found
    if customer_id:
        rows = (
            conn.execute(
                text("SELECT user_id FROM subscriptions WHERE stripe_customer_id = :c LIMIT 2"), {"c": customer_id}
            )
            .scalars()
            .all()
        )
        if len(rows) == 1:  # a customer shared by two users names neither
            return rows[0]
    return None


def last_stripe_status(conn: Connection, subscription_id: str) -> str | None:
    """Stripe's status for the subscription in the newest subscription event applied about it
    (``canceled`` for a deletion); None if the inbox holds none with a body."""
    rows = conn.execute(
        text(
            "SELECT type, payload FROM stripe_events WHERE state = 'applied' AND payload IS NOT NULL"
            " AND type LIKE 'customer.subscription.%' AND strpos(payload, :quoted) > 0"
            " ORDER BY created DESC, received_at DESC LIMIT 20"
        ),
        {"quoted": json.dumps(subscription_id)},
    )
    for row in rows:
        obj = (json.loads(row.payload).get("data") or {}).get("object") or {}
        if obj.get("id") == subscription_id:
            return "canceled" if row.type == "customer.subscription.deleted" else obj.get("status")
    return None


def _lock_key(user_id: str) -> int:
    digest = hashlib.blake2b(_LOCK_NAMESPACE + user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock(conn: Connection, user_id: str) -> SubscriptionState | None:
    """The user's row, locked until the transaction ends.

    ``FOR UPDATE`` serialises events for an existing row; the transaction-scoped advisory lock
    also serialises the first events of a user who has no row yet (``FOR UPDATE`` locks nothing
    then), so two of them cannot both decide from "no subscription".
    """
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(user_id)})
    row = conn.execute(
        text(
            "SELECT tier, status, stripe_customer_id, stripe_subscription_id, current_period_start,"
            " current_period_end, past_due_since, state_at, grace_recorded_at"
            " FROM subscriptions WHERE user_id = :u FOR UPDATE"
        ),
        {"u": user_id},
    ).first()
    if row is None:
        return None
    return SubscriptionState(
        tier=row.tier,
        status=row.status,
        customer_id=row.stripe_customer_id,
        subscription_id=row.stripe_subscription_id,
        period_start=row.current_period_start,
        period_end=row.current_period_end,
        past_due_since=row.past_due_since,
        state_at=row.state_at,
        grace_recorded_at=row.grace_recorded_at,
    )


def save(conn: Connection, user_id: str, state: SubscriptionState, now: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO subscriptions (user_id, tier, status, stripe_customer_id, stripe_subscription_id,"
            " current_period_start, current_period_end, past_due_since, state_at, grace_recorded_at, updated_at)"
            " VALUES (:u, :tier, :status, :customer, :subscription, :start, :end, :past_due, :state_at, :grace,"
            " :now)"
            " ON CONFLICT (user_id) DO UPDATE SET tier = EXCLUDED.tier, status = EXCLUDED.status,"
            " stripe_customer_id = EXCLUDED.stripe_customer_id,"
            " stripe_subscription_id = EXCLUDED.stripe_subscription_id,"
            " current_period_start = EXCLUDED.current_period_start,"
            " current_period_end = EXCLUDED.current_period_end, past_due_since = EXCLUDED.past_due_since,"
            " state_at = EXCLUDED.state_at, grace_recorded_at = EXCLUDED.grace_recorded_at,"
            " updated_at = EXCLUDED.updated_at"
        ),
        {
            "u": user_id,
            "tier": state.tier,
            "status": state.status,
            "customer": state.customer_id,
            "subscription": state.subscription_id,
            "start": state.period_start,
            "end": state.period_end,
            "past_due": state.past_due_since,
            "state_at": state.state_at,
            "grace": state.grace_recorded_at,
            "now": now,
        },
    )


def grace_ended(state: SubscriptionState | None, now: datetime) -> bool:
    """A past-due subscription whose grace period is over: the user is on the default tier now."""
    return (
        state is not None
        and state.status == "past_due"
        and state.past_due_since is not None
        and effective_tier(state, now) != state.tier
    )


def record_change(
    conn: Connection, user_id: str, before: str, after: str, now: datetime, *, note: str | None = None
) -> None:
    """A ``subscription_changes`` row (source ``stripe``) when the tier moves, or when ``note``
    says something happened to the subscription that the history must show anyway."""
    if before == after and note is None:
        return
    conn.execute(
        text(
            "INSERT INTO subscription_changes (user_id, from_tier, to_tier, direction, source, note, changed_at)"
            " VALUES (:u, :f, :t, :d, 'stripe', :note, :now)"
        ),
        {"u": user_id, "f": before, "t": after, "d": direction(before, after), "note": note, "now": now},
    )


def record_grace_end(conn: Connection, user_id: str, state: SubscriptionState, now: datetime) -> SubscriptionState:
    """Write the downgrade of a grace period that ran out, once; the state returned remembers it."""
    if not grace_ended(state, now) or state.grace_recorded_at is not None:
        return state
    assert state.past_due_since is not None  # grace_ended says so
    ended = state.past_due_since + timedelta(days=get_settings().past_due_grace_days)
    record_change(conn, user_id, state.tier, effective_tier(state, now), ended, note="past-due grace period ended")
    conn.execute(
        text("UPDATE subscriptions SET grace_recorded_at = :now WHERE user_id = :u"), {"now": now, "u": user_id}
    )
    return replace(state, grace_recorded_at=now)


def expire_grace_periods(conn: Connection, now: datetime, *, limit: int = 500) -> list[str]:
    """Record the end of every grace period that ran out with no event since (the beat task).
    Each row is locked as an event locks it (advisory lock, then the row) and checked again, so
    an event and this task never both write it, and never deadlock."""
    cutoff = now - timedelta(days=get_settings().past_due_grace_days)
    users = (
        conn.execute(
            text(
                "SELECT user_id FROM subscriptions WHERE status = 'past_due' AND grace_recorded_at IS NULL"
                " AND past_due_since <= :cutoff ORDER BY past_due_since LIMIT :limit"
            ),
            {"cutoff": cutoff, "limit": limit},
        )
        .scalars()
        .all()
    )
    done = []
    for user_id in users:
        current = lock(conn, user_id)
        if current is not None and record_grace_end(conn, user_id, current, now) is not current:
            done.append(user_id)
    return done
