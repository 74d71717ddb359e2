"""The database: declarative base, engines for SQLite and PostgreSQL, transactions, and migrations.

Nothing connects at import time. A process builds its engine once with :func:`make_engine` and hands it (or
sessions from it) down; :func:`session_scope` is the one place where a unit of work is committed, since the
services only flush.

SQLite is the default for small installs: one file, WAL so that the status page can read while results are
written. PostgreSQL (psycopg 3) is for the rest. Both run the same schema, built by the Alembic migrations in
``vigil/migrations`` (:func:`upgrade`), never by ``create_all`` outside tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import URL, Connection, DateTime, Dialect, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "NAMING_CONVENTION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Base",
    "UtcDateTime",
    "alembic_config",
    "current_revision",
    "head_revision",
    "make_engine",
    "normalize_url",
    "session_scope",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Constraint names are part of the schema: migrations that drop or alter a constraint must be able to name it,
# and SQLite and PostgreSQL would otherwise each invent their own.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_ALEMBIC_LOCK = threading.Lock()
# How long a SQLite writer waits for another one before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases; naive datetimes are refused.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so the value is stored as naive UTC text (which
    sorts in time order) and comes back with ``tzinfo=UTC`` attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; Vigil stores timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with PostgreSQL pointed at psycopg 3: ``postgresql://`` and ``postgres://`` are rewritten.

    Raises sqlalchemy.exc.ArgumentError for a string that is not a URL.
    """
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")  # the Heroku-style spelling
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Return an engine for ``url`` (extra keyword arguments go to ``create_engine``); does not connect.

    SQLite connections get WAL, ``synchronous=NORMAL`` (durable at each checkpoint, safe against corruption in
    WAL mode), a busy timeout and foreign keys. PostgreSQL connections are checked before use, so that a
    database restart costs one failed ping instead of one failed write.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Per connection, because SQLite forgets these (WAL aside) when a connection closes. The driver's default
    # transaction handling is kept on purpose: it starts a transaction at the first write rather than the first
    # read, so a read-then-write unit of work never holds a stale snapshot that would fail with "database is
    # locked" instead of waiting for the busy timeout.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA journal_mode = WAL")  # answers "memory" for :memory: databases, which is fine
    finally:
        cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yield a session whose work is committed when the block ends, rolled back if it raises; always closed.

    Objects stay readable after the commit (``expire_on_commit=False``): callers often return what they wrote.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """Return the Alembic ``Config`` for Vigil's migrations, bound to ``connection`` when given.

    Useful for Alembic commands beyond :func:`upgrade`, e.g. writing a new revision::

        with make_engine(url).begin() as conn:
            alembic.command.revision(alembic_config(conn), message="...", autogenerate=True)
    """
    from alembic.config import Config  # imported here: only migrations need Alembic

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``target`` (a URL or an engine) to ``revision``; a no-op when already there.

    Raises sqlalchemy.exc.OperationalError when the database cannot be reached.
    """
    from alembic import command

    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        # Alembic's `context` is one proxy per process: two threads migrating at once would share it.
        with _ALEMBIC_LOCK, engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    finally:
        if engine is not target:
            engine.dispose()


def current_revision(target: str | URL | Engine) -> str | None:
    """Return the revision the database at ``target`` is at, or None for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not target:
            engine.dispose()


def head_revision() -> str | None:
    """Return the newest revision of Vigil's migrations (what :func:`upgrade` migrates to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
