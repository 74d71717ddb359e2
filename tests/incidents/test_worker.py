"""The worker on real outbox rows (written by the store's record_state_change, as the engine's state writer does),
on SQLite and PostgreSQL: durable position, exactly once, quiet period on a fake clock, people taking over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import EXAMPLES
from tests.waiting import until
from vigil.db import session_scope
from vigil.incidents.models import Incident, IncidentStatus, IncidentUpdate, OutboxCursor
from vigil.incidents.runner import IncidentWorker
from vigil.incidents.service import get_incident, list_incidents, post_update
from vigil.incidents.worker import CONSUMER, ensure_cursor, process_outbox
from vigil.model.loader import load_model
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, Monitor
from vigil.monitors.store import record_state_change

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VMS = ["buildbot", "horde", "login1", "login2", "pwca", "repo.anl-external.org"]
QUIET = timedelta(minutes=10)


@pytest.fixture(scope="module")
def cels() -> Model:
    return load_model([EXAMPLES / "cels-2022.yaml"])


@pytest.fixture
def db(engine: Engine, cels: Model) -> Engine:
    with session_scope(engine) as session:
        for comp in cels.components.values():
            session.add(Component(id=comp.id, name=comp.name or comp.id, kind=comp.kind, tier=comp.tier))
        session.flush()
        ensure_cursor(session=session)  # as the runtime does on start, before any change
    return engine


def write(engine: Engine, *changes: tuple[str, S, str | None], minutes: float = 0) -> None:
    with session_scope(engine) as session:
        for cid, to, cause in changes:
            at = T0 + timedelta(minutes=minutes)
            record_state_change(session=session, to_state=to, at=at, component_id=cid, cause=cause)


def host_down(engine: Engine, host: str = "vserver8", minutes: float = 0) -> None:
    write(engine, (host, S.DOWN, None), *((vm, S.DOWN, host) for vm in VMS if host == "vserver8"), minutes=minutes)


def host_up(engine: Engine, minutes: float) -> None:
    write(engine, ("vserver8", S.UP, None), *((vm, S.UNKNOWN, None) for vm in VMS), minutes=minutes)


def worker(engine: Engine, model: Model, now: list[datetime]) -> IncidentWorker:
    return IncidentWorker(engine, model=lambda: model, quiet_period=QUIET, clock=lambda: now[0])


def incidents(engine: Engine) -> list[Incident]:
    with session_scope(engine) as session:
        return [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]


def count_updates(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(IncidentUpdate)) or 0)


def test_cels_outbox_rows_make_one_incident_and_recovery_resolves_after_the_quiet_period(
    db: Engine, cels: Model
) -> None:
    now = [T0 + timedelta(minutes=1)]
    follower = worker(db, cels, now)
    host_down(db)
    assert follower.run_once() == 7
    (incident,) = incidents(db)
    assert incident.probable_cause == "vserver8" and incident.detected_at == now[0] and incident.started_at == T0
    assert sorted(c.component_id for c in incident.components) == sorted(["vserver8", *VMS])
    host_up(db, minutes=30)
    now[0] = T0 + timedelta(minutes=31)
    follower.run_once()
    (incident,) = incidents(db)
    assert incident.status is IncidentStatus.MONITORING
    assert incident.mitigated_at == T0 + timedelta(minutes=30)
    now[0] = T0 + timedelta(minutes=39, seconds=59)  # 9 min 59 s after recovery: still watching
    follower.run_once()
    assert incidents(db)[0].status is IncidentStatus.MONITORING
    now[0] = T0 + timedelta(minutes=40)
    follower.run_once()
    (incident,) = incidents(db)
    assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at == now[0]
    # A failure after resolution is a new incident, not a zombie of the old one.
    host_down(db, minutes=50)
    follower.run_once()
    assert [i.status for i in incidents(db)] == [IncidentStatus.INVESTIGATING, IncidentStatus.RESOLVED]


def test_a_restart_continues_from_the_stored_position_without_duplicates(db: Engine, cels: Model) -> None:
    now = [T0]
    host_down(db)
    worker(db, cels, now).run_once()
    entries = count_updates(db)
    # A new process: a new worker, nothing in memory. The same rows must not be applied again.
    assert worker(db, cels, now).run_once() == 0
    assert count_updates(db) == entries and len(incidents(db)) == 1
    with session_scope(db) as session:
        position = session.get(OutboxCursor, CONSUMER)
        assert position is not None and position.last_id > 0
    write(db, ("vserver-ha1", S.DOWN, None), minutes=2)
    assert worker(db, cels, now).run_once() == 1  # only the new row
    assert len(incidents(db)) == 2


def test_a_failed_transaction_leaves_the_position_so_nothing_is_lost_or_doubled(db: Engine, cels: Model) -> None:
    host_down(db)
    with pytest.raises(RuntimeError), session_scope(db) as session:
        process_outbox(session=session, model=cels, now=T0)
        raise RuntimeError("crash before the commit")
    assert incidents(db) == []
    worker(db, cels, [T0]).run_once()
    assert len(incidents(db)) == 1


def test_a_new_database_starts_at_the_end_of_the_outbox(engine: Engine, cels: Model) -> None:
    with session_scope(engine) as session:
        for comp in cels.components.values():
            session.add(Component(id=comp.id, name=comp.id, kind=comp.kind))
    host_down(engine)  # history from before incidents existed
    with session_scope(engine) as session:
        ensure_cursor(session=session)
    assert worker(engine, cels, [T0]).run_once() == 0
    assert incidents(engine) == []


def test_monitor_changes_are_consumed_but_open_nothing(db: Engine, cels: Model) -> None:
    with session_scope(db) as session:
        session.add(Monitor(id="vserver8/power", component_id="vserver8", type="command"))
        session.flush()
        record_state_change(session=session, to_state=S.DOWN, at=T0, monitor_id="vserver8/power")
    assert worker(db, cels, [T0]).run_once() == 1
    assert incidents(db) == []


def test_a_taken_over_incident_is_not_resolved_by_the_engine(db: Engine, cels: Model) -> None:
    now = [T0]
    follower = worker(db, cels, now)
    host_down(db)
    follower.run_once()
    (incident,) = incidents(db)
    with session_scope(db) as session:
        post_update(
            session=session, incident_id=incident.id, body="Disk replaced.", status=IncidentStatus.IDENTIFIED, now=T0
        )
    host_up(db, minutes=30)
    now[0] = T0 + timedelta(hours=5)
    follower.run_once()
    (incident,) = incidents(db)
    assert incident.taken_over and incident.status is IncidentStatus.IDENTIFIED  # the person decides
    assert incident.mitigated_at == T0 + timedelta(minutes=30)  # the metrics still get the time
    assert incident.resolved_at is None


@pytest.mark.anyio
async def test_a_wake_runs_a_round_at_once_and_an_idle_worker_waits_for_its_poll(db: Engine, cels: Model) -> None:
    # The runtime wakes the worker after its state writer commits; nothing else makes it look before its poll.
    now = [T0 + timedelta(minutes=1)]
    follower = IncidentWorker(db, model=lambda: cels, quiet_period=QUIET, clock=lambda: now[0], poll_interval=60)
    rounds: list[int] = []
    follower.after_commit = lambda: rounds.append(follower.processed)
    await follower.start()
    try:
        await asyncio.to_thread(host_down, db)
        await asyncio.sleep(0.5)
        assert incidents(db) == [] and rounds == []  # written, but nobody said so: the next poll is a minute away
        follower.wake()
        await until(lambda: rounds)
        assert rounds == [7]  # one round consumed the seven rows, then told the dispatcher (after_commit)
        assert len(incidents(db)) == 1
        follower.wake()
        await asyncio.sleep(0.7)  # a round with nothing to consume tells nobody
        assert rounds == [7]
    finally:
        await follower.stop()
