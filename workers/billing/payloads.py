"""Reading the Stripe objects inside webhook events (plain dicts parsed from the raw body).

Stripe moved fields between API versions; each reader tries the current place first and the
older one second, so either webhook API version works:

- 2025-03-31: ``current_period_start`` / ``current_period_end`` moved from the subscription
  to its items (``items.data[].current_period_*``).
- 2025-03-31: an invoice names its subscription under ``parent.subscription_details``
  (formerly top-level ``subscription`` and ``subscription_details``), and a line names its
  price under ``pricing.price_details.price`` (formerly ``price``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Period = tuple[datetime | None, datetime | None]


def ref(value: Any) -> str | None:
    """An object's id, whether Stripe sent the id itself or expanded the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def timestamp(value: Any) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _data(listing: Any) -> list[dict[str, Any]]:
    """The ``data`` array of a Stripe list object, or empty."""
    if isinstance(listing, dict) and isinstance(listing.get("data"), list):
        return [item for item in listing["data"] if isinstance(item, dict)]
    return []


def metadata(obj: dict[str, Any]) -> dict[str, str]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


# Subscriptions.


def subscription_price_ids(sub: dict[str, Any]) -> list[str]:
    ids = (ref(item.get("price")) or ref(item.get("plan")) for item in _data(sub.get("items")))
    return [price for price in ids if price]


def subscription_period(sub: dict[str, Any]) -> Period:
    items = _data(sub.get("items"))
    if items and items[0].get("current_period_end") is not None:
        return timestamp(items[0].get("current_period_start")), timestamp(items[0].get("current_period_end"))
    return timestamp(sub.get("current_period_start")), timestamp(sub.get("current_period_end"))


# Invoices.


def _invoice_subscription_details(invoice: dict[str, Any]) -> dict[str, Any]:
    parent = invoice.get("parent")
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        return parent["subscription_details"]
    return {}


def invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    return ref(_invoice_subscription_details(invoice).get("subscription")) or ref(invoice.get("subscription"))


def invoice_metadata(invoice: dict[str, Any]) -> dict[str, str]:
    """The subscription's metadata as the invoice captured it."""
    for details in (_invoice_subscription_details(invoice), invoice.get("subscription_details")):
        if isinstance(details, dict) and isinstance(details.get("metadata"), dict):
            return details["metadata"]
    return {}


def _line_price_id(line: dict[str, Any]) -> str | None:
    pricing = line.get("pricing")
    if isinstance(pricing, dict) and isinstance(pricing.get("price_details"), dict):
        price = ref(pricing["price_details"].get("price"))
        if price:
            return price
    return ref(line.get("price")) or ref(line.get("plan"))


def _charged_lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """Lines that charge for a period; proration credits (negative amounts) say nothing about it."""
    return [line for line in _data(invoice.get("lines")) if (line.get("amount") or 0) >= 0]


def invoice_price_ids(invoice: dict[str, Any]) -> list[str]:
    return [price for price in map(_line_price_id, _charged_lines(invoice)) if price]


def invoice_period(invoice: dict[str, Any]) -> Period:
    """The service period the invoice paid for: the charged line that runs latest.
    (The invoice's own ``period_start``/``period_end`` describe usage, not the new period.)"""
    periods = [line["period"] for line in _charged_lines(invoice) if isinstance(line.get("period"), dict)]
    periods = [p for p in periods if isinstance(p.get("end"), int | float)]
    if not periods:
        return None, None
    latest = max(periods, key=lambda p: p["end"])
    return timestamp(latest.get("start")), timestamp(latest.get("end"))
