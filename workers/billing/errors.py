"""Billing's branch of the project's error tree (see :mod:`workers.errors`).

Stripe SDK exceptions are translated in exactly one place, :func:`workers.billing.client.stripe_errors`,
so a task never sees a vendor exception.

    LitinkError
     +-- BillingError                 Stripe billing could not do what was asked
          +-- BillingRequestError     the caller asked for something impossible (also a ValueError)
          |    +-- UnknownTier
          |    +-- TierNotForSale
          |    +-- AlreadySubscribed
          +-- BillingNotConfigured    a required STRIPE_* setting is missing: an operator must act
          +-- StripeUnavailable       transient: network, rate limit, Stripe 5xx; retry with the same key
          +-- StripeRejected          permanent: Stripe refused the request (auth, invalid parameters)
          +-- InvalidWebhook          a webhook body failed verification; reported as an outcome
               +-- InvalidSignature
               +-- InvalidPayload

Every class takes a single message, so an exception survives Celery's JSON result backend.
"""

from __future__ import annotations

from workers.errors import LitinkError


class BillingError(LitinkError):
    """Raised for any billing failure the project classifies."""


class BillingRequestError(BillingError, ValueError):
    """Raised when the caller's request cannot be served as asked; retrying will not help."""


class UnknownTier(BillingRequestError):
    """Raised when the tier is not in the tier catalog."""


class TierNotForSale(BillingRequestError):
    """Raised when a tier has no Stripe price configured (``STRIPE_PRICE_<TIER>``)."""


class AlreadySubscribed(BillingRequestError):
    """Raised when the user already has an active subscription to the tier asked for."""


class BillingNotConfigured(BillingError):
    """Raised when a required Stripe setting (secret key, webhook secret) is missing."""


class StripeUnavailable(BillingError):
    """Raised when Stripe could not be reached or asked us to come back later."""


class StripeRejected(BillingError):
    """Raised when Stripe refused the request; sending it again will not change the answer."""


class InvalidWebhook(BillingError):
    """Raised when a webhook body cannot be trusted or read; the event task reports it as an outcome."""


class InvalidSignature(InvalidWebhook):
    """Raised when the Stripe-Signature header is missing, wrong or outside the tolerance."""


class InvalidPayload(InvalidWebhook):
    """Raised when a correctly signed body is not a Stripe event."""
