"""Taking a quota unit is atomic: concurrent submits can never overspend."""

import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from workers.pipeline.admission import admit
from workers.pipeline.validation import JobRequest
from workers.quotas.periods import calendar_month, utcnow

USER = "racer-1"


def given_ten_units_left(db, subscribe):
    # A professional user (500 scripts, 300 requests a minute) who has used 490 this month
    subscribe(USER, "professional")
    start, end = calendar_month(utcnow())
    db.execute(
        text("INSERT INTO quota_usage (user_id, period_start, period_end, scripts_used) VALUES (:u, :s, :e, 490)"),
        {"u": USER, "s": start, "e": end},
    )


def submit_one(_=None) -> str | None:
    admission = admit(JobRequest(str(uuid.uuid4()), "script", "cinematic", USER, "A race."))
    return "accepted" if admission.tier is not None else admission.result["reason"]


def test_a_hundred_concurrent_submits_in_threads_take_exactly_the_ten_units_left(db, subscribe):
    given_ten_units_left(db, subscribe)
    # When 100 submits race in 32 threads
    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(submit_one, range(100)))
    # Then exactly 10 were accepted and 90 refused for the quota
    assert outcomes.count("accepted") == 10
    assert outcomes.count("quota_exceeded") == 90
    assert db.execute(text("SELECT scripts_used FROM quota_usage WHERE user_id = :u"), {"u": USER}).scalar() == 500


def _submit_many(n: int) -> list:
    from db.session import get_engine

    get_engine().dispose(close=False)  # never reuse the parent's sockets
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(submit_one, range(n)))


def test_a_hundred_concurrent_submits_in_four_processes_take_exactly_the_ten_units_left(db, subscribe):
    given_ten_units_left(db, subscribe)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        outcomes = [o for chunk in pool.map(_submit_many, [25] * 4) for o in chunk]
    assert outcomes.count("accepted") == 10
    assert outcomes.count("quota_exceeded") == 90
