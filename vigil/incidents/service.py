"""The incidents service: open, update, acknowledge and resolve incidents, and set their components (merge and
split are in :mod:`vigil.incidents.reshape`).

Plain keyword-only functions on a session: they flush, never commit (the caller owns the transaction). Every
change a person makes through them marks the incident as taken over, so the engine stops moving its status
(acknowledging does not: it says "someone is on it", not "a person runs this now").

Errors::

    IncidentError
     ├── IncidentNotFoundError (also LookupError): no incident with that id
     └── InvalidIncidentError (also ValueError): bad input; ``field`` names the field at fault
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vigil.incidents.grouping import impact_of
from vigil.incidents.models import (
    TITLE_LIMIT,
    ComponentStatus,
    EntryKind,
    EventType,
    Impact,
    Incident,
    IncidentComponent,
    IncidentStatus,
    IncidentUpdate,
    Notice,
)
from vigil.model.types import Tier
from vigil.monitors.models import Component

__all__ = [
    "IncidentError",
    "IncidentNotFoundError",
    "InvalidIncidentError",
    "acknowledge_incident",
    "add_event",
    "get_incident",
    "list_incidents",
    "moment_or_now",
    "open_for_change",
    "open_incident",
    "parse_choice",
    "post_update",
    "refresh_impact",
    "resolve_incident",
    "set_component_status",
    "set_status",
]

E = TypeVar("E", bound=StrEnum)


class IncidentError(Exception):
    """Base of the incidents service's errors; ``field`` names the input at fault, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IncidentNotFoundError(IncidentError, LookupError):
    pass


class InvalidIncidentError(IncidentError, ValueError):
    pass


def moment_or_now(now: datetime | None) -> datetime:
    """Return ``now`` when given (tests, replays), else the current UTC time."""
    return now or datetime.now(UTC)


def parse_choice(enum: type[E], value: str, *, field: str) -> E:
    """Return the member of ``enum`` whose value is ``value``; raises InvalidIncidentError listing the choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise InvalidIncidentError(f"{field}: {value!r} is not one of {choices}", field=field) from None


def get_incident(*, session: Session, incident_id: int) -> Incident:
    """Return the incident with its components and timeline; raises IncidentNotFoundError."""
    query = (
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.components), selectinload(Incident.updates))
    )
    incident = session.scalars(query).one_or_none()
    if incident is None:
        raise IncidentNotFoundError(f"no incident with id {incident_id}", field="incident_id")
    return incident


def list_incidents(*, session: Session, open_only: bool | None = None, limit: int = 100) -> list[Incident]:
    """Return incidents, newest first: all, only open ones (``open_only=True``) or only resolved ones (False)."""
    query = select(Incident).options(selectinload(Incident.components)).order_by(Incident.id.desc()).limit(limit)
    if open_only is True:
        query = query.where(Incident.status != IncidentStatus.RESOLVED)
    elif open_only is False:
        query = query.where(Incident.status == IncidentStatus.RESOLVED)
    return list(session.scalars(query))


def _tiers(session: Session, ids: Iterable[str]) -> dict[str, Tier]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(select(Component.id, Component.tier).where(Component.id.in_(wanted)))
    return {cid: tier for cid, tier in rows}


def _check_components(session: Session, ids: Iterable[str], *, field: str = "components") -> None:
    wanted = set(ids)
    found = set(session.scalars(select(Component.id).where(Component.id.in_(sorted(wanted)))))
    if missing := sorted(wanted - found):
        raise InvalidIncidentError(f"{field}: unknown component(s) {', '.join(missing)}", field=field)


def refresh_impact(session: Session, incident: Incident) -> None:
    """Recompute the incident's impact from its affected components' statuses and tiers."""
    statuses = {c.component_id: c.status for c in incident.components}
    incident.impact = impact_of(_tiers(session, statuses), statuses)


def add_event(
    *,
    session: Session,
    incident: Incident,
    event_type: EventType,
    body: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    status: IncidentStatus | None = None,
) -> IncidentUpdate:
    """Append an automatic entry to the incident's timeline and return it."""
    if incident.id is None:
        session.flush()  # the entry needs the incident's id
    entry = IncidentUpdate(
        incident_id=incident.id,
        kind=EntryKind.EVENT,
        at=at,
        display_at=at,
        status=status,
        body=body,
        event_type=event_type,
        data=data,
    )
    if "updates" in sa_inspect(incident).unloaded:
        # Appending would load the whole timeline, and each flush would then walk it: an incident gathering
        # thousands of events (a hypervisor under 2,000 VMs) made every event dearer than the last
        # (bench_incidents.py). A new row is enough; the caller's transaction flushes it.
        session.add(entry)
    else:
        incident.updates.append(entry)  # loaded already: keep the collection true for whoever reads it next
    return entry


