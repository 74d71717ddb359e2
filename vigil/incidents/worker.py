"""The incident worker: follows the ``state_changes`` outbox by id and turns component changes into incidents.

Durable and exactly once: the position in the outbox (``outbox_cursors``, consumer ``incidents``) moves in the
same transaction as the incidents it produced, so a crash rolls both back and a restart continues where the
last commit stopped; no change is applied twice. On PostgreSQL the cursor row is locked for the transaction,
so two servers on one database take turns instead of both applying a batch.

A database that never had the worker starts reading at the end of the outbox: history from before the worker
existed does not open incidents for outages long over. The quiet period is measured with ``clock`` (a
parameter, so tests can move time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, selectinload

from vigil.db import session_scope
from vigil.incidents.grouping import Change, IncidentView, Radii, automatic_merges, group_changes, quiet_resolutions
from vigil.incidents.models import (
    ComponentStatus,
    EventType,
    Incident,
    IncidentComponent,
    IncidentStatus,
    OutboxCursor,
)
from vigil.incidents.reshape import merge_into
from vigil.incidents.service import add_event, open_incident, set_status
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, StateChange
from vigil.monitors.store import state_changes_since

__all__ = ["CONSUMER", "ChangeHook", "IncidentWorker", "ensure_cursor", "process_outbox", "resolve_quiet"]

logger = logging.getLogger(__name__)

CONSUMER = "incidents"
BATCH_SIZE = 500  # outbox rows per transaction

# Notifications (issue 4): called for each incident the worker opens (previous status None) or moves to another
# status, in the transaction of that change, so what it queues commits or rolls back with the change itself.
ChangeHook = Callable[[Session, Incident, IncidentStatus | None, datetime], None]


def _utcnow() -> datetime:
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


def _open_incidents(session: Session) -> list[Incident]:
    query = (
        select(Incident)
        .where(Incident.status != IncidentStatus.RESOLVED, Incident.merged_into.is_(None))
        # Not the timelines: grouping never reads them, and loading every event of every open incident on each
        # batch was most of the worker's time in a storm (bench_incidents.py).
        .options(selectinload(Incident.components))
        .order_by(Incident.id)
    )
    return list(session.scalars(query))


def _view(incident: Incident) -> IncidentView:
    return IncidentView(
        id=incident.id,
        probable_cause=incident.probable_cause,
        status=incident.status,
        components={c.component_id: c.status for c in incident.components},
        started_at=incident.started_at,
        impact=incident.impact,
        taken_over=incident.taken_over,
        auto=incident.auto,
        mitigated_at=incident.mitigated_at,
        title=incident.title,
    )


def process_outbox(
    *, session: Session, model: Model, now: datetime, limit: int = BATCH_SIZE, on_change: ChangeHook | None = None
) -> int:
    """Apply the next ``limit`` outbox rows after the cursor to incidents and move the cursor past them.

    Returns how many outbox rows were consumed (monitor changes included, which grouping skips: their
    component's change says the same through the model). The caller commits.
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
        _apply_changes(session, model, changes, now, on_change)
    cursor.last_id = rows[-1].id
    session.flush()
    return len(rows)


def _apply_changes(
    session: Session, model: Model, changes: list[Change], now: datetime, on_change: ChangeHook | None
) -> None:
    incidents = {i.id: i for i in _open_incidents(session)}
    # A comprehension, not dict(): a Result has keys() (its column names), so dict() would take it for a mapping.
    states: dict[str, ComponentState] = {
        cid: state for cid, state in session.execute(select(Component.id, Component.state))
    }
    # The table may already be ahead of this batch; for the components the batch names, the batch's last word
    # is the one grouping must see, so that each batch is decided as it happened.
    states.update((c.component_id, c.to_state) for c in changes)
    radii = Radii(model)  # one per batch, shared by grouping and the merge check
    decided = group_changes(model, [_view(i) for i in incidents.values()], changes, states, radii)
    notify: list[tuple[Incident, IncidentStatus | None]] = []
    causes: list[int] = []  # incidents opened, or whose probable cause changed: each may explain others
    for view in decided:
        if view.id is None:
            incident = _open_auto(session, view, now)
            incidents[incident.id] = incident
            notify.append((incident, None))
            causes.append(incident.id)
        else:
            incident = incidents[view.id]
            previous = incident.status
            if view.probable_cause != incident.probable_cause:
                causes.append(incident.id)
            _update_auto(session, incident, view, now)
            if incident.status is not previous:
                notify.append((incident, previous))
    merged = _merge_explained(session, model, radii, incidents, causes, now) if causes else set()
    if on_change is not None:
        # After the merges: an incident merged away is not announced (a merge queues no notification, as when a
        # person merges), so a storm's incidents opened and merged in one batch reach nobody.
        for announced, before in notify:
            if announced.id not in merged:
                on_change(session, announced, before, now)


def _merge_explained(
    session: Session, model: Model, radii: Radii, incidents: dict[int, Incident], causes: list[int], now: datetime
) -> set[int]:
    """Merge the open incidents explained by a new probable cause into its incident (rule 5 of grouping);
    return the ids merged away. Once per batch: one radius per cause, whatever the number of rows."""
    pairs = automatic_merges(model, [_view(i) for i in incidents.values()], causes, radii)
    for source_id, target_id in pairs:
        source, target = incidents[source_id], incidents[target_id]
        failed = "degraded" if _cause_status(source) is ComponentStatus.DEGRADED_PERFORMANCE else "down"
        reason = f"{source.probable_cause} {failed} is explained by {target.probable_cause}"
        merge_into(session=session, source=source, target=target, now=now, reason=reason)
        logger.info("incident %d merged into %d: %s", source_id, target_id, reason)
    if pairs:
        session.flush()
    return {source_id for source_id, _ in pairs}


def _cause_status(incident: Incident) -> ComponentStatus | None:
    return next((c.status for c in incident.components if c.component_id == incident.probable_cause), None)


def _state_event(session: Session, incident: Incident, change: Change) -> None:
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
    add_event(session=session, incident=incident, event_type=EventType.STATE_CHANGE, body=body, at=change.at, data=data)


def _open_auto(session: Session, view: IncidentView, now: datetime) -> Incident:
    known = set(session.scalars(select(Component.id).where(Component.id.in_(sorted(view.components)))))
    incident = open_incident(
        session=session,
        title=view.title,
        components={c: s for c, s in view.components.items() if c in known},
        impact=view.impact,
        body=f"Opened automatically: probable cause {view.probable_cause}.",
        probable_cause=view.probable_cause,
        auto=True,
        started_at=view.started_at,
        now=now,
    )
    for change in view.changes:
        _state_event(session, incident, change)
    logger.info("incident %d opened: %s", incident.id, view.title)
    return incident


def _update_auto(session: Session, incident: Incident, view: IncidentView, now: datetime) -> None:
    current = {c.component_id: c for c in incident.components}
    known = set(session.scalars(select(Component.id).where(Component.id.in_(sorted(view.components)))))
    for cid, status in sorted(view.components.items()):
        if cid in current:
            current[cid].status = status
        elif cid in known:
            incident.components.append(IncidentComponent(component_id=cid, status=status))
    if view.probable_cause != incident.probable_cause:
        body = f"Probable cause is now {view.probable_cause} (was {incident.probable_cause})."
        incident.probable_cause = view.probable_cause
        add_event(session=session, incident=incident, event_type=EventType.CAUSE, body=body, at=now)
    for change in view.changes:
        _state_event(session, incident, change)
    incident.impact = view.impact
    incident.updated_at = now
    if view.status is not incident.status:
        set_status(incident, view.status, now)
        body = {
            IncidentStatus.MONITORING: "Every affected component is operational again; monitoring.",
            IncidentStatus.INVESTIGATING: "A component failed again; investigating.",
        }.get(view.status, f"Status: {view.status.value}.")
        new_status = view.status
        add_event(session=session, incident=incident, event_type=EventType.STATUS, body=body, at=now, status=new_status)
    # Mitigation is the time of the last recovery, whoever runs the incident; a new failure clears it.
    incident.mitigated_at = view.mitigated_at
    session.flush()


def resolve_quiet(
    *, session: Session, now: datetime, quiet_period: timedelta, on_change: ChangeHook | None = None
) -> list[int]:
    """Resolve the automatic incidents quiet in ``monitoring`` for ``quiet_period``; return their ids."""
    incidents = {i.id: i for i in _open_incidents(session)}
    done = quiet_resolutions([_view(i) for i in incidents.values()], now=now, quiet_period=quiet_period)
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


class IncidentWorker:
    """Runs :func:`process_outbox` and :func:`resolve_quiet` every ``poll_interval`` seconds (``start``/``stop``).

    ``model`` returns the model in force (it changes on reload; None: not loaded yet, nothing is read).
    ``executor`` is where the database work runs (the runtime's single SQLite writer thread).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        model: Callable[[], Model | None],
        quiet_period: timedelta,
        clock: Callable[[], datetime] = _utcnow,
        poll_interval: float = 1.0,
        executor: Executor | None = None,
        on_change: ChangeHook | None = None,
    ) -> None:
        self._engine = engine
        self._on_change = on_change  # notifications (issue 4)
        self._model = model
        self.quiet_period = quiet_period
        self.clock = clock
        self._poll_interval = poll_interval
        self._executor = executor
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.processed = 0  # outbox rows consumed by this process
        self.failures = 0  # rounds that failed in a row (database away): logged once per episode

    def run_once(self) -> int:
        """Consume everything pending in the outbox, then resolve quiet incidents; return rows consumed."""
        model = self._model()
        if model is None:
            return 0
        total = 0
        while True:
            with session_scope(self._engine) as session:
                count = process_outbox(session=session, model=model, now=self.clock(), on_change=self._on_change)
            total += count
            if count < BATCH_SIZE:
                break
        with session_scope(self._engine) as session:
            resolve_quiet(session=session, now=self.clock(), quiet_period=self.quiet_period, on_change=self._on_change)
        self.processed += total
        return total

    async def _in_thread(self, function: Callable[[], int]) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def start(self) -> None:
        """Create the cursor if missing (at the end of the outbox) and start following it."""
        if self._task is not None:
            return

        def init() -> int:
            with session_scope(self._engine) as session:
                return ensure_cursor(session=session)

        await self._in_thread(init)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="vigil-incident-worker")

    async def stop(self) -> None:
        """Stop after the current round, then consume what is left (best effort: it resumes after a restart)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self._in_thread(self.run_once)
        except Exception as exc:
            logger.warning("incident worker stopped with outbox rows left for the next start: %s", exc)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._poll_interval)
            if self._stopping.is_set():
                return
            try:
                await self._in_thread(self.run_once)
                self.failures = 0
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    logger.exception("incident worker round failed; retrying (the outbox position is kept)")
