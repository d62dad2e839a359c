"""The Stripe event inbox: the ``stripe_events`` table.

A verified event is kept here, raw, before Stripe gets its 2xx, so nothing after the door can
lose it. Its ``state`` then moves once, guarded in SQL:

    received --(processed)--> applied | ignored (outcome: why) | failed (error)
        ^                                                            |
        +------------------------- replay (an operator) -------------+

A ``received`` row is processed by ``litink.process_stripe_event``; the sweep republishes the
ones still ``received`` a minute after they arrived (a lost message, a crashed worker, a broker
restart, a long database outage), then every few minutes until they are processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, text

from workers.billing.webhooks import Event

STATES = ("received", "applied", "ignored", "failed")
# The sweep takes a received row this long after it arrived (its own message had its chance)...
SWEEP_AFTER = timedelta(minutes=1)
# ...then again this long after each sweep, longer than one task's own retries last.
SWEEP_AGAIN_AFTER = timedelta(minutes=10)
SWEEP_BATCH = 500
ERROR_MAX_CHARS = 2000
OUTCOME_MAX_CHARS = 64  # stripe_events.outcome


@dataclass(frozen=True)
class Receipt:
    """What the inbox holds for an event after a delivery: ``new`` if this delivery stored it."""

    event_id: str
    type: str
    state: str
    new: bool

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "type": self.type, "state": self.state, "new": self.new}


def receive(conn: Connection, event: Event, payload: str) -> Receipt:
    """Keep a verified event (state ``received``), or find the one a previous delivery kept."""
    stored = conn.execute(
        text(
            "INSERT INTO stripe_events (id, type, created, state, payload) VALUES (:id, :type, :created, 'received',"
            " :payload) ON CONFLICT (id) DO NOTHING RETURNING state"
        ),
        {"id": event.id, "type": event.type[:64], "created": event.created, "payload": payload},
    ).first()
    if stored is not None:
        return Receipt(event.id, event.type, stored.state, new=True)
    existing = conn.execute(text("SELECT state FROM stripe_events WHERE id = :id"), {"id": event.id}).scalar_one()
    return Receipt(event.id, event.type, existing, new=False)


def received_at(conn: Connection, event_id: str) -> datetime | None:
    """When the inbox first kept the event, or None if it never did."""
    return conn.execute(text("SELECT received_at FROM stripe_events WHERE id = :id"), {"id": event_id}).scalar()


def lock(conn: Connection, event_id: str) -> Row[Any] | None:
    """The row, locked until the transaction ends: one processor at a time per event."""
    return conn.execute(
        text("SELECT id, type, state, outcome, payload FROM stripe_events WHERE id = :id FOR UPDATE"),
        {"id": event_id},
    ).first()


def finish(
    conn: Connection, event_id: str, state: str, outcome: str | None, now: datetime, error: str | None = None
) -> None:
    """Move a received row to its final state (in the transaction that applied it). A success
    keeps the last transient error, so the row still tells why it took more than one attempt."""
    conn.execute(
        text(
            "UPDATE stripe_events SET state = :state, outcome = :outcome, error = COALESCE(:error, error),"
            " processed_at = :now"
            " WHERE id = :id AND state = 'received'"
        ),
        {
            "id": event_id,
            "state": state,
            "outcome": outcome[:OUTCOME_MAX_CHARS] if outcome else None,
            "error": error[:ERROR_MAX_CHARS] if error else None,
            "now": now,
        },
    )


def note_attempt(conn: Connection, event_id: str, error: str) -> None:
    """Count an attempt that raised a transient error; the row stays ``received``."""
    conn.execute(
        text("UPDATE stripe_events SET attempts = attempts + 1, error = :error WHERE id = :id AND state = 'received'"),
        {"id": event_id, "error": error[:ERROR_MAX_CHARS]},
    )


def reopen(conn: Connection, event_id: str) -> bool:
    """Put a processed row back to ``received`` (an operator's replay). False if there is none."""
    reopened = conn.execute(
        text(
            "UPDATE stripe_events SET state = 'received', outcome = NULL, error = NULL, processed_at = NULL,"
            " next_attempt_at = NULL WHERE id = :id AND payload IS NOT NULL RETURNING id"
        ),
        {"id": event_id},
    ).first()
    return reopened is not None


def due(conn: Connection, now: datetime, *, limit: int = SWEEP_BATCH) -> list[str]:
    """Claim the received rows to publish again, pushing each one's next turn on. Two sweeps at
    once claim different rows (SKIP LOCKED)."""
    return list(
        conn.execute(
            text(
                "UPDATE stripe_events SET next_attempt_at = :again WHERE id IN ("
                " SELECT id FROM stripe_events WHERE state = 'received' AND received_at <= :old"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
                " ORDER BY received_at LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
            ),
            {"again": now + SWEEP_AGAIN_AFTER, "old": now - SWEEP_AFTER, "now": now, "limit": limit},
        ).scalars()
    )


def list_events(conn: Connection, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events in the inbox, optionally in one state; plain data for the CLI."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {state!r}; known: {', '.join(STATES)}")
    rows = conn.execute(
        text(
            "SELECT id, type, created, state, outcome, error, attempts, received_at, processed_at FROM stripe_events"
            " WHERE (CAST(:state AS text) IS NULL OR state = :state) ORDER BY received_at DESC, id LIMIT :limit"
        ),
        {"state": state, "limit": limit},
    )
    return [
        {
            "event_id": row.id,
            "type": row.type,
            "created": row.created.isoformat(),
            "state": row.state,
            "outcome": row.outcome,
            "error": row.error,
            "attempts": row.attempts,
            "received_at": row.received_at.isoformat(),
            "processed_at": row.processed_at.isoformat() if row.processed_at else None,
        }
        for row in rows
    ]
