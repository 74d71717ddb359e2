from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from tests.dbfixtures import FlakyDatabase, add_monitor, count_rows, result
from vigil.config import Environment, Settings
from vigil.db import session_scope
from vigil.monitors.models import (
    PING_BODY_LIMIT,
    CheckResult,
    Component,
    ComponentState,
    Monitor,
    Outcome,
    PingKind,
    StateChange,
)
from vigil.monitors.result import CheckResult as Result
from vigil.monitors.store import (
    ResultWriter,
    purge_results,
    recent_results,
    record_ping,
    record_results,
    record_state_change,
    state_changes_since,
)

pytest_plugins = ["tests.dbfixtures"]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_record_results_inserts_rows_in_milliseconds_and_recent_results_lists_newest_first(session: Session) -> None:
    add_monitor(session)
    results = [result(at=T0 + timedelta(minutes=i), latency=0.001 * (i + 1), reason=f"r{i}") for i in range(5)]
    assert record_results(session=session, results=results) == 5
    assert record_results(session=session, results=[]) == 0
    recent = recent_results(session=session, monitor_id="web/http", limit=3)
    assert [row.reason for row in recent] == ["r4", "r3", "r2"]
    assert recent[0].latency_ms == pytest.approx(5.0)
    assert recent[0].started_at == T0 + timedelta(minutes=4)
    assert recent[0].started_at.tzinfo is not None
    assert recent[0].outcome is Outcome.UP


