"""Alembic environment: runs on the connection db.migrate hands over (it holds the lock)."""

from alembic import context
from sqlalchemy import create_engine, pool

import db.models  # noqa: F401  (registers the tables)
from config import get_settings
from db.base import Base
from db.session import sqlalchemy_url

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # e.g. `alembic revision --autogenerate` by a developer
    engine = create_engine(
        sqlalchemy_url(config.get_main_option("sqlalchemy.url") or get_settings().require_database_url()),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