def set_status(incident: Incident, status: IncidentStatus, now: datetime) -> None:
    """Move the incident to ``status`` and set the key times that transition stands for."""
    previous = incident.status
    incident.status = status
    incident.updated_at = now
    if status is IncidentStatus.MONITORING:
        incident.mitigated_at = incident.mitigated_at or now
        incident.resolved_at = None
    elif status is IncidentStatus.RESOLVED:
        incident.mitigated_at = incident.mitigated_at or now
        incident.resolved_at = incident.resolved_at if previous is IncidentStatus.RESOLVED else now
    else:  # broken again, or still: it is not mitigated
        incident.mitigated_at = None
        incident.resolved_at = None


def open_incident(
    *,
    session: Session,
    title: str,
    components: Mapping[str, ComponentStatus] | Sequence[str] = (),
    status: IncidentStatus = IncidentStatus.INVESTIGATING,
    impact: Impact | None = None,
    body: str = "",
    author: str | None = None,
    probable_cause: str | None = None,
    auto: bool = False,
    started_at: datetime | None = None,
    now: datetime | None = None,
) -> Incident:
    """Open an incident and return it (flushed, with its id). A list of component ids means major outage each.

    ``impact`` None: worked out from the components' tiers. Raises InvalidIncidentError for an empty or too long
    title or an unknown component.
    """
    now = moment_or_now(now)
    title = title.strip()
    if not title or len(title) > TITLE_LIMIT:
        raise InvalidIncidentError(f"title: must be 1 to {TITLE_LIMIT} characters", field="title")
    statuses = (
        dict(components) if isinstance(components, Mapping) else dict.fromkeys(components, ComponentStatus.MAJOR_OUTAGE)
    )
    _check_components(session, statuses)
    incident = Incident(
        title=title,
        status=IncidentStatus.INVESTIGATING,
        impact=Impact.NONE,
        probable_cause=probable_cause,
        auto=auto,
        taken_over=not auto,  # a person opened it: the engine does not resolve it behind their back
        started_at=started_at or now,
        detected_at=now,
        updated_at=now,
        components=[IncidentComponent(component_id=c, status=s) for c, s in sorted(statuses.items())],
    )
    session.add(incident)
    set_status(incident, status, now)
    if impact is None:
        refresh_impact(session, incident)
    else:
        incident.impact = impact
    session.flush()
    if auto:
        data = {"probable_cause": probable_cause, "components": {c: s.value for c, s in statuses.items()}}
        add_event(session=session, incident=incident, event_type=EventType.OPENED, body=body, at=now, data=data)
    else:
        entry = _person_update(incident, body=body or f"Incident opened: {title}", status=status, author=author, at=now)
        entry.notice = Notice.OPENED  # the server's dispatcher tells channels and subscribers (docs/notifications.md)
    session.flush()
    return incident


