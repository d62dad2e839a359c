"""Engines and transactions. One engine per process and URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine

from config.settings import get_settings


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=4)
def _engine(url: str, pid: int) -> Engine:
    # Keyed by pid: a forked pool child must never share its parent's sockets.
    settings = get_settings()
    return create_engine(
        sqlalchemy_url(url),
        # A small fixed pool per process: threads wait for a connection (cheap next to a
        # provider call) instead of opening more than the server allows (max_connections).
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout,
        # No pre-ping: it costs a round trip per checkout (several per job). A connection
        # dropped by a Postgres restart invalidates the pool on first use, and the tasks
        # retry OperationalError (they are idempotent).
        pool_recycle=1800,
        # A database error's text must never quote a row: parameters carry user content.
        hide_parameters=True,
        # No server-side prepared statements, so PgBouncer in transaction mode works.
        connect_args={"prepare_threshold": None},
    )


@lru_cache(maxsize=4)
def _lease_engine(url: str, pid: int) -> Engine:
    # The lease heartbeat's own single connection. Sharing the worker's pool would let it
    # wait behind threads that hold connections during slow outside I/O for up to
    # db_pool_timeout (longer than a lease), and a lease lost to a busy pool means a live job
    # is re-published and its answer bought twice. Every wait here is bounded by a third of a
    # lease, so a beat that cannot reach Postgres fails and the next one tries again.
    budget_s = max(1, get_settings().job_lease_seconds // 3)
    return create_engine(
        sqlalchemy_url(url),
        pool_size=1,
        max_overflow=0,
        pool_timeout=budget_s,
        pool_pre_ping=True,  # one beat per third of a lease: a round trip is nothing here
        hide_parameters=True,
        connect_args={
            "prepare_threshold": None,
            "connect_timeout": budget_s,
            # A vanished server (not a refusing one) would otherwise hold the socket for the
            # kernel's TCP timeout, many minutes.
            "tcp_user_timeout": budget_s * 1000,
        },
    )


@contextmanager
def lease_transaction(url: str | None = None) -> Iterator[Connection]:
    """A transaction on the heartbeat's own connection, with every statement cut off after a
    third of a lease (``SET LOCAL``, so it also holds behind PgBouncer in transaction mode)."""
    budget_ms = max(1, get_settings().job_lease_seconds // 3) * 1000
    with _lease_engine(url or get_settings().require_database_url(), os.getpid()).begin() as conn:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(budget_ms)}")
        yield conn


def pool_size() -> int:
    """How many connections one process may open to one database."""
    return get_settings().db_pool_size


def get_engine(url: str | None = None) -> Engine:
    return _engine(url or get_settings().require_database_url(), os.getpid())


@contextmanager
def transaction(url: str | None = None) -> Iterator[Connection]:
    """A connection inside one transaction, committed on success."""
    with get_engine(url).begin() as conn:
        yield conn


@contextmanager
def autocommit(url: str | None = None) -> Iterator[Connection]:
    """A connection whose every statement commits by itself, for work that is one statement.

    A transaction costs two extra round trips (psycopg sends BEGIN and COMMIT on their own);
    one statement is atomic without them. Use ``transaction`` for anything that must see or
    undo more than one statement together.
    """
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn
