"""customer.subscription.* events: tiers from price ids, statuses, periods and ordering."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from workers.quotas.subscriptions import standing

from .conftest import T0

CREATED = "customer.subscription.created"
UPDATED = "customer.subscription.updated"
DELETED = "customer.subscription.deleted"


def _row(db):
    return db.execute(text("SELECT * FROM subscriptions WHERE user_id = 'user-1'")).one()


def _history(db) -> list[tuple[str, str, str]]:
    rows = db.execute(text("SELECT from_tier, to_tier, direction FROM subscription_changes ORDER BY id"))
    return [tuple(row) for row in rows]


def test_a_new_subscription_takes_its_tier_from_the_price_and_its_period_from_the_item(events, db):
    # When Stripe reports a new subscription to the premium price (period on the item)
    result = events.deliver(events.subscription(CREATED, tier="premium", period_start=T0))

    # Then the user is premium for that period
    assert result["outcome"] == "updated"
    now = standing(db, "user-1", T0)
    assert (now.tier.name, now.status) == ("premium", "active")
    assert (now.period_start, now.period_end) == (T0, T0 + timedelta(days=30))


def test_the_period_is_read_from_the_subscription_on_older_api_versions(events, db):
    events.deliver(events.subscription(CREATED, tier="basic", period_start=T0, legacy=True))

    assert standing(db, "user-1", T0).period_end == T0 + timedelta(days=30)


def test_a_plan_change_moves_the_tier_and_writes_the_upgrade_and_the_downgrade(events, db):
    # Given a basic subscriber
    events.deliver(events.subscription(CREATED, tier="basic", created=T0))

    # When they move up to professional, then down to premium
    events.deliver(events.subscription(UPDATED, tier="professional", created=T0 + timedelta(days=1)))
    events.deliver(events.subscription(UPDATED, tier="premium", created=T0 + timedelta(days=2)))

    # Then each move is in the history
    assert standing(db, "user-1", T0 + timedelta(days=2)).tier.name == "premium"
    assert _history(db) == [
        ("free", "basic", "upgrade"),
        ("basic", "professional", "upgrade"),
        ("professional", "premium", "downgrade"),
    ]


def test_an_older_update_arriving_late_does_not_overwrite_a_newer_state(events, db):
    # Given the professional update (newer) arrived first
    events.deliver(events.subscription(UPDATED, tier="professional", created=T0 + timedelta(minutes=5)))

    # When the older basic update arrives after it
    late = events.deliver(events.subscription(UPDATED, tier="basic", created=T0))

    # Then it is recorded as stale and the newer state stands
    assert late["outcome"] == "stale"
    assert standing(db, "user-1", T0).tier.name == "professional"
    assert _row(db).state_at == T0 + timedelta(minutes=5)
    outcomes = db.execute(text("SELECT outcome FROM stripe_events ORDER BY created")).scalars().all()
    assert outcomes == ["stale", "updated"]


def test_deleting_the_subscription_returns_the_user_to_free(events, db):
    # Given a premium subscriber
    events.deliver(events.checkout_completed("user-1", "premium", created=T0))

    # When Stripe reports the subscription deleted
    result = events.deliver(
        events.subscription(DELETED, tier="premium", status="canceled", created=T0 + timedelta(days=30))
    )

    # Then the user is back on free, and the downgrade is recorded
    assert result["outcome"] == "canceled"
    now = standing(db, "user-1", T0 + timedelta(days=30))
    assert (now.tier.name, now.status) == ("free", "canceled")
    assert _history(db) == [("free", "premium", "upgrade"), ("premium", "free", "downgrade")]


def test_a_deletion_arriving_first_makes_the_older_creation_stale(events, db):
    # Given the deletion overtook the creation
    events.deliver(events.subscription(DELETED, tier="basic", status="canceled", created=T0 + timedelta(hours=1)))

    # When the creation arrives
    late = events.deliver(events.subscription(CREATED, tier="basic", created=T0))

    # Then the user is not granted a subscription that has already ended
    assert late["outcome"] == "stale"
    assert standing(db, "user-1", T0).tier.name == "free"


def test_ending_an_old_subscription_leaves_the_new_one_alone(events, db):
    # Given the user moved from sub_old to a premium sub_new through a new checkout
    events.deliver(events.subscription(CREATED, tier="basic", subscription="sub_old", created=T0))
    events.deliver(
        events.checkout_completed("user-1", "premium", subscription="sub_new", created=T0 + timedelta(minutes=1))
    )

    # When sub_old is deleted
    result = events.deliver(
        events.subscription(
            DELETED, tier="basic", subscription="sub_old", status="canceled", created=T0 + timedelta(minutes=2)
        )
    )

    # Then the premium subscription stands
    assert result["outcome"] == "other_subscription"
    assert standing(db, "user-1", T0).tier.name == "premium"


def test_an_event_without_our_metadata_finds_the_user_by_the_stored_subscription_id(events, db):
    # Given user-1 subscribed through checkout (sub_1 stored)
    events.deliver(events.checkout_completed("user-1", "basic", subscription="sub_1", created=T0))

    # When an update arrives without metadata (e.g. made in the Stripe dashboard)
    result = events.deliver(
        events.subscription(
            UPDATED, tier="premium", user_id=None, subscription="sub_1", created=T0 + timedelta(minutes=1)
        )
    )

    # Then it applies to user-1
    assert result["outcome"] == "updated"
    assert standing(db, "user-1", T0).tier.name == "premium"


def test_an_event_nobody_can_be_found_for_is_unmatched(events, db):
    result = events.deliver(
        events.subscription(UPDATED, user_id=None, subscription="sub_unknown", customer="cus_unknown")
    )

    assert result["outcome"] == "unmatched"
    assert db.execute(text("SELECT count(*) FROM subscriptions")).scalar() == 0


def test_a_price_we_do_not_sell_changes_nothing(events, db):
    result = events.deliver(events.subscription(CREATED, price="price_someone_elses"))

    assert result["outcome"] == "unknown_price"
    assert standing(db, "user-1", T0).tier.name == "free"


def test_statuses_map_to_active_past_due_and_canceled(events, db):
    steps = [
        ("trialing", "active"),
        ("past_due", "past_due"),
        ("unpaid", "past_due"),
        ("active", "active"),
        ("incomplete_expired", "canceled"),
    ]
    for minute, (stripe_status, ours) in enumerate(steps):
        events.deliver(events.subscription(UPDATED, status=stripe_status, created=T0 + timedelta(minutes=minute)))
        assert _row(db).status == ours, stripe_status

    # A subscription whose first payment is still pending grants nothing yet
    pending = events.deliver(events.subscription(CREATED, status="incomplete", user_id="user-2"))
    assert pending["outcome"] == "ignored_status: incomplete"


def test_past_due_since_is_set_when_the_subscription_falls_behind_and_kept_while_it_stays_behind(events, db):
    events.deliver(events.subscription(UPDATED, status="past_due", created=T0))
    events.deliver(events.subscription(UPDATED, status="unpaid", created=T0 + timedelta(days=2)))
    assert _row(db).past_due_since == T0

    events.deliver(events.subscription(UPDATED, status="active", created=T0 + timedelta(days=3)))
    assert _row(db).past_due_since is None


# Canceled is final for that subscription id (the state machine in docs/billing.md).


def _inbox(db) -> list[tuple[str, str, str]]:
    rows = db.execute(text("SELECT type, state, outcome FROM stripe_events ORDER BY received_at, id"))
    return [tuple(row) for row in rows]


def test_an_update_in_the_same_second_as_the_deletion_does_not_bring_the_tier_back(events, db, caplog):
    # Given a premium subscriber whose subscription is deleted at T1
    events.deliver(events.subscription(CREATED, tier="premium", created=T0))
    ended = T0 + timedelta(days=3)
    events.deliver(events.subscription(DELETED, tier="premium", status="canceled", created=ended))

    # When an update saying "active" arrives after it, stamped with the same second
    body = events.subscription(UPDATED, tier="premium", status="active", created=ended)
    with caplog.at_level("INFO", logger="workers.billing.handlers"):
        result = events.deliver(body, now=ended)

    # Then the user stays free, the event is ignored with its reason, and the refusal is logged
    assert result["outcome"] == "canceled_final"
    assert (standing(db, "user-1", ended).tier.name, _row(db).status) == ("free", "canceled")
    assert _inbox(db)[-1] == (UPDATED, "ignored", "canceled_final")
    refusals = [
        r
        for r in caplog.records
        if r.name == "workers.billing.handlers" and getattr(r, "outcome", None) == "canceled_final"
    ]
    assert [r.event_id for r in refusals] == [result["event_id"]]
    assert _history(db) == [("free", "premium", "upgrade"), ("premium", "free", "downgrade")]


def test_a_deletion_with_no_row_yet_is_final_for_a_later_update_of_the_same_second(events, db):
    # Given the deletion is the first event we see about sub_1
    events.deliver(events.subscription(DELETED, tier="basic", status="canceled", created=T0))

    # When the active update of the same second arrives, and then a renewal
    updated = events.deliver(events.subscription(UPDATED, tier="professional", created=T0))
    paid = events.deliver(events.invoice("invoice.paid", tier="professional", created=T0 + timedelta(minutes=1)))

    # Then neither grants anything
    assert (updated["outcome"], paid["outcome"]) == ("canceled_final", "canceled_final")
    assert standing(db, "user-1", T0 + timedelta(minutes=1)).tier.name == "free"
    assert _history(db) == []


def test_a_new_subscription_after_a_cancellation_starts_a_new_history(events, db):
    # Given sub_old ended
    events.deliver(events.subscription(CREATED, tier="basic", subscription="sub_old", created=T0))
    events.deliver(events.subscription(DELETED, tier="basic", subscription="sub_old", status="canceled", created=T0))

    # When the user buys again (a new subscription id), in the same second
    result = events.deliver(events.subscription(CREATED, tier="premium", subscription="sub_new", created=T0))

    # Then the new subscription applies
    assert result["outcome"] == "updated"
    assert (standing(db, "user-1", T0).tier.name, _row(db).stripe_subscription_id) == ("premium", "sub_new")


def test_a_paused_subscription_may_resume(events, db):
    # Given a subscription Stripe paused (ours: canceled, the user is on free)
    events.deliver(events.subscription(CREATED, tier="basic", created=T0))
    events.deliver(events.subscription(UPDATED, tier="basic", status="paused", created=T0 + timedelta(days=1)))
    assert standing(db, "user-1", T0 + timedelta(days=1)).tier.name == "free"

    # When Stripe resumes it
    result = events.deliver(events.subscription(UPDATED, tier="basic", created=T0 + timedelta(days=2)))

    # Then it is the user's again: a pause is not an end
    assert result["outcome"] == "updated"
    assert standing(db, "user-1", T0 + timedelta(days=2)).tier.name == "basic"
