"""Writes state changes to the database outbox in order, off the event loop, surviving database outages.

State changes are few (a handful a minute in a bad hour) but each must reach the outbox, in order, since
incidents are opened from it. They wait in memory while the database is unreachable (bounded: past the bound
the oldest are dropped, counted and logged, as with results) and go in one transaction per flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from vigil.db import session_scope
from vigil.engine.events import StateEvent
from vigil.monitors.models import Component, Monitor
from vigil.monitors.store import record_state_change

__all__ = ["CauseUpdate", "CheckedUpdate", "StateWriter"]

logger = logging.getLogger(__name__)

_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
TRANSACTION_SIZE = 300  # state operations per transaction
PAUSE_BETWEEN_TRANSACTIONS = 0.05  # seconds
# How often the monitors' last check times and running counts are written when no state change carries them
# sooner. They are for the API and for a restart (damping resumes from them); every write is a transaction on
# the single SQLite writer, and one every 0.5 s cost more than a tenth of the CPU of 50 checks a second.
CHECKED_INTERVAL = 5.0  # seconds


@dataclass(frozen=True, slots=True)
class CauseUpdate:
    """A component stays in its state but its upstream cause changed (its host went down after it did)."""

    component_id: str
    cause: str | None


@dataclass(frozen=True, slots=True)
class CheckedUpdate:
    """When monitors were last checked and their running counts, coalesced: the API shows them, the results
    table has the detail."""

    checked: dict[str, tuple[datetime, int, int]]  # key → (checked at, failures in a row, successes in a row)


Operation = StateEvent | CauseUpdate | CheckedUpdate


class StateWriter:
    """Queue of state operations written in order by a background task (``start``/``stop``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        flush_interval: float = 0.5,
        checked_interval: float = CHECKED_INTERVAL,
        limit: int = 100_000,
        executor: Executor | None = None,
    ) -> None:
        self._engine = engine
        self._executor = executor  # None: the default thread pool
        self._flush_interval = flush_interval  # the first retry after a failed write (doubling up to 30 s)
        self._checked_interval = checked_interval
        # Called on the loop after state changes were committed (the runtime wakes the incident worker with it).
        self.after_commit: Callable[[], None] | None = None
        self._limit = limit
        self._pending: deque[Operation] = deque()
        self._checked: dict[str, tuple[datetime, int, int]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def unavailable(self) -> bool:
        return self._failures > 0

    def add(self, operation: StateEvent | CauseUpdate) -> None:
        self._pending.append(operation)
        if len(self._pending) > self._limit:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("database unavailable too long: %d state changes dropped", self.dropped)
        self._wake.set()

    def checked(self, monitor_key: str, at: datetime, failures: int, successes: int) -> None:
        self._checked[monitor_key] = (at, failures, successes)

    async def flush(self) -> None:
        """Write what is pending; keeps it (and says so in the log) when the database is out of reach."""
        async with self._lock:  # the background loop and a caller (stop, a test) may flush at once
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if self._checked:
            self._pending.append(CheckedUpdate(self._checked))
            self._checked = {}
        while self._pending:
            if not await self._flush_some():
                return
            if self._pending:
                # SQLite's busy handler is not fair: back-to-back transactions would starve the result writer.
                await asyncio.sleep(PAUSE_BETWEEN_TRANSACTIONS)

    async def _flush_some(self) -> bool:
        # Bounded transactions: on SQLite a long one holds the only write lock and starves the result writer
        # (the first round after a start is 2 changes per monitor).
        batch = [self._pending[i] for i in range(min(TRANSACTION_SIZE, len(self._pending)))]
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)
        except _UNAVAILABLE as exc:
            self._failures += 1
            if self._failures == 1:
                logger.warning("database unavailable, %d state changes kept for later: %s", self.pending, exc)
            return False
        except Exception:
            # A change the database refuses (its subject deleted meanwhile) must not block the ones after it.
            logger.exception("state changes refused by the database; writing them one by one")
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write_each, batch)
        for _ in batch:
            self._pending.popleft()
        if self._failures:
            logger.warning("database reachable again; state changes written")
        self._failures = 0
        self.written += len(batch)
        if self.after_commit is not None and any(isinstance(operation, StateEvent) for operation in batch):
            try:
                self.after_commit()
            except Exception:
                logger.exception("the hook after writing state changes failed")
        return True

    def _write(self, batch: list[Operation]) -> None:
        with session_scope(self._engine) as session:
            for operation in batch:
                _apply(session, operation)

    def _write_each(self, batch: list[Operation]) -> None:
        for operation in batch:
            try:
                with session_scope(self._engine) as session:
                    _apply(session, operation)
            except Exception as exc:
                logger.warning("state change skipped: %s: %s", operation, exc)

    async def run(self) -> None:
        # Wakes for a state change (add sets _wake), to retry after a failure, and every checked_interval for the
        # last check times; an idle server wakes for nothing else.
        loop = asyncio.get_running_loop()
        checked_due = loop.time() + self._checked_interval
        while not self._stopping:
            if self._failures:
                delay = min(self._flush_interval * 2**self._failures, 30.0)
            else:
                delay = max(0.0, checked_due - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._pending:
                await asyncio.sleep(0.05)  # let a burst of changes from one recomputation arrive, then write once
            try:
                await self.flush()  # the last check times go with it
            except Exception:
                logger.exception("writing state changes failed; trying again")
            checked_due = loop.time() + self._checked_interval

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="vigil-state-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._pending:
            logger.error("stopping with %d state changes not written: the database is unavailable", self.pending)


def _apply(session: Session, operation: Operation) -> None:
    if isinstance(operation, StateEvent):
        subject = {"monitor_id": operation.monitor_id} if operation.monitor_id else {}
        record_state_change(
            session=session,
            to_state=operation.to_state,
            at=operation.at,
            component_id=None if operation.monitor_id else operation.component_id,
            cause=operation.cause,
            reason=operation.reason[:1000],
            **subject,
        )
    elif isinstance(operation, CauseUpdate):
        statement = update(Component).where(Component.id == operation.component_id)
        session.execute(statement.values(state_cause=operation.cause))
    else:
        rows = [{"key": k, "at": at, "f": f, "s": s} for k, (at, f, s) in operation.checked.items()]
        statement = update(Monitor).where(Monitor.id == bindparam("key"))
        statement = statement.values(
            last_checked_at=bindparam("at"), consecutive_failures=bindparam("f"), consecutive_successes=bindparam("s")
        )
        session.connection().execute(statement, rows)
