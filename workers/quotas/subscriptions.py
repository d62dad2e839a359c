"""Which tier a user is on, and the one place a tier changes (with its history row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from config import get_catalog, get_settings
from config.tiers import Tier

STANDING = text(
    "SELECT tier, status, past_due_since, current_period_start, current_period_end"
    " FROM subscriptions WHERE user_id = :u"
)


@dataclass(frozen=True)
class Standing:
    """A user's effective subscription at one instant."""

    tier: Tier
    status: str  # active, past_due, canceled or none
    period_start: datetime | None  # the Stripe billing period, when there is one
    period_end: datetime | None


def effective_tier_name(status: str | None, tier: str | None, past_due_since: datetime | None, now: datetime) -> str:
    """No subscription, a canceled one, or past_due beyond the grace period means the default tier."""
    catalog = get_catalog()
    if status == "active" and tier:
        return tier
    grace = timedelta(days=get_settings().past_due_grace_days)
    if status == "past_due" and tier and past_due_since is not None and now < past_due_since + grace:
        return tier
    return catalog.default.name


def standing(conn: Connection, user_id: str, now: datetime) -> Standing:
    row = conn.execute(STANDING, {"u": user_id}).first()
    if row is None:
        return Standing(get_catalog().default, "none", None, None)
    name = effective_tier_name(row.status, row.tier, row.past_due_since, now)
    return Standing(get_catalog().tier(name), row.status, row.current_period_start, row.current_period_end)


def direction(from_tier: str, to_tier: str) -> str:
    catalog = get_catalog()
    a, b = catalog.tier(from_tier).rank, catalog.tier(to_tier).rank
    return "upgrade" if b > a else "downgrade" if b < a else "lateral"


def record_change(conn: Connection, user_id: str, from_tier: str, to_tier: str, source: str) -> None:
    """Write a history row when the effective tier moves (for upgrade and downgrade counts)."""
    if from_tier == to_tier:
        return
    conn.execute(
        text(
            "INSERT INTO subscription_changes (user_id, from_tier, to_tier, direction, source)"
            " VALUES (:u, :f, :t, :d, :s)"
        ),
        {"u": user_id, "f": from_tier, "t": to_tier, "d": direction(from_tier, to_tier), "s": source},
    )


def set_tier(conn: Connection, user_id: str, tier: str, *, now: datetime, source: str = "operator") -> str:
    """Put a user on ``tier`` as an active subscription (operator action). Returns the old tier.

    The row is locked, so two concurrent changes record a consistent history.
    """
    get_catalog().tier(tier)  # unknown tier: KeyError with the known ones
    row = conn.execute(
        text("SELECT tier, status, past_due_since FROM subscriptions WHERE user_id = :u FOR UPDATE"),
        {"u": user_id},
    ).first()
    before = effective_tier_name(row.status, row.tier, row.past_due_since, now) if row else get_catalog().default.name
    conn.execute(
        text(
            "INSERT INTO subscriptions (user_id, tier, status, updated_at) VALUES (:u, :t, 'active', :now)"
            " ON CONFLICT (user_id) DO UPDATE SET tier = :t, status = 'active', past_due_since = NULL,"
            " updated_at = :now"
        ),
        {"u": user_id, "t": tier, "now": now},
    )
    record_change(conn, user_id, before, tier, source)
    return before
