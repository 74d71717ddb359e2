"""Maintenance and incidents, through the engine's states and the real outbox and worker (SQLite, PostgreSQL).

``Night`` plays the runtime's part: what the monitors see → ``component_states`` with the windows in progress
→ the changes written to the ``state_changes`` outbox (monitor changes too, as the state writer does) → the
incident worker. The queue-cluster night of 2019 (``examples/queue-cluster-2019.yaml``) and the overrun.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from tests.conftest import EXAMPLES
from vigil.db import session_scope
from vigil.engine.states import ComponentVerdict, component_states
from vigil.incidents.models import Incident, IncidentStatus
from vigil.incidents.runner import IncidentWorker
from vigil.incidents.service import get_incident, list_incidents
from vigil.incidents.worker import ensure_cursor
from vigil.model.loader import load_model
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, Monitor, StateChange
from vigil.monitors.store import record_state_change

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
T0 = datetime(2019, 1, 31, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def queues() -> Model:
    return load_model([EXAMPLES / "queue-cluster-2019.yaml"])


class Night:
    """The engine's side on a real database: monitors per component ("<id>/check"), states, outbox, worker."""

    def __init__(self, engine: Engine, model: Model) -> None:
        self.engine, self.model = engine, model
        self.seen: dict[str, S] = {}
        self.verdicts: dict[str, ComponentVerdict] = {}
        self.maintenance: frozenset[str] = frozenset()
        self.now = [T0]
        self.worker = IncidentWorker(engine, model=lambda: model, quiet_period=timedelta(minutes=10), clock=self._now)
        with session_scope(engine) as session:
            for comp in model.components.values():
                session.add(Component(id=comp.id, name=comp.name or comp.id, kind=comp.kind, tier=comp.tier))
                session.add(Monitor(id=f"{comp.id}/check", component_id=comp.id, type="tcp"))
            session.flush()
            ensure_cursor(session=session)

    def _now(self) -> datetime:
        return self.now[0]

    def at(self, minutes: float) -> None:
        self.now[0] = T0 + timedelta(minutes=minutes)

    def see(self, **states: S) -> None:
        """Monitors report ``states`` (component id = state); the engine decides and the worker follows."""
        with session_scope(self.engine) as session:
            for cid, state in states.items():
                self.seen[cid] = state
                record_state_change(session=session, to_state=state, at=self.now[0], monitor_id=f"{cid}/check")
            self._decide(session)
        self.worker.run_once()

    def windows(self, *components: str) -> None:
        """The windows in progress now hold ``components`` (the runtime's periodic look at the database)."""
        self.maintenance = frozenset(components)
        with session_scope(self.engine) as session:
            self._decide(session)
        self.worker.run_once()

    def _decide(self, session: object) -> None:
        own = {cid: ComponentVerdict(state) for cid, state in self.seen.items()}
        verdicts = component_states(self.model, own, self.maintenance)
        for cid, new in verdicts.items():
            old = self.verdicts.get(cid, ComponentVerdict(S.UNKNOWN))
            if new.state is not old.state:
                record_state_change(
                    session=session,  # type: ignore[arg-type]
                    to_state=new.state,
                    at=self.now[0],
                    component_id=cid,
                    cause=new.cause,
                    reason=new.reason,
                )
        self.verdicts = verdicts

    def incidents(self) -> list[Incident]:
        with session_scope(self.engine) as session:
            return [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]

    def outbox(self) -> list[tuple[str | None, str | None, S]]:
        with session_scope(self.engine) as session:
            rows = session.scalars(select(StateChange).order_by(StateChange.id))
            return [(r.component_id, r.monitor_id, r.to_state) for r in rows]


@pytest.fixture
def night(engine: Engine, queues: Model) -> Night:
    return Night(engine, queues)


def test_failures_inside_the_window_open_nothing_but_are_recorded(night: Night) -> None:
    night.see(queue1=S.UP, queue2=S.UP, worker1=S.UP, worker2=S.UP)
    night.windows("queue1")
    night.at(5)
    night.see(queue1=S.DOWN)  # the planned restart
    assert night.incidents() == []
    assert night.verdicts["queue1"].state is S.MAINTENANCE
    assert night.verdicts["data-collection"].state is not S.DOWN  # queue2 carries the cluster, as planned
    assert ("queue1", None, S.MAINTENANCE) in night.outbox()
    assert (None, "queue1/check", S.DOWN) in night.outbox()  # the failure itself is in the outbox
    night.at(30)
    night.see(queue1=S.UP)
    night.windows()  # completed on time: nothing happened
    assert night.incidents() == []


def test_the_queue_cluster_night_opens_an_incident_for_what_was_not_planned(night: Night) -> None:
    night.see(queue1=S.UP, queue2=S.UP, worker1=S.UP, worker2=S.UP)
    night.windows("queue1")
    night.at(60)
    # 05:00: the hoster restarts every hardware node: the queue in the window and the one outside it.
    night.see(queue1=S.DOWN, queue2=S.DOWN)
    assert night.verdicts["queue1"].state is S.MAINTENANCE
    by_cause = {i.probable_cause: i for i in night.incidents()}
    assert set(by_cause) == {"queue1", "queue2"}
    beyond = by_cause["queue1"]
    assert beyond.title == "maintenance of queue1 took down data-collection: beyond what was planned"
    assert beyond.detected_at == T0 + timedelta(minutes=60) and beyond.status is IncidentStatus.INVESTIGATING
    affected = {c.component_id: c.status.value for c in beyond.components}
    assert affected == {
        "queue1": "under_maintenance",  # planned: no impact of its own
        "data-collection": "major_outage",
        "dashboard": "degraded_performance",
    }
    assert beyond.impact.value == "critical"
    assert {c.component_id for c in by_cause["queue2"].components} == {"queue2"}  # outside the window: unplanned


def test_a_dependant_outside_the_window_taken_down_by_it_is_beyond_the_plan(night: Night) -> None:
    night.see(queue1=S.UP, queue2=S.DOWN, worker1=S.UP, worker2=S.UP)  # queue2 already down: one queue left
    night.windows("queue1")
    (queue2_incident,) = night.incidents()
    night.at(10)
    night.see(queue1=S.DOWN)  # the maintenance takes the last queue away
    (beyond,) = [i for i in night.incidents() if i.id != queue2_incident.id]
    assert beyond.title == "maintenance of queue1 took down data-collection: beyond what was planned"
    assert beyond.detected_at == T0 + timedelta(minutes=10)


def test_the_maintenance_that_overruns_opens_an_incident_at_once(night: Night) -> None:
    night.see(queue1=S.UP, queue2=S.UP, worker1=S.UP, worker2=S.UP)
    night.windows("queue1")
    night.at(5)
    night.see(queue1=S.DOWN)
    assert night.incidents() == []
    night.at(120)
    night.windows()  # the window ends (auto-complete) with queue1 still down
    (incident,) = night.incidents()
    assert incident.title == "maintenance overran: queue1 still down"
    assert incident.detected_at == T0 + timedelta(minutes=120) and incident.probable_cause == "queue1"
    assert {c.component_id: c.status.value for c in incident.components} == {"queue1": "major_outage"}
    assert incident.status is IncidentStatus.INVESTIGATING
