"""The incident worker: follows the ``state_changes`` outbox by id and turns component changes into incidents.

Durable and exactly once: the position in the outbox (``outbox_cursors``, consumer ``incidents``) moves in the
same transaction as the incidents it produced, so a crash rolls both back and a restart continues where the
last commit stopped; no change is applied twice. On PostgreSQL the cursor row is locked for the transaction,
so two servers on one database take turns instead of both applying a batch.

A database that never had the worker starts reading at the end of the outbox: history from before the worker
existed does not open incidents for outages long over. The quiet period is measured with ``clock`` (a
parameter, so tests can move time).

A batch costs what its rows cost, not what the incidents hold (a hypervisor's incident lists 10,000
components): the affected lists of open incidents are kept between batches (:class:`IncidentCache`, checked
against each incident's row and reloaded when anyone else changed it), only the components a batch adds or
changes are written, and timeline events are inserted in one statement per batch. The blast radius of a new
probable cause is listed at once (``grouping`` rule 2), so the thousands of dependants' own failures that follow
only add timeline events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from vigil.incidents.cache import IncidentCache, Observed, States
from vigil.incidents.grouping import (
    Change,
    IncidentView,
    Radii,
    automatic_merges,
    group_changes,
    impact_of,
    quiet_resolutions,
)
from vigil.incidents.models import (
    TITLE_LIMIT,
    ComponentStatus,
    EntryKind,
    EventType,
    Incident,
    IncidentComponent,
    IncidentStatus,
    IncidentUpdate,
    OutboxCursor,
)
from vigil.incidents.reshape import merge_into
from vigil.incidents.service import add_event, set_status
from vigil.model.types import Model
from vigil.monitors.models import StateChange
from vigil.monitors.store import state_changes_since

__all__ = [
    "BATCH_SIZE",
    "CONSUMER",
    "ChangeHook",
    "ensure_cursor",
    "process_outbox",
    "resolve_quiet",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

CONSUMER = "incidents"
BATCH_SIZE = 500  # outbox rows per transaction
SAMPLE = 20  # component ids named in the timeline event that lists a blast radius

# Notifications (issue 4): called for each incident the worker opens (previous status None) or moves to another
# status, in the transaction of that change, so what it queues commits or rolls back with the change itself.
ChangeHook = Callable[[Session, Incident, IncidentStatus | None, datetime], None]

_IC = cast(Table, IncidentComponent.__table__)
_UPDATES = cast(Table, IncidentUpdate.__table__)


def utcnow() -> datetime:
    """The worker's default clock."""
    return datetime.now(UTC)


def ensure_cursor(*, session: Session, at_end: bool = True) -> int:
    """Create the worker's cursor if missing (at the end of the outbox, or at its start) and return its position."""
    cursor = session.get(OutboxCursor, CONSUMER)
    if cursor is None:
        last = session.scalar(select(func.max(StateChange.id))) if at_end else None
        cursor = OutboxCursor(consumer=CONSUMER, last_id=int(last or 0))
        session.add(cursor)
        session.flush()
    return cursor.last_id


# -- one batch ------------------------------------------------------------------------------------------------
def _open_incidents(session: Session) -> list[Incident]:
    # Rows only: not the components (the cache has them) nor the timelines (grouping never reads them).
    query = (
        select(Incident)
        .where(Incident.status != IncidentStatus.RESOLVED, Incident.merged_into.is_(None))
        .order_by(Incident.id)
    )
    return list(session.scalars(query))


def _view(incident: Incident, components: dict[str, ComponentStatus]) -> IncidentView:
    return IncidentView(
        id=incident.id,
        probable_cause=incident.probable_cause,
        status=incident.status,
        components=components,
        started_at=incident.started_at,
        impact=incident.impact,
        taken_over=incident.taken_over,
        auto=incident.auto,
        mitigated_at=incident.mitigated_at,
        title=incident.title,
    )


def process_outbox(
    *,
    session: Session,
    model: Model,
    now: datetime,
    limit: int = BATCH_SIZE,
    on_change: ChangeHook | None = None,
    cache: IncidentCache | None = None,
) -> int:
    """Apply the next ``limit`` outbox rows after the cursor to incidents and move the cursor past them.

    Returns how many outbox rows were consumed (monitor changes included, which grouping skips: their
    component's change says the same through the model). The caller commits. ``cache``: what a previous batch
    of the same caller left (the caller clears it when a batch fails); None reads everything.
    """
    cursor = session.get(OutboxCursor, CONSUMER, with_for_update=True)
    if cursor is None:
        ensure_cursor(session=session, at_end=False)
        cursor = session.get(OutboxCursor, CONSUMER, with_for_update=True)
        assert cursor is not None
    rows = state_changes_since(session=session, after_id=cursor.last_id, limit=limit)
    if not rows:
        return 0
    changes = [
        Change(r.id, r.component_id, r.from_state, r.to_state, r.cause, r.at, r.reason)
        for r in rows
        if r.component_id is not None
    ]
    if changes:
        _apply_changes(session, model, changes, now, on_change, cache or IncidentCache())
    cursor.last_id = rows[-1].id
    session.flush()
    return len(rows)


