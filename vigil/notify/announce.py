"""Tell people of the changes people make (issue 4): an incident opened by hand, an update written, a status set,
an acknowledgement.

The incidents service marks such a timeline entry with a ``notice`` (0008) in the transaction of the change,
whichever process makes it (the API, or ``vigil incident`` in a shell, which has neither the config's channels nor
a dispatcher). The server's dispatcher calls :func:`announce_pending` every round: it queues the deliveries of each
marked entry (routed channels, and subscribers for what the public sees) and clears the mark in one transaction,
so each change is announced once, even with several servers on PostgreSQL (rows are taken with SKIP LOCKED).

What is told:

- ``opened`` and ``update``: the routed channels (as for the engine's own changes: routes that match now plus every
  channel already told about the incident) and the subscribers of the affected components, with the update's
  Markdown message, the status it set and the time shown to the public;
- ``acknowledged``: the routed channels only (who is on it is the team's business, not the public's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vigil.incidents.models import Incident, IncidentStatus, IncidentUpdate, Notice
from vigil.notify.config import NotifyConfig
from vigil.notify.escalation import AckUrl, add_ack_url
from vigil.notify.models import ChangeKind
from vigil.notify.service import enqueue_deliveries, payload_of
from vigil.notify.subscribers import fan_out

__all__ = ["BATCH", "STALE", "announce_pending", "tell", "update_of"]

BATCH = 200  # entries per transaction: people write a few a minute; a script posting thousands still drains fast
# A change older than this when a server first sees it (none ran meanwhile) is not sent: a page about last week's
# update would mislead more than it tells. It stays in the timeline; the server logs how many it skipped.
STALE = timedelta(hours=24)

logger = logging.getLogger(__name__)


def update_of(entry: IncidentUpdate) -> dict[str, Any]:
    """Return the part of a payload that carries a person's update (what the message quotes)."""
    return {
        "id": entry.id,
        "body": entry.body,
        "status": entry.status.value if entry.status is not None else None,
        "author": entry.author,
        "display_at": entry.display_at.isoformat(),
    }


def _previous(entry: IncidentUpdate) -> IncidentStatus | None:
    value = (entry.data or {}).get("previous_status")
    try:
        return IncidentStatus(value) if isinstance(value, str) else None
    except ValueError:  # a value written by a later version: say nothing rather than fail the round
        return None


def announce_pending(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    now: datetime,
    ack_url: AckUrl | None = None,
    limit: int = BATCH,
) -> int:
    """Queue the deliveries of up to ``limit`` marked timeline entries, oldest first, and clear their marks;
    return how many entries were announced. Flushes, never commits."""
    query = select(IncidentUpdate).where(IncidentUpdate.notice.is_not(None)).order_by(IncidentUpdate.id).limit(limit)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":  # another server may be announcing: take what it has not taken
        query = query.with_for_update(skip_locked=True)
    entries = list(session.scalars(query))
    if not entries:
        return 0
    ids = {e.incident_id for e in entries}
    incidents = {
        i.id: i
        for i in session.scalars(
            select(Incident).where(Incident.id.in_(ids)).options(selectinload(Incident.components))
        )
    }
    stale = 0
    for entry in entries:
        notice, entry.notice = entry.notice, None
        incident = incidents.get(entry.incident_id)
        if incident is None or notice is None:
            continue
        if now - entry.at > STALE:
            stale += 1
            continue
        _announce(session, config, owners, incident, entry, notice, now, ack_url)
    if stale:
        logger.warning(
            "%d change(s) older than %s were not announced (no server ran when they were made)", stale, STALE
        )
    session.flush()
    return len(entries)


def _announce(
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    incident: Incident,
    entry: IncidentUpdate,
    notice: Notice,
    now: datetime,
    ack_url: AckUrl | None,
) -> None:
    if notice is Notice.ACKNOWLEDGED:
        who = entry.author or (entry.data or {}).get("author")
        tell(
            session=session,
            config=config,
            owners=owners,
            incident=incident,
            change=ChangeKind.ACKNOWLEDGED,
            previous=_previous(entry),
            now=now,
            extra={"acknowledged_by": who},
            subscribers=False,  # who is on it is the team's business
        )
        return
    tell(
        session=session,
        config=config,
        owners=owners,
        incident=incident,
        change=ChangeKind(notice.value),
        previous=None if notice is Notice.OPENED else _previous(entry),
        now=now,
        ack_url=ack_url,
        extra={"update": update_of(entry)},
    )


def tell(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    incident: Incident,
    change: ChangeKind,
    previous: IncidentStatus | None,
    now: datetime,
    ack_url: AckUrl | None = None,
    extra: Mapping[str, Any] | None = None,
    subscribers: bool = True,
) -> None:
    """Queue one change of an incident, the engine's or a person's: to the routed channels (with the link to
    acknowledge while it is open, when ``ack_url`` is given) and, with ``subscribers``, to the subscribers of its
    components. The document is made once for all of them (on 10,001 components it sorts them)."""
    payload = payload_of(incident, change, previous, now) | dict(extra or {})
    if config.routes:
        linked = add_ack_url(payload, incident, ack_url, now)
        enqueue_deliveries(session=session, config=config, owners=owners, incident=incident, payload=linked, now=now)
    if subscribers:
        components = [c.component_id for c in incident.components]
        fan_out(
            session=session, components=components, change=change, payload=payload, now=now, incident_id=incident.id
        )
