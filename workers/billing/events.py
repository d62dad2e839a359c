"""Stripe webhook events: verified at the door, kept in the inbox, then applied once and in order.

This module runs the inbox (:mod:`workers.billing.inbox`): :func:`handle_event` is the door for
a producer that sends the raw body itself, :func:`process_event` applies a stored event from its
row alone, and :func:`replay_event` retries a ``failed`` one. :mod:`workers.billing.handlers`
decides what each event type changes. The states and outcomes: docs/billing.md, "The inbox".
A signature's age is judged at the door, or against the time the inbox recorded the event
(:func:`admit`), never against anything a task message says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from config import get_settings
from db.errors import UNAVAILABLE
from db.session import transaction
from workers.billing import inbox
from workers.billing.errors import BillingNotConfigured, InvalidPayload, InvalidSignature, StripeUnavailable
from workers.billing.handlers import APPLIED_OUTCOMES, HANDLERS
from workers.billing.webhooks import Event, parse_event, verify_event, verify_signature

logger = logging.getLogger(__name__)

# Errors that may pass: the event's transaction rolled back whole, so trying again is safe.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*UNAVAILABLE, StripeUnavailable)


@dataclass(frozen=True)
class EventResult:
    """What became of one webhook: the task's return value."""

    event_id: str | None
    type: str | None
    outcome: str

    def as_dict(self) -> dict[str, str | None]:
        return {"event_id": self.event_id, "type": self.type, "outcome": self.outcome}


def webhook_secret() -> str:
    secret = get_settings().stripe_webhook_secret
    if secret is None:
        raise BillingNotConfigured("STRIPE_WEBHOOK_SECRET is not set: webhooks cannot be verified")
    return secret.get_secret_value()


def verify(payload: str, signature: str | None) -> Event:
    """The door: the event, once its signature and its age (against the clock now) are proven."""
    return verify_event(payload, signature, secret=webhook_secret(), tolerance=get_settings().stripe_webhook_tolerance)


def receive(event: Event, payload: str) -> inbox.Receipt:
    """Keep a verified event in the inbox (its own transaction, committed on return)."""
    with transaction() as conn:
        return inbox.receive(conn, event, payload)


def admit(event: Event, payload: str, signed_at: datetime) -> None:
    """Keep an event whose HMAC is proven, once its age is: the time the inbox recorded for it if
    it is kept already (a later run must not lose it to the time a backlog or an outage took),
    else the clock now. Nothing a message carries (its ``retries`` header, say) counts, since any
    producer can set it. Too old: :class:`InvalidSignature`, and nothing is kept."""
    tolerance = timedelta(seconds=get_settings().stripe_webhook_tolerance)
    with transaction() as conn:
        kept_at = inbox.received_at(conn, event.id)
        checked_at = kept_at or datetime.now(UTC)
        if checked_at - signed_at > tolerance:
            when = "it was kept" if kept_at else "now"
            raise InvalidSignature(
                f"Timestamp outside the tolerance zone ({int(signed_at.timestamp())}): signed"
                f" {int((checked_at - signed_at).total_seconds())} s before {when}"
            )
        if kept_at is None:
            inbox.receive(conn, event, payload)


def handle_event(payload: str, signature: str | None, *, now: datetime | None = None) -> EventResult:
    """The contract task's work: verify one raw body, keep it, apply it. Safe to repeat."""
    try:
        event, signed_at = verify_signature(payload, signature, secret=webhook_secret())
        admit(event, payload, signed_at)
    except InvalidSignature as exc:
        logger.warning("Stripe webhook refused: invalid signature (%s)", exc)
        return EventResult(None, None, f"invalid_signature: {exc}")
    except InvalidPayload as exc:
        logger.warning("Stripe webhook refused: invalid payload (%s)", exc)
        return EventResult(None, None, f"invalid_payload: {exc}")
    return process_event(event.id, now=now)


def process_event(event_id: str, *, now: datetime | None = None) -> EventResult:
    """Apply one stored event, once. Raises only a transient error (the caller retries)."""
    now = now or datetime.now(UTC)
    try:
        with transaction() as conn:
            row = inbox.lock(conn, event_id)
            if row is None:
                return EventResult(event_id, None, "unknown_event")
            if row.state != "received":
                return EventResult(event_id, row.type, "duplicate")
            event = parse_event(row.payload)
            handler = HANDLERS.get(event.type)
            outcome = handler(conn, event, now) if handler else "ignored"
            state = "applied" if outcome in APPLIED_OUTCOMES else "ignored"
            inbox.finish(conn, event_id, state, outcome, now)
    except TRANSIENT_ERRORS as exc:
        _note_attempt(event_id, exc)
        raise
    except Exception as exc:  # anything else will fail the same way again: keep it for an operator
        return _fail(event_id, exc, now)
    logger.info(
        "Stripe event %s (%s): %s %s",
        event.id,
        event.type,
        state,
        outcome,
        extra={"event_id": event.id, "event_type": event.type, "state": state, "outcome": outcome},
    )
    return EventResult(event.id, event.type, outcome)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _note_attempt(event_id: str, exc: BaseException) -> None:
    logger.warning("Stripe event %s not processed yet: %s", event_id, _describe(exc), extra={"event_id": event_id})
    try:
        with transaction() as conn:
            inbox.note_attempt(conn, event_id, _describe(exc))
    except TRANSIENT_ERRORS:
        pass  # the database is what failed; the retry is what matters


def _fail(event_id: str, exc: Exception, now: datetime) -> EventResult:
    error = _describe(exc)
    logger.error("Stripe event %s failed: %s", event_id, error, exc_info=exc, extra={"event_id": event_id})
    with transaction() as conn:
        inbox.finish(conn, event_id, "failed", None, now, error=error)
        row = inbox.lock(conn, event_id)
    kind = "invalid_payload" if isinstance(exc, InvalidPayload) else "failed"
    return EventResult(event_id, row.type if row else None, f"{kind}: {error}"[: inbox.ERROR_MAX_CHARS])


def replay_event(event_id: str, *, now: datetime | None = None) -> EventResult | None:
    """Process a stored event again, whatever its state (an operator, after a fix). None if the
    inbox has no such event, or kept no body for it (events from before the inbox)."""
    with transaction() as conn:
        if not inbox.reopen(conn, event_id):
            return None
    logger.warning("Stripe event %s replayed by an operator", event_id, extra={"event_id": event_id})
    return process_event(event_id, now=now)


def sweep(now: datetime | None = None) -> list[str]:
    """The ids of received events to publish again (the beat task publishes them)."""
    with transaction() as conn:
        return inbox.due(conn, now or datetime.now(UTC))
