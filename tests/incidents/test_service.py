"""People's side of incidents: open, update, merge, split, and the errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from vigil.incidents.models import ComponentStatus, EntryKind, Impact, IncidentStatus
from vigil.incidents.reshape import merge_incidents, split_incident
from vigil.incidents.service import (
    IncidentNotFoundError,
    InvalidIncidentError,
    acknowledge_incident,
    get_incident,
    open_incident,
    post_update,
    set_component_status,
)
from vigil.model.types import Tier
from vigil.monitors.models import Component

pytest_plugins = ["tests.dbfixtures"]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CS = ComponentStatus


@pytest.fixture
def db(session: Session) -> Session:
    for cid, tier in (("db", Tier.CRITICAL), ("web", Tier.STANDARD), ("cron", Tier.BEST_EFFORT)):
        session.add(Component(id=cid, name=cid, kind="service", tier=tier))
    session.flush()
    return session


def test_open_and_update_set_the_key_times(db: Session) -> None:
    incident = open_incident(session=db, title="DB down", components=["db"], now=T0)
    assert incident.impact is Impact.CRITICAL and incident.taken_over and not incident.auto
    acknowledge_incident(session=db, incident_id=incident.id, now=T0 + timedelta(minutes=2))
    acknowledge_incident(session=db, incident_id=incident.id, now=T0 + timedelta(minutes=3))
    post_update(
        session=db,
        incident_id=incident.id,
        body="Fixed.",
        status=IncidentStatus.MONITORING,
        now=T0 + timedelta(minutes=9),
    )
    post_update(
        session=db, incident_id=incident.id, body="", status=IncidentStatus.RESOLVED, now=T0 + timedelta(minutes=20)
    )
    got = get_incident(session=db, incident_id=incident.id)
    assert got.acknowledged_at == T0 + timedelta(minutes=2)  # the first acknowledgement counts
    assert got.mitigated_at == T0 + timedelta(minutes=9) and got.resolved_at == T0 + timedelta(minutes=20)
    assert [u.kind for u in got.updates] == [
        EntryKind.UPDATE,
        EntryKind.EVENT,
        EntryKind.EVENT,
        EntryKind.UPDATE,
        EntryKind.UPDATE,
    ]


def test_component_status_changes_recompute_the_impact(db: Session) -> None:
    incident = open_incident(session=db, title="Slow", components={"web": CS.DEGRADED_PERFORMANCE}, now=T0)
    assert incident.impact is Impact.MINOR
    set_component_status(session=db, incident_id=incident.id, component_id="db", status=CS.PARTIAL_OUTAGE, now=T0)
    assert incident.impact is Impact.MAJOR
    set_component_status(session=db, incident_id=incident.id, component_id="db", status=None, now=T0)
    assert {c.component_id for c in incident.components} == {"web"} and incident.impact is Impact.MINOR


def test_merge_moves_timeline_and_components(db: Session) -> None:
    a = open_incident(session=db, title="DB", components=["db"], body="db first", now=T0)
    b = open_incident(
        session=db, title="Web", components=["web", "db"], body="web first", now=T0 - timedelta(minutes=5)
    )
    merge_incidents(session=db, source_id=b.id, target_id=a.id, now=T0 + timedelta(minutes=1))
    target, source = get_incident(session=db, incident_id=a.id), get_incident(session=db, incident_id=b.id)
    assert {c.component_id for c in target.components} == {"db", "web"}
    assert {u.body for u in target.updates} >= {"db first", "web first"}
    assert target.started_at == T0 - timedelta(minutes=5)  # the earlier start of the two
    assert source.status is IncidentStatus.RESOLVED and source.merged_into == a.id and source.components == []
    with pytest.raises(InvalidIncidentError) as excinfo:
        post_update(session=db, incident_id=b.id, body="late")
    assert excinfo.value.field == "incident_id"
    with pytest.raises(InvalidIncidentError):
        merge_incidents(session=db, source_id=a.id, target_id=a.id)


def test_split_moves_components_to_a_new_incident(db: Session) -> None:
    incident = open_incident(session=db, title="Both", components=["db", "web"], now=T0)
    incident.probable_cause = "web"
    new = split_incident(session=db, incident_id=incident.id, components=["web"], now=T0 + timedelta(minutes=1))
    assert {c.component_id for c in new.components} == {"web"} and new.probable_cause == "web"
    assert new.started_at == T0
    old = get_incident(session=db, incident_id=incident.id)
    assert {c.component_id for c in old.components} == {"db"} and old.probable_cause is None
    with pytest.raises(InvalidIncidentError, match="at least one"):
        split_incident(session=db, incident_id=incident.id, components=["db"])
    with pytest.raises(InvalidIncidentError, match="not affected"):
        split_incident(session=db, incident_id=incident.id, components=["cron"])


def test_bad_input_names_the_field(db: Session) -> None:
    with pytest.raises(IncidentNotFoundError):
        get_incident(session=db, incident_id=404)
    with pytest.raises(InvalidIncidentError) as excinfo:
        open_incident(session=db, title="x", components=["nope"])
    assert excinfo.value.field == "components" and "nope" in str(excinfo.value)
    with pytest.raises(InvalidIncidentError) as excinfo:
        open_incident(session=db, title="  ")
    assert excinfo.value.field == "title"
