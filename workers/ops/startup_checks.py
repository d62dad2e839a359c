"""What a worker checks and says once, when it starts.

- How many Postgres connections this process may open, and a warning when the server's
  ``max_connections`` leaves no room for them (pool x processes is the operator's sum).
- A warning when the broker Redis keeps nothing on disk (``appendonly no`` and no ``save``
  points): a restart then loses every queued message, which recovery re-publishes from
  Postgres, but intake messages not yet admitted are gone (docs/operations.md).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import signals
from sqlalchemy import text

from config import get_settings
from db.session import get_engine, pool_size
from workers.pipeline import recovery

log = logging.getLogger(__name__)


def check_database_connections(size: int | None = None) -> dict[str, int] | None:
    """Log the pool size and warn when the server could run out of connections."""
    size = size or pool_size()
    try:
        with get_engine().connect() as conn:
            row = conn.execute(
                text(
                    "SELECT current_setting('max_connections')::int AS max,"
                    " current_setting('superuser_reserved_connections')::int AS reserved,"
                    " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used"
                )
            ).one()
    except Exception:  # a worker must start even when Postgres is briefly away
        log.warning("could not read max_connections from Postgres", exc_info=True)
        return None
    room = row.max - row.reserved - row.used
    figures = {"pool_size": size, "max_connections": row.max, "in_use": row.used, "room": room}
    log.info("this process may open up to %d Postgres connections (DB_POOL_SIZE)", size, extra=figures)
    if size > room:
        log.warning(
            "DB_POOL_SIZE=%d exceeds the %d connections Postgres has left (max_connections %d, %d in use):"
            " lower DB_POOL_SIZE or put PgBouncer in front (docs/operations.md)",
            size,
            room,
            row.max,
            row.used,
            extra=figures,
        )
    return figures


def check_broker_persistence(client: redis.Redis) -> bool | None:
    """True when the broker Redis persists (AOF or RDB save points), False when it keeps nothing,
    None when it cannot tell (CONFIG disabled or renamed, as managed Redis services do)."""
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except redis.RedisError:
        log.info("cannot read the broker's persistence settings (CONFIG is disabled); not checked")
        return None
    persists = appendonly == "yes" or bool(save and save.strip())
    if not persists:
        log.warning(
            "the broker Redis keeps nothing on disk (appendonly no, no save points): a restart loses every"
            " queued message. Recovery re-publishes admitted jobs from Postgres; intake messages not yet"
            " admitted are lost (producers resubmit with their idempotency key). See docs/operations.md."
        )
    return persists


def run_checks(sender: Any, **_: Any) -> None:
    """On ``worker_ready``: the sender is the worker's consumer, which carries its app."""
    settings = get_settings()
    try:
        # Not the broker sentinel: only recovery writes it, so that a worker starting on an
        # emptied Redis before recovery runs cannot hide the loss (recovery.py).
        check_broker_persistence(recovery.broker(sender.app))
    except redis.RedisError:
        log.warning("broker checks skipped: Redis unreachable", exc_info=True)
    if settings.database_url:
        check_database_connections()


def install() -> None:
    signals.worker_ready.connect(run_checks, weak=False)
