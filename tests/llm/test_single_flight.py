"""Single-flight on a real Redis: one leader per key, waiters get its answer, bounded waits."""

from __future__ import annotations

import threading
import time

from config import get_settings
from tests.waiting import wait_until
from workers.llm.single_flight import SingleFlight


def flight(wait_seconds: float = 5.0) -> SingleFlight:
    return SingleFlight(get_settings().require_redis_url(), lock_seconds=30, wait_seconds=wait_seconds)


def test_a_waiter_is_served_the_leaders_answer_once_the_lock_is_released():
    store: dict[str, str] = {}
    leader = flight().lead_or_wait("k", lambda: store.get("k"))
    assert leader.lease is not None
    outcomes, polls = [], []

    def poll(seconds: float) -> None:  # the waiter's sleep between two looks at the lock
        polls.append(seconds)
        time.sleep(seconds)

    waiting = SingleFlight(get_settings().require_redis_url(), lock_seconds=30, wait_seconds=5, sleep=poll)
    waiter = threading.Thread(target=lambda: outcomes.append(waiting.lead_or_wait("k", lambda: store.get("k"))))
    waiter.start()
    # Once it has found the lock held several times, it is waiting, with no answer yet
    wait_until(lambda: len(polls) >= 3, timeout=5, what="the waiter to poll the held lock")
    assert outcomes == []
    store["k"] = "answer"
    leader.lease.release()
    waiter.join(5)
    assert outcomes[0].value == "answer" and outcomes[0].lease is None
    assert outcomes[0].waited_seconds >= sum(polls[:3])


def test_when_the_leader_fails_without_an_answer_the_next_waiter_leads():
    leader = flight().lead_or_wait("k", lambda: None)
    assert leader.lease is not None
    leader.lease.release()  # the leader's call failed: nothing stored
    second = flight().lead_or_wait("k", lambda: None)
    assert second.lease is not None and second.value is None


def test_a_waiter_stops_waiting_after_the_bound_and_calls_unlocked():
    leader = flight().lead_or_wait("k", lambda: None)
    started = time.monotonic()
    late = flight(wait_seconds=0.3).lead_or_wait("k", lambda: None)
    assert late.lease is None and late.value is None
    assert 0.3 <= time.monotonic() - started < 2
    assert leader.lease is not None


def test_a_released_lease_of_an_expired_lock_never_frees_someone_elses_lock():
    short = SingleFlight(get_settings().require_redis_url(), lock_seconds=0.2, wait_seconds=0)
    first = short.lead_or_wait("k", lambda: None)
    time.sleep(0.3)  # first's lock expired; a second leader takes it
    second = short.lead_or_wait("k", lambda: None)
    assert first.lease is not None and second.lease is not None
    first.lease.release()
    # The second leader still holds the key
    assert short.lead_or_wait("k", lambda: None).lease is None


def test_a_jobs_next_delivery_takes_over_the_lock_its_killed_delivery_left_at_once():
    # Given a lock taken by a job's first delivery and never released (its worker was killed)
    killed = flight().lead_or_wait("k", lambda: None, job_id="job-1", delivery=1)
    assert killed.lease is not None
    # When the job's second delivery (which holds the claim now) asks, with a wait far longer
    started = time.monotonic()
    redelivered = flight(wait_seconds=30).lead_or_wait("k", lambda: None, job_id="job-1", delivery=2)
    # Then it leads at once instead of waiting for the dead leader
    assert redelivered.lease is not None and time.monotonic() - started < 2
    # And the dead delivery's lease, released late, leaves the new leader's lock alone
    killed.lease.release()
    assert flight(wait_seconds=0.2).lead_or_wait("k", lambda: None, job_id="job-2", delivery=1).lease is None
    redelivered.lease.release()
    assert flight(wait_seconds=0).lead_or_wait("k", lambda: None, job_id="job-2", delivery=1).lease is not None


def test_a_lock_is_waited_for_by_another_job_and_by_an_earlier_delivery_of_the_same_job():
    leader = flight().lead_or_wait("k", lambda: None, job_id="job-1", delivery=2)
    assert leader.lease is not None
    other_job = flight(wait_seconds=0.3).lead_or_wait("k", lambda: None, job_id="job-2", delivery=3)
    stale_delivery = flight(wait_seconds=0.3).lead_or_wait("k", lambda: None, job_id="job-1", delivery=1)
    no_job = flight(wait_seconds=0.3).lead_or_wait("k", lambda: None)
    for late in (other_job, stale_delivery, no_job):
        assert late.lease is None and late.value is None and late.waited_seconds >= 0.3
