"""Spend caps hold under concurrency: admission reserves each job's maximum cost, settlement
replaces the reservation with the real cost."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text

from config import get_catalog
from config.prompts import prompt
from db.session import get_engine
from tests.pipeline.test_broker_loss import wait_for_all
from tests.waiting import wait_until
from workers.app import app
from workers.llm import costs
from workers.quotas.periods import quota_period, utcnow

WORKER_CONCURRENCY = 16
CONTENT = "A chapter about a lighthouse keeper and the storm."


def test_fifty_concurrent_jobs_against_a_cap_with_room_for_ten_never_overrun_it(worker, client, faults, db, subscribe):
    # Given a user whose spend leaves room for ten jobs' maximum cost under the tier's cap
    tier = get_catalog().tier("standard")
    subscribe("capped", "standard")
    messages, max_tokens, _, _ = prompt("analysis", "summary", CONTENT, tier)
    with get_engine().connect() as conn:
        maximum = costs.job_maximum(conn, tier, costs.prompt_tokens_estimate(messages), max_tokens)
    start, end = quota_period(utcnow(), None, None)
    db.execute(
        text(
            "INSERT INTO quota_usage (user_id, period_start, period_end, spend_usd) VALUES ('capped', :s, :e, :spend)"
        ),
        {"s": start, "e": end, "spend": tier.spend_cap_usd - 10 * maximum},
    )
    faults.set_latency(300)
    # When fifty jobs are submitted at once, and all fifty are admitted before any of them runs.
    # A job that settles gives back the part of its reservation it did not spend (all of it when
    # it was served from an identical job in flight), so a submission admitted after the first
    # settlement could rightly take that room: the tier queue is held until admission is done.
    app.control.cancel_consumer(tier.queue, reply=True, timeout=5)

    def nobody_consumes_the_tier() -> bool:
        # Every live worker, not just the first to reply: any other consumer would run jobs early.
        queues = app.control.inspect(timeout=2).active_queues() or {}
        return bool(queues) and all(tier.queue not in {q["name"] for q in qs} for qs in queues.values())

    wait_until(nobody_consumes_the_tier, timeout=30, what=f"every worker to stop consuming {tier.queue}")
    try:
        job_ids = [client.submit_analysis("capped", CONTENT) for _ in range(50)]

        def admitted() -> bool:
            return db.execute(text("SELECT count(*) FROM jobs WHERE user_id = 'capped'")).scalar() == 50

        wait_until(admitted, timeout=60, what="all fifty submissions to be admitted or refused")
    finally:
        app.control.add_consumer(tier.queue, reply=True, timeout=5)
    results = wait_for_all(client, job_ids, timeout=60)
    # Then ten ran, the rest were refused at the cap, and spend never passed cap + one job's maximum
    outcomes = [(r["status"], r["reason"]) for r in results.values()]
    assert outcomes.count(("succeeded", None)) == 10, outcomes
    assert outcomes.count(("rejected", "spend_cap_reached")) == 40, outcomes
    row = db.execute(text("SELECT spend_usd, reserved_usd FROM quota_usage WHERE user_id = 'capped'")).one()
    assert row.spend_usd <= tier.spend_cap_usd + maximum
    assert row.reserved_usd == 0
    spent = db.execute(text("SELECT sum(cost_usd) FROM jobs WHERE user_id = 'capped'")).scalar()
    assert row.spend_usd == tier.spend_cap_usd - 10 * maximum + spent
    assert spent > Decimal(0)
