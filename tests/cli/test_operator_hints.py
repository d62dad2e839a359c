"""The small things an operator trips over, each as the operator sees it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == expect, out.stderr + out.stdout
    return out


def test_models_list_before_any_sync_says_to_run_models_sync():
    out = run("models", "list")
    assert "litink models sync" in out.stderr


def test_jobs_show_accepts_the_eight_characters_the_demo_prints(worker, client, faults):
    result = client.result(client.submit_analysis("prefix-user", "A short tale.", "summary"), timeout=30)
    shown = run("jobs", "show", result["job_id"][:8]).stdout
    assert shown.startswith(f"job {result['job_id']}: succeeded")
    assert "prompt +" in shown and "completion" in shown
    # And fewer than 8 characters are not taken as a prefix
    assert run("jobs", "show", result["job_id"][:7], expect=1).stderr.strip() == f"no job {result['job_id'][:7]}"
    # And the cost report's money never reads as a float, each amount with its fixed decimals
    report = run("costs").stdout
    assert not re.search(r"\d[eE]-?\d", report)
    assert all(len(amount.split(".")[1]) in (2, 8) for amount in re.findall(r"\$(\d+\.\d+)", report))


def test_usage_text_uses_the_json_names_and_explains_a_user_without_subscription():
    out = run("usage", "newcomer").stdout
    assert "tier free (no subscription, so the default tier)" in out
    assert "videos:" in out and "videos_per_month" in out and "scripts" not in out


def test_migrate_says_there_was_nothing_to_migrate_on_a_migrated_database():
    assert run("migrate").stdout.startswith("nothing to migrate: the database is already at the newest schema")


def test_the_emulator_prints_its_start_line_once():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "emulator", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=20)[0]
    assert output.count("OpenRouter emulator") == 1, output


def test_flower_port_is_taken_as_documented():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "flower", "--insecure-local", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"FLOWER_BASIC_AUTH": ""},
    )
    try:
        deadline, status = time.monotonic() + 40, None
        while time.monotonic() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1).status
            except OSError:
                assert proc.poll() is None, "flower exited"
                time.sleep(0.3)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.unit
def test_the_demos_metrics_show_money_and_counts_not_floats():
    from cli.demo import _metric_line

    assert _metric_line('litink_llm_cost_usd_total{tier="free"} 2.9760000000000003e-05').endswith(" $0.00002976")
    assert _metric_line('litink_fallbacks_total{tier="premium"} 2.0').endswith(" 2")
    assert Decimal("2.976e-05")  # the exposition text parses exactly as a Decimal
