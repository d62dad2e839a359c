"""Guards around the broker: a final result is never overwritten by a late RETRY, a worker says
when its broker Redis keeps nothing on disk, and how many Postgres connections it may open."""

from __future__ import annotations

import logging

from celery import states

from tests.servers import redis_server
from workers.app import app
from workers.ops.startup_checks import check_broker_persistence, check_database_connections


def test_a_late_retry_never_overwrites_the_final_state_a_producer_waits_for():
    # Given a task whose final FAILURE is stored (its retry ran first)
    backend = app.backend
    backend.mark_as_failure("race-job", ValueError("final"))
    # When the earlier attempt stores its RETRY afterwards
    backend.mark_as_retry("race-job", RuntimeError("late"))
    # Then the producer still sees the final state
    assert backend.get_state("race-job") == states.FAILURE
    # And a final state may still replace a final one (recovery storing the JobResult)
    backend.mark_as_done("race-job", {"status": "succeeded"})
    assert backend.get_state("race-job") == states.SUCCESS


def test_a_worker_warns_when_its_broker_redis_keeps_nothing_on_disk(caplog):
    with (
        redis_server() as volatile,
        redis_server("--appendonly", "yes") as durable,
        caplog.at_level(logging.WARNING),
    ):
        assert check_broker_persistence(volatile.client()) is False
        assert check_broker_persistence(durable.client()) is True
    assert sum("keeps nothing on disk" in r.getMessage() for r in caplog.records) == 1


def test_the_persistence_check_tolerates_a_redis_whose_config_command_is_disabled(caplog):
    with redis_server("--rename-command", "CONFIG", '""') as managed, caplog.at_level(logging.INFO):
        assert check_broker_persistence(managed.client()) is None
    assert any("CONFIG is disabled" in r.getMessage() for r in caplog.records)


def test_a_worker_says_how_many_connections_it_may_open_and_warns_past_max_connections(caplog):
    with caplog.at_level(logging.INFO):
        figures = check_database_connections()
        assert figures is not None and figures["pool_size"] == 10
        check_database_connections(size=100_000)
    messages = [r.getMessage() for r in caplog.records]
    assert any("may open up to 10 Postgres connections" in m for m in messages)
    assert any("DB_POOL_SIZE=100000 exceeds" in m for m in messages)
