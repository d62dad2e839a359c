"""The Stripe client, built from settings, and the one place SDK errors are translated.

Also the mapping between tiers and Stripe price ids (``STRIPE_PRICE_<TIER>``), both ways, and
the few subscription calls we make (retrieve, change price, cancel).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import stripe
from stripe._base_address import BaseAddresses  # the SDK's own type; not re-exported
from stripe.params import SubscriptionScheduleUpdateParamsPhase, SubscriptionUpdateParams

from config import Settings, get_catalog, get_settings
from workers.billing.errors import (
    BillingNotConfigured,
    StripeRejected,
    StripeUnavailable,
    TierNotForSale,
    UnknownTier,
)
from workers.billing.payloads import ref

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


def build_client(settings: Settings | None = None) -> stripe.StripeClient:
    """A StripeClient with its own retries off (Celery retries, with the same idempotency key)
    and a timeout on every call. ``STRIPE_API_BASE`` points it elsewhere (a local fake in tests)."""
    settings = settings or get_settings()
    if settings.stripe_secret_key is None:
        raise BillingNotConfigured("STRIPE_SECRET_KEY is not set")
    base_addresses: BaseAddresses | None = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        base_addresses=base_addresses,
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)),
    )


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Translate SDK exceptions into the billing error tree: transient ones become
    :class:`StripeUnavailable`, everything else :class:`StripeRejected`."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeUnavailable(f"Stripe unavailable: {type(exc).__name__}: {exc}") from exc
    except stripe.StripeError as exc:
        status = exc.http_status or 0
        detail = f"{type(exc).__name__} (HTTP {status or '?'}): {exc}"
        if status >= 500 or status == 409:  # 409: a concurrent request with the same idempotency key
            raise StripeUnavailable(f"Stripe unavailable: {detail}") from exc
        raise StripeRejected(f"Stripe rejected the request: {detail}") from exc


def price_for(tier: str, settings: Settings | None = None) -> str:
    """The Stripe price id that buys ``tier``."""
    settings = settings or get_settings()
    try:
        get_catalog().tier(tier)
    except KeyError as exc:
        raise UnknownTier(str(exc.args[0])) from None
    price = settings.stripe_price(tier)
    if not price:
        raise TierNotForSale(f"tier {tier!r} is not for sale: STRIPE_PRICE_{tier.upper()} is not set")
    return price


def tier_for_prices(price_ids: Iterable[str], settings: Settings | None = None) -> str | None:
    """The tier bought by any of ``price_ids`` (the highest ranked if several), or None."""
    settings = settings or get_settings()
    catalog = get_catalog()
    by_price = {settings.stripe_price(name): name for name in catalog.tiers if settings.stripe_price(name)}
    matched = [by_price[p] for p in price_ids if p in by_price]
    return max(matched, key=lambda name: catalog.tier(name).rank, default=None)


# The subscription calls event processing and checkout make. Each returns a plain dict.


def retrieve_subscription(subscription_id: str, *, client: stripe.StripeClient | None = None) -> dict[str, Any]:
    """The subscription as Stripe holds it now: its status, items and prices."""
    client = client or build_client()
    with stripe_errors():
        return client.v1.subscriptions.retrieve(subscription_id).to_dict()


def cancel_subscription(subscription_id: str, *, client: stripe.StripeClient | None = None) -> dict[str, Any]:
    """Cancel a subscription now. The key is the subscription's, so a retry is answered with the
    first cancellation; a subscription already canceled counts as done."""
    client = client or build_client()
    try:
        with stripe_errors():
            return client.v1.subscriptions.cancel(
                subscription_id, options={"idempotency_key": f"litink-cancel-{subscription_id}"}
            ).to_dict()
    except StripeRejected:
        current = retrieve_subscription(subscription_id, client=client)
        if current.get("status") in ("canceled", "incomplete_expired"):
            return current
        raise


def change_subscription_price(
    subscription_id: str,
    *,
    item_id: str,
    price: str,
    metadata: dict[str, str],
    idempotency_key: str,
    upgrade: bool,
    client: stripe.StripeClient | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Move the subscription's one item to ``price``. The subscription stays the same one:
    nothing is bought twice.

    An upgrade is invoiced at once (``always_invoice``) as a pending update
    (``payment_behavior=pending_if_incomplete``): if the charge fails, Stripe leaves the
    subscription on its old price and keeps the change in ``pending_update`` until the invoice is
    paid, so the new price, and with it the tier, arrives only once it is paid. (Stripe's default,
    ``allow_incomplete``, would apply the new price at once and mark the subscription
    ``past_due``, which the grace period would turn into days of the higher tier for nothing.)
    A downgrade applied at once is prorated as ``STRIPE_PRORATION_BEHAVIOR`` says; it costs nothing now.
    """
    settings = settings or get_settings()
    client = client or build_client(settings)
    params: SubscriptionUpdateParams = {
        "items": [{"id": item_id, "price": price, "quantity": 1}],
        "proration_behavior": "always_invoice" if upgrade else settings.stripe_proration_behavior,
        "payment_behavior": "pending_if_incomplete",
        "metadata": metadata,
    }
    with stripe_errors():
        return client.v1.subscriptions.update(
            subscription_id, params=params, options={"idempotency_key": idempotency_key}
        ).to_dict()


def schedule_subscription_price(
    sub: dict[str, Any],
    *,
    price: str,
    metadata: dict[str, str],
    idempotency_key: str,
    client: stripe.StripeClient | None = None,
) -> dict[str, Any]:
    """Move the subscription's one item to ``price`` when its current period ends, through a
    subscription schedule: the period already paid for keeps its price, the next one has the new
    price, and the schedule then releases the subscription. A schedule the subscription already
    has (an earlier downgrade) is rewritten, not doubled."""
    client = client or build_client()
    subscription_id = sub["id"]
    with stripe_errors():
        schedule_id = ref(sub.get("schedule"))
        if schedule_id is None:
            schedule = client.v1.subscription_schedules.create(
                params={"from_subscription": subscription_id},
                options={"idempotency_key": f"{idempotency_key}-schedule"},
            )
        else:
            schedule = client.v1.subscription_schedules.retrieve(schedule_id)
        current = schedule.to_dict()["phases"][0]
        paid_for = sub["items"]["data"][0]["price"]
        phases: list[SubscriptionScheduleUpdateParamsPhase] = [
            {
                "items": [{"price": ref(paid_for) or "", "quantity": 1}],
                "start_date": current["start_date"],
                "end_date": current["end_date"],
            },
            {"items": [{"price": price, "quantity": 1}], "metadata": metadata, "proration_behavior": "none"},
        ]
        return client.v1.subscription_schedules.update(
            schedule.id,
            params={"end_behavior": "release", "phases": phases},
            options={"idempotency_key": idempotency_key},
        ).to_dict()


def release_schedule(schedule_id: str, *, client: stripe.StripeClient | None = None) -> None:
    """Detach a subscription from its schedule (a scheduled downgrade the user no longer wants)."""
    client = client or build_client()
    with stripe_errors():
        client.v1.subscription_schedules.release(
            schedule_id, options={"idempotency_key": f"litink-release-{schedule_id}"}
        )