def test_record_results_keeps_the_time_instant_whatever_the_offset_given(session: Session) -> None:
    add_monitor(session)
    paris = datetime(2026, 3, 1, 13, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    record_results(session=session, results=[result(at=paris)])
    (row,) = recent_results(session=session, monitor_id="web/http")
    assert row.started_at == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert row.started_at.utcoffset() == timedelta(0)


def test_record_results_refuses_naive_times(session: Session) -> None:
    add_monitor(session)
    with pytest.raises(ValueError, match="timezone-aware"):
        record_results(session=session, results=[result(at=datetime(2026, 1, 1))])


def test_record_results_shortens_long_reasons(session: Session) -> None:
    add_monitor(session)
    record_results(session=session, results=[result(reason="x" * 5000)])
    (row,) = recent_results(session=session, monitor_id="web/http")
    assert len(row.reason) == 1000


def test_purge_results_deletes_only_older_rows(session: Session) -> None:
    add_monitor(session)
    add_monitor(session, "db/tcp")
    rows = [result(monitor, T0 + timedelta(days=day)) for monitor in ("web/http", "db/tcp") for day in range(4)]
    record_results(session=session, results=rows)
    assert purge_results(session=session, older_than=T0 + timedelta(days=2)) == 4
    left = session.scalars(select(CheckResult.started_at).order_by(CheckResult.started_at)).all()
    assert left == [T0 + timedelta(days=2)] * 2 + [T0 + timedelta(days=3)] * 2


def test_record_state_change_moves_the_component_and_appends_to_the_outbox(session: Session) -> None:
    add_monitor(session)
    add_monitor(session, "db/tcp")
    change = record_state_change(session=session, component_id="web", to_state=ComponentState.DOWN, at=T0, cause="db")
    assert change is not None
    assert (change.from_state, change.to_state, change.cause) == (ComponentState.UNKNOWN, ComponentState.DOWN, "db")
    web = session.get(Component, "web")
    assert web is not None
    session.refresh(web)
    assert (web.state, web.state_since, web.state_cause) == (ComponentState.DOWN, T0, "db")


def test_record_state_change_records_nothing_when_the_state_is_unchanged(session: Session) -> None:
    add_monitor(session)
    record_state_change(session=session, component_id="web", to_state=ComponentState.DOWN, at=T0)
    assert record_state_change(session=session, component_id="web", to_state=ComponentState.DOWN, at=T0) is None
    assert len(state_changes_since(session=session)) == 1


def test_monitor_state_changes_start_from_unknown_and_use_outcomes(session: Session) -> None:
    add_monitor(session)
    first = record_state_change(session=session, monitor_id="web/http", to_state=Outcome.DOWN, at=T0, reason="503")
    second = record_state_change(session=session, monitor_id="web/http", to_state=Outcome.UP, at=T0)
    assert first is not None and second is not None
    assert (first.from_state, first.to_state, first.reason) == ("unknown", "down", "503")
    assert (second.from_state, second.to_state) == ("down", "up")
    monitor = session.get(Monitor, "web/http")
    assert monitor is not None
    session.refresh(monitor)
    assert monitor.outcome is Outcome.UP


def test_state_changes_since_follows_ids(session: Session) -> None:
    add_monitor(session)
    states = [ComponentState.DOWN, ComponentState.UP, ComponentState.MAINTENANCE, ComponentState.UP]
    ids = []
    for index, state in enumerate(states):
        change = record_state_change(session=session, component_id="web", to_state=state, at=T0 + timedelta(index))
        assert change is not None
        ids.append(change.id)
    assert ids == sorted(ids)
    later = state_changes_since(session=session, after_id=ids[1])
    assert [change.to_state for change in later] == [ComponentState.MAINTENANCE, ComponentState.UP]
    assert [c.id for c in state_changes_since(session=session, after_id=0, limit=2)] == ids[:2]
    assert state_changes_since(session=session, after_id=ids[-1]) == []


@pytest.mark.parametrize(
    ("subject", "state", "error"),
    [
        ({}, ComponentState.DOWN, ValueError),
        ({"component_id": "web", "monitor_id": "web/http"}, ComponentState.DOWN, ValueError),
        ({"monitor_id": "web/http"}, ComponentState.MAINTENANCE, ValueError),
        ({"component_id": "nope"}, ComponentState.DOWN, LookupError),
        ({"monitor_id": "web/nope"}, ComponentState.DOWN, LookupError),
    ],
)
def test_record_state_change_refuses_bad_subjects(
    session: Session, subject: dict[str, str], state: ComponentState, error: type[Exception]
) -> None:
    add_monitor(session)
    with pytest.raises(error):
        record_state_change(session=session, to_state=state, at=T0, **subject)
    assert session.scalars(select(StateChange)).all() == []


def test_record_ping_returns_none_for_unknown_tokens(session: Session) -> None:
    add_monitor(session, token="s3cret")
    assert record_ping(session=session, token="wrong", kind=PingKind.SUCCESS, at=T0) is None
    assert record_ping(session=session, token="", kind=PingKind.SUCCESS, at=T0) is None


def test_record_ping_sets_the_time_of_each_kind_and_keeps_a_short_body(session: Session) -> None:
    add_monitor(session, token="s3cret")
    record_ping(session=session, token="s3cret", kind=PingKind.START, at=T0)
    record_ping(session=session, token="s3cret", kind=PingKind.FAIL, at=T0 + timedelta(minutes=1), body="E" * 5000)
    monitor = record_ping(session=session, token="s3cret", kind=PingKind.SUCCESS, at=T0 + timedelta(minutes=2))
    assert monitor is not None and monitor.id == "web/http"
    session.expire_all()
    monitor = session.get(Monitor, "web/http")
    assert monitor is not None
    assert monitor.last_start_at == T0
    assert monitor.last_fail_at == T0 + timedelta(minutes=1)
    assert monitor.last_ping_at == T0 + timedelta(minutes=2)
    assert monitor.last_ping_body == "E" * PING_BODY_LIMIT


def test_a_late_ping_does_not_move_time_backwards(session: Session) -> None:
    add_monitor(session, token="s3cret")
    record_ping(session=session, token="s3cret", kind=PingKind.SUCCESS, at=T0)
    monitor = record_ping(session=session, token="s3cret", kind=PingKind.SUCCESS, at=T0 - timedelta(minutes=5))
    assert monitor is not None and monitor.last_ping_at == T0


def test_record_ping_refuses_naive_times(session: Session) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record_ping(session=session, token="s3cret", kind=PingKind.SUCCESS, at=datetime(2026, 1, 1))


# ResultWriter ----------------------------------------------------------------------------------------------------


def _seed(engine: Engine, *monitor_ids: str) -> None:
    with session_scope(engine) as session:
        for monitor_id in monitor_ids or ("web/http",):
            add_monitor(session, monitor_id)


def _reasons(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(CheckResult.reason).order_by(CheckResult.started_at)))


