"""Reading Stripe's objects without Stripe or a database: ids, periods and prices in both
API versions' shapes, the tier a price buys, event ordering and the grace period, and a
webhook body verified and parsed. The shapes are Stripe's own (API 2025-03-31 and before)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings, get_catalog
from tests.billing.conftest import PRICES, WEBHOOK_SECRET, sign
from workers.billing import payloads
from workers.billing.client import price_for, tier_for_prices
from workers.billing.errors import InvalidPayload, InvalidSignature, TierNotForSale, UnknownTier
from workers.billing.handlers import LIVE, STATUSES
from workers.billing.state import SubscriptionState, effective_tier, grace_ended, is_stale
from workers.billing.webhooks import parse_event, verify_event

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
START, END = 1767225600, 1769904000  # 2026-01-01 and 2026-02-01, UTC


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


# -- ids and timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cus_1", "cus_1"),
        ({"id": "cus_1", "object": "customer"}, "cus_1"),
        ("", None),
        (None, None),
        (42, None),
        ({}, None),
    ],
)
def test_an_id_is_read_whether_stripe_sent_it_or_expanded_the_object(value, expected):
    assert payloads.ref(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(START, at(START)), (float(START), at(START)), (None, None), ("1767225600", None), (True, None)],
)
def test_a_timestamp_is_a_unix_number_read_as_utc_and_nothing_else(value, expected):
    assert payloads.timestamp(value) == expected
    if expected is not None:
        assert payloads.timestamp(value).tzinfo is UTC


# -- subscriptions ---------------------------------------------------------------------------


def item(price: object = "price_premium_test", **fields) -> dict:
    return {"id": "si_1", "object": "subscription_item", "price": price, **fields}


def subscription(*items: dict, **fields) -> dict:
    return {"id": "sub_1", "object": "subscription", "items": {"object": "list", "data": list(items)}, **fields}


def test_the_period_is_read_from_the_subscription_item_since_2025_03_31():
    sub = subscription(item(current_period_start=START, current_period_end=END))
    assert payloads.subscription_period(sub) == (at(START), at(END))


def test_the_period_is_read_from_the_subscription_itself_before_2025_03_31():
    sub = subscription(item(), current_period_start=START, current_period_end=END)
    assert payloads.subscription_period(sub) == (at(START), at(END))


def test_the_items_period_wins_over_a_stale_one_on_the_subscription():
    sub = subscription(item(current_period_start=END, current_period_end=END + 86400), current_period_end=END)
    assert payloads.subscription_period(sub) == (at(END), at(END + 86400))


@pytest.mark.parametrize("sub", [subscription(), {"id": "sub_1"}, subscription(item()), {"items": "nope"}])
def test_a_subscription_without_any_period_has_none(sub):
    assert payloads.subscription_period(sub) == (None, None)


def test_price_ids_come_from_each_item_as_an_id_an_expanded_price_or_an_old_plan():
    sub = subscription(
        item("price_a"),
        item({"id": "price_b", "object": "price"}),
        item(None, plan={"id": "plan_c", "object": "plan"}),
        item(None),
        "not an item",  # type: ignore[arg-type]
    )
    assert payloads.subscription_price_ids(sub) == ["price_a", "price_b", "plan_c"]


def test_metadata_is_a_dict_or_empty():
    assert payloads.metadata({"metadata": {"user_id": "u1"}}) == {"user_id": "u1"}
    assert payloads.metadata({"metadata": None}) == {} and payloads.metadata({}) == {}


# -- invoices --------------------------------------------------------------------------------


def line(amount: int, start: int, end: int, **price) -> dict:
    return {"object": "line_item", "amount": amount, "period": {"start": start, "end": end}, **price}


def test_an_invoice_names_its_subscription_under_parent_since_2025_03_31_and_top_level_before():
    new = {"parent": {"subscription_details": {"subscription": "sub_new", "metadata": {"user_id": "u-new"}}}}
    old = {"subscription": {"id": "sub_old"}, "subscription_details": {"metadata": {"user_id": "u-old"}}}
    assert payloads.invoice_subscription_id(new) == "sub_new"
    assert payloads.invoice_subscription_id(old) == "sub_old"
    assert payloads.invoice_metadata(new) == {"user_id": "u-new"}
    assert payloads.invoice_metadata(old) == {"user_id": "u-old"}
    assert payloads.invoice_subscription_id({}) is None and payloads.invoice_metadata({}) == {}


def test_an_invoice_lines_price_is_under_pricing_since_2025_03_31_and_price_or_plan_before():
    invoice = {
        "lines": {
            "data": [
                line(1900, START, END, pricing={"price_details": {"price": "price_new"}}),
                line(1900, START, END, price={"id": "price_old"}),
                line(1900, START, END, plan="plan_older"),
                line(1900, START, END),
            ]
        }
    }
    assert payloads.invoice_price_ids(invoice) == ["price_new", "price_old", "plan_older"]


def test_a_proration_credit_says_nothing_about_the_price_or_period_paid_for():
    # An upgrade mid-period: a credit for the unused basic time, a charge for the premium rest
    invoice = {
        "lines": {
            "data": [
                line(-950, START, END, price="price_basic_test"),
                line(4950, START + 86400 * 15, END, price="price_premium_test"),
                line(9900, END, END + 86400 * 28, price="price_premium_test"),
            ]
        }
    }
    assert payloads.invoice_price_ids(invoice) == ["price_premium_test", "price_premium_test"]
    # the period paid for is the charged line that runs latest: the next month
    assert payloads.invoice_period(invoice) == (at(END), at(END + 86400 * 28))


def test_an_invoice_without_a_charged_period_has_none():
    assert payloads.invoice_period({"lines": {"data": [line(-100, START, END)]}}) == (None, None)
    assert payloads.invoice_period({"lines": {"data": [{"amount": 100, "period": {"start": START}}]}}) == (None, None)
    assert payloads.invoice_period({}) == (None, None)


# -- which tier a price buys -----------------------------------------------------------------


def settings(**prices: str) -> Settings:
    """Settings with exactly these prices (the billing fixtures' own STRIPE_PRICE_* overridden)."""
    return Settings(**{f"stripe_price_{tier}": prices.get(tier) for tier in get_catalog().tiers})


def test_a_price_buys_the_tier_configured_for_it():
    configured = settings(basic="price_b", premium="price_p")
    assert tier_for_prices(["price_p"], configured) == "premium"
    assert tier_for_prices(["price_b"], configured) == "basic"


def test_of_several_known_prices_the_highest_ranked_tier_wins_and_unknown_ones_are_ignored():
    configured = settings(basic="price_b", premium="price_p", professional="price_x")
    assert tier_for_prices(["price_b", "price_unknown", "price_x", "price_p"], configured) == "professional"


def test_a_price_no_tier_is_configured_for_buys_nothing():
    assert tier_for_prices(["price_unknown"], settings(basic="price_b")) is None
    assert tier_for_prices([], settings(basic="price_b")) is None
    assert tier_for_prices(["price_b"], settings()) is None


def test_the_billing_tests_prices_map_both_ways(stripe_settings):
    for tier, price in PRICES.items():
        assert price_for(tier) == price and tier_for_prices([price]) == tier


def test_a_tier_without_a_price_is_not_for_sale_and_an_unknown_tier_is_named():
    with pytest.raises(TierNotForSale, match="STRIPE_PRICE_STANDARD is not set"):
        price_for("standard", settings(basic="price_b"))
    with pytest.raises(UnknownTier, match="unknown tier 'gold'"):
        price_for("gold", settings(basic="price_b"))


@pytest.mark.parametrize(
    ("stripe", "ours"),
    [
        ("active", "active"),
        ("trialing", "active"),
        ("past_due", "past_due"),
        ("unpaid", "past_due"),
        ("canceled", "canceled"),
        ("incomplete_expired", "canceled"),
        ("paused", "canceled"),
        ("incomplete", None),  # the first payment is pending: nothing is provisioned yet
    ],
)
def test_stripes_subscription_statuses_map_to_ours(stripe, ours):
    assert STATUSES.get(stripe) == ours
    assert (ours in LIVE) == (ours in ("active", "past_due"))


# -- ordering and the grace period -----------------------------------------------------------


def state(**fields) -> SubscriptionState:
    values = {
        "tier": "premium",
        "status": "active",
        "customer_id": "cus_1",
        "subscription_id": "sub_1",
        "period_start": at(START),
        "period_end": at(END),
        "past_due_since": None,
        "state_at": T0,
    }
    values.update(fields)
    return SubscriptionState(**values)


def test_an_event_older_than_the_newest_applied_is_stale():
    assert is_stale(state(state_at=T0), T0 - timedelta(seconds=1))


def test_an_event_of_the_same_second_or_newer_is_applied():
    assert not is_stale(state(state_at=T0), T0)
    assert not is_stale(state(state_at=T0), T0 + timedelta(seconds=1))


def test_the_first_event_of_a_user_or_of_a_row_never_updated_by_stripe_is_never_stale():
    assert not is_stale(None, T0)
    assert not is_stale(state(state_at=None), T0 - timedelta(days=365))


def test_past_due_keeps_the_tier_for_the_grace_period_then_falls_to_the_default():
    past_due = state(status="past_due", past_due_since=T0)
    assert effective_tier(past_due, T0 + timedelta(days=6, hours=23)) == "premium"
    assert not grace_ended(past_due, T0 + timedelta(days=6, hours=23))
    assert effective_tier(past_due, T0 + timedelta(days=7)) == "free"
    assert grace_ended(past_due, T0 + timedelta(days=7))


def test_active_canceled_and_no_subscription_have_no_grace_to_end():
    assert effective_tier(state(), T0 + timedelta(days=400)) == "premium"
    assert effective_tier(state(status="canceled"), T0) == "free"
    assert effective_tier(None, T0) == "free"
    for current in (state(), state(status="canceled"), None):
        assert not grace_ended(current, T0 + timedelta(days=30))


# -- webhook bodies --------------------------------------------------------------------------


def event_body(**fields) -> str:
    event = {
        "id": "evt_1",
        "type": "customer.subscription.updated",
        "created": START,
        "data": {"object": {"id": "sub_1"}},
    }
    event.update(fields)
    return json.dumps(event)


def test_a_signed_event_is_verified_and_read_as_plain_dicts():
    body = event_body()
    event = verify_event(body, sign(body), secret=WEBHOOK_SECRET, tolerance=300)
    assert (event.id, event.type, event.created, event.obj) == (
        "evt_1",
        "customer.subscription.updated",
        at(START),
        {"id": "sub_1"},
    )
    assert type(event.obj) is dict


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=123", "v1=abc", sign(event_body(), secret="whsec_someone_else")],
    ids=["missing", "empty", "garbage", "no-signature", "no-timestamp", "other-secret"],
)
def test_a_missing_malformed_or_foreign_signature_is_refused(header):
    with pytest.raises(InvalidSignature):
        verify_event(event_body(), header, secret=WEBHOOK_SECRET, tolerance=300)


def test_a_body_changed_after_signing_is_refused():
    signature = sign(event_body())
    with pytest.raises(InvalidSignature):
        verify_event(event_body(type="invoice.paid"), signature, secret=WEBHOOK_SECRET, tolerance=300)


def test_a_signature_older_than_the_tolerance_is_refused():
    body = event_body()
    old = sign(body, at=int((datetime.now(UTC) - timedelta(seconds=301)).timestamp()))
    with pytest.raises(InvalidSignature):
        verify_event(body, old, secret=WEBHOOK_SECRET, tolerance=300)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"id": "evt_1"}), "id, type or created is missing"),
        (event_body(id=""), "id, type or created is missing"),
        (event_body(created="yesterday"), "id, type or created is missing"),
        (event_body(type=None), "id, type or created is missing"),
        (event_body(id="e" * 256), "longer than 255"),
        (event_body(data={}), "data.object is missing"),
        (event_body(data={"object": "sub_1"}), "data.object is missing"),
        (event_body(data="sub_1"), "data.object is missing"),
    ],
)
def test_a_body_that_is_not_a_stripe_event_is_an_invalid_payload(body, says):
    with pytest.raises(InvalidPayload, match=says):
        parse_event(body)
