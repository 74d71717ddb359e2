"""The notifications service: route an incident change to channels, enqueue its deliveries, claim the due ones
and record each attempt (in the delivery row and in the incident's timeline).

Plain keyword-only functions on a session: they flush, never commit (the caller owns the transaction; the
incident worker enqueues in the transaction that changes the incident).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text, update
from sqlalchemy.orm import Session

from vigil.incidents.models import ComponentStatus, EventType, Impact, Incident, IncidentComponent, IncidentStatus
from vigil.incidents.service import add_event
from vigil.notify.config import NotifyConfig, RouteSpec
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus, Subscriber

__all__ = [
    "Attempt",
    "Claimed",
    "backoff_delay",
    "claim_due",
    "enqueue_deliveries",
    "payload_of",
    "queue_to_channels",
    "record_attempt",
    "record_attempts",
    "release_claims",
    "route_channels",
]

_IMPACT_ORDER = list(Impact)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken for one attempt: what the sender needs, without a session."""

    id: int
    incident_id: int | None
    channel_id: str
    attempt: int  # 1 for the first
    payload: dict[str, Any]
    # A subscriber's delivery (0007): who to send to (kind, address, secret, status, tokens); None otherwise.
    subscriber: dict[str, Any] | None = None
    for_subscriber: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one attempt, to record (:func:`record_attempts`): ``error`` None when it was sent."""

    delivery_id: int
    error: str | None
    at: datetime  # when the attempt ended
    permanent: bool = False  # retrying cannot help: the delivery fails now


def _route_matches(route: RouteSpec, owners: Mapping[str, str | None], components: list[str], impact: Impact) -> bool:
    if _IMPACT_ORDER.index(impact) < _IMPACT_ORDER.index(route.min_impact):
        return False
    if route.components and not set(route.components) & set(components):
        return False
    if route.owners:
        affected_owners = {owners.get(c) for c in components}
        if not set(route.owners) & affected_owners:
            return False
    return True


def route_channels(
    config: NotifyConfig, *, owners: Mapping[str, str | None], components: list[str], impact: Impact
) -> list[str]:
    """Return the ids of the channels whose routes match (sorted, each once)."""
    found = {c for r in config.routes if _route_matches(r, owners, components, impact) for c in r.channels}
    return sorted(found)


def payload_of(incident: Incident, change: ChangeKind, previous: IncidentStatus | None, at: datetime) -> dict[str, Any]:
    """Return the JSON document of one incident change (what the webhook posts, what messages are made of)."""
    return {
        "version": 1,
        "change": change.value,
        "previous_status": previous.value if previous else None,
        "at": at.isoformat(),
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "impact": incident.impact.value,
            "probable_cause": incident.probable_cause,
            "auto": incident.auto,
            "started_at": incident.started_at.isoformat(),
            "components": _listed(incident),
            "components_total": len(incident.components),
        },
    }


LISTED_COMPONENTS = 50  # in a message; a hypervisor under 2,000 VMs made every message (and delivery row) 445 KB
_SEVERITY = {
    ComponentStatus.MAJOR_OUTAGE: 0,
    ComponentStatus.PARTIAL_OUTAGE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.UNDER_MAINTENANCE: 3,
    ComponentStatus.OPERATIONAL: 4,
}


def _listed(incident: Incident) -> list[dict[str, str]]:
    """The affected components a message lists: all of them up to LISTED_COMPONENTS, else the probable cause
    first, then the worst statuses (``components_total`` says how many there are; the API has them all)."""
    components = list(incident.components)
    if len(components) > LISTED_COMPONENTS:
        cause = incident.probable_cause

        def rank(c: IncidentComponent) -> tuple[bool, int, str]:
            return (c.component_id != cause, _SEVERITY.get(c.status, 5), c.component_id)

        components = sorted(components, key=rank)[:LISTED_COMPONENTS]
    return [{"id": c.component_id, "status": c.status.value} for c in components]


def queue_to_channels(
    *,
    session: Session,
    incident_id: int,
    channel_ids: Collection[str],
    change: ChangeKind,
    payload: dict[str, Any],
    now: datetime,
) -> list[Delivery]:
    """Queue one pending delivery of ``payload`` per channel (sorted), due now; return the rows (added, not
    flushed). The one place a channel's delivery row is made: routed changes and escalation steps alike."""
    rows = [
        Delivery(
            incident_id=incident_id,
            channel_id=channel_id,
            change=change,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            payload=payload,
            created_at=now,
        )
        for channel_id in sorted(channel_ids)
    ]
    session.add_all(rows)
    return rows


