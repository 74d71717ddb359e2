"""A real backend and a real server for the web tests.

:class:`LocalBackend` is what the engine's runtime is to ``vigil serve``, minus the engine: a real database
engine, a real :class:`PingCommitter` and a metrics registry. :func:`serving` runs uvicorn on 127.0.0.1, on a
port the system picks, in a thread, for as long as the ``with`` block.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from vigil.db import session_scope
from vigil.monitors.models import Component, ComponentState, Monitor
from vigil.monitors.pings import Ping, PingCommitter

STARTUP_TIMEOUT = 10.0
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "backup-job-token"  # the heartbeat monitor "cron/backup" of seed()
MASK = "**********"


class LocalBackend:
    """A backend on ``engine`` with a real ping committer; ``status`` is what /healthz reports."""

    def __init__(self, engine: Engine, *, on_ping: Callable[[Ping], None] | None = None, **committer: Any) -> None:
        self._engine = engine
        self.registry = CollectorRegistry()
        self.pings_counter = Counter("vigil_pings", "Pings committed.", registry=self.registry)
        self.seen: list[Ping] = []
        self._extra_on_ping = on_ping
        self._pings = PingCommitter(engine, on_ping=self._on_ping, **committer)
        self.status = "ok"
        self.started = 0
        self.stopped = 0

    @property
    def database(self) -> Engine:
        return self._engine

    @property
    def pings(self) -> PingCommitter:
        return self._pings

    def health(self) -> dict[str, Any]:
        return {"status": self.status, "database": "ok", "pending_pings": self._pings.pending}

    async def start(self) -> None:
        self.started += 1
        await self._pings.start()

    async def stop(self) -> None:
        self.stopped += 1
        await self._pings.stop()

    def _on_ping(self, ping: Ping) -> None:
        self.seen.append(ping)
        self.pings_counter.inc()
        if self._extra_on_ping is not None:
            self._extra_on_ping(ping)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL; stop it (and its lifespan) after."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)


@contextmanager
def counting_commits(engine: Engine) -> Iterator[list[int]]:
    """Yield a list that grows by one for each transaction committed on ``engine`` within the block."""
    commits: list[int] = []
    lock = threading.Lock()

    def on_commit(_connection: object) -> None:
        with lock:
            commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", on_commit)


def seed(engine: Engine, heartbeats: int = 0) -> None:
    """Two components, an HTTP monitor with (masked and unmasked) secrets in its config, the heartbeat monitor
    ``cron/backup`` with :data:`TOKEN`, a disabled monitor, a retired component, and ``heartbeats`` more
    heartbeat monitors ``jobs/job-<i>`` with tokens ``job-token-<i>``."""
    with session_scope(engine) as session:
        session.add_all(
            [
                Component(id="web", name="Web", kind="service", state=ComponentState.UP, state_since=T0),
                Component(id="cron", name="Cron", kind="vm", state=ComponentState.DOWN, state_cause="web"),
                Component(id="old", name="Old", kind="vm", retired_at=T0),
                Component(id="jobs", name="Jobs", kind="service"),
            ]
        )
        session.flush()
        session.add_all(
            [
                Monitor(
                    id="web/http:http://x",
                    component_id="web",
                    type="http",
                    config={"url": "http://x", "headers": {"Authorization": MASK}, "auth": {"token": "leak"}},
                ),
                Monitor(
                    id="cron/backup",
                    component_id="cron",
                    type="heartbeat",
                    config={"type": "heartbeat", "period": 3600.0, "token": TOKEN},
                    heartbeat_token=TOKEN,
                ),
                Monitor(id="cron/gone", component_id="cron", type="heartbeat", enabled=False, heartbeat_token="gone"),
            ]
        )
        session.add_all(
            Monitor(id=f"jobs/job-{i}", component_id="jobs", type="heartbeat", heartbeat_token=f"job-token-{i}")
            for i in range(heartbeats)
        )


@contextmanager
def write_locked(engine: Engine) -> Iterator[None]:
    """Hold a write lock on the monitors table from another connection for the block: writers wait for it.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's one write lock. PostgreSQL: ``LOCK TABLE … IN EXCLUSIVE
    MODE`` lets readers through but blocks every UPDATE of monitors.
    """
    if engine.dialect.name == "sqlite":
        lite = sqlite3.connect(str(engine.url.database), isolation_level=None)
        try:
            lite.execute("BEGIN IMMEDIATE")
            yield
        finally:
            lite.rollback()
            lite.close()
        return
    connection = engine.raw_connection()
    try:
        connection.cursor().execute("LOCK TABLE monitors IN EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def ping_times(engine: Engine, monitor_id: str) -> tuple[datetime | None, datetime | None, datetime | None, str | None]:
    """Return the monitor's last ping, start and fail times and body, read on a new connection of ``engine``."""
    with Session(engine) as session:
        monitor = session.get(Monitor, monitor_id)
        assert monitor is not None, monitor_id
        return monitor.last_ping_at, monitor.last_start_at, monitor.last_fail_at, monitor.last_ping_body
