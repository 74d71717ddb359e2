"""Alembic's entry point for Vigil: runs the revisions in ``versions/`` on the connection :mod:`vigil.db` hands
over, or, from Alembic's own command line, on ``sqlalchemy.url`` or the configured ``VIGIL_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from vigil.db import make_engine, normalize_url
from vigil.migrations import target_metadata

# Any constant will do: it only has to differ from the other advisory locks Vigil takes.
_MIGRATION_LOCK = 0x56_49_47_49_4C_00  # "VIGIL" 0


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from vigil.config import get_settings

    return get_settings().database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        # SQLite alters little in place; batch mode copies the table instead, for the migrations that need it.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two servers starting at once would both see an empty database and both create the tables; the
            # second waits here until the first commits, then finds the schema at head.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


def run_offline() -> None:
    # `alembic upgrade --sql`: print the SQL for a DBA instead of running it.
    context.configure(
        url=normalize_url(_database_url()),
        target_metadata=target_metadata(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
