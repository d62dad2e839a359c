"""The shared provider budget delays calls; it never lets more than N run at once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from config import get_settings
from tests.servers import redis_server
from workers.llm.provider_budget import ProviderBudget


def test_no_more_than_the_configured_calls_per_model_are_in_flight():
    budget = ProviderBudget(get_settings().redis_url, requests_per_minute=0, concurrency_per_model=2)
    in_flight, peak, lock = 0, 0, threading.Lock()

    def call(_):
        nonlocal in_flight, peak
        with budget.slot("m"):
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.05)
            with lock:
                in_flight -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(16)))
    assert peak == 2


def test_over_the_request_budget_a_call_waits_instead_of_failing():
    waited = []
    budget = ProviderBudget(
        get_settings().redis_url,
        requests_per_minute=3,
        concurrency_per_model=0,
        sleep=lambda s: (waited.append(s), (_ for _ in ()).throw(TimeoutError)),
    )
    for _ in range(3):
        with budget.slot("m"):
            pass
    # The fourth call in the minute is told to wait (our sleep stops the test there)
    try:
        with budget.slot("m"):
            pass
    except TimeoutError:
        pass
    assert len(waited) == 1 and 0 < waited[0] <= 60


def test_a_redis_lost_during_a_call_does_not_turn_the_finished_call_into_an_error():
    # Given an in-flight limit kept in a Redis of the test's own
    with redis_server() as server:
        budget = ProviderBudget(server.url(), requests_per_minute=0, concurrency_per_model=2)
        answers = []
        # When that Redis stops while a call is in flight
        with budget.slot("m"):
            server.stop()
            answers.append("paid answer")
    # Then the call's answer comes back: the slot could not be freed, and expires by itself
    assert answers == ["paid answer"]
