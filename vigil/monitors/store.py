"""The results service: check results, state changes and heartbeat pings in the database.

The functions take a session, flush when they change something, and never commit: the caller (an engine job, a
request, a CLI command) owns the transaction. :class:`ResultWriter` is the exception that owns its own: it
batches results from the scheduler and writes them in a thread, outside the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import TracebackType
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Engine,
    Result,
    Select,
    Table,
    Update,
    bindparam,
    case,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import InstrumentedAttribute, Session

from vigil.config import Settings
from vigil.db import session_scope
from vigil.monitors.models import (
    PING_BODY_LIMIT,
    REASON_LIMIT,
    CheckResult,
    Component,
    ComponentState,
    Monitor,
    Outcome,
    PingKind,
    StateChange,
)

__all__ = [
    "PingInput",
    "ResultLike",
    "ResultWriter",
    "purge_results",
    "recent_results",
    "record_ping",
    "record_pings",
    "record_results",
    "record_state_change",
    "result_row",
    "state_changes_since",
]

# Any constant will do: it only has to differ from the other advisory locks Vigil takes.
_OUTBOX_LOCK = 0x56_49_47_49_4C_01  # "VIGIL" 1
_FLIP_ATTEMPTS = 3
# Errors that say the database is out of reach (down, restarting, disk gone, pool exhausted), not that it
# refused these rows: the results are kept and written again later.
_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)

logger = logging.getLogger(__name__)


class ResultLike(Protocol):
    """What :func:`record_results` needs of a result; :class:`vigil.monitors.result.CheckResult` is one."""

    @property
    def monitor_id(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def latency(self) -> float: ...  # seconds

    @property
    def outcome(self) -> Outcome: ...

    @property
    def reason(self) -> str: ...


def _aware(result: ResultLike) -> None:
    if result.started_at.utcoffset() is None:
        raise ValueError(f"result of {result.monitor_id}: started_at must be timezone-aware (UTC)")


def result_row(result: ResultLike) -> dict[str, Any]:
    """Return the ``check_results`` row for ``result``; raises ValueError for a naive ``started_at``."""
    _aware(result)
    return {
        "monitor_id": result.monitor_id,
        "started_at": result.started_at,
        "latency_ms": result.latency * 1000.0,
        "outcome": Outcome(result.outcome),
        "reason": result.reason[:REASON_LIMIT],
    }


def record_results(*, session: Session, results: Sequence[ResultLike]) -> int:
    """Insert ``results`` in one executemany and return how many; raises IntegrityError for an unknown monitor."""
    if not results:
        return 0
    session.execute(insert(CheckResult), [result_row(result) for result in results])
    return len(results)


def recent_results(*, session: Session, monitor_id: str, limit: int = 50) -> list[CheckResult]:
    """Return the monitor's latest ``limit`` results, newest first."""
    query = (
        select(CheckResult)
        .where(CheckResult.monitor_id == monitor_id)
        .order_by(CheckResult.started_at.desc(), CheckResult.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def purge_results(*, session: Session, older_than: datetime) -> int:
    """Delete raw results that started before ``older_than`` and return how many went.

    Roll the period up first (:func:`vigil.monitors.rollup.rollup`): rollups are what outlives raw results.
    """
    removed = 0
    # One monitor at a time, so that each delete walks the (monitor_id, started_at) index instead of scanning
    # the whole table, and no single statement holds locks on millions of rows.
    for monitor_id in session.scalars(select(Monitor.id)).all():
        statement = delete(CheckResult).where(CheckResult.monitor_id == monitor_id, CheckResult.started_at < older_than)
        removed += _rowcount(session.execute(statement.execution_options(synchronize_session=False)))
    return removed


def record_state_change(
    *,
    session: Session,
    to_state: ComponentState | Outcome,
    at: datetime,
    component_id: str | None = None,
    monitor_id: str | None = None,
    cause: str | None = None,
    reason: str = "",
) -> StateChange | None:
    """Move a component or a monitor to ``to_state`` and append the change to the outbox.

    Give exactly one of ``component_id`` and ``monitor_id``. ``cause`` is the upstream component id when a
    component is down because of a dependency (kept as its ``state_cause``). Returns the new
    :class:`StateChange`, or None when the subject already was in ``to_state``.

    The current state is read and replaced with a conditional UPDATE, so two writers cannot both record the same
    change. On PostgreSQL it first takes a transaction-level advisory lock, which makes outbox ids become
    visible in order (a reader following ids never skips one committed late); record state changes last in a
    unit of work, since the lock is held until its commit.

    Raises ValueError for both or neither subject, or a component-only state for a monitor; LookupError for an
    unknown subject.
    """
    if (component_id is None) == (monitor_id is None):
        raise ValueError("give exactly one of component_id and monitor_id")
    to = ComponentState(to_state)
    if monitor_id is not None and to.value not in {outcome.value for outcome in Outcome}:
        raise ValueError(f"a monitor's state is up, degraded or down, not {to}")
    if session.get_bind().dialect.name == "postgresql":
        # Taken before the subject's row lock, so that every writer takes the two in the same order.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _OUTBOX_LOCK})
    if component_id is not None:
        extra = {"state_since": at, "state_cause": cause}
        old = _flip(session, Component.id, component_id, Component.state, to, extra)
    else:
        old = _flip(session, Monitor.id, str(monitor_id), Monitor.outcome, Outcome(to.value), {})
    if old is None:
        return None
    change = StateChange(
        component_id=component_id,
        monitor_id=monitor_id,
        from_state=ComponentState(old or ComponentState.UNKNOWN),
        to_state=to,
        at=at,
        cause=cause,
        reason=reason,
    )
    session.add(change)
    session.flush()
    return change


def _flip(
    session: Session,
    key: InstrumentedAttribute[str],
    key_value: str,
    column: InstrumentedAttribute[Any],
    to: Any,
    extra: dict[str, Any],
) -> str | None:
    """Set ``column`` to ``to`` where it still holds what was read; return the old value ("" for NULL), or None
    when nothing changed. Raises LookupError when no row has ``key_value``."""
    for _ in range(_FLIP_ATTEMPTS):
        row = session.execute(select(column).where(key == key_value)).first()
        if row is None:
            raise LookupError(f"no {key.class_.__tablename__} row with id {key_value!r}")
        old = row[0]
        if old == to:
            return None
        unchanged: ColumnElement[bool] = column.is_(None) if old is None else column == old
        statement = update(key.class_).where(key == key_value, unchanged).values({column.key: to, **extra})
        if _rowcount(session.execute(statement)) == 1:
            return "" if old is None else str(old)
        # Another writer changed it between our read and our update: read again and decide again.
    raise RuntimeError(f"{key_value}: state kept changing under us; gave up after {_FLIP_ATTEMPTS} attempts")


def _rowcount(result: Result[Any]) -> int:
    # UPDATE and DELETE give a CursorResult, which knows how many rows matched; Session.execute is typed wider.
    return cast("CursorResult[Any]", result).rowcount


def state_changes_since(*, session: Session, after_id: int = 0, limit: int = 1000) -> list[StateChange]:
    """Return up to ``limit`` state changes with an id above ``after_id``, oldest first."""
    query = select(StateChange).where(StateChange.id > after_id).order_by(StateChange.id).limit(limit)
    return list(session.scalars(query))


class PingInput(NamedTuple):
    """One heartbeat ping to record: the monitor's token, what it reports, when it arrived, and its body."""

    token: str
    kind: PingKind
    at: datetime
    body: str | None = None


# The monitor column each kind of ping moves forward.
_PING_COLUMNS = {PingKind.SUCCESS: "last_ping_at", PingKind.START: "last_start_at", PingKind.FAIL: "last_fail_at"}


def record_ping(
    *, session: Session, token: str, kind: PingKind, at: datetime, body: str | None = None
) -> Monitor | None:
    """Record a heartbeat ping for the monitor whose token is ``token``; return it, or None for an unknown token.

    The same as :func:`record_pings` for one ping; the monitor returned is loaded after the update.
    """
    (monitor_id,) = record_pings(session=session, pings=[PingInput(token, kind, at, body)])
    if monitor_id is None:
        return None
    monitor = session.get(Monitor, monitor_id)
    if monitor is not None:
        session.refresh(monitor)
    return monitor


def record_pings(*, session: Session, pings: Sequence[PingInput]) -> list[str | None]:
    """Record heartbeat pings and return, for each, the id of its monitor, or None for an unknown token.

    Only enabled monitors take pings (one that left the config answers like an unknown token). Built for group
    commit: one SELECT for all the tokens and one executemany UPDATE per combination of columns touched, however
    many pings. A ping older than the one already recorded (a retried request arriving late) does not move time
    backwards, compared in SQL so that a concurrent writer cannot be overwritten with an older time. ``body``,
    when not None, replaces the monitor's last body, shortened to :data:`PING_BODY_LIMIT` characters (NUL, which
    PostgreSQL refuses in text, becomes U+FFFD); the last body given wins. Raises ValueError for a naive ``at``.
    """
    for ping in pings:
        if ping.at.utcoffset() is None:
            raise ValueError("ping time must be timezone-aware (UTC)")
    tokens = sorted({ping.token for ping in pings if ping.token})
    if not tokens:
        return [None] * len(pings)
    # Core statements built once, on the session's connection: the ORM's per-statement work was most of the
    # time of a batch (measured: 4.4 of 5.3 ms for 32 pings on SQLite).
    connection = session.connection()
    owners = {token: monitor_id for token, monitor_id in connection.execute(_owners_query(), {"tokens": tokens})}
    changes: dict[str, dict[str, Any]] = {}
    for ping in pings:
        monitor_id = owners.get(ping.token)
        if monitor_id is None:
            continue
        change = changes.setdefault(monitor_id, {})
        column = _PING_COLUMNS[PingKind(ping.kind)]
        change[column] = max(change.get(column, ping.at), ping.at)
        if ping.body is not None:
            change["last_ping_body"] = ping.body[:PING_BODY_LIMIT].replace("\x00", "\ufffd")
    # An executemany needs the same columns in every row, so monitors are grouped by the columns they change:
    # in practice one or two groups per batch. Sorted, so that concurrent writers lock rows in the same order.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for monitor_id, change in sorted(changes.items()):
        columns = tuple(sorted(change))
        groups.setdefault(columns, []).append({"monitor_key": monitor_id, **{f"new_{c}": change[c] for c in columns}})
    for columns, rows in groups.items():
        connection.execute(_ping_update(columns), rows)
    return [owners.get(ping.token) for ping in pings]


@cache
def _owners_query() -> Select[str, str]:
    table = _monitors()
    return select(table.c.heartbeat_token, table.c.id).where(
        table.c.heartbeat_token.in_(bindparam("tokens", expanding=True)), table.c.enabled.is_(True)
    )


@cache
def _ping_update(columns: tuple[str, ...]) -> Update:
    table = _monitors()
    values: dict[str, Any] = {}
    for name in columns:
        new = bindparam(f"new_{name}", type_=table.c[name].type)
        values[name] = new if name == "last_ping_body" else _later(table.c[name], new)
    return update(table).where(table.c.id == bindparam("monitor_key")).values(values)


def _monitors() -> Table:
    return cast("Table", Monitor.__table__)


def _later(column: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[Any]:
    # The later of the stored time and the new one; NULL (never pinged) loses.
    return case((column.is_(None), new), (column < new, new), else_=column)


def _first_line(exc: Exception) -> str:
    # SQLAlchemy wraps the driver's error and appends the statement and a link; the driver's first line says it.
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass(slots=True)
class _WriteReport:
    written: int = 0
    refused: int = 0
    unwritten: list[ResultLike] = field(default_factory=list)  # to keep for later, when error is set
    error: Exception | None = None


class ResultWriter:
    """Buffers check results and writes them in batches, in a thread, surviving database outages.

    ``add`` never blocks and never fails on the database. The background loop (``async with writer:``, or
    :meth:`start` and :meth:`stop`) writes a batch when ``batch_size`` results wait or every ``flush_interval``
    seconds. While the database is unreachable the results stay in memory, at most ``pending_limit`` of them:
    past that the oldest are dropped (a recent result says more about now than an old one), counted in
    :attr:`dropped` and logged. Rows the database refuses (a monitor deleted meanwhile) are skipped, one by
    one, and counted in :attr:`rejected`. Use it from one event loop.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        pending_limit: int = 100_000,
        max_backoff: float = 30.0,
        executor: Executor | None = None,
    ) -> None:
        if batch_size < 1 or pending_limit < 1 or flush_interval <= 0:
            raise ValueError("batch_size and pending_limit must be at least 1, flush_interval positive")
        self._engine = engine
        self._executor = executor  # None: the default thread pool
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._pending_limit = pending_limit
        self._max_backoff = max_backoff
        self._pending: deque[ResultLike] = deque()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unavailable = False
        self._dropping = False
        self._outages = 0  # failed flushes in a row, for the backoff
        self.written = 0
        self.dropped = 0
        self.rejected = 0

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, *, executor: Executor | None = None) -> ResultWriter:
        """Return a writer sized by ``write_batch_size``, ``write_flush_interval`` and ``pending_results_limit``."""
        return cls(
            engine,
            batch_size=settings.write_batch_size,
            flush_interval=settings.write_flush_interval,
            pending_limit=settings.pending_results_limit,
            executor=executor,
        )

    @property
    def pending(self) -> int:
        """Return how many results wait to be written."""
        return len(self._pending)

    @property
    def unavailable(self) -> bool:
        """Return whether the last write found the database out of reach."""
        return self._unavailable

    def add(self, result: ResultLike) -> None:
        """Queue ``result``; raises ValueError for a naive ``started_at`` (a bug in the caller, not data)."""
        _aware(result)
        self._pending.append(result)
        self._trim()
        if len(self._pending) >= self._batch_size and not self._unavailable:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything pending now and return how many rows were written.

        Stops at the first batch the database cannot take, keeping it and the rest for later; never raises
        for the database being unavailable.
        """
        async with self._lock:
            written = 0
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))]
                report = await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)
                written += report.written
                self.written += report.written
                self.rejected += report.refused
                if report.error is not None:
                    self._requeue(report.unwritten)
                    self._note_outage(report.error)
                    return written
            if self._unavailable:
                logger.warning("database reachable again; %d results dropped while it was not", self.dropped)
            self._unavailable = False
            self._dropping = False
            self._outages = 0
            return written

    async def run(self) -> None:
        """Write in the background until :meth:`stop`; backs off (up to ``max_backoff``) while the database is down."""
        while not self._stopping:
            delay = min(self._flush_interval * 2**self._outages, self._max_backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                # A bug here must not end the loop: results would pile up unwritten until the bound drops them.
                logger.exception("writing results failed; trying again")

    async def start(self) -> None:
        """Start the background loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="vigil-result-writer")

    async def stop(self) -> None:
        """Stop the loop after its current write, then write what is left; logs what could not be written."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._pending:
            logger.error("stopping with %d results not written: the database is unavailable", len(self._pending))

    async def __aenter__(self) -> ResultWriter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _write(self, batch: list[ResultLike]) -> _WriteReport:
        # Runs in a worker thread, so it touches nothing of the writer's state.
        try:
            with session_scope(self._engine) as session:
                return _WriteReport(written=record_results(session=session, results=batch))
        except _UNAVAILABLE as exc:
            return _WriteReport(unwritten=batch, error=exc)
        except Exception:
            # One bad row must not sink the batch nor, retried forever, every batch after it: write one by one.
            pass
        report = _WriteReport()
        for index, result in enumerate(batch):
            try:
                with session_scope(self._engine) as session:
                    report.written += record_results(session=session, results=[result])
            except _UNAVAILABLE as exc:
                report.unwritten, report.error = batch[index:], exc
                break
            except Exception as exc:  # a row refused is logged and skipped, never retried forever
                report.refused += 1
                logger.warning("result of %s refused, skipped: %s", result.monitor_id, _first_line(exc))
        return report

    def _requeue(self, batch: list[ResultLike]) -> None:
        self._pending.extendleft(reversed(batch))
        self._trim()

    def _trim(self) -> None:
        excess = len(self._pending) - self._pending_limit
        if excess <= 0:
            return
        if not self._dropping:  # once per episode; the outage warnings carry the running count
            logger.warning("more than %d results waiting: dropping the oldest", self._pending_limit)
            self._dropping = True
        for _ in range(excess):
            self._pending.popleft()
        self.dropped += excess

    def _note_outage(self, exc: Exception) -> None:
        self._unavailable = True
        self._outages = min(self._outages + 1, 16)
        message = _first_line(exc)
        kept, dropped = self.pending, self.dropped
        logger.warning("database unavailable (%s): %d results kept, %d dropped so far", message, kept, dropped)
