"""Launch Flower for the Litink workers, behind authentication: ``python -m workers.ops.flower``.

Credentials travel only in ``FLOWER_BASIC_AUTH`` (never on a command line); without them the
launcher refuses to start unless ``--insecure-local`` binds 127.0.0.1. Flower gets the workers'
own configuration (``-A workers.app``), keeps its state in ``flower.db`` and runs read-only
under workers.ops.flower_guard. How to run and reach it: docs/operations.md, "Flower".
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from config import Settings, get_settings
from config.settings import DATA_DIR

log = logging.getLogger(__name__)

FLOWER_PORT = 5555
STATE_SAVE_INTERVAL_MS = 60_000
LOCAL_ADDRESS = "127.0.0.1"
AUTH_ENV = "FLOWER_BASIC_AUTH"

REFUSAL = (
    "Refusing to start Flower without authentication. Set FLOWER_BASIC_AUTH=user:password "
    "(several pairs separated by commas), or pass --insecure-local to run it without "
    "authentication on 127.0.0.1 only."
)


def flower_argv(
    settings: Settings,
    *,
    insecure_local: bool = False,
    port: int = FLOWER_PORT,
    data_dir: Path | str = DATA_DIR,
) -> list[str]:
    """The Flower command line. It never holds the credentials (see :func:`flower_env`)."""
    argv = [
        sys.executable,
        "-m",
        "workers.ops.flower_guard",  # the celery command, with Flower's acting API refused
        "-A",
        "workers.app",
        "flower",
        f"--port={port}",
        "--persistent=True",
        f"--db={Path(data_dir) / 'flower.db'}",
        f"--state_save_interval={STATE_SAVE_INTERVAL_MS}",
        "--read_only=True",
        f"--address={LOCAL_ADDRESS if insecure_local else settings.flower_address}",
    ]
    return argv


def flower_env(settings: Settings) -> dict[str, str]:
    """What Flower's environment needs on top of ours: the credentials, when configured (they
    may come from ``.env``, which Flower does not read)."""
    secret = settings.flower_basic_auth.get_secret_value() if settings.flower_basic_auth else ""
    return {AUTH_ENV: secret} if secret else {}


def credentials_well_formed(value: str) -> bool:
    """Every comma-separated entry is ``user:password`` with both parts present."""
    pairs = value.split(",")
    return all(user and password for user, _, password in (p.partition(":") for p in pairs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.ops.flower", description="Flower for the Litink workers.")
    parser.add_argument("--port", type=int, default=FLOWER_PORT)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where flower.db keeps Flower's state")
    parser.add_argument(
        "--insecure-local", action="store_true", help="without FLOWER_BASIC_AUTH, run unauthenticated on 127.0.0.1 only"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    settings = get_settings()
    extra = flower_env(settings)
    if not extra and not args.insecure_local:
        print(REFUSAL, file=sys.stderr)
        return 2
    if extra and not credentials_well_formed(extra[AUTH_ENV]):
        print("FLOWER_BASIC_AUTH is malformed: expected user:password (several separated by commas).", file=sys.stderr)
        return 2
    if not extra:
        log.warning(
            "Flower runs WITHOUT authentication, bound to %s only (--insecure-local); its HTTP API stays off",
            LOCAL_ADDRESS,
        )
    else:
        log.info(
            "Flower with basic authentication (%d credential(s)) on %s:%d, read-only",
            len(extra[AUTH_ENV].split(",")),
            settings.flower_address,
            args.port,
        )

    args.data_dir.mkdir(parents=True, exist_ok=True)
    command = flower_argv(settings, insecure_local=args.insecure_local, port=args.port, data_dir=args.data_dir)
    # Flower becomes this process (signals from honcho or systemd reach it directly); it
    # inherits our environment plus the credentials.
    os.execve(command[0], command, {**os.environ, **extra})
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
