"""The affected list is the probable cause's blast radius as soon as the cause is known (grouping rule 2), on real
outbox rows and databases (SQLite and PostgreSQL): redundancy respected, the dependants' own failures that follow
change nothing but the timeline, a recovery of the cause makes the members the model listed operational, a
person's change is seen by the worker's cache, and a storm of 500 VMs ends as one incident with the whole list.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import model_from
from vigil.analysis.impact import blast_radius
from vigil.db import session_scope
from vigil.incidents.models import ComponentStatus, EventType, Incident, IncidentComponent, IncidentStatus
from vigil.incidents.runner import IncidentWorker
from vigil.incidents.service import get_incident, list_incidents, set_component_status
from vigil.incidents.worker import BATCH_SIZE, ensure_cursor
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, Monitor
from vigil.monitors.store import record_state_change

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
CS = ComponentStatus
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BEFORE = T0 - timedelta(seconds=20)  # the VMs' monitors last answered before hv failed
FRESH = "vm2"  # its monitor answered after hv failed: up, whatever the model says


def model_text(vms: int) -> str:
    lines = ["version: 1", "components:", "  - {id: hv, kind: hypervisor}", "  - {id: hv2, kind: hypervisor}"]
    for v in range(vms):
        lines += [f"  - {{id: vm{v}, kind: vm, runs_on: hv}}", f"  - {{id: vm{v}-s0, kind: service, runs_on: vm{v}}}"]
    lines += [
        "  - {id: spare, kind: vm, runs_on: hv2}",
        # A working alternative on another hypervisor: exposed, not affected.
        "  - id: portal\n    kind: service\n    depends_on: [{any: [vm0, spare]}]",
        # Both alternatives on hv: down with it.
        "  - id: both\n    kind: service\n    depends_on: [{any: [vm0, vm1]}]",
        # An optional dependency lost: degraded.
        "  - id: stats\n    kind: service\n    depends_on: [{all: [vm1], optional: true}]",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def small() -> Model:
    return model_from(model_text(4))


@pytest.fixture(scope="module")
def large() -> Model:
    return model_from(model_text(500))


def prepare(engine: Engine, model: Model) -> Engine:
    """Components as the engine left them before the failure: watched VMs and services up, last checked before."""
    with session_scope(engine) as session:
        for comp in model.components.values():
            watched = comp.kind in ("vm", "hypervisor") or comp.id.endswith("-s0")
            state = S.UP if watched else S.UNKNOWN
            session.add(Component(id=comp.id, name=comp.id, kind=comp.kind, tier=comp.tier, state=state))
        session.flush()
        for comp in model.components.values():
            if comp.kind in ("vm", "hypervisor") or comp.id.endswith("-s0"):
                seen = T0 + timedelta(seconds=5) if comp.id == FRESH else BEFORE
                session.add(Monitor(id=f"{comp.id}/check", component_id=comp.id, type="http", last_checked_at=seen))
        ensure_cursor(session=session)
    return engine


@pytest.fixture
def db(engine: Engine, small: Model) -> Engine:
    return prepare(engine, small)


def write(engine: Engine, *changes: tuple[str, S, str | None], seconds: float = 0) -> None:
    with session_scope(engine) as session:
        for cid, to, cause in changes:
            at = T0 + timedelta(seconds=seconds)
            record_state_change(session=session, to_state=to, at=at, component_id=cid, cause=cause)


def worker(engine: Engine, model: Model, now: list[datetime] | None = None) -> IncidentWorker:
    clock = now or [T0 + timedelta(minutes=1)]
    return IncidentWorker(engine, model=lambda: model, quiet_period=timedelta(minutes=10), clock=lambda: clock[0])


def everything(engine: Engine) -> list[Incident]:
    with session_scope(engine) as session:
        return [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]


def standing(engine: Engine) -> Incident:
    (incident,) = [i for i in everything(engine) if i.merged_into is None]
    return incident


def listed(incident: Incident) -> dict[str, ComponentStatus]:
    return {c.component_id: c.status for c in incident.components}


def component_rows(engine: Engine, incident_id: int) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(IncidentComponent).where(IncidentComponent.incident_id == incident_id)
        return int(session.scalar(query) or 0)


def expected_radius(model: Model, *, without: Collection[str] = ()) -> dict[str, ComponentStatus]:
    impact = blast_radius(model, failed=["hv"])
    radius = {e.id: CS.MAJOR_OUTAGE for e in impact.down}
    radius.update((e.id, CS.DEGRADED_PERFORMANCE) for e in impact.degraded)
    return {"hv": CS.MAJOR_OUTAGE, **{c: s for c, s in radius.items() if c not in without}}


def test_the_affected_list_is_the_blast_radius_as_soon_as_the_cause_is_known(db: Engine, small: Model) -> None:
    write(db, ("hv", S.DOWN, None))  # only the hypervisor's own check has failed so far
    worker(db, small).run_once()
    (incident,) = everything(db)
    assert incident.probable_cause == "hv" and incident.auto
    statuses = listed(incident)
    assert statuses == expected_radius(small, without={FRESH, f"{FRESH}-s0"})
    assert statuses["vm0"] is CS.MAJOR_OUTAGE and statuses["vm3-s0"] is CS.MAJOR_OUTAGE  # not checked yet
    assert statuses["both"] is CS.MAJOR_OUTAGE  # both members of its any-group run on hv
    assert statuses["stats"] is CS.DEGRADED_PERFORMANCE  # an optional dependency lost
    assert "portal" not in statuses  # spare, on hv2, still serves it: redundancy respected
    assert FRESH not in statuses  # its monitor answered after hv failed: the observation wins
    assert incident.impact.value == "major"
    (radius,) = [u for u in incident.updates if u.event_type is EventType.COMPONENT]
    assert radius.data is not None and radius.data["cause"] == "hv" and radius.data["count"] == len(statuses) - 1
    assert "Blast radius of hv" in radius.body


def test_later_dependant_failures_change_nothing_but_the_timeline(db: Engine, small: Model) -> None:
    follower = worker(db, small)
    write(db, ("hv", S.DOWN, None))
    follower.run_once()
    first = standing(db)
    before = listed(first)
    vms = [(f"vm{v}", S.DOWN, "hv") for v in (0, 1, 3)]
    services = [(f"vm{v}-s0", S.DOWN, "hv") for v in (0, 1, 3)]
    write(db, *vms, *services, ("both", S.DOWN, "hv"), seconds=10)
    follower.run_once()
    write(db, ("vm0", S.DOWN, "hv"), seconds=20)  # no change of state: record_state_change writes nothing
    follower.run_once()
    after = standing(db)
    assert after.id == first.id and listed(after) == before
    assert component_rows(db, after.id) == len(before)  # no duplicate rows
    assert after.impact == first.impact and after.status is IncidentStatus.INVESTIGATING
    recorded = [u.data["component_id"] for u in after.updates if u.event_type is EventType.STATE_CHANGE and u.data]
    assert sorted(recorded) == sorted(["hv", *(c for c, _, _ in [*vms, *services]), "both"])
    # The VM whose monitor answered after hv failed fails later after all: it joins, the list grows by one.
    write(db, (FRESH, S.DOWN, "hv"), seconds=30)
    follower.run_once()
    grown = standing(db)
    assert listed(grown) == {**before, FRESH: CS.MAJOR_OUTAGE}
    assert component_rows(db, grown.id) == len(before) + 1


def test_when_the_cause_recovers_the_members_the_model_listed_recover_with_it(db: Engine, small: Model) -> None:
    now = [T0 + timedelta(minutes=1)]
    follower = worker(db, small, now)
    write(db, ("hv", S.DOWN, None))
    follower.run_once()
    write(db, ("vm0", S.DOWN, "hv"), seconds=10)  # one VM's own check failed; the others never did
    follower.run_once()
    write(db, ("hv", S.UP, None), seconds=60)
    now[0] = T0 + timedelta(minutes=2)
    follower.run_once()
    incident = standing(db)
    statuses = listed(incident)
    # The engine still sees vm0 down (its own monitor failed); the members it sees up or unknown are operational.
    assert statuses["vm0"] is CS.MAJOR_OUTAGE and statuses["vm1"] is CS.OPERATIONAL
    assert statuses["stats"] is CS.OPERATIONAL and statuses["hv"] is CS.OPERATIONAL
    assert incident.status is IncidentStatus.INVESTIGATING
    write(db, ("vm0", S.UP, None), seconds=90)
    follower.run_once()
    incident = standing(db)
    assert set(listed(incident).values()) == {CS.OPERATIONAL}
    assert incident.status is IncidentStatus.MONITORING and incident.mitigated_at == T0 + timedelta(seconds=90)


def test_a_persons_change_between_batches_is_seen(db: Engine, small: Model) -> None:
    follower = worker(db, small)  # one worker: its cache of affected lists must notice
    write(db, ("hv", S.DOWN, None))
    follower.run_once()
    incident = standing(db)
    with session_scope(db) as session:
        set_component_status(session=session, incident_id=incident.id, component_id="vm3", status=None, now=T0)
        set_component_status(
            session=session, incident_id=incident.id, component_id="vm1", status=CS.PARTIAL_OUTAGE, now=T0
        )
    write(db, ("vm3", S.DOWN, "hv"), ("vm1", S.DOWN, "hv"), seconds=10)
    follower.run_once()
    statuses = listed(standing(db))
    assert statuses["vm3"] is CS.MAJOR_OUTAGE  # removed by the person, failing again: listed again
    assert statuses["vm1"] is CS.MAJOR_OUTAGE  # the engine's word on a change of its own


def test_a_storm_of_500_vms_is_one_incident_with_the_whole_radius(engine: Engine, large: Model) -> None:
    db = prepare(engine, large)
    follower = worker(db, large)
    early = [f"vm{v}-s0" for v in range(100, 120)]  # their checks came before hv's: nothing upstream known yet
    for n, service in enumerate(early):
        write(db, (service, S.DOWN, None), seconds=n / 100)
    follower.run_once()
    assert len(everything(db)) == len(early)
    with_hv = [f"vm{v}" for v in range(3, 53)]  # the engine saw these fail in the recomputation hv's failure made
    write(db, ("hv", S.DOWN, None), *((vm, S.DOWN, "hv") for vm in with_hv), seconds=1)
    follower.run_once()
    incident = standing(db)
    radius = expected_radius(large, without={FRESH, f"{FRESH}-s0"})
    assert incident.probable_cause == "hv" and listed(incident) == radius
    assert len(radius) == 1 + 2 * 500 - 2 + 2  # hv, the VMs and services but the fresh pair, both and stats
    # The rest of the storm, over several batches: every VM and service, the fresh ones included.
    rest = [(f"vm{v}", S.DOWN, "hv") for v in range(500) if f"vm{v}" not in with_hv]
    rest += [(f"vm{v}-s0", S.DOWN, "hv") for v in range(500) if f"vm{v}-s0" not in early]
    assert len(rest) > 2 * BATCH_SIZE // 2
    write(db, *rest, seconds=10)
    assert follower.run_once() == len(rest)
    final = standing(db)
    assert final.id == incident.id
    assert listed(final) == {**radius, FRESH: CS.MAJOR_OUTAGE, f"{FRESH}-s0": CS.MAJOR_OUTAGE}
    assert component_rows(db, final.id) == len(radius) + 2
    # The oldest early incident took hv's failure (grouping rule 1); the others were merged into it.
    merged = [i for i in everything(db) if i.id != final.id]
    assert len(merged) == len(early) - 1
    assert {(i.status, i.merged_into) for i in merged} == {(IncidentStatus.RESOLVED, final.id)}
    events = [u for u in final.updates if u.event_type is EventType.STATE_CHANGE]
    # Every change recorded once, the merged incidents' included.
    assert len(events) == len(early) + 1 + len(with_hv) + len(rest)
