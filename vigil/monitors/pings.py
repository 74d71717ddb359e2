"""Durable heartbeat ingestion: every ping is committed before it is acknowledged, many per transaction.

:meth:`PingCommitter.record` queues a ping and waits for the transaction holding it. One transaction runs at a
time, in a thread of the committer's own (so the event loop never waits on the database, and the web app's
thread pool cannot starve it); pings that arrive while it runs are committed together by the next one. That
is group commit: at low load a ping is committed at once, under load one commit (one fsync) serves hundreds.

Exceptions::

    PingNotRecordedError            the ping was not committed: never acknowledge it (the database refused it)
    └── DatabaseUnavailableError    the database is out of reach, the backlog is full, or the committer is
                                    not running: answer "try again later"
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from vigil.monitors.models import PingKind
from vigil.monitors.store import PingInput, record_pings

__all__ = ["DatabaseUnavailableError", "Ping", "PingCommitter", "PingNotRecordedError"]

# Errors that say the database is out of reach, not that it refused these rows (same as the ResultWriter's).
_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)

logger = logging.getLogger(__name__)


class PingNotRecordedError(Exception):
    """The ping was not committed (the database refused it); the caller must not report it as accepted."""


class DatabaseUnavailableError(PingNotRecordedError):
    """The database is out of reach, the backlog is full, or the committer is not running: retry later."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Ping:
    """A committed ping: the monitor's id (``monitors.id``), what it reported, when, and its body."""

    monitor_key: str
    kind: PingKind
    at: datetime
    body: str | None


@dataclass(slots=True)
class _Waiting:
    ping: PingInput
    future: asyncio.Future[str | None]  # the monitor id once committed


