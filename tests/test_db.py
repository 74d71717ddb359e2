from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from tests.dbfixtures import add_monitor
from vigil.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, normalize_url, session_scope
from vigil.monitors.models import Component, Monitor

pytest_plugins = ["tests.dbfixtures"]


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/vigil", "postgresql+psycopg"),
        ("postgres://u:p@db/vigil", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/vigil", "postgresql+psycopg"),
        ("sqlite:///./vigil.db", "sqlite"),
    ],
)
def test_normalize_url_points_postgresql_at_psycopg_3(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database in ("vigil", "./vigil.db")


def test_make_engine_for_postgresql_does_not_connect_and_pings_before_use() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")  # a closed port: nothing is tried yet
    assert engine.dialect.driver == "psycopg"
    assert engine.pool._pre_ping  # type: ignore[attr-defined]
    engine.dispose()


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragma == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}
        assert SQLITE_BUSY_TIMEOUT_MS == 5000
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(Monitor(id="ghost/http", component_id="ghost", type="http"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_session_scope_commits_on_success(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_monitor(session)
    with Session(engine) as session:
        assert session.scalars(select(Component.id)).all() == ["web"]


def test_session_scope_rolls_back_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(engine) as session:
        add_monitor(session)
        raise RuntimeError("boom")
    with Session(engine) as session:
        assert session.scalars(select(Component.id)).all() == []


def test_times_come_back_timezone_aware_in_utc(session: Session) -> None:
    add_monitor(session)
    monitor = session.get(Monitor, "web/http")
    assert monitor is not None
    plus_two = timezone(timedelta(hours=2))
    monitor.last_ping_at = datetime(2026, 5, 1, 14, 30, 15, 123456, tzinfo=plus_two)
    session.flush()
    session.expire_all()
    stored = session.scalars(select(Monitor.last_ping_at)).one()
    assert stored == datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert stored is not None and stored.tzinfo == UTC


def test_naive_times_are_refused(session: Session) -> None:
    add_monitor(session)
    monitor = session.get(Monitor, "web/http")
    assert monitor is not None
    monitor.last_ping_at = datetime(2026, 5, 1, 12, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_times_sort_in_time_order_across_offsets(session: Session) -> None:
    add_monitor(session)
    add_monitor(session, "db/tcp")
    early = datetime(2026, 5, 1, 23, 0, tzinfo=timezone(timedelta(hours=5)))  # 18:00 UTC
    late = datetime(2026, 5, 1, 19, 0, tzinfo=UTC)
    session.get_one(Monitor, "web/http").last_ping_at = late
    session.get_one(Monitor, "db/tcp").last_ping_at = early
    session.flush()
    ordered = session.scalars(select(Monitor.id).order_by(Monitor.last_ping_at)).all()
    assert ordered == ["db/tcp", "web/http"]
    assert session.execute(text("SELECT count(*) FROM monitors")).scalar_one() == 2
