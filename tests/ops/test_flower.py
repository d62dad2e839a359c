"""Flower runs only behind authentication, and counts every priority sub-queue."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from devtools.embedded import free_port
from tests.waiting import wait_until
from workers.ops import flower

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = "operator:s3cret-pass"


def get(url: str, credentials: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def running_flower(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen]]:
    """The real launcher, `python -m workers.ops.flower`, with credentials in the environment."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("flower")
    env = {**os.environ, "FLOWER_BASIC_AUTH": CREDENTIALS}
    log_path = data_dir / "flower.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.ops.flower", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        if process.poll() is not None:
            pytest.fail(f"Flower exited: {log_path.read_text()[-3000:]}")
        try:
            get(base + "/healthcheck")
        except OSError:
            return False
        return True

    wait_until(answering, timeout=60, interval=0.3, what="Flower to answer")
    yield base, process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # Nothing Flower logged, from start to shutdown, shows the password
    log.close()
    assert "s3cret-pass" not in log_path.read_text()


@pytest.mark.unit
def test_the_launcher_refuses_to_start_without_credentials(monkeypatch, capsys):
    # Given no FLOWER_BASIC_AUTH
    monkeypatch.setattr(flower, "get_settings", lambda: Settings(flower_basic_auth=None))
    # When the launcher starts
    code = flower.main(["--port", str(free_port())])
    # Then it refuses, saying what to do
    assert code == 2
    assert "FLOWER_BASIC_AUTH" in capsys.readouterr().err


@pytest.mark.unit
def test_malformed_credentials_are_refused_without_being_printed(monkeypatch, capsys):
    monkeypatch.setattr(flower, "get_settings", lambda: Settings(flower_basic_auth="just-a-password"))
    assert flower.main([]) == 2
    captured = capsys.readouterr()
    assert "malformed" in captured.err and "just-a-password" not in captured.err + captured.out


@pytest.mark.unit
def test_the_command_line_never_holds_the_password():
    # Given credentials in the settings
    settings = Settings(flower_basic_auth=CREDENTIALS)
    # When the command line is built
    argv = flower.flower_argv(settings, port=5999, data_dir="/data")
    # Then the password travels only in Flower's environment
    assert "s3cret-pass" not in " ".join(argv)
    assert flower.flower_env(settings) == {"FLOWER_BASIC_AUTH": CREDENTIALS}
    assert argv[1:] == [
        "-m",
        "workers.ops.flower_guard",
        "-A",
        "workers.app",
        "flower",
        "--port=5999",
        "--persistent=True",
        "--db=/data/flower.db",
        f"--state_save_interval={flower.STATE_SAVE_INTERVAL_MS}",
        "--read_only=True",
        "--address=127.0.0.1",
    ]
    # And --insecure-local binds the loopback interface only
    insecure = flower.flower_argv(Settings(flower_basic_auth=None), insecure_local=True)
    assert "--address=127.0.0.1" in insecure and flower.flower_env(Settings(flower_basic_auth=None)) == {}


def test_flower_answers_only_with_credentials(running_flower):
    base, process = running_flower
    # When the API and the UI are asked without, with wrong and with right credentials
    # Then only the right ones get in
    assert get(base + "/api/workers")[0] == 401
    assert get(base + "/api/workers", "operator:wrong")[0] == 401
    assert get(base + "/")[0] == 401
    status, body = get(base + "/api/workers", CREDENTIALS)
    assert status == 200 and isinstance(json.loads(body), dict)
    assert get(base + "/", CREDENTIALS)[0] == 200
    # And /healthcheck and /metrics are open by design
    assert get(base + "/healthcheck")[0] == 200
    assert get(base + "/metrics")[0] == 200
    # And the password is not on Flower's command line (what `ps` shows)
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "flower" in cmdline and "s3cret-pass" not in cmdline


def test_queue_lengths_include_the_priority_sub_queues(running_flower):
    base, _ = running_flower
    from config import get_catalog, get_settings
    from workers.app import app

    # Given no worker, and two messages on tier.basic: one at the tier's priority (a sub-queue
    # key) and one at priority 0 (the plain key)
    priority = get_catalog().tier("basic").priority
    assert priority in app.conf.broker_transport_options["priority_steps"] and priority != 0
    app.send_task("litink.flower_probe", queue="tier.basic", priority=priority)
    app.send_task("litink.flower_probe", queue="tier.basic", priority=0)
    broker = redis.Redis.from_url(get_settings().redis_url)
    assert broker.llen(f"tier.basic\x06\x16{priority}") == 1 and broker.llen("tier.basic") == 1
    # When Flower is asked for the queue lengths
    status, body = get(base + "/api/queues/length", CREDENTIALS)
    # Then tier.basic counts both
    assert status == 200
    lengths = {q["name"]: q["messages"] for q in json.loads(body)["active_queues"]}
    assert lengths["tier.basic"] == 2
    assert lengths["tier.premium"] == 0
