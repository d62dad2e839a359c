"""The recovery loop, run directly against real Postgres and Redis: expired leases, missing
results, two runs at once; and the heartbeat that keeps a long call's lease alive."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import text

from db.session import get_engine
from tasks.client import LitinkClient
from tests.servers import workers
from workers.app import app
from workers.ops import startup_checks
from workers.pipeline import recovery
from workers.quotas.periods import utcnow


def add_running_job(db, job_id: str, *, lease: str) -> None:
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, content, deliveries,"
            " lease_until, reserved_usd) VALUES (:j, 'u', 'analysis', 'summary', 'free', 'running', 5, 'hello', 1,"
            f" now() + interval '{lease}', 0.001)"
        ),
        {"j": job_id},
    )
    db.execute(
        text(
            "INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd)"
            " VALUES (:j, 1, 'free', 'm', 'pending', 'none', 0.001)"
        ),
        {"j": job_id},
    )


def test_a_call_longer_than_the_lease_keeps_its_claim_through_the_heartbeat(emulator, faults, db):
    # Given a 3 s lease, recovery every second, and a provider that takes 6 s
    faults.set_latency(6000)
    broker = os.environ["REDIS_URL"]
    settings = {"job_lease_seconds": 3, "recovery_interval_seconds": 1, "openrouter_read_timeout": 15}
    with workers(broker, **settings) as running:
        running.spawn(concurrency=4, beat=True)
        client = LitinkClient(broker)
        # When a job runs
        started = time.monotonic()
        result = client.result(client.submit_analysis("slow-reader", "A long, long answer."), timeout=40)
    # Then it was claimed once and called once: the heartbeat kept the lease alive
    assert result["status"] == "succeeded"
    assert time.monotonic() - started >= 6
    assert db.execute(text("SELECT deliveries FROM jobs")).scalar() == 1
    assert db.execute(text("SELECT status FROM llm_calls")).scalars().all() == ["ok"]
    assert len(faults.calls()) == 1


def test_a_running_job_whose_lease_expired_is_queued_again_and_its_pending_attempt_becomes_unknown(db):
    # Given a job whose worker died mid-call (lease expired, attempt pending), and a live one
    recovery.mark_broker_alive(recovery.broker(app))
    add_running_job(db, "dead-job", lease="-1 second")
    add_running_job(db, "live-job", lease="30 seconds")
    # When recovery runs
    done = recovery.recover(app)
    # Then only the dead one is queued again and published; its attempt costs its estimate
    assert done.expired == ["dead-job"]
    jobs = dict(db.execute(text("SELECT id, status FROM jobs")).all())
    assert jobs == {"dead-job": "queued", "live-job": "running"}
    call = db.execute(text("SELECT status, cost_usd, cost_source FROM llm_calls WHERE job_id = 'dead-job'")).one()
    assert (call.status, str(call.cost_usd), call.cost_source) == ("unknown", "0.001", "estimate")
    assert db.execute(text("SELECT status FROM llm_calls WHERE job_id = 'live-job'")).scalar() == "pending"


def test_two_recovery_runs_at_once_do_the_work_once(db):
    # Given one recovery run in progress (it holds the advisory lock)
    recovery.mark_broker_alive(recovery.broker(app))
    add_running_job(db, "dead-job", lease="-1 second")
    with get_engine().begin() as holder:
        assert recovery.take_lock(holder)
        # When a second one starts, it does nothing
        assert recovery.recover(app).ran is False
    # Then the first (here: the next) run does the work, once
    assert recovery.recover(app).expired == ["dead-job"]
    assert recovery.recover(app).expired == []


def test_a_finished_job_whose_result_redis_lost_gets_it_stored_again(worker, client, faults, db):
    # Given a finished job whose result the backend lost
    recovery.mark_broker_alive(recovery.broker(app))
    job_id = client.submit_analysis("restore-reader", "The letter that arrived twice.")
    first = client.result(job_id, timeout=30)
    app.backend.forget(job_id)
    # When recovery runs
    done = recovery.recover(app)
    # Then a producer asking now gets the same JobResult
    assert job_id in done.results_restored
    assert client.result(job_id, timeout=5) == first


def test_redis_data_loss_republishes_every_unfinished_job(worker, client, faults, db):
    # Given queued and running jobs, and a Redis that lost its data (no sentinel)
    add_running_job(db, "running-job", lease="30 seconds")
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, content, published_at)"
            " VALUES ('queued-job', 'u', 'analysis', 'summary', 'free', 'queued', 5, 'hello', now())"
        )
    )
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(recovery.SENTINEL_KEY)
    # When recovery runs
    done = recovery.recover(app)
    # Then it saw the loss, published both again, and wrote the sentinel back
    assert done.redis_lost is True
    assert sorted(done.republished) == ["queued-job", "running-job"]
    assert recovery.recover(app).redis_lost is False


def test_recovery_leaves_a_job_published_within_the_grace_age_alone(db):
    # Given a queued job published a moment ago whose message is nowhere (in flight, say)
    recovery.mark_broker_alive(recovery.broker(app))
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, content, published_at)"
            " VALUES ('fresh', 'u', 'analysis', 'summary', 'free', 'queued', 5, 'hello', now())"
        )
    )
    # Then recovery waits for the grace age before judging it lost
    assert recovery.recover(app).republished == []
    assert recovery.recover(app, now=utcnow() + timedelta(seconds=120)).republished == ["fresh"]


def test_a_job_whose_answer_was_recorded_but_not_settled_settles_from_it_without_a_second_call(
    worker, client, faults, db
):
    # Given a job whose worker recorded the answer (ok row, content kept) and died before settling
    from config import get_catalog

    add_running_job(db, "answered-job", lease="-1 second")
    db.execute(
        text(
            "UPDATE llm_calls SET status = 'ok', cost_usd = 0.0002, cost_source = 'provider', prompt_tokens = 3,"
            " completion_tokens = 5, response_content = 'the paid answer', model = :m"
            " WHERE job_id = 'answered-job'"
        ),
        {"m": get_catalog().tier("free").models[0]},
    )
    # When its message is delivered again
    free = get_catalog().tier("free")
    sent = client.app.send_task(
        "litink.run_job", kwargs={"job_id": "answered-job"}, task_id="answered-job", queue=free.queue
    )
    result = sent.get(timeout=30)
    # Then it is settled from the recorded answer: no provider call, no second row
    assert result["status"] == "succeeded" and result["content"] == "the paid answer"
    assert result["usage"]["cost_usd"] == "0.0002"
    assert faults.calls() == []
    assert db.execute(text("SELECT count(*) FROM llm_calls WHERE job_id = 'answered-job'")).scalar() == 1


def test_a_worker_started_on_an_emptied_redis_does_not_hide_the_loss_from_recovery(db):
    # Given a broker Redis that lost its data (no sentinel) and a queued job in Postgres
    broker = recovery.broker(app)
    broker.delete(recovery.SENTINEL_KEY)
    db.execute(
        text(
            "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, content, published_at)"
            " VALUES ('waiting-job', 'u', 'analysis', 'summary', 'free', 'queued', 5, 'hello', now())"
        )
    )
    # When a worker's start-up checks run before recovery does
    startup_checks.run_checks(SimpleNamespace(app=app))
    # Then recovery still sees the loss and publishes the job again
    done = recovery.recover(app)
    assert done.redis_lost is True
    assert done.republished == ["waiting-job"]
