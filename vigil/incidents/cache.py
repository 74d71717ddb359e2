"""What the incident worker keeps between batches, and what it reads only when grouping asks.

:class:`IncidentCache` holds the open incidents' affected lists (a hypervisor's incident lists 10,000
components: reading them back for every batch of a storm made each batch dearer than the last) and the model's
blast radii. :class:`States` and :class:`Observed` read the ``components`` states and the monitors' last
answers on first use only: most batches of a storm never need them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from vigil.incidents.grouping import Radii
from vigil.incidents.models import ComponentStatus, Incident, IncidentComponent
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, Monitor

__all__ = ["RELOAD_AFTER", "IncidentCache", "Observed", "States"]

RELOAD_AFTER = 60.0  # seconds an affected list is trusted from memory before it is read again (a safety net)
_IC = cast(Table, IncidentComponent.__table__)


Stamp = tuple[Any, ...]


def _stamp(incident: Incident) -> Stamp:
    # Every change to an incident's components, by a person (service, reshape) or by this worker, moves
    # ``updated_at``, and a person's also sets ``taken_over``; a merge resolves it.
    return (incident.updated_at, incident.status, incident.taken_over, incident.probable_cause, incident.merged_into)


@dataclass(slots=True)
class _Known:
    stamp: Stamp
    components: dict[str, ComponentStatus]
    loaded: float  # time.monotonic() of the last read from the database


class IncidentCache:
    """The affected lists of the open incidents and the blast radii of the model, kept between batches.

    An entry is used only while the incident's row still says what it said when the entry was written (its
    ``updated_at``, status, ``taken_over``, probable cause, ``merged_into``: whoever changes its components moves
    them), and for at most ``RELOAD_AFTER`` seconds. The worker drops everything when a batch fails: entries
    are written during a transaction that may roll back.
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Known] = {}
        self._radii: Radii | None = None

    def radii(self, model: Model) -> Radii:
        if self._radii is None or self._radii.model is not model:
            self._radii = Radii(model)
        return self._radii

    def clear(self) -> None:
        self._entries.clear()
        self._radii = None

    def lists(self, session: Session, incidents: Iterable[Incident]) -> dict[int, dict[str, ComponentStatus]]:
        """Return each incident's affected components and statuses, reading only those not known (or stale)."""
        found: dict[int, dict[str, ComponentStatus]] = {}
        missing: list[int] = []
        now = time.monotonic()
        for incident in incidents:
            known = self._entries.get(incident.id)
            if known is not None and known.stamp == _stamp(incident) and now - known.loaded < RELOAD_AFTER:
                found[incident.id] = known.components
            else:
                missing.append(incident.id)
        if missing:
            read: dict[int, dict[str, ComponentStatus]] = {i: {} for i in missing}
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                rows = session.execute(
                    select(_IC.c.incident_id, _IC.c.component_id, _IC.c.status).where(_IC.c.incident_id.in_(chunk))
                )
                for incident_id, component_id, status in rows:
                    read[incident_id][component_id] = ComponentStatus(status)
            by_id = {i.id: i for i in incidents}
            for incident_id, components in read.items():
                self._entries[incident_id] = _Known(_stamp(by_id[incident_id]), components, now)
                found[incident_id] = components
        return found

    def remember(self, incident: Incident, components: dict[str, ComponentStatus]) -> None:
        """Record what this batch wrote (flushed, not committed yet: see :meth:`clear`)."""
        known = self._entries.get(incident.id)
        loaded = known.loaded if known is not None else time.monotonic()
        self._entries[incident.id] = _Known(_stamp(incident), components, loaded)

    def forget(self, incident_id: int) -> None:
        self._entries.pop(incident_id, None)

    def retain(self, open_ids: Iterable[int]) -> None:
        keep = set(open_ids)
        for incident_id in [i for i in self._entries if i not in keep]:
            del self._entries[incident_id]


class States(Mapping[str, ComponentState]):
    """Components' states for grouping: the batch's own last word for the components it names, else the
    ``components`` table, read in full only the first time grouping asks about another component (a new
    probable cause's blast radius, a maintenance title): most batches of a storm never do."""

    def __init__(self, session: Session, batch: dict[str, ComponentState]) -> None:
        self._session = session
        self._batch = batch
        self._table: dict[str, ComponentState] | None = None

    def table(self) -> dict[str, ComponentState]:
        if self._table is None:
            rows = self._session.execute(select(Component.id, Component.state))
            self._table = {cid: ComponentState(state) for cid, state in rows}
        return self._table

    def __getitem__(self, key: str) -> ComponentState:
        hit = self._batch.get(key)
        return hit if hit is not None else self.table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**self.table(), **self._batch})

    def __len__(self) -> int:
        return len({**self.table(), **self._batch})

    def existing(self, ids: Iterable[str]) -> set[str]:
        """The ids that have a row in ``components`` (an incident can only list those)."""
        wanted = set(ids)
        if self._table is not None:
            return {cid for cid in wanted if cid in self._table}
        found: set[str] = set()
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update(self._session.scalars(select(Component.id).where(Component.id.in_(chunk))))
        return found


class Observed(Mapping[str, datetime]):
    """When each component's own monitors last answered (the newest ``last_checked_at``), read on first use."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._seen: dict[str, datetime] | None = None

    def _load(self) -> dict[str, datetime]:
        if self._seen is None:
            query = (
                select(Monitor.component_id, func.max(Monitor.last_checked_at))
                .where(Monitor.enabled.is_(True), Monitor.last_checked_at.is_not(None))
                .group_by(Monitor.component_id)
            )
            self._seen = {}
            for cid, seen in self._session.execute(query):
                if isinstance(seen, str):  # SQLite's max() returns the stored text, without the column's type
                    seen = datetime.fromisoformat(seen)
                if seen is not None:
                    self._seen[cid] = seen if seen.tzinfo is not None else seen.replace(tzinfo=UTC)
        return self._seen

    def __getitem__(self, key: str) -> datetime:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())
