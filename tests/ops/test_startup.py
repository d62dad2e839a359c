"""A worker that could only fail its jobs refuses to start, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import OPENROUTER_BASE_URL, Settings
from workers.ops.startup import configuration_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_openrouter_without_a_key_is_a_problem_and_the_emulator_without_one_is_not():
    def problem(key: str | None, base_url: str = OPENROUTER_BASE_URL) -> str | None:
        return configuration_problem(Settings(openrouter_api_key=key, openrouter_base_url=base_url, _env_file=None))

    assert "OPENROUTER_API_KEY is not set" in (problem(None) or "")
    assert problem(None, "http://127.0.0.1:8099/api/v1") is None  # the emulator takes no key
    assert problem("sk-or-v1-x") is None


def test_a_worker_pointed_at_openrouter_without_a_key_exits_with_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")}
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "threads", "-c", "1", "-l", "WARNING"],
        cwd=ROOT,
        env=env | {"METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    refusals = [line for line in out.stderr.splitlines() if line.startswith("refusing to start")]
    assert len(refusals) == 1 and "OPENROUTER_API_KEY is not set" in refusals[0]
    assert "Traceback" not in out.stderr
