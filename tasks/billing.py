"""Billing tasks: buying a tier (Stripe Checkout) and applying Stripe's webhooks.

Both are routed to queue ``intake`` by the default route. The work is in workers.billing.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from workers import billing
from workers.app import app

# Stripe unreachable or overloaded: retry with the same idempotency key (the task id), after
# 2, 4 and 8 seconds; far below the visibility timeout.
CHECKOUT_MAX_RETRIES = 3
CHECKOUT_RETRY_BASE_S = 2


@app.task(name="litink.create_checkout_session", bind=True, max_retries=CHECKOUT_MAX_RETRIES)
def create_checkout_session(self, user_id: str, tier: str, success_url: str, cancel_url: str) -> dict:
    """``{checkout_url, session_id}`` of a subscription Checkout Session for ``tier``.

    A tier without a price, an unknown tier or a tier the user already has raises a
    ``BillingRequestError`` (a ValueError): the caller's mistake, not retried.
    """
    try:
        session = billing.create_checkout_session(
            user_id, tier, success_url, cancel_url, idempotency_scope=self.request.id
        )
    except billing.StripeUnavailable as exc:
        raise self.retry(exc=exc, countdown=CHECKOUT_RETRY_BASE_S * 2**self.request.retries)
    return session.as_dict()


# A database that is briefly unreachable: the event's transaction rolled back whole, so
# running it again is safe (its id is recorded in the same transaction as its effect).
@app.task(
    name="litink.handle_stripe_event",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def handle_stripe_event(payload: str, signature: str) -> dict:
    """``{event_id, type, outcome}`` for one raw webhook body and its Stripe-Signature header."""
    return billing.handle_event(payload, signature).as_dict()
