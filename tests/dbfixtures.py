"""Database fixtures for the store's tests: every test runs on SQLite (a WAL file) and on PostgreSQL.

Each PostgreSQL test gets a schema of its own (through ``search_path``), so tests can commit, run migrations
and run in parallel without seeing each other; PostgreSQL is skipped only when VIGIL_TEST_POSTGRES_URL is unset.
A test module loads them with ``pytest_plugins = ["tests.dbfixtures"]`` (tests/monitors/conftest.py belongs to
the checks' tests). PYTEST_DONT_REWRITE: test modules also import the helpers below, before pytest loads this
as a plugin, and it holds no assertions to rewrite.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

from vigil.db import Base, make_engine, normalize_url
from vigil.monitors.models import Component, Monitor, Outcome
from vigil.monitors.result import CheckResult as Result

POSTGRES_ENV = "VIGIL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def postgres_base_url() -> URL:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return normalize_url(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vigil.db'}"
        return
    base = postgres_base_url()
    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield in_schema(base, schema).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def in_schema(url: URL, schema: str) -> URL:
    return url.update_query_dict({"options": f"-csearch_path={schema}"})


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database holding Vigil's tables (made by create_all; the migrations have their own tests)."""
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back at the end (tests that need commits use ``engine``)."""
    with Session(engine) as session:
        yield session
        session.rollback()


def add_monitor(session: Session, monitor_id: str = "web/http", *, token: str | None = None) -> Monitor:
    """Add the component (the part before the slash) if missing and the monitor; flush and return the monitor."""
    component_id = monitor_id.split("/")[0]
    if session.get(Component, component_id) is None:
        session.add(Component(id=component_id, name=component_id.title(), kind="service"))
    monitor = Monitor(id=monitor_id, component_id=component_id, type="http", heartbeat_token=token)
    session.add(monitor)
    session.flush()
    return monitor


def result(
    monitor_id: str = "web/http",
    at: datetime | None = None,
    outcome: Outcome = Outcome.UP,
    latency: float = 0.05,
    reason: str = "ok",
) -> Result:
    """A check result as the checks make them (latency in seconds)."""
    return Result(monitor_id, at or datetime(2026, 1, 1, tzinfo=UTC), latency, outcome, reason)


class TcpProxy:
    """Forwards a local port to a PostgreSQL server; ``stop`` refuses connections and cuts the open ones.

    The database "goes away" without touching the shared server: the test's engine talks to the proxy.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.05)  # so the accept loop sees stop() soon
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(_pump, client, upstream)
            self._spawn(_pump, upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@dataclass
class FlakyDatabase:
    """A database with Vigil's tables that the test can make unreachable and bring back.

    ``engine`` is the one under test (through the proxy, or on a SQLite file whose directory goes away, like a
    volume unmounted); ``direct`` always reaches the database, to seed and to look.
    """

    engine: Engine
    direct: Engine
    down: Callable[[], None]
    up: Callable[[], None]


@pytest.fixture(params=BACKENDS)
def flaky_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FlakyDatabase]:
    if request.param == "sqlite":
        folder, away = tmp_path / "volume", tmp_path / "unmounted"
        folder.mkdir()
        url = f"sqlite:///{folder / 'vigil.db'}"
        engine, direct = make_engine(url), make_engine(url)
        Base.metadata.create_all(direct)

        def down() -> None:
            engine.dispose()  # an open SQLite file stays usable whatever happens to its directory
            direct.dispose()
            folder.rename(away)

        def up() -> None:
            away.rename(folder)

        yield FlakyDatabase(engine, direct, down, up)
        for each in (engine, direct):
            each.dispose()
        shutil.rmtree(away, ignore_errors=True)
        return
    yield from _flaky_postgres()


def _flaky_postgres() -> Iterator[FlakyDatabase]:
    base = postgres_base_url()
    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    proxy = TcpProxy((base.host or "127.0.0.1", base.port or 5432))
    proxy.start()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    direct = make_engine(in_schema(base, schema))
    engine = make_engine(in_schema(base, schema).set(host="127.0.0.1", port=proxy.port))
    try:
        Base.metadata.create_all(direct)
        yield FlakyDatabase(engine, direct, proxy.stop, proxy.start)
    finally:
        proxy.stop()
        engine.dispose()
        direct.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