def _person_update(
    incident: Incident,
    *,
    body: str,
    status: IncidentStatus | None,
    author: str | None,
    at: datetime,
    display_at: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> IncidentUpdate:
    entry = IncidentUpdate(
        kind=EntryKind.UPDATE, at=at, display_at=display_at or at, status=status, body=body, author=author, data=data
    )
    incident.updates.append(entry)
    return entry


def open_for_change(session: Session, incident_id: int) -> Incident:
    """Return the incident to change; raises for an unknown one, or one merged into another."""
    incident = get_incident(session=session, incident_id=incident_id)
    if incident.merged_into is not None:
        raise InvalidIncidentError(
            f"incident {incident_id} was merged into {incident.merged_into}; change that one", field="incident_id"
        )
    return incident


def post_update(
    *,
    session: Session,
    incident_id: int,
    body: str,
    status: IncidentStatus | None = None,
    author: str | None = None,
    display_at: datetime | None = None,
    now: datetime | None = None,
) -> IncidentUpdate:
    """Write a person's update (Markdown ``body``, optional status change, public time) and return it.

    Raises IncidentNotFoundError, InvalidIncidentError for an empty update or a merged incident.
    """
    now = moment_or_now(now)
    incident = open_for_change(session, incident_id)
    if not body.strip() and status is None:
        raise InvalidIncidentError("body: an update needs a message or a status", field="body")
    previous = incident.status
    if status is not None:
        set_status(incident, status, now)
    incident.taken_over = True
    incident.updated_at = now
    data = {"previous_status": previous.value}  # what the message says it was, whatever happens before it is sent
    entry = _person_update(incident, body=body, status=status, author=author, at=now, display_at=display_at, data=data)
    entry.notice = Notice.UPDATE
    session.flush()
    return entry


def resolve_incident(
    *, session: Session, incident_id: int, body: str = "", author: str | None = None, now: datetime | None = None
) -> IncidentUpdate:
    """Resolve the incident (a person's update with status resolved) and return that update."""
    return post_update(
        session=session,
        incident_id=incident_id,
        body=body or "Resolved.",
        status=IncidentStatus.RESOLVED,
        author=author,
        now=now,
    )


def acknowledge_incident(
    *, session: Session, incident_id: int, author: str | None = None, now: datetime | None = None
) -> Incident:
    """Record that someone is on it (the first acknowledgement's time is kept) and return the incident."""
    now = moment_or_now(now)
    incident = open_for_change(session, incident_id)
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
    incident.updated_at = now
    body = f"Acknowledged by {author}." if author else "Acknowledged."
    data = {"author": author}
    entry = add_event(
        session=session, incident=incident, event_type=EventType.ACKNOWLEDGED, body=body, at=now, data=data
    )
    entry.notice = Notice.ACKNOWLEDGED  # the team's channels hear who is on it (not the subscribers)
    return incident


def set_component_status(
    *,
    session: Session,
    incident_id: int,
    component_id: str,
    status: ComponentStatus | None,
    author: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Add an affected component, change its status, or (``status`` None) remove it; return the incident.

    Raises IncidentNotFoundError, InvalidIncidentError for an unknown component or removing one not affected.
    """
    now = moment_or_now(now)
    incident = open_for_change(session, incident_id)
    _check_components(session, [component_id], field="component_id")
    current = {c.component_id: c for c in incident.components}
    if status is None:
        if component_id not in current:
            raise InvalidIncidentError(
                f"component_id: {component_id} is not affected by {incident_id}", field="component_id"
            )
        incident.components.remove(current[component_id])
        body = f"{component_id} no longer affected."
    elif component_id in current:
        current[component_id].status = status
        body = f"{component_id}: {status.value}."
    else:
        incident.components.append(IncidentComponent(component_id=component_id, status=status))
        body = f"{component_id} affected: {status.value}."
    incident.taken_over = True
    incident.updated_at = now
    session.flush()
    refresh_impact(session, incident)
    data = {"component_id": component_id, "status": status.value if status else None, "author": author}
    add_event(session=session, incident=incident, event_type=EventType.COMPONENT, body=body, at=now, data=data)
    return incident
