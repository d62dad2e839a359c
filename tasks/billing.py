"""Billing tasks: buying a tier, and the Stripe event inbox. The work is in workers.billing.

All of them are routed to queue ``billing`` (celeryconfig), so a burst of webhooks never waits
in front of job admission on ``intake``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from config.tiers import BILLING_QUEUE
from db.session import transaction
from workers import billing
from workers.app import app
from workers.billing import events
from workers.billing.state import expire_grace_periods as record_grace_ends
from workers.quotas.periods import utcnow

logger = logging.getLogger(__name__)

# Stripe unreachable or overloaded: retry with the same idempotency key (the task id), after
# 2, 4 and 8 seconds; far below the visibility timeout.
CHECKOUT_MAX_RETRIES = 3
CHECKOUT_RETRY_BASE_S = 2
# An event's own retries: backoff up to a minute, about eight minutes in all; the sweep takes
# over after that, every few minutes, for as long as it takes. Far below the visibility timeout.
EVENT_MAX_RETRIES = 10
EVENT_RETRY_BACKOFF_MAX_S = 60


@app.task(name="litink.create_checkout_session", bind=True, max_retries=CHECKOUT_MAX_RETRIES)
def create_checkout_session(self: Task, user_id: str, tier: str, success_url: str, cancel_url: str) -> dict[str, Any]:
    """``{checkout_url, session_id}`` of a subscription Checkout Session for ``tier``; for a user
    with a live subscription, its plan is changed instead (``session_id`` null, plus
    ``subscription_id``).

    A tier without a price, an unknown tier or a tier the user already has raises a
    ``BillingRequestError`` (a ValueError): the caller's mistake, not retried.
    """
    try:
        session = billing.create_checkout_session(
            user_id, tier, success_url, cancel_url, idempotency_scope=self.request.id
        )
    except billing.StripeUnavailable as exc:
        raise self.retry(exc=exc, countdown=CHECKOUT_RETRY_BASE_S * 2**self.request.retries) from exc
    return session.as_dict()


@app.task(
    name="litink.handle_stripe_event",
    bind=True,
    autoretry_for=events.TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=EVENT_RETRY_BACKOFF_MAX_S,
    max_retries=EVENT_MAX_RETRIES,
)
def handle_stripe_event(self: Task, payload: str, signature: str) -> dict[str, str | None]:
    """``{event_id, type, outcome}`` for one raw webhook body and its Stripe-Signature header:
    verified, kept in the inbox, applied (for producers that deliver webhooks themselves).

    Every run checks the signature's age the same way, whatever the message's headers say (a
    producer sets them): against the time the inbox kept the event, or against now if it is
    not kept yet.
    """
    return events.handle_event(payload, signature).as_dict()


@app.task(
    name="litink.process_stripe_event",
    autoretry_for=events.TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=EVENT_RETRY_BACKOFF_MAX_S,
    max_retries=EVENT_MAX_RETRIES,
)
def process_stripe_event(event_id: str) -> dict[str, str | None]:
    """Apply one event kept in the inbox, by id. Safe to run any number of times."""
    return events.process_event(event_id).as_dict()


# Beat: a message lost with the broker, or an event whose retries ran out during a long outage,
# is still `received` in Postgres; this queues it again (see tasks/schedule.py).
@app.task(name="litink.sweep_stripe_events")
def sweep_stripe_events() -> dict[str, int]:
    ids = events.sweep(utcnow())
    for event_id in ids:
        process_stripe_event.apply_async(kwargs={"event_id": event_id}, queue=BILLING_QUEUE, ignore_result=True)
    if ids:
        logger.warning("Stripe inbox: %d received events queued again", len(ids))
    return {"queued": len(ids)}


# Beat: a past-due grace period ends with time, not with an event; its downgrade is written to
# subscription_changes when it happens (see tasks/schedule.py).
@app.task(name="litink.expire_grace_periods")
def expire_grace_periods() -> dict[str, int]:
    with transaction() as conn:
        users = record_grace_ends(conn, utcnow())
    return {"downgraded": len(users)}
