"""Per-user requests per minute, enforced in Redis across every worker process."""

from concurrent.futures import ThreadPoolExecutor

from config import get_settings
from devtools.embedded import free_port
from workers.quotas.rate_limit import UserRateLimiter


def results_of(client, ids):
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda j: client.result(j, timeout=60), ids))


def test_sixteen_analyses_in_a_minute_from_a_free_user_accept_at_most_ten(worker, client, faults):
    # When a free user (10 a minute) sends 16 analyses at once
    results = results_of(client, [client.submit_analysis("burst", f"Note {i}.") for i in range(16)])
    # Then at most 10 are accepted, and the rest are rate_limited with a retry_after
    accepted = [r for r in results if r["status"] == "succeeded"]
    limited = [r for r in results if r["reason"] == "rate_limited"]
    assert len(accepted) == 10 and len(limited) == 6
    assert all(1 <= r["retry_after"] <= 60 for r in limited)


def test_the_limit_holds_across_two_worker_processes(spawn_worker, client, faults):
    # Given two separate worker processes consuming intake and the tier queues
    spawn_worker(concurrency=8)
    spawn_worker(concurrency=8)
    # When 30 analyses arrive for one free user
    results = results_of(client, [client.submit_analysis("spread", f"Note {i}.") for i in range(30)])
    # Then exactly 10 got through, whichever process took them
    assert sum(r["status"] == "succeeded" for r in results) == 10
    assert sum(r["reason"] == "rate_limited" for r in results) == 20


def test_an_unreachable_redis_fails_open_by_default_and_closed_when_configured():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    open_ = UserRateLimiter(dead, fail_open=True).hit("u", 10)
    closed = UserRateLimiter(dead, fail_open=False).hit("u", 10)
    assert open_.allowed and open_.degraded
    assert not closed.allowed and closed.degraded and closed.retry_after
    assert get_settings().rate_limit_fail_open is True