class PingCommitter:
    """Commits heartbeat pings in groups, in a thread; ``record`` returns once its ping is committed.

    ``on_ping`` is called in the event loop for each committed ping, before ``record`` returns (an exception
    there is logged, never passed on). ``max_batch`` bounds the pings of one transaction, ``max_pending`` the
    pings waiting (beyond, ``record`` refuses at once rather than queue work no client will wait for), and
    ``retry_after`` is the delay suggested to clients while the database is unavailable. Use it from one loop.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        on_ping: Callable[[Ping], None] | None = None,
        max_batch: int = 1000,
        max_pending: int = 20_000,
        retry_after: float = 5.0,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or retry_after <= 0:
            raise ValueError("max_batch and max_pending must be at least 1, retry_after positive")
        self._engine = engine
        self._on_ping = on_ping
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._retry_after = retry_after
        self._queue: deque[_Waiting] = deque()
        # A writer thread shared with the other writers (on SQLite, so that they never fight for its one write
        # lock), or None for a thread of the committer's own, made by start() and ended by stop().
        self._shared = executor
        self._executor: ThreadPoolExecutor | None = executor
        self._drainer: asyncio.Task[None] | None = None
        self._sqlite = engine.dialect.name == "sqlite"
        self._accepting = False
        self.committed = 0  # pings committed
        self.transactions = 0  # transactions committed
        self.failures = 0  # transactions that failed because the database was out of reach

    @property
    def running(self) -> bool:
        """Return whether :meth:`record` takes pings (between :meth:`start` and :meth:`stop`)."""
        return self._accepting

    @property
    def pending(self) -> int:
        """Return how many pings wait for a transaction, the one in flight included."""
        return len(self._queue)

    async def start(self) -> None:
        """Start taking pings."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-pings")
        self._accepting = True

    async def stop(self) -> None:
        """Stop taking pings, after committing those already taken."""
        self._accepting = False
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        if self._shared is None:
            executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=True)

    async def record(self, *, token: str, kind: PingKind, at: datetime, body: str | None) -> Ping | None:
        """Record a ping and return it once committed, or None for an unknown token.

        Raises DatabaseUnavailableError when the database is out of reach (or the committer stopped or overloaded),
        PingNotRecordedError when the database refused the ping, ValueError for a naive ``at``. Cancelling the
        caller does not take the ping back: it may still be committed.
        """
        if at.utcoffset() is None:
            raise ValueError("ping time must be timezone-aware (UTC)")
        if not self._accepting:
            raise DatabaseUnavailableError("not taking pings: the server is starting or stopping", retry_after=1.0)
        if len(self._queue) >= self._max_pending:
            raise DatabaseUnavailableError(f"{len(self._queue)} pings waiting for the database", retry_after=1.0)
        ping = PingInput(token, PingKind(kind), at, body)
        waiting = _Waiting(ping, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="vigil-ping-commit")
        monitor_key = await waiting.future
        return None if monitor_key is None else Ping(monitor_key, ping.kind, ping.at, ping.body)

    async def _drain(self) -> None:
        # One transaction at a time: whatever queued up while one ran is the next one's batch.
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = list(itertools.islice(self._queue, self._max_batch))
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._write, [w.ping for w in batch])
                except Exception as exc:
                    self._fail(batch, exc)
                else:
                    self._done(batch, outcomes)
                finally:
                    for _ in batch:
                        self._queue.popleft()
        finally:
            self._drainer = None

    def _write(self, pings: Sequence[PingInput]) -> list[str | Exception | None]:
        # Runs in the committer's thread; raises only when the database is out of reach.
        try:
            return list(self._commit(pings))
        except _UNAVAILABLE:
            raise
        except Exception as exc:
            if len(pings) == 1:
                return [exc]
        # One ping the database refuses must not sink the others: each alone, then.
        outcomes: list[str | Exception | None] = []
        for ping in pings:
            try:
                outcomes += self._commit([ping])
            except _UNAVAILABLE:
                raise
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit(self, pings: Sequence[PingInput]) -> list[str | None]:
        with self._engine.connect() as connection:
            # SQLite in WAL mode with synchronous=NORMAL (the engine's setting) makes a commit survive a crash
            # of Vigil but not of the machine; an acknowledged ping must survive both, so these transactions are
            # FULL: one fsync per group, which is what group commit amortises. Set on the driver's connection,
            # outside any transaction (SQLite refuses it inside one), and set back before the pool has it again.
            raw = connection.connection.driver_connection if self._sqlite else None
            if raw is not None:
                raw.execute("PRAGMA synchronous = FULL")
            try:
                with Session(bind=connection) as session:
                    keys = record_pings(session=session, pings=pings)
                    session.commit()
            finally:
                if raw is not None:
                    _restore_synchronous(connection, raw)
        return keys

    def _done(self, batch: list[_Waiting], outcomes: list[str | Exception | None]) -> None:
        self.transactions += 1
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._refused(waiting, outcome)
                continue
            if outcome is not None:
                self.committed += 1
                if self._on_ping is not None:
                    self._notify(self._on_ping, Ping(outcome, waiting.ping.kind, waiting.ping.at, waiting.ping.body))
            if not waiting.future.done():  # done when the caller was cancelled
                waiting.future.set_result(outcome)

    @staticmethod
    def _notify(on_ping: Callable[[Ping], None], ping: Ping) -> None:
        try:
            on_ping(ping)
        except Exception:
            # The ping is committed and will be acknowledged; whoever listens must not be able to undo that.
            logger.exception("on_ping failed for a ping of %s", ping.monitor_key)

    def _refused(self, waiting: _Waiting, exc: Exception) -> None:
        # A refusal (a bug, a constraint) must not pass silently, but it answers only this ping.
        logger.error("a ping was refused by the database", exc_info=exc)
        if not waiting.future.done():
            waiting.future.set_exception(PingNotRecordedError(f"the database refused the ping: {_first_line(exc)}"))

    def _fail(self, batch: list[_Waiting], exc: Exception) -> None:
        self.failures += 1
        message = f"database unavailable: {_first_line(exc)}"
        if isinstance(exc, _UNAVAILABLE):
            logger.warning("%d pings not recorded: %s", len(batch), message)
        else:  # a bug in the committer itself
            logger.error("%d pings not recorded", len(batch), exc_info=exc)
        for waiting in batch:
            if not waiting.future.done():
                waiting.future.set_exception(DatabaseUnavailableError(message, retry_after=self._retry_after))


def _restore_synchronous(connection: Connection, raw: Any) -> None:
    try:
        raw.execute("PRAGMA synchronous = NORMAL")
    except Exception:
        connection.invalidate()  # closed rather than pooled with a setting others did not ask for


def _first_line(exc: Exception) -> str:
    # SQLAlchemy wraps the driver's error and appends the statement and a link; the driver's first line says it.
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
