"""Automatic merging (rule 5 of grouping): a hypervisor whose own check fails after its VMs' services did.

Each service failing first has nothing failed upstream and opens its own incident; when the hypervisor's failure
arrives, the incidents it explains are merged into its incident, in the worker's transaction, on real outbox
rows, on SQLite and PostgreSQL. Taken-over and unrelated incidents stay as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.conftest import model_from
from vigil.db import session_scope
from vigil.incidents.grouping import IncidentView, automatic_merges
from vigil.incidents.models import ComponentStatus, EventType, Incident, IncidentStatus
from vigil.incidents.runner import IncidentWorker
from vigil.incidents.service import get_incident, list_incidents, post_update
from vigil.incidents.worker import ensure_cursor
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState
from vigil.monitors.store import record_state_change

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SERVICES = [f"vm{v}-s0" for v in range(5)]


@pytest.fixture(scope="module")
def model() -> Model:
    lines = ["version: 1", "components:"]
    for hv in ("hv", "hv2"):
        lines += [f"  - id: {hv}", "    kind: hypervisor"]
    for v in range(6):
        host = "hv2" if v == 5 else "hv"
        lines += [f"  - id: vm{v}", "    kind: vm", f"    runs_on: {host}"]
        lines += [f"  - id: vm{v}-s0", "    kind: service", f"    runs_on: vm{v}"]
    return model_from("\n".join(lines) + "\n")


@pytest.fixture
def db(engine: Engine, model: Model) -> Engine:
    with session_scope(engine) as session:
        for comp in model.components.values():
            session.add(Component(id=comp.id, name=comp.id, kind=comp.kind, tier=comp.tier))
        session.flush()
        ensure_cursor(session=session)
    return engine


def write(engine: Engine, *changes: tuple[str, S, str | None], minutes: float = 0) -> None:
    with session_scope(engine) as session:
        for cid, to, cause in changes:
            at = T0 + timedelta(minutes=minutes)
            record_state_change(session=session, to_state=to, at=at, component_id=cid, cause=cause)


def hv_down(engine: Engine, minutes: float = 1) -> None:
    # The host's own check fails; the engine then reports its VMs (and their services) down because of it.
    vms = [(f"vm{v}", S.DOWN, "hv") for v in range(5)]
    write(engine, ("hv", S.DOWN, None), *vms, minutes=minutes)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, IncidentStatus | None]] = []

    def __call__(self, session: object, incident: Incident, previous: IncidentStatus | None, now: datetime) -> None:
        self.calls.append((incident.id, previous))


def worker(engine: Engine, model: Model, hook: Recorder | None = None) -> IncidentWorker:
    return IncidentWorker(
        engine,
        model=lambda: model,
        quiet_period=timedelta(minutes=10),
        clock=lambda: T0 + timedelta(minutes=2),
        on_change=hook,
    )


def everything(engine: Engine) -> list[Incident]:
    with session_scope(engine) as session:
        return [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]


def by_cause(incidents: list[Incident]) -> dict[str | None, Incident]:
    return {i.probable_cause: i for i in incidents}


def check_merged(engine: Engine, merged_ids: list[int]) -> Incident:
    incidents = everything(engine)
    (hv,) = [i for i in incidents if i.status is not IncidentStatus.RESOLVED]
    assert hv.probable_cause == "hv" and not hv.taken_over  # the engine still runs it
    assert {"hv", *SERVICES, *(f"vm{v}" for v in range(5))} <= {c.component_id for c in hv.components}
    assert hv.started_at == T0  # the first service's failure
    gone = [i for i in incidents if i.id in merged_ids]
    assert len(gone) == 4  # the fifth, the oldest, took hv's failure and became its incident (grouping rule 1)
    for incident in gone:
        assert incident.status is IncidentStatus.RESOLVED and incident.merged_into == hv.id
        assert incident.components == []
        (event,) = [u for u in incident.updates if u.event_type is EventType.MERGED]
        assert "is explained by hv" in event.body and event.data is not None and event.data["automatic"] is True
    merged_in = [u for u in hv.updates if u.event_type is EventType.MERGED]
    assert sorted(u.body for u in merged_in) == sorted(
        f"merged: {i.probable_cause} down is explained by hv (incident {i.id} into {hv.id})." for i in gone
    )
    # The timelines moved: the services' own state changes are now in hv's incident.
    moved = {u.data["component_id"] for u in hv.updates if u.event_type is EventType.STATE_CHANGE and u.data}
    assert set(SERVICES) <= moved
    assert [u.data["source"] for u in merged_in if u.data] == sorted(merged_ids)
    return hv


def test_services_failing_before_their_hypervisor_are_merged_into_its_incident(db: Engine, model: Model) -> None:
    hook = Recorder()
    follower = worker(db, model, hook)
    for n, service in enumerate(SERVICES):  # each alone in its round: nothing upstream failed yet
        write(db, (service, S.DOWN, None), minutes=n / 10)
        follower.run_once()
    assert len(everything(db)) == 5
    assert len(hook.calls) == 5
    first = min(i.id for i in everything(db))
    hv_down(db)
    follower.run_once()
    hv = check_merged(db, [i.id for i in everything(db) if i.probable_cause != "hv"])
    assert hv.id == first  # the oldest took the hypervisor's failure, the others joined it
    assert len(hook.calls) == 5  # merging queues no notification, as when a person merges


def test_one_batch_opens_and_merges_without_announcing_the_merged_ones(db: Engine, model: Model) -> None:
    hook = Recorder()
    write(db, *((s, S.DOWN, None) for s in SERVICES))
    hv_down(db)
    worker(db, model, hook).run_once()
    hv = check_merged(db, [i.id for i in everything(db) if i.probable_cause != "hv"])
    assert hook.calls == [(hv.id, None)]  # only the incident that stays is announced


def test_taken_over_and_unrelated_incidents_are_not_merged(db: Engine, model: Model) -> None:
    follower = worker(db, model)
    write(db, ("vm0-s0", S.DOWN, None))
    follower.run_once()
    write(db, ("vm1-s0", S.DOWN, None), ("vm5-s0", S.DOWN, None), ("hv2", S.DOWN, None), minutes=0.5)
    follower.run_once()
    causes = by_cause(everything(db))
    taken = causes["vm1-s0"].id
    with session_scope(db) as session:
        post_update(session=session, incident_id=taken, body="On it.", now=T0)
    hv_down(db)
    follower.run_once()
    causes = by_cause(everything(db))
    assert causes["hv"].status is IncidentStatus.INVESTIGATING  # vm0-s0's incident, now hv's
    assert causes["vm1-s0"].id == taken and causes["vm1-s0"].merged_into is None
    assert causes["vm1-s0"].status is IncidentStatus.INVESTIGATING  # a person runs it: never merged automatically
    assert causes["hv2"].merged_into is None and causes["hv2"].status is IncidentStatus.INVESTIGATING
    # hv2 took vm5-s0 in; vm5, which no monitor reported on, is in hv2's blast radius: listed from the model.
    assert {c.component_id for c in causes["hv2"].components} == {"hv2", "vm5", "vm5-s0"}
    assert len([i for i in everything(db) if i.status is not IncidentStatus.RESOLVED]) == 3


def test_automatic_merges_pure(model: Model) -> None:
    def view(ident: int, cause: str, *, auto: bool = True, taken_over: bool = False) -> IncidentView:
        return IncidentView(
            ident,
            cause,
            IncidentStatus.INVESTIGATING,
            {cause: ComponentStatus.MAJOR_OUTAGE},
            T0,
            auto=auto,
            taken_over=taken_over,
        )

    views = [
        view(1, "vm0-s0"),
        view(2, "hv"),
        view(3, "vm1"),
        view(4, "vm2-s0", taken_over=True),
        view(5, "vm3-s0", auto=False),
        view(6, "vm5-s0"),
        view(7, "hv"),
    ]
    assert automatic_merges(model, views, [2]) == [(1, 2), (3, 2), (7, 2)]
    assert automatic_merges(model, views, [1]) == []  # a service explains nothing upstream of it
    assert automatic_merges(model, views, [2, 7]) == [(1, 2), (3, 2), (7, 2)]  # merged away: no longer a target
