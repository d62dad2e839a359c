"""Events for one user applied at the same time still apply one at a time."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

PARALLEL = 8


def _all_at_once(deliveries) -> list[dict]:
    barrier = threading.Barrier(len(deliveries))

    def run(deliver):
        barrier.wait()
        return deliver()

    with ThreadPoolExecutor(len(deliveries)) as pool:
        return list(pool.map(run, deliveries))


def test_one_event_delivered_many_times_at_once_is_applied_once(events, db):
    # Given one event, delivered by several workers at the same moment
    body = events.checkout_completed("user-1", "premium")

    # When they all handle it
    results = _all_at_once([lambda: events.deliver(body)] * PARALLEL)

    # Then exactly one applied it
    assert Counter(r["outcome"] for r in results) == {"provisioned": 1, "duplicate": PARALLEL - 1}
    assert db.execute(text("SELECT count(*) FROM subscription_changes")).scalar() == 1


def test_first_events_of_a_new_subscriber_arriving_together_record_one_upgrade(events, db):
    # Given several distinct events that all make a brand-new user premium (no row exists yet)
    bodies = [events.subscription("customer.subscription.updated", tier="premium") for _ in range(PARALLEL)]

    # When they are handled at the same moment
    results = _all_at_once([lambda b=b: events.deliver(b) for b in bodies])

    # Then they were serialised: one saw "free" and recorded the upgrade, the others saw premium
    assert {r["outcome"] for r in results} == {"updated"}
    rows = db.execute(text("SELECT from_tier, to_tier FROM subscription_changes")).all()
    assert [tuple(r) for r in rows] == [("free", "premium")]