def enqueue_deliveries(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    incident: Incident,
    payload: dict[str, Any],
    now: datetime,
) -> list[Delivery]:
    """Queue one delivery of ``payload`` (a :func:`payload_of` document: its ``change`` is the row's) per channel.

    The channels are those whose routes match now, plus every channel already told about the incident: a
    route with ``min_impact: major`` must hear of the recovery too, when the impact has dropped to none.
    """
    components = [c.component_id for c in incident.components]
    channels = set(route_channels(config, owners=owners, components=components, impact=incident.impact))
    told = session.scalars(
        select(Delivery.channel_id)
        .where(Delivery.incident_id == incident.id, Delivery.subscriber_id.is_(None))
        .distinct()
    )
    channels.update(c for c in told if c in config.channels)
    change = ChangeKind(payload["change"])
    rows = queue_to_channels(
        session=session, incident_id=incident.id, channel_ids=channels, change=change, payload=payload, now=now
    )
    session.flush()
    return rows


@dataclass(frozen=True, slots=True)
class _ClaimRow:
    id: int
    incident_id: int | None
    channel_id: str
    attempts: int
    payload: Any
    subscriber_id: int | None


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _aggregated(session: Session, *columns: Any, where: ColumnElement[bool] | None = None) -> list[list[Any]]:
    """Return the rows of ``columns`` (``where`` holds) as lists of plain values.

    On SQLite all rows come as one JSON array in one row: the driver steps once, not once per row. Each step
    gives up the GIL, and with the checks' event loop busy, getting it back can take up to the switch interval
    (5 ms): claims read row by row took 0.2-0.6 s on the runtime's writer thread under load (bench_incidents),
    holding up the engine's writes queued behind them. Elsewhere (PostgreSQL, not on that thread) the rows as
    they come. On SQLite enums and JSON come back as their stored values (str, JSON text).
    """
    if not _sqlite(session):
        query = select(*columns)
        return [list(row) for row in session.execute(query if where is None else query.where(where))]
    aggregate = select(func.json_group_array(func.json_array(*columns)))
    text = session.scalar(aggregate if where is None else aggregate.where(where))
    return list(json.loads(text or "[]"))


