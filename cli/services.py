"""Which Postgres and Redis a `litink` command talks to, checked before the command runs.

Operational commands use DATABASE_URL / REDIS_URL and nothing else: unset (or empty), the
command stops and names the missing setting. Only the demo, the tests and an explicit
``litink --embedded`` start embedded servers, and they say so. A configured server is
reached once up front with a short timeout, so a wrong URL fails in seconds with one line
instead of after a client library's retries.
"""

from __future__ import annotations

import os

import click

from devtools.embedded import Services

CONNECT_TIMEOUT_S = 3


def use_services(
    *, database: bool = True, redis: bool = False, embedded: bool | None = None, announce: bool = True
) -> Services:
    """Point this process (and its children) at the servers a command needs; raise
    SettingError for a missing one, or the driver's error for an unreachable one.

    ``embedded`` (default: the --embedded flag) starts development servers for what is unset;
    with ``announce`` they are named on stderr and an embedded database is migrated (the demo
    does both itself)."""
    from config import get_catalog, get_settings

    if embedded is None:
        ctx = click.get_current_context(silent=True)
        embedded = bool(ctx and ctx.find_root().params.get("embedded"))
    settings = get_settings()
    if embedded:
        from devtools.embedded import ensure_services

        services = ensure_services(postgres=database, redis=redis)
        for name in services.embedded if announce else ():
            click.echo(f"using an embedded {name} under .data/ (development only)", err=True)
        os.environ.update(services.env())
        get_settings.cache_clear()
        get_catalog.cache_clear()
        if announce and "postgres" in services.embedded:  # a development database is usable as is
            from db.migrate import upgrade_to_head

            before, after = upgrade_to_head(services.database_url)
            if before != after:
                click.echo(f"migrated the embedded postgres to {after}", err=True)
    else:
        services = Services(
            settings.require_database_url() if database else settings.database_url or "",
            settings.require_redis_url() if redis else settings.redis_url or "",
        )
    if database:
        check_postgres(get_settings().require_database_url())
    if redis:
        check_redis(get_settings().require_redis_url(), get_settings().redis_sentinel_master)
    return services


def check_postgres(url: str) -> None:
    import psycopg

    # libpq takes postgresql:// and postgres://, not SQLAlchemy's driver-qualified scheme.
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=CONNECT_TIMEOUT_S):
        pass


def check_redis(url: str, sentinel_master: str | None) -> None:
    from workers.redis_connection import redis_client

    client = redis_client(
        url, sentinel_master, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
