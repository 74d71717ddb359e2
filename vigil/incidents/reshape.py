"""Merging and splitting incidents: a person reshapes what the engine (or another person) grouped, and the
incident worker merges the incidents a deeper failure explains (:func:`merge_into` with a ``reason``).

Same conventions as :mod:`vigil.incidents.service`: keyword-only, flush, never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from vigil.incidents.models import EventType, Incident, IncidentComponent, IncidentStatus, IncidentUpdate
from vigil.incidents.service import (
    InvalidIncidentError,
    add_event,
    moment_or_now,
    open_for_change,
    open_incident,
    refresh_impact,
    set_status,
)

__all__ = ["merge_incidents", "merge_into", "split_incident"]


def merge_incidents(
    *, session: Session, source_id: int, target_id: int, author: str | None = None, now: datetime | None = None
) -> Incident:
    """Merge ``source_id`` into ``target_id``: its timeline and components join the target (a component in
    both keeps the target's status); the source is resolved with ``merged_into``. Returns the target.

    Raises IncidentNotFoundError, InvalidIncidentError for merging an incident into itself or a merged one.
    """
    now = moment_or_now(now)
    if source_id == target_id:
        raise InvalidIncidentError("into: an incident cannot be merged into itself", field="into")
    source, target = open_for_change(session, source_id), open_for_change(session, target_id)
    return merge_into(session=session, source=source, target=target, author=author, now=now)


def merge_into(
    *,
    session: Session,
    source: Incident,
    target: Incident,
    now: datetime,
    author: str | None = None,
    reason: str | None = None,
    refresh: bool = True,
) -> Incident:
    """Merge the loaded, open ``source`` into ``target`` (see :func:`merge_incidents`) and return the target.

    ``reason`` None: a person merges, and both incidents count as taken over. With a ``reason`` the engine
    merges (the incident worker, rule 5 of :mod:`vigil.incidents.grouping`): the target keeps following the
    engine, and both timelines say why. Neither timeline nor the target's components are loaded: the source's
    entries move in one UPDATE and its components in a few statements that read only the source's (a storm's
    incidents can hold thousands of entries, a hypervisor's incident 10,000 components). ``refresh`` False:
    the caller sets the target's impact (the worker, once for many merges). Queues no notification, whoever
    merges.
    """
    if source.id == target.id or source.merged_into is not None or target.merged_into is not None:
        raise InvalidIncidentError("into: cannot merge an incident into itself or a merged one", field="into")
    session.flush()  # entries and components added but not flushed yet move with the others
    ic = cast(Table, IncidentComponent.__table__)
    moved = session.execute(select(ic.c.component_id, ic.c.status).where(ic.c.incident_id == source.id)).all()
    if moved:
        ids = [cid for cid, _ in moved]
        have: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            query = select(ic.c.component_id).where(ic.c.incident_id == target.id, ic.c.component_id.in_(chunk))
            have.update(session.scalars(query))
        session.execute(delete(ic).where(ic.c.incident_id == source.id))
        rows = [{"incident_id": target.id, "component_id": c, "status": s} for c, s in moved if c not in have]
        if rows:
            session.execute(insert(ic), rows)
    session.expire(source, ["components"])
    session.expire(target, ["components"])
    session.execute(
        update(IncidentUpdate).where(IncidentUpdate.incident_id == source.id).values(incident_id=target.id),
        execution_options={"synchronize_session": "fetch"},
    )
    session.expire(source, ["updates"])
    session.expire(target, ["updates"])
    automatic = reason is not None
    target.started_at = min(target.started_at, source.started_at)
    target.taken_over = target.taken_over or not automatic
    target.updated_at = now
    if refresh:
        refresh_impact(session, target)
    set_status(source, IncidentStatus.RESOLVED, now)
    source.merged_into = target.id
    source.taken_over = source.taken_over or not automatic
    data: dict[str, Any] = {"source": source.id, "target": target.id, "author": author}
    into, merged_in = f"Merged into incident {target.id}.", f"Incident {source.id} merged in."
    if automatic:
        data |= {"automatic": True, "reason": reason}
        into = merged_in = f"merged: {reason} (incident {source.id} into {target.id})."
    add_event(
        session=session,
        incident=target,
        event_type=EventType.MERGED,
        body=merged_in,
        at=now,
        data=data,
    )
    add_event(
        session=session,
        incident=source,
        event_type=EventType.MERGED,
        body=into,
        at=now,
        data=data,
    )
    return target


def split_incident(
    *,
    session: Session,
    incident_id: int,
    components: Sequence[str],
    title: str | None = None,
    author: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Move ``components`` of the incident to a new incident (same status and start) and return the new one.

    Raises IncidentNotFoundError, InvalidIncidentError when a component is not affected by it or none would be left.
    """
    now = moment_or_now(now)
    source = open_for_change(session, incident_id)
    moving = set(components)
    current = {c.component_id: c for c in source.components}
    if not moving:
        raise InvalidIncidentError("components: name at least one component to move", field="components")
    if missing := sorted(moving - set(current)):
        message = f"components: not affected by {incident_id}: {', '.join(missing)}"
        raise InvalidIncidentError(message, field="components")
    if moving == set(current):
        raise InvalidIncidentError("components: a split must leave at least one component behind", field="components")
    moved = {cid: current[cid].status for cid in moving}
    for cid in moving:
        source.components.remove(current[cid])
    cause = source.probable_cause if source.probable_cause in moving else None
    if cause is not None:
        source.probable_cause = None
    new = open_incident(
        session=session,
        title=title or f"Split from incident {source.id}: {', '.join(sorted(moving))}",
        components=moved,
        status=source.status,
        author=author,
        probable_cause=cause,
        started_at=source.started_at,
        now=now,
    )
    source.taken_over = True
    source.updated_at = now
    refresh_impact(session, source)
    data = {"source": source.id, "new": new.id, "components": sorted(moving), "author": author}
    body = f"{', '.join(sorted(moving))} moved to incident {new.id}."
    add_event(session=session, incident=source, event_type=EventType.SPLIT, body=body, at=now, data=data)
    add_event(
        session=session,
        incident=new,
        event_type=EventType.SPLIT,
        body=f"Split from incident {source.id}.",
        at=now,
        data=data,
    )
    return new