def claim_due(
    *,
    session: Session,
    now: datetime,
    lease: timedelta,
    limit: int = 100,
    exclude_channels: Collection[str] = (),
    exclude_subscriber_kinds: Collection[str] = (),
) -> list[Claimed]:
    """Take up to ``limit`` pending deliveries due at ``now`` (oldest first) for one attempt each; return them.

    ``exclude_channels`` and ``exclude_subscriber_kinds`` (``email``, ``webhook``) leave those rows for later
    (the dispatcher's busy SMTP servers), so that the rows behind them can go.

    Three statements whatever ``limit``: the ids of the due rows; one conditional UPDATE that moves their
    ``next_attempt_at`` to ``now + lease`` only where they are still pending and due, returning the rows it
    moved (another server that read the same rows moves none of them and leaves them; on PostgreSQL the first
    read also skips rows another server has locked); and the subscribers of those rows. Should this process die
    between sending and recording, the row is due again when the lease ends: a delivery is sent at least once,
    rarely twice.
    """
    due = (Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
    query = select(Delivery.id).where(*due).order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    if exclude_channels:
        query = query.where(or_(Delivery.subscriber_id.is_not(None), Delivery.channel_id.not_in(exclude_channels)))
    if exclude_subscriber_kinds:
        kinds = select(Subscriber.id).where(Subscriber.kind.in_(list(exclude_subscriber_kinds)))
        query = query.where(or_(Delivery.subscriber_id.is_(None), Delivery.subscriber_id.not_in(kinds)))
    until = now + lease
    columns = (
        Delivery.id,
        Delivery.incident_id,
        Delivery.channel_id,
        Delivery.attempts,
        Delivery.payload,
        Delivery.subscriber_id,
    )
    taken: list[Any]
    if _sqlite(session):
        # The same three steps, each answered in one row (see _aggregated). SQLite has one writer: the UPDATE
        # moves every row read unless another process claimed some in between; ours then carry our lease.
        ids = [row[0] for row in _aggregated(session, query.subquery().c.id)]
        if not ids:
            return []
        moved = session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), *due)
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )
        mine: ColumnElement[bool] = Delivery.id.in_(ids)
        if getattr(moved, "rowcount", -1) != len(ids):
            mine = mine & (Delivery.next_attempt_at == until)
        taken = [_ClaimRow(*row) for row in _aggregated(session, *columns, where=mine)]
    else:
        ids = list(session.scalars(query.with_for_update(skip_locked=True)))
        if not ids:
            return []
        taken = list(
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), *due)  # still due: nobody claimed them since we read them
                .values(next_attempt_at=until)
                .returning(*columns)
                .execution_options(synchronize_session=False)
            ).all()
        )
    # Subscribers (0007): the target is read now, as it is at sending.
    wanted = {row.subscriber_id for row in taken if row.subscriber_id is not None}
    targets: dict[int, dict[str, Any]] = {}
    if wanted:
        keys = ("kind", "address", "secret", "status", "confirm_token", "unsubscribe_token")
        found = _aggregated(
            session, Subscriber.id, *(getattr(Subscriber, k) for k in keys), where=Subscriber.id.in_(wanted)
        )
        for subscriber_id, *values in found:
            targets[subscriber_id] = {k: getattr(v, "value", v) for k, v in zip(keys, values, strict=True)}
    order = {delivery_id: n for n, delivery_id in enumerate(ids)}
    return [
        Claimed(
            row.id,
            row.incident_id,
            row.channel_id,
            row.attempts + 1,
            dict(row.payload) if isinstance(row.payload, dict) else json.loads(row.payload),
            targets.get(row.subscriber_id) if row.subscriber_id is not None else None,
            row.subscriber_id is not None,
        )
        for row in sorted(taken, key=lambda row: order[row.id])
    ]


def _update_rows(session: Session, changed: dict[int, dict[str, Any]]) -> None:
    """Write the new attempts, last_error and status, and sent_at or next_attempt_at where they changed."""
    keys = ("attempts", "last_error", "status", "sent_at", "next_attempt_at")
    if not _sqlite(session):  # ORM bulk UPDATE by primary key: one executemany
        # SQLAlchemy groups the rows by their keys (sent, to retry, given up): an executemany per group.
        session.execute(
            update(Delivery),
            [{"id": i, **{k: row[k] for k in keys if k in row}} for i, row in changed.items()],
        )
        return
    # SQLite: one UPDATE for the whole batch, its rows in one JSON parameter (one step, see _aggregated; and
    # one SQL text, compiled once, where CASE expressions built per batch cost more Python than the writes).
    dialect = session.get_bind().dialect
    stored = Delivery.next_attempt_at.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
    batch = [
        [
            i,
            row["attempts"],
            row["last_error"],
            row["status"].value,
            stored(row["sent_at"]) if "sent_at" in row else None,
            stored(row["next_attempt_at"]) if "next_attempt_at" in row else None,
        ]
        for i, row in changed.items()
    ]
    session.execute(_SQLITE_UPDATE, {"batch": json.dumps(batch)})


_SQLITE_UPDATE = text(
    f"""
    UPDATE {Delivery.__tablename__} SET
        attempts = j.attempts,
        last_error = j.last_error,
        status = j.status,
        sent_at = coalesce(j.sent_at, {Delivery.__tablename__}.sent_at),
        next_attempt_at = coalesce(j.next_attempt_at, {Delivery.__tablename__}.next_attempt_at)
    FROM (
        SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS attempts,
               json_extract(value, '$[2]') AS last_error, json_extract(value, '$[3]') AS status,
               json_extract(value, '$[4]') AS sent_at, json_extract(value, '$[5]') AS next_attempt_at
        FROM json_each(:batch)
    ) AS j
    WHERE {Delivery.__tablename__}.id = j.id
    """
)


