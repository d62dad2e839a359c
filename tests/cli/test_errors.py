"""Ordinary mistakes get one actionable line on stderr and a non-zero exit, never a traceback.

Each case is one an operator met on a fresh clone: a database that does not exist,
a mysql:// URL, Redis not running, no network for `models sync`, `--from` after `--to`,
`costs --json | head`, unset or empty service URLs, and `submit` with no worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from devtools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pw"


def litink_fails(*args: str, env: dict[str, str | None]) -> tuple[int, str, str]:
    """Run `litink` with ``env`` on top of ours (None removes a variable)."""
    full = {k: v for k, v in (os.environ | env).items() if v is not None}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=60
    )
    return out.returncode, out.stdout, out.stderr


def assert_one_line(code: int, stderr: str, *expected: str) -> None:
    assert code != 0
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert SECRET not in stderr
    for text in expected:
        assert text in stderr, stderr


def test_a_database_that_does_not_exist_is_named_with_the_setting_and_what_to_do():
    parts = urlsplit(os.environ["DATABASE_URL"])
    netloc = f"{parts.username or 'postgres'}:{SECRET}@{parts.netloc.rpartition('@')[2]}"
    url = urlunsplit(parts._replace(netloc=netloc, path="/no_such_db"))
    code, _, err = litink_fails("usage", "user-1", env={"DATABASE_URL": url})
    assert_one_line(code, err, "no_such_db", "does not exist", "DATABASE_URL", "createdb")


def test_a_mysql_url_is_refused_without_showing_its_password():
    code, _, err = litink_fails("costs", env={"DATABASE_URL": f"mysql://root:{SECRET}@localhost/litink"})
    assert_one_line(code, err, "DATABASE_URL", "postgresql://")


def test_redis_not_running_fails_within_seconds_naming_redis_url():
    # What starting the CLI costs on this machine right now (the command's help), so that a
    # busy machine's slow start is not taken for a retry loop.
    started = time.monotonic()
    litink_fails("submit", "--help", env={})
    startup = time.monotonic() - started
    started = time.monotonic()
    code, _, err = litink_fails(
        "submit", "script", "user-1", "A story.", env={"REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"}
    )
    assert_one_line(code, err, "Redis", "REDIS_URL", "***")
    # kombu's default would retry the connection for ever; ours gives up after a few seconds.
    assert time.monotonic() - started < startup + 8


def test_models_sync_without_a_network_names_openrouter_base_url():
    dead = f"http://127.0.0.1:{free_port()}/api/v1"
    code, _, err = litink_fails("models", "sync", env={"OPENROUTER_BASE_URL": dead})
    assert_one_line(code, err, "OpenRouter", dead, "OPENROUTER_BASE_URL")


def test_costs_from_after_to_is_a_bad_argument_in_one_line():
    code, _, err = litink_fails("costs", "--from", "2026-12-01", "--to", "2026-11-01", env={})
    assert code == 2
    assert_one_line(code, err, "--from", "after --to")


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly():
    # Given `litink costs --json | head -0`: the reader is gone before the first byte
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "costs", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    # Then it stops with SIGPIPE's conventional status and says nothing
    assert proc.wait(timeout=60) == 141
    assert err == ""


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (("usage", "user-1"), "DATABASE_URL"),
        (("costs",), "DATABASE_URL"),
        (("submit", "script", "u", "x"), "REDIS_URL"),
    ],
)
def test_an_operational_command_without_its_service_url_says_which_is_missing(command, missing, value):
    code, _, err = litink_fails(*command, env={missing: value})
    assert_one_line(code, err, f"{missing} is not set", "--embedded")


def test_submit_with_no_worker_on_intake_says_so_instead_of_waiting():
    started = time.monotonic()
    code, _, err = litink_fails("submit", "script", "user-1", "A story.", "--timeout", "300", env={})
    assert_one_line(code, err, "no worker consumes queue intake")
    assert time.monotonic() - started < 15


def test_debug_adds_the_traceback_to_the_same_line():
    code, _, err = litink_fails("usage", "u", env={"DATABASE_URL": "mysql://x@h/db", "LITINK_DEBUG": "1"})
    assert code != 0 and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("Error: invalid configuration: DATABASE_URL")
