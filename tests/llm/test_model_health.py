"""Shared model health on a real Redis: what marks a model, how long it is skipped, who probes."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from config import get_settings
from config.tiers import RetryPolicy
from workers.errors import CallUsage, InsufficientCredits, ProviderAuthError, RetryableError
from workers.llm.model_chain import run_chain
from workers.llm.model_health import HealthPolicy, ModelHealth
from workers.llm.openrouter import Completion

POLICY = HealthPolicy(
    consecutive_failures=3,
    error_rate=0.5,
    window_seconds=60,
    min_calls=10,
    cooldown_seconds=0.5,
    probe_lease_seconds=5,
)
OK = Completion("text", CallUsage(1, 1), latency_ms=1)
DOWN = RetryableError("503", status=503)


@pytest.fixture
def health() -> ModelHealth:
    return ModelHealth(get_settings().require_redis_url(), POLICY)


def test_consecutive_retryable_failures_mark_a_model_unhealthy_for_every_worker(health):
    # Given two workers' views of the same board
    other = ModelHealth(get_settings().require_redis_url(), POLICY)
    for _ in range(2):
        health.record("m", DOWN)
    assert other.available("m")
    # When the third consecutive failure lands
    health.record("m", DOWN)
    # Then the other worker skips the model too
    assert not other.available("m") and not other.healthy("m")
    assert other.snapshot(["m"])[0]["state"] == "unhealthy"


def test_a_success_in_between_resets_the_consecutive_count(health):
    for outcome in (DOWN, DOWN, None, DOWN, DOWN):
        health.record("m", outcome)
    assert health.available("m")


def test_account_errors_never_mark_a_model(health):
    # 401 (key), 402 (credits) and the retryable 402 in-flight budget are the account's fault
    budget = RetryableError("in flight", status=402)
    for error in [ProviderAuthError("401", status=401), InsufficientCredits("402", status=402), budget] * 5:
        health.record("m", error)
    assert health.available("m")
    assert health.snapshot(["m"])[0]["consecutive_failures"] == 0


def test_an_error_rate_over_the_window_marks_a_model(health):
    # Given failures interleaved with successes, never three in a row
    for outcome in [DOWN, DOWN, None] * 3 + [DOWN]:
        health.record("m", outcome)
    # Then 7 of 10 calls failing (over the 0.5 rate, at least 10 calls) marks it
    row = health.snapshot(["m"])[0]
    assert row["state"] == "unhealthy" and "of" in row["reason"]


def test_after_the_cool_down_exactly_one_caller_probes_and_its_success_restores_the_model(health):
    for _ in range(3):
        health.record("m", DOWN)
    assert not health.available("m")
    time.sleep(POLICY.cooldown_seconds + 0.1)
    # When several workers ask at once, one is let through as the probe
    verdicts = [health.available("m") for _ in range(5)]
    assert verdicts == [True, False, False, False, False]
    # Then the probe's success makes the model healthy for everyone
    health.record("m", None)
    assert all(health.available("m") for _ in range(3))


def test_a_failed_probe_starts_another_cool_down(health):
    for _ in range(3):
        health.record("m", DOWN)
    time.sleep(POLICY.cooldown_seconds + 0.1)
    assert health.available("m")  # the probe
    health.record("m", DOWN)
    assert not health.available("m")
    assert health.snapshot(["m"])[0]["reason"] == "the probe call failed"


def test_the_chain_skips_an_unhealthy_primary_and_stops_retrying_a_model_once_marked(health):
    calls: list[str] = []

    def call(model: str) -> Completion:
        calls.append(model)
        if model == "a":
            raise DOWN
        return OK

    def chain() -> str:
        served = run_chain(
            ("a", "b"),
            call,
            policy=RetryPolicy(attempts=5, seconds=60),
            in_process_cap=10,
            on_attempt=lambda *_: None,
            sleep=lambda _: None,
            health=health,
        )
        return served.model

    # The first job stops retrying "a" at its third failure (marked), not its fifth attempt
    assert chain() == "b" and calls == ["a", "a", "a", "b"]
    # The next job goes straight to the fallback
    calls.clear()
    assert chain() == "b" and calls == ["b"]


def test_the_last_model_of_a_chain_is_tried_even_when_marked(health):
    for model in ("a", "b"):
        for _ in range(3):
            health.record(model, DOWN)
    served = run_chain(
        ("a", "b"),
        lambda model: OK,
        policy=RetryPolicy(attempts=1, seconds=60),
        in_process_cap=10,
        on_attempt=lambda *_: None,
        sleep=lambda _: None,
        health=health,
    )
    # Then the job is served rather than failed unasked, and the success restores "b"
    assert served.model == "b" and health.healthy("b") and not health.healthy("a")


def test_a_trusted_look_costs_no_redis_and_successes_are_counted_with_the_next_look(health):
    # Given a worker that trusts a healthy look for 0.3 s, and another worker
    viewer = ModelHealth(get_settings().require_redis_url(), replace(POLICY, view_seconds=0.3))
    other = ModelHealth(get_settings().require_redis_url(), POLICY)
    assert viewer.available("m")
    # When it serves four calls inside the look
    for _ in range(4):
        assert viewer.available("m")
        viewer.record("m", None)
    # Then Redis has not counted them yet
    assert health.snapshot(["m"])[0]["window_calls"] == 0
    # And another worker's marks are seen only once the look expires
    for _ in range(3):
        other.record("m", DOWN)
    assert viewer.available("m") and viewer.healthy("m")
    time.sleep(0.35)
    assert not viewer.available("m") and not viewer.healthy("m")
    # And the four successes were counted before that look, ahead of the failures' verdict
    assert health.snapshot(["m"])[0]["window_calls"] == 4 + 3


def test_a_failure_reports_the_batched_successes_first_so_they_reset_the_streak(health):
    viewer = ModelHealth(get_settings().require_redis_url(), replace(POLICY, view_seconds=30))
    health.record("m", DOWN)
    health.record("m", DOWN)
    assert viewer.available("m")
    viewer.record("m", None)  # batched: Redis still says two in a row
    assert health.snapshot(["m"])[0]["consecutive_failures"] == 2
    # When this worker's call fails, its earlier success is reported first
    viewer.record("m", DOWN)
    # Then the streak is one, not three: the model stays healthy
    row = health.snapshot(["m"])[0]
    assert row["consecutive_failures"] == 1 and row["state"] == "healthy" and row["window_calls"] == 4
