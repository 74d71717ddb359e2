"""The state writer on SQLite and PostgreSQL: state changes are written at once and announced after their commit;
the monitors' last check times wait for their own interval (an idle server writes nothing every second)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from tests.dbfixtures import add_monitor
from tests.waiting import until
from vigil.db import session_scope
from vigil.engine.events import StateEvent
from vigil.engine.statewriter import StateWriter
from vigil.monitors.models import ComponentState, Monitor, StateChange

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

S = ComponentState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def checked_at(engine: Engine) -> datetime | None:
    with session_scope(engine) as session:
        return session.scalar(select(Monitor.last_checked_at).where(Monitor.id == "web/http"))


def changes(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.scalars(select(StateChange)).all())


async def test_state_changes_go_at_once_and_check_times_wait_for_their_interval(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_monitor(session)
    writer = StateWriter(engine, checked_interval=1.0)
    commits: list[int] = []
    writer.after_commit = lambda: commits.append(writer.written)
    await writer.start()
    try:
        writer.checked("web/http", T0, 1, 0)
        await asyncio.sleep(0.5)
        assert checked_at(engine) is None and commits == []  # no state change: the check time waits
        await until(lambda: checked_at(engine) is not None)  # its interval came
        assert commits == []  # check times alone wake nobody: the outbox did not grow

        writer.add(StateEvent(T0, "web", None, S.UNKNOWN, S.DOWN, None, "status 503"))
        await until(lambda: commits == [2])  # written at once, then announced (the check time went along)
        assert changes(engine) == 1
    finally:
        await writer.stop()


async def test_a_failing_hook_loses_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_monitor(session)
    writer = StateWriter(engine)

    def broken() -> None:
        raise RuntimeError("hook")

    writer.after_commit = broken
    await writer.start()
    try:
        writer.add(StateEvent(T0, "web", None, S.UNKNOWN, S.DOWN, None, "status 503"))
        writer.add(StateEvent(T0, "web", None, S.DOWN, S.UP, None, "status 200"))
        await until(lambda: changes(engine) == 2)
        assert writer.pending == 0
    finally:
        await writer.stop()
