#!/usr/bin/env python3
"""The two quickstart commands, with nothing but Python 3.11 on the machine:

    python3 dev.py demo            # the end-to-end demo
    python3 dev.py test            # the test suite
    python3 dev.py check           # the gates: format, lint, types, schema drift
    python3 dev.py litink ARGS...  # any litink command, run in .venv (e.g. litink --help)

Each builds `.venv` and installs the project with its test extras when pyproject.toml has
changed since the last install, then runs inside it. Without DATABASE_URL / REDIS_URL,
`demo` and `test` start embedded Postgres and Redis under `.data/` and say so; `litink`
commands need them set, or `litink --embedded ...`. Extra arguments go to the command
(`python3 dev.py test -k quota`, `python3 dev.py demo --latency-ms 50`). To have `litink` on
your PATH instead: `source .venv/bin/activate`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def ensure_environment(extras: str = "dev") -> None:
    digest = hashlib.sha1((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    kind = "" if extras == "dev" else extras.replace(",", "-") + "-"
    stamp = VENV / f".installed-{kind}{digest}"
    if stamp.exists():
        return
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"installing the project and its extras [{extras}] into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    for old in VENV.glob(f".installed-{kind}*"):
        old.unlink()
    stamp.touch()


GATES = [
    ["ruff", "format", "--check", "."],
    ["ruff", "check", "."],
    ["mypy"],
    ["python", "-m", "db.drift"],  # the models against the migrations
]


def check() -> int:
    """Run every gate; stop at the first that fails."""
    for gate in GATES:
        print("$", *gate, flush=True)
        if code := subprocess.call([str(BIN / gate[0]), *gate[1:]]):
            return code
    return 0


COMMANDS = {
    "demo": lambda args: [str(BIN / "litink"), "demo", *args],
    "litink": lambda args: [str(BIN / "litink"), *args],
    "test": lambda args: [str(BIN / "python"), "-m", "pytest", "-q", *args],
    "bench": lambda args: [str(BIN / "python"), "-m", "bench.throughput", *args],
}


def main(argv: list[str]) -> int:
    if not argv or (argv[0] not in COMMANDS and argv[0] != "check"):
        print(__doc__)
        return 2
    # The benchmark also needs its optional group (LiteLLM, py-spy); nothing else installs it.
    ensure_environment("dev,bench" if argv[0] == "bench" else "dev")
    os.chdir(ROOT)
    if argv[0] == "check":
        return check()
    if argv[0] == "test":
        missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
        if missing:
            print(f"{' and '.join(missing)} unset: the tests start embedded servers under .data/test", flush=True)
    try:
        return subprocess.call(COMMANDS[argv[0]](argv[1:]))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
