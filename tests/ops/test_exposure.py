"""Operator endpoints are closed by default: loopback only, Flower watches but cannot act, and
settings that weaken a check are refused or warned about at start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery, signals
from pydantic import ValidationError

from config import Settings
from devtools.embedded import free_port
from tests.ops.test_flower import CREDENTIALS, get
from workers.ops import flower, metrics_server

ROOT = Path(__file__).resolve().parents[2]


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a local socket listens on for ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.unit
def test_the_metrics_endpoint_listens_on_loopback_unless_metrics_host_says_otherwise(monkeypatch):
    # Given the default settings, and then METRICS_HOST=0.0.0.0
    assert Settings().metrics_host == "127.0.0.1"
    for host, expected in (("127.0.0.1", {"127.0.0.1"}), ("0.0.0.0", {"0.0.0.0"})):
        port = free_port()
        monkeypatch.setattr(
            metrics_server, "get_settings", lambda h=host, p=port: Settings(metrics_port=p, metrics_host=h)
        )
        monkeypatch.setattr(metrics_server, "_server", None)
        app = Celery("exposure-test")
        metrics_server.install(app)
        # When its worker starts
        signals.worker_init.send(sender=type("W", (), {"app": app})())
        try:
            # Then the endpoint listens on that address only
            assert listening_addresses(port) == expected
        finally:
            metrics_server._server.shutdown()
            metrics_server._server.server_close()
            monkeypatch.setattr(metrics_server, "_server", None)


@pytest.mark.unit
def test_flower_listens_on_flower_address_and_is_read_only():
    default = flower.flower_argv(Settings(flower_basic_auth=CREDENTIALS))
    assert "--address=127.0.0.1" in default and "--read_only=True" in default
    wide = flower.flower_argv(Settings(flower_basic_auth=CREDENTIALS, flower_address="0.0.0.0"))
    assert "--address=0.0.0.0" in wide
    # --insecure-local stays on loopback whatever FLOWER_ADDRESS says
    local = flower.flower_argv(Settings(flower_address="0.0.0.0"), insecure_local=True)
    assert "--address=127.0.0.1" in local


@pytest.fixture(scope="module")
def guarded_flower(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    data_dir = tmp_path_factory.mktemp("flower-guard")
    log = (data_dir / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.ops.flower", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        env={**os.environ, "FLOWER_BASIC_AUTH": CREDENTIALS},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (data_dir / "flower.log").read_text()[-3000:]
        try:
            get(base + "/healthcheck")
            break
        except OSError:
            assert time.monotonic() < deadline, "Flower did not answer within 60 s"
            time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=15)
    log.close()
    assert listening_addresses(port) == set()


def post(url: str, credentials: str, body: bytes = b"{}") -> int:
    import base64
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_flower_login_can_watch_but_cannot_run_revoke_or_read_results(guarded_flower):
    from config import get_settings

    base = guarded_flower
    broker = redis.Redis.from_url(get_settings().redis_url)
    before = broker.llen("intake")
    # When an operator's login tries every acting endpoint
    acting = [
        "/api/task/async-apply/litink.usage",
        "/api/task/apply/litink.usage",
        "/api/task/send-task/litink.usage",
        "/api/task/revoke/some-task-id",
        "/api/task/abort/some-task-id",
        "/api/task/rate-limit/litink.usage",
        "/api/task/timeout/litink.usage",
        "/api/worker/shutdown/any-worker",
        "/api/worker/pool/restart/any-worker",
    ]
    # Then each is refused, and no message reached a queue
    assert {path: post(base + path, CREDENTIALS) for path in acting} == dict.fromkeys(acting, 403)
    assert broker.llen("intake") == before
    # And stored results (a JobResult holds generated content) cannot be read through Flower
    assert get(base + "/api/task/result/some-task-id", CREDENTIALS)[0] == 403
    # But watching still works
    assert get(base + "/api/workers", CREDENTIALS)[0] == 200
    assert get(base + "/tasks", CREDENTIALS)[0] == 200
    # And Flower listens on loopback only
    port = int(base.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"127.0.0.1"}


@pytest.mark.unit
def test_a_webhook_tolerance_of_zero_is_refused_at_start():
    with pytest.raises(ValidationError, match="stripe_webhook_tolerance"):
        Settings(stripe_webhook_tolerance=0)
    assert Settings(stripe_webhook_tolerance=60).stripe_webhook_tolerance == 60


@pytest.mark.unit
def test_fail_open_rate_limiting_is_logged_as_a_warning_when_a_worker_starts(caplog, monkeypatch):
    from workers.ops import startup

    # Given fail-open rate limiting (the default)
    monkeypatch.setattr(startup, "get_settings", lambda: Settings(rate_limit_fail_open=True))
    with caplog.at_level(logging.WARNING, logger="workers.ops.startup"):
        startup.warn_weakened_checks()
    assert any("RATE_LIMIT_FAIL_OPEN" in r.getMessage() for r in caplog.records)
    # And nothing is said when it fails closed
    caplog.clear()
    monkeypatch.setattr(startup, "get_settings", lambda: Settings(rate_limit_fail_open=False))
    with caplog.at_level(logging.WARNING, logger="workers.ops.startup"):
        startup.warn_weakened_checks()
    assert not caplog.records
