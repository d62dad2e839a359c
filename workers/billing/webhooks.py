"""Verifying a Stripe webhook and reading it as an :class:`Event`.

The signature covers the raw body exactly as Stripe sent it: ``Stripe-Signature`` is
``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``. A timestamp older than the tolerance
is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe

from workers.billing.errors import InvalidPayload, InvalidSignature
from workers.billing.payloads import timestamp

EVENT_ID_MAX_CHARS = 255  # stripe_events.id


@dataclass(frozen=True)
class Event:
    """The parts of a Stripe event the handlers read; ``obj`` is ``data.object`` as a plain dict."""

    id: str
    type: str
    created: datetime
    obj: dict[str, Any]


def verify_event(payload: str, signature: str | None, *, secret: str, tolerance: int) -> Event:
    """The event in ``payload``, once its signature is proven. The SDK checks the HMAC (in
    constant time) and the age against the clock now; the body is then parsed as plain JSON."""
    if not signature:
        raise InvalidSignature("no Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(exc.user_message or "signature verification failed") from None
    return parse_event(payload)


def verify_signature(payload: str, signature: str | None, *, secret: str) -> tuple[Event, datetime]:
    """The event and the moment it was signed (the header's ``t``), once the HMAC is proven; its
    age is the caller's to judge against a time it trusts."""
    if not signature:
        raise InvalidSignature("no Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=None)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature(exc.user_message or "signature verification failed") from None
    signed_at = timestamp(int(next(part for part in signature.split(",") if part.startswith("t="))[2:]))
    assert signed_at is not None  # the SDK has read the same integer
    return parse_event(payload), signed_at


def parse_event(payload: str) -> Event:
    """Read a body already verified (at the door, or stored in the inbox) as an :class:`Event`.
    A StripeObject is not a dict, so the body is parsed as plain JSON."""
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise InvalidPayload(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidPayload("body is not a JSON object")
    event_id, event_type, created = body.get("id"), body.get("type"), timestamp(body.get("created"))
    obj = (body.get("data") or {}).get("object") if isinstance(body.get("data"), dict) else None
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or created is None:
        raise InvalidPayload("not a Stripe event: id, type or created is missing")
    if len(event_id) > EVENT_ID_MAX_CHARS:
        raise InvalidPayload(f"not a Stripe event: id longer than {EVENT_ID_MAX_CHARS} characters")
    if not isinstance(obj, dict):
        raise InvalidPayload("not a Stripe event: data.object is missing")
    return Event(id=event_id, type=event_type, created=created, obj=obj)
