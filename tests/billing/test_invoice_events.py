"""invoice.paid renews a subscription; invoice.payment_failed starts the grace period."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from workers.quotas.subscriptions import standing

from .conftest import T0

PAID, FAILED = "invoice.paid", "invoice.payment_failed"
GRACE = timedelta(days=7)  # PAST_DUE_GRACE_DAYS, the default


def _premium_subscriber(events) -> None:
    events.deliver(events.checkout_completed("user-1", "premium", subscription="sub_1", created=T0))


def test_a_failed_payment_keeps_the_tier_through_the_grace_period_and_loses_it_after(events, db):
    # Given a premium subscriber
    _premium_subscriber(events)

    # When the renewal payment fails
    failed_at = T0 + timedelta(days=30)
    result = events.deliver(events.invoice(FAILED, created=failed_at), now=failed_at)

    # Then they are past due, still premium within the grace period, and free after it
    assert result["outcome"] == "past_due"
    within = standing(db, "user-1", failed_at + GRACE - timedelta(minutes=1))
    assert (within.tier.name, within.status) == ("premium", "past_due")
    after = standing(db, "user-1", failed_at + GRACE)
    assert (after.tier.name, after.status) == ("free", "past_due")


def test_the_grace_period_counts_from_the_first_failure_not_the_latest_retry(events, db):
    _premium_subscriber(events)
    first = T0 + timedelta(days=30)
    events.deliver(events.invoice(FAILED, created=first), now=first)

    # When Stripe's retry fails again three days later
    events.deliver(events.invoice(FAILED, created=first + timedelta(days=3)), now=first + timedelta(days=3))

    # Then past_due_since did not move
    assert db.execute(text("SELECT past_due_since FROM subscriptions")).scalar() == first


def test_a_grace_period_that_ran_out_is_recorded_as_a_downgrade_by_the_next_event(events, db):
    # Given a subscriber whose payment failed more than a grace period ago
    _premium_subscriber(events)
    failed_at = T0 + timedelta(days=30)
    events.deliver(events.invoice(FAILED, created=failed_at), now=failed_at)

    # When Stripe finally cancels the subscription
    later = failed_at + timedelta(days=20)
    events.deliver(events.subscription("customer.subscription.deleted", status="canceled", created=later), now=later)

    # Then the history holds the upgrade and one downgrade
    rows = db.execute(text("SELECT from_tier, to_tier FROM subscription_changes ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("free", "premium"), ("premium", "free")]


def test_a_paid_renewal_moves_the_period_on_and_clears_past_due(events, db):
    # Given a premium subscriber whose renewal failed at first
    _premium_subscriber(events)
    renewal = T0 + timedelta(days=30)
    events.deliver(events.invoice(FAILED, created=renewal), now=renewal)

    # When the retried payment succeeds
    paid_at = renewal + timedelta(days=2)
    result = events.deliver(events.invoice(PAID, created=paid_at, period_start=renewal), now=paid_at)

    # Then the subscription is active again for the new period, and the tier never left
    assert result["outcome"] == "renewed"
    now = standing(db, "user-1", paid_at)
    assert (now.tier.name, now.status) == ("premium", "active")
    assert (now.period_start, now.period_end) == (renewal, renewal + timedelta(days=30))
    assert db.execute(text("SELECT past_due_since FROM subscriptions")).scalar() is None
    assert db.execute(text("SELECT count(*) FROM subscription_changes")).scalar() == 1


def test_an_invoice_in_the_older_api_shape_is_read_too(events, db):
    # Given a subscriber, when a renewal arrives with top-level subscription and line price
    _premium_subscriber(events)
    renewal = T0 + timedelta(days=30)
    result = events.deliver(events.invoice(PAID, created=renewal, period_start=renewal, legacy=True))

    # Then the period moves on
    assert result["outcome"] == "renewed"
    assert standing(db, "user-1", renewal).period_end == renewal + timedelta(days=30)


def test_a_first_invoice_can_provision_from_its_price_before_the_checkout_event(events, db):
    # When the first invoice.paid overtakes checkout.session.completed
    result = events.deliver(events.invoice(PAID, tier="basic", created=T0))

    # Then the user already has the tier the invoice paid for
    assert result["outcome"] == "renewed"
    assert standing(db, "user-1", T0).tier.name == "basic"


def test_a_late_payment_never_revives_a_canceled_subscription(events, db):
    _premium_subscriber(events)
    ended = T0 + timedelta(days=40)
    events.deliver(events.subscription("customer.subscription.deleted", status="canceled", created=ended))

    result = events.deliver(events.invoice(PAID, created=ended + timedelta(days=1)), now=ended + timedelta(days=1))

    assert result["outcome"] == "canceled_final"
    assert standing(db, "user-1", ended + timedelta(days=1)).tier.name == "free"


def test_invoices_that_are_not_a_subscriptions_are_ignored(events, db):
    for kind in (PAID, FAILED):
        assert events.deliver(events.invoice(kind, subscription=None))["outcome"] == "ignored"
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0


def test_a_failed_payment_for_someone_never_provisioned_is_unmatched(events, db):
    result = events.deliver(events.invoice(FAILED))

    assert result["outcome"] == "unmatched"
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0