def _results(count: int, start: int = 0) -> list[Result]:
    return [result(at=T0 + timedelta(seconds=i), reason=f"r{i}") for i in range(start, start + count)]


@pytest.mark.anyio
async def test_writer_writes_in_batches(engine: Engine) -> None:
    _seed(engine)
    writer = ResultWriter(engine, batch_size=3, pending_limit=100)
    for each in _results(7):
        writer.add(each)
    assert writer.pending == 7
    assert await writer.flush() == 7
    assert (writer.pending, writer.written, writer.dropped) == (0, 7, 0)
    assert _reasons(engine) == [f"r{i}" for i in range(7)]


@pytest.mark.anyio
async def test_writer_keeps_results_while_the_database_is_down_and_writes_them_when_it_returns(
    flaky_db: FlakyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(flaky_db.direct)
    writer = ResultWriter(flaky_db.engine, batch_size=2, pending_limit=100)
    writer.add(result(at=T0, reason="before"))
    assert await writer.flush() == 1

    flaky_db.down()
    for each in _results(3):
        writer.add(each)
    with caplog.at_level(logging.WARNING, logger="vigil.monitors.store"):
        assert await writer.flush() == 0
    assert writer.unavailable
    assert (writer.pending, writer.dropped) == (3, 0)
    assert "database unavailable" in caplog.text

    flaky_db.up()
    assert await writer.flush() == 3
    assert not writer.unavailable
    assert _reasons(flaky_db.direct) == ["before", "r0", "r1", "r2"]


@pytest.mark.anyio
async def test_writer_drops_the_oldest_beyond_its_bound_and_counts_them(
    flaky_db: FlakyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(flaky_db.direct)
    writer = ResultWriter(flaky_db.engine, batch_size=2, pending_limit=3)
    flaky_db.down()
    with caplog.at_level(logging.WARNING, logger="vigil.monitors.store"):
        for each in _results(5):
            writer.add(each)
        assert await writer.flush() == 0
        writer.add(result(at=T0 + timedelta(seconds=5), reason="r5"))
    assert (writer.pending, writer.dropped) == (3, 3)
    assert "dropping the oldest" in caplog.text
    assert "3 results kept, 2 dropped so far" in caplog.text

    flaky_db.up()
    assert await writer.flush() == 3
    assert _reasons(flaky_db.direct) == ["r3", "r4", "r5"]
    assert count_rows(flaky_db.direct, "check_results") == 3


@pytest.mark.anyio
async def test_writer_skips_rows_the_database_refuses(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    _seed(engine)
    writer = ResultWriter(engine, batch_size=10)
    writer.add(result(reason="good"))
    writer.add(result("gone/monitor", reason="orphan"))
    writer.add(result(at=T0 + timedelta(seconds=1), reason="good too"))
    with caplog.at_level(logging.WARNING, logger="vigil.monitors.store"):
        assert await writer.flush() == 2
    assert (writer.rejected, writer.pending) == (1, 0)
    assert "gone/monitor" in caplog.text
    assert sorted(_reasons(engine)) == ["good", "good too"]


@pytest.mark.anyio
async def test_writer_background_loop_writes_everything_by_the_time_it_stops(engine: Engine) -> None:
    _seed(engine)
    # A flush interval far beyond the test: only full batches and the final flush of stop() write.
    writer = ResultWriter(engine, batch_size=2, flush_interval=3600)
    async with writer:
        for each in _results(5):
            writer.add(each)
    assert writer.pending == 0
    assert _reasons(engine) == [f"r{i}" for i in range(5)]


def test_writer_refuses_naive_times_when_added(engine: Engine) -> None:
    writer = ResultWriter(engine)
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.add(result(at=datetime(2026, 1, 1)))
    assert writer.pending == 0


def test_writer_from_settings_takes_its_sizes() -> None:
    settings = Settings(
        environment=Environment.DEVELOPMENT, write_batch_size=7, write_flush_interval=0.5, pending_results_limit=9
    )
    writer = ResultWriter.from_settings(create_engine("sqlite://"), settings)
    assert (writer._batch_size, writer._flush_interval, writer._pending_limit) == (7, 0.5, 9)
