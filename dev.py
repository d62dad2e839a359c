#!/usr/bin/env python3
"""The two quickstart commands, with nothing but Python 3.11 on the machine:

    python3 dev.py demo            # the end-to-end demo
    python3 dev.py test            # the test suite
    python3 dev.py check           # the gates: format, lint, types, schema drift
    python3 dev.py litink ARGS...  # any litink command, run in .venv (e.g. litink --help)
    python3 dev.py lock [--check | --upgrade]  # check or move the pins in uv.lock

Each builds `.venv` from the lock file `uv.lock` (uv itself is installed from the hashes in
that lock) when the lock or pyproject.toml has changed since the last sync, then runs inside
it. Without DATABASE_URL / REDIS_URL, `demo` and `test` start embedded Postgres and Redis
under `.data/` and say so; `litink` commands need them set, or `litink --embedded ...`.
Extra arguments go to the command (`python3 dev.py test -k quota`,
`python3 dev.py demo --latency-ms 50`). To have `litink` on your PATH instead:
`source .venv/bin/activate`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
LOCK = ROOT / "uv.lock"


def uv_requirement() -> str:
    """uv itself, pinned with the hashes uv.lock records for it, so that even the installer
    comes from the lock (pip checks the hashes; nothing resolves at install time)."""
    lock = tomllib.loads(LOCK.read_text())
    (uv,) = (package for package in lock["package"] if package["name"] == "uv")
    hashes = [wheel["hash"] for wheel in uv["wheels"]] + [uv["sdist"]["hash"]]
    return f"uv=={uv['version']} " + " ".join(f"--hash={digest}" for digest in hashes)


def uv_env() -> dict[str, str]:
    return {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(VENV),
        "UV_PYTHON": str(BIN / "python"),
        "UV_PYTHON_DOWNLOADS": "never",  # the machine's Python 3.11 is the one to use
    }


def ensure_uv() -> None:
    """.venv with uv in it, installed by pip from the pin and hashes in uv.lock."""
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if (BIN / "uv").exists():
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirement:
        requirement.write(uv_requirement() + "\n")
        requirement.flush()
        pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--no-deps", "--require-hashes", "-r", requirement.name], check=True)


def ensure_environment(extras: str = "dev") -> None:
    """Make .venv exactly what uv.lock says for these extras, when the lock or the project
    changed since the last sync (uv.lock and pyproject.toml are both in the stamp)."""
    digest = hashlib.sha1(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    stamp = VENV / f".synced-{extras.replace(',', '-')}-{digest}"
    if stamp.exists():
        return
    ensure_uv()
    print(f"installing the project and its extras [{extras}] into .venv from uv.lock", flush=True)
    # --locked: refuse a lock that no longer matches pyproject.toml instead of re-resolving.
    extra_flags = [flag for extra in extras.split(",") for flag in ("--extra", extra)]
    sync = [str(BIN / "uv"), "sync", "--locked", "--quiet", *extra_flags]
    if subprocess.call(sync, env=uv_env(), cwd=ROOT):
        sys.exit("dev.py: .venv could not be synced from uv.lock (a stale lock: `python3 dev.py lock`)")
    for old in VENV.glob(".synced-*"):
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
    # `lock --check` fails when uv.lock no longer matches pyproject.toml; `lock --upgrade`
    # (or `--upgrade-package NAME`) moves pins forward (docs/development.md).
    "lock": lambda args: [str(BIN / "uv"), "lock", *args],
}


def main(argv: list[str]) -> int:
    if not argv or (argv[0] not in COMMANDS and argv[0] != "check"):
        print(__doc__)
        return 2
    os.chdir(ROOT)
    if argv[0] == "lock":  # works on a stale lock: that is what it is for
        ensure_uv()
        return subprocess.call(COMMANDS["lock"](argv[1:]), env=uv_env())
    # The benchmark also needs its optional group (LiteLLM, py-spy); nothing else installs it.
    ensure_environment("dev,bench" if argv[0] == "bench" else "dev")
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
