"""Bring a database to the newest schema, safely when two deploys migrate at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool, text

from db.session import sqlalchemy_url

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
# Any constant works; it only has to be the same for every migrating process.
MIGRATION_LOCK_KEY = 0x6C6974696E6B  # "litink"


def alembic_config() -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    return cfg


def upgrade_to_head(database_url: str) -> tuple[str | None, str | None]:
    """Run every pending migration under a session-level advisory lock; return the revision
    before and after (equal when there was nothing to do).

    The second of two concurrent callers waits for the lock, then finds nothing to do.
    A short lock_timeout keeps a migration from queueing forever behind live traffic.
    """
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                conn.execute(text("SET lock_timeout = '15s'"))
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                before = MigrationContext.configure(conn).get_current_revision()
                command.upgrade(cfg, "head")
                conn.commit()
                after = MigrationContext.configure(conn).get_current_revision()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()
    return before, after


def schema_drift(database_url: str) -> list[Any]:
    """What the models declare and the migrated database lacks, or the reverse (empty: none).

    The same comparison as ``alembic check``: migrate to head, then autogenerate against the
    models; every difference is a migration someone forgot to write.
    """
    import db.models  # noqa: F401  (registers the tables on Base.metadata)
    from db.base import Base

    upgrade_to_head(database_url)
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