def release_claims(*, session: Session, ids: Collection[int], now: datetime) -> int:
    """Hand claimed deliveries back untried (due at ``now``, attempts unchanged); return how many."""
    if not ids:
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(ids)), Delivery.status == DeliveryStatus.PENDING)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def backoff_delay(attempt: int, *, base: float, cap: float) -> timedelta:
    """Return the wait after failed attempt number ``attempt`` (1-based): base, 2·base, 4·base... at most cap."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempt - 1)))


def record_attempt(
    *,
    session: Session,
    delivery_id: int,
    error: str | None,
    now: datetime,
    max_attempts: int,
    backoff: tuple[float, float],
    permanent: bool = False,
) -> Delivery:
    """Record one attempt: :func:`record_attempts` for one; returns the delivery row."""
    record_attempts(
        session=session,
        attempts=[Attempt(delivery_id, error, now, permanent)],
        max_attempts=max_attempts,
        backoff=backoff,
    )
    delivery = session.get_one(Delivery, delivery_id)
    session.refresh(delivery)
    return delivery


def record_attempts(
    *,
    session: Session,
    attempts: Sequence[Attempt],
    max_attempts: int,
    backoff: tuple[float, float],
) -> int:
    """Record attempts (``error`` None: sent) on their deliveries and as events in their incidents' timelines.

    A failed attempt is retried after :func:`backoff_delay` (``backoff`` is base and cap, in seconds) unless it
    was the ``max_attempts``-th or the error is ``permanent``: then the delivery is failed. A batch is one read
    and one executemany UPDATE, plus one timeline event per channel delivery (subscribers' deliveries are not in
    the timeline). A delivery deleted meanwhile (its subscriber left) is skipped; one sent already (a second
    sender after a lease ran out) stays sent. Returns how many attempts were recorded.
    """
    if not attempts:
        return 0
    columns = (
        Delivery.id,
        Delivery.incident_id,
        Delivery.subscriber_id,
        Delivery.channel_id,
        Delivery.change,
        Delivery.status,
        Delivery.attempts,
    )
    ids = list(dict.fromkeys(a.delivery_id for a in attempts))
    names = [c.key for c in columns]
    rows: dict[int, dict[str, Any]] = {}
    for values in _aggregated(session, *columns, where=Delivery.id.in_(ids)):
        found = dict(zip(names, values, strict=True))
        found["change"], found["status"] = ChangeKind(found["change"]), DeliveryStatus(found["status"])
        rows[found["id"]] = found
    changed: dict[int, dict[str, Any]] = {}
    events: list[tuple[int, str, dict[str, Any], datetime]] = []
    for attempt in attempts:
        row = rows.get(attempt.delivery_id)
        if row is None:
            continue
        error, now = attempt.error, attempt.at
        row["attempts"] += 1
        row["last_error"] = error
        channel_id = row["channel_id"]
        data: dict[str, Any] = {
            "delivery_id": row["id"],
            "channel_id": channel_id,
            "change": row["change"].value,
            "attempt": row["attempts"],
            "error": error,
        }
        if error is None:
            row["status"] = DeliveryStatus.SENT
            row["sent_at"] = now
            body = f"Notification sent to {channel_id} (attempt {row['attempts']})."
        elif row["status"] is DeliveryStatus.SENT:  # another sender got it through after our lease ran out
            body = f"Notification to {channel_id} failed (attempt {row['attempts']}) but was sent already: {error}"
        elif attempt.permanent or row["attempts"] >= max_attempts:
            row["status"] = DeliveryStatus.FAILED
            body = f"Notification to {channel_id} failed (attempt {row['attempts']}), given up: {error}"
        else:
            row["next_attempt_at"] = now + backoff_delay(row["attempts"], base=backoff[0], cap=backoff[1])
            data["next_attempt_at"] = row["next_attempt_at"].isoformat()
            body = (
                f"Notification to {channel_id} failed (attempt {row['attempts']}): {error}; "
                f"next attempt at {row['next_attempt_at'].isoformat()}."
            )
        data["status"] = row["status"].value
        changed[row["id"]] = row
        if row["subscriber_id"] is None and row["incident_id"] is not None:
            # Subscribers (0007) are left out: thousands of them would bury the incident's timeline.
            events.append((row["incident_id"], body, data, now))
    if changed:
        _update_rows(session, changed)
    for incident_id, body, data, at in events:
        incident = session.get_one(Incident, incident_id)
        add_event(session=session, incident=incident, event_type=EventType.NOTIFICATION, body=body, at=at, data=data)
    session.flush()
    return sum(1 for a in attempts if a.delivery_id in rows)