class _Batch:
    """What one batch writes besides the incident rows: timeline events and component rows, in bulk."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.added: list[dict[str, Any]] = []
        self.changed: list[dict[str, Any]] = []

    def event(
        self,
        incident_id: int,
        event_type: EventType,
        body: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        status: IncidentStatus | None = None,
    ) -> None:
        self.events.append(
            {
                "incident_id": incident_id,
                "kind": EntryKind.EVENT,
                "at": at,
                "display_at": at,
                "status": status,
                "body": body,
                "author": None,
                "event_type": event_type,
                "data": data,
            }
        )

    def state_event(self, incident_id: int, change: Change) -> None:
        because = f" (caused by {change.cause})" if change.cause else ""
        body = f"{change.component_id}: {change.from_state.value} → {change.to_state.value}{because}"
        data = {
            "state_change_id": change.id,
            "component_id": change.component_id,
            "from": change.from_state.value,
            "to": change.to_state.value,
            "cause": change.cause,
            "reason": change.reason,
        }
        self.event(incident_id, EventType.STATE_CHANGE, body, change.at, data)

    def write(self, session: Session) -> None:
        # executemany on the tables: no ORM objects, no flush walking the incident's collections.
        if self.added:
            session.execute(insert(_IC), self.added)
        if self.changed:
            statement = (
                update(_IC)
                .where(_IC.c.incident_id == bindparam("b_incident"), _IC.c.component_id == bindparam("b_component"))
                .values(status=bindparam("b_status"))
            )
            session.execute(statement, self.changed)
        if self.events:
            session.execute(insert(_UPDATES), self.events)
        self.added, self.changed, self.events = [], [], []


def _apply_changes(
    session: Session,
    model: Model,
    changes: list[Change],
    now: datetime,
    on_change: ChangeHook | None,
    cache: IncidentCache,
) -> None:
    open_rows = _open_incidents(session)
    incidents = {i.id: i for i in open_rows}
    cache.retain(incidents)
    lists = cache.lists(session, open_rows)
    # The table may already be ahead of this batch; for the components the batch names, the batch's last word
    # is the one grouping must see, so that each batch is decided as it happened.
    states = States(session, {c.component_id: c.to_state for c in changes})
    radii = cache.radii(model)  # shared by grouping and the merge check, and kept while the model stays
    views = [_view(i, lists[i.id]) for i in open_rows]
    decided = group_changes(model, views, changes, states, radii, observed=Observed(session))
    batch = _Batch()
    notify: list[tuple[Incident, IncidentStatus | None]] = []
    causes: list[int] = []  # incidents opened, or whose probable cause changed: each may explain others
    current = {v.id: v for v in views if v.id is not None}
    for view in decided:
        if view.id is None:
            incident = _open_auto(session, view, now, states, batch)
            incidents[incident.id] = incident
            notify.append((incident, None))
            causes.append(incident.id)
        else:
            incident = incidents[view.id]
            previous = incident.status
            if view.probable_cause != incident.probable_cause:
                causes.append(incident.id)
            _update_auto(incident, view, lists[incident.id], now, states, batch)
            if incident.status is not previous:
                notify.append((incident, previous))
        current[incident.id] = view
        view.id = incident.id
    batch.write(session)  # before the merges: the merged incidents' new events move with their timelines
    merged = _merge_explained(session, model, radii, incidents, current, causes, now) if causes else set()
    session.flush()
    for incident_id, view in current.items():
        if incident_id in merged:
            cache.forget(incident_id)
        elif incident_id in incidents:
            cache.remember(incidents[incident_id], view.components)
    if on_change is not None:
        # After the merges: an incident merged away is not announced (a merge queues no notification, as when a
        # person merges), so a storm's incidents opened and merged in one batch reach nobody.
        for announced, before in notify:
            if announced.id not in merged:
                session.expire(announced, ["components"])  # written in bulk: read them afresh if the hook asks
                on_change(session, announced, before, now)


def _merge_explained(
    session: Session,
    model: Model,
    radii: Radii,
    incidents: dict[int, Incident],
    views: dict[int, IncidentView],
    causes: list[int],
    now: datetime,
) -> set[int]:
    """Merge the open incidents explained by a new probable cause into its incident (rule 5 of grouping);
    return the ids merged away. Once per batch: one radius per cause, whatever the number of rows."""
    pairs = automatic_merges(model, list(views.values()), causes, radii)
    targets: set[int] = set()
    for source_id, target_id in pairs:
        source, target = incidents[source_id], incidents[target_id]
        source_view, target_view = views[source_id], views[target_id]
        cause_status = source_view.components.get(source.probable_cause or "")
        failed = "degraded" if cause_status is ComponentStatus.DEGRADED_PERFORMANCE else "down"
        reason = f"{source.probable_cause} {failed} is explained by {target.probable_cause}"
        merge_into(session=session, source=source, target=target, now=now, reason=reason, refresh=False)
        for cid, status in source_view.components.items():  # a component in both keeps the target's status
            target_view.components.setdefault(cid, status)
        targets.add(target_id)
        logger.info("incident %d merged into %d: %s", source_id, target_id, reason)
    for target_id in targets:
        components = views[target_id].components
        tiers = {c: model.components[c].tier for c in components if c in model.components}
        incidents[target_id].impact = impact_of(tiers, components)
    if pairs:
        session.flush()
    return {source_id for source_id, _ in pairs}


def _components_written(
    incident_id: int,
    view: IncidentView,
    before: Mapping[str, ComponentStatus],
    states: States,
    batch: _Batch,
) -> None:
    """Queue the rows of the components this batch added or changed; drop those without a component row."""
    new = [cid for cid in view.dirty if cid not in before]
    existing = states.existing(new) if new else set()
    for cid in sorted(view.dirty):
        status = view.components[cid]
        if cid in before:
            batch.changed.append({"b_incident": incident_id, "b_component": cid, "b_status": status})
        elif cid in existing:
            batch.added.append({"incident_id": incident_id, "component_id": cid, "status": status})
        else:
            del view.components[cid]  # not in the database (left the config): nothing to list


def _radius_event(incident_id: int, view: IncidentView, now: datetime, batch: _Batch) -> None:
    listed = [cid for cid in view.inferred if cid in view.components]
    if not listed:
        return
    counts: dict[str, int] = {}
    for cid in listed:
        status = view.components[cid].value
        counts[status] = counts.get(status, 0) + 1
    detail = ", ".join(f"{n:,} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
    body = f"Blast radius of {view.probable_cause}: {len(listed):,} components affected ({detail})."
    data = {"cause": view.probable_cause, "count": len(listed), "statuses": counts, "sample": listed[:SAMPLE]}
    batch.event(incident_id, EventType.COMPONENT, body, now, data)


def _open_auto(session: Session, view: IncidentView, now: datetime, states: States, batch: _Batch) -> Incident:
    incident = Incident(
        title=view.title.strip()[:TITLE_LIMIT] or str(view.probable_cause),
        status=IncidentStatus.INVESTIGATING,
        impact=view.impact,
        probable_cause=view.probable_cause,
        auto=True,
        taken_over=False,
        started_at=view.started_at,
        detected_at=now,
        updated_at=now,
    )
    session.add(incident)
    set_status(incident, view.status, now)
    session.flush()  # its id, for the rows below
    _components_written(incident.id, view, {}, states, batch)
    body = f"Opened automatically: probable cause {view.probable_cause}."
    listed = {c: s.value for c, s in view.components.items()}
    data: dict[str, Any] = {"probable_cause": view.probable_cause, "count": len(listed)}
    data["components"] = listed if len(listed) <= SAMPLE else {}  # a radius of thousands: in the event below
    batch.event(incident.id, EventType.OPENED, body, now, data)
    _radius_event(incident.id, view, now, batch)
    for change in view.changes:
        batch.state_event(incident.id, change)
    logger.info("incident %d opened: %s", incident.id, view.title)
    return incident


def _update_auto(
    incident: Incident,
    view: IncidentView,
    before: Mapping[str, ComponentStatus],
    now: datetime,
    states: States,
    batch: _Batch,
) -> None:
    _components_written(incident.id, view, before, states, batch)
    if view.probable_cause != incident.probable_cause:
        body = f"Probable cause is now {view.probable_cause} (was {incident.probable_cause})."
        incident.probable_cause = view.probable_cause
        batch.event(incident.id, EventType.CAUSE, body, now)
    _radius_event(incident.id, view, now, batch)
    for change in view.changes:
        batch.state_event(incident.id, change)
    incident.impact = view.impact
    incident.updated_at = now
    if view.status is not incident.status:
        set_status(incident, view.status, now)
        body = {
            IncidentStatus.MONITORING: "Every affected component is operational again; monitoring.",
            IncidentStatus.INVESTIGATING: "A component failed again; investigating.",
        }.get(view.status, f"Status: {view.status.value}.")
        batch.event(incident.id, EventType.STATUS, body, now, status=view.status)
    # Mitigation is the time of the last recovery, whoever runs the incident; a new failure clears it.
    incident.mitigated_at = view.mitigated_at


def resolve_quiet(
    *, session: Session, now: datetime, quiet_period: timedelta, on_change: ChangeHook | None = None
) -> list[int]:
    """Resolve the automatic incidents quiet in ``monitoring`` for ``quiet_period``; return their ids."""
    incidents = {i.id: i for i in _open_incidents(session)}
    done = quiet_resolutions([_view(i, {}) for i in incidents.values()], now=now, quiet_period=quiet_period)
    for incident_id in done:
        incident = incidents[incident_id]
        previous = incident.status
        set_status(incident, IncidentStatus.RESOLVED, now)
        minutes = quiet_period.total_seconds() / 60
        body = f"No new failure for {minutes:g} min after recovery; resolved."
        add_event(
            session=session,
            incident=incident,
            event_type=EventType.STATUS,
            body=body,
            at=now,
            status=IncidentStatus.RESOLVED,
        )
        if on_change is not None:
            on_change(session, incident, previous, now)
        logger.info("incident %d resolved after its quiet period", incident_id)
    return done
