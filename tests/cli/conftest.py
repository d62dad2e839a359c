import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def litink():
    """Run the `litink` command as an operator would, against the test services."""

    def run(*args: str, expect: int = 0, env: dict | None = None):
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ | (env or {}),
        )
        assert out.returncode == expect, out.stderr + out.stdout
        return json.loads(out.stdout) if "--json" in args else out.stdout

    return run
