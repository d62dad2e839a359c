"""`litink migrate` brings any database to head, and two at once are safe."""

import threading
import uuid

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from config import get_settings
from db.migrate import alembic_config, upgrade_to_head
from db.session import sqlalchemy_url


def test_two_concurrent_migrations_of_a_fresh_database_both_succeed():
    admin = create_engine(sqlalchemy_url(get_settings().database_url), isolation_level="AUTOCOMMIT")
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        errors = []

        def migrate():
            try:
                upgrade_to_head(url)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=migrate) for _ in range(2)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        assert errors == []
        fresh = create_engine(url)
        with fresh.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        fresh.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
