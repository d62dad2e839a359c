"""Applying Stripe webhook events to ``subscriptions``, each event exactly once and in order.

This module verifies and deduplicates; :mod:`workers.billing.handlers` decides what each
event type changes.

Rules, in the order they are checked:

1. The signature is verified on the raw body; a bad or stale one changes nothing.
2. ``event.id`` is inserted into ``stripe_events`` in the same transaction as the state change,
   so a redelivered task or a resent webhook finds it there: outcome ``duplicate``.
3. The user's row is locked; an event created before the newest one applied (``state_at``)
   is recorded but changes nothing: outcome ``stale``.
4. An event about a subscription other than the user's current one changes nothing
   (``other_subscription``), unless it creates a new one or the current one has ended.
5. When the effective tier moves, a ``subscription_changes`` row is written (source ``stripe``):
   from the tier as of the last applied event to the tier now. A past-due grace period that ran
   out in between is so recorded by the next event, not at the moment it ran out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from config import get_settings
from db.session import transaction
from workers.billing.errors import BillingNotConfigured, InvalidPayload, InvalidSignature
from workers.billing.handlers import HANDLERS
from workers.billing.webhooks import Event, verify_event

logger = logging.getLogger(__name__)

OUTCOME_MAX_CHARS = 64  # stripe_events.outcome


@dataclass(frozen=True)
class EventResult:
    """What became of one webhook: the task's return value."""

    event_id: str | None
    type: str | None
    outcome: str

    def as_dict(self) -> dict[str, str | None]:
        return {"event_id": self.event_id, "type": self.type, "outcome": self.outcome}


def handle_event(payload: str, signature: str | None, *, now: datetime | None = None) -> EventResult:
    """Verify one webhook body and apply it. Safe to call any number of times for one event."""
    settings = get_settings()
    if settings.stripe_webhook_secret is None:
        raise BillingNotConfigured("STRIPE_WEBHOOK_SECRET is not set: webhooks cannot be verified")
    try:
        event = verify_event(
            payload,
            signature,
            secret=settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance,
        )
    except InvalidSignature as exc:
        logger.warning("Stripe webhook refused: invalid signature (%s)", exc)
        return EventResult(None, None, f"invalid_signature: {exc}")
    except InvalidPayload as exc:
        logger.warning("Stripe webhook refused: invalid payload (%s)", exc)
        return EventResult(None, None, f"invalid_payload: {exc}")

    now = now or datetime.now(UTC)
    with transaction() as conn:
        if not _claim(conn, event):
            outcome = "duplicate"
        else:
            handler = HANDLERS.get(event.type)
            outcome = handler(conn, event, now) if handler else "ignored"
            conn.execute(
                text("UPDATE stripe_events SET outcome = :o WHERE id = :id"),
                {"o": outcome[:OUTCOME_MAX_CHARS], "id": event.id},
            )
    logger.info(
        "Stripe event %s (%s): %s",
        event.id,
        event.type,
        outcome,
        extra={"event_id": event.id, "event_type": event.type, "outcome": outcome},
    )
    return EventResult(event.id, event.type, outcome)


def _claim(conn: Connection, event: Event) -> bool:
    """Record the event id; False if it was already recorded. A concurrent delivery of the same
    event waits here on the primary key until the first one commits, then sees it."""
    claimed = conn.execute(
        text(
            "INSERT INTO stripe_events (id, type, created, outcome) VALUES (:id, :type, :created, 'processing')"
            " ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
        {"id": event.id, "type": event.type[:64], "created": event.created},
    ).first()
    return claimed is not None
