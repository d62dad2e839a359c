"""Stripe billing: how users buy tiers and how Stripe's webhooks move them between tiers.

- :mod:`.client`    the StripeClient from settings, SDK error translation, tier <-> price ids
- :mod:`.checkout`  subscription-mode Checkout Sessions, with an idempotency key
- :mod:`.webhooks`  signature verification of a raw webhook body
- :mod:`.payloads`  reading Stripe objects across API versions
- :mod:`.state`     the ``subscriptions`` row: find, lock, save
- :mod:`.inbox`     the ``stripe_events`` inbox: keep, lock, finish, sweep, list
- :mod:`.events`    the door (verify, keep) and processing from the inbox; replay
- :mod:`.handlers`  what each event type changes, in order, with the tier history
- :mod:`.errors`    billing's branch of the error tree

The tasks in :mod:`tasks.billing` are thin wrappers around :func:`create_checkout_session`,
:func:`handle_event` and :func:`process_event`. See docs/billing.md.
"""

from workers.billing.checkout import CheckoutSession, create_checkout_session
from workers.billing.client import build_client, price_for, tier_for_prices
from workers.billing.errors import (
    AlreadySubscribed,
    BillingError,
    BillingNotConfigured,
    BillingRequestError,
    InvalidPayload,
    InvalidSignature,
    InvalidWebhook,
    StripeRejected,
    StripeUnavailable,
    TierNotForSale,
    UnknownTier,
)
from workers.billing.events import EventResult, handle_event, process_event, replay_event
from workers.billing.inbox import list_events

__all__ = [
    "AlreadySubscribed",
    "BillingError",
    "BillingNotConfigured",
    "BillingRequestError",
    "CheckoutSession",
    "EventResult",
    "InvalidPayload",
    "InvalidSignature",
    "InvalidWebhook",
    "StripeRejected",
    "StripeUnavailable",
    "TierNotForSale",
    "UnknownTier",
    "build_client",
    "create_checkout_session",
    "handle_event",
    "list_events",
    "price_for",
    "process_event",
    "replay_event",
    "tier_for_prices",
]
