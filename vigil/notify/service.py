"""The notifications service: route an incident change to channels, enqueue its deliveries, claim the due ones
and record each attempt (in the delivery row and in the incident's timeline).

Plain keyword-only functions on a session: they flush, never commit (the caller owns the transaction; the
incident worker enqueues in the transaction that changes the incident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vigil.incidents.models import EventType, Impact, Incident, IncidentStatus
from vigil.incidents.service import add_event
from vigil.notify.config import NotifyConfig, RouteSpec
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus, Subscriber

__all__ = [
    "Claimed",
    "backoff_delay",
    "claim_due",
    "enqueue_deliveries",
    "payload_of",
    "record_attempt",
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
            "components": [{"id": c.component_id, "status": c.status.value} for c in incident.components],
        },
    }


def enqueue_deliveries(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    incident: Incident,
    previous: IncidentStatus | None,
    now: datetime,
) -> list[Delivery]:
    """Queue one delivery per channel for this change of the incident (``previous`` None: it was opened).

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
    change = ChangeKind.OPENED if previous is None else ChangeKind.STATUS
    payload = payload_of(incident, change, previous, now)
    rows = [
        Delivery(
            incident_id=incident.id,
            channel_id=channel_id,
            change=change,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            payload=payload,
            created_at=now,
        )
        for channel_id in sorted(channels)
    ]
    session.add_all(rows)
    session.flush()
    return rows


def claim_due(*, session: Session, now: datetime, lease: timedelta, limit: int = 100) -> list[Claimed]:
    """Take the pending deliveries due at ``now`` (oldest first) for one attempt each, and return them.

    A claim moves ``next_attempt_at`` to ``now + lease`` with a conditional UPDATE: another server that read
    the same row updates nothing and leaves it (the healthchecks way). Should this process die while sending,
    the row is due again when the lease ends: a delivery is sent at least once, rarely twice.
    """
    query = (
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    claimed = []
    for row in list(session.scalars(query)):
        taken = session.execute(
            update(Delivery)
            .where(
                Delivery.id == row.id,
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.next_attempt_at <= now,  # still due: nobody claimed it since we read it
            )
            .values(next_attempt_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            continue  # another worker got there first
        target = None
        if row.subscriber_id is not None:  # subscribers (0007): the target is read now, as it is at sending
            found = session.get(Subscriber, row.subscriber_id)
            if found is not None:
                target = {
                    "kind": found.kind.value,
                    "address": found.address,
                    "secret": found.secret,
                    "status": found.status.value,
                    "confirm_token": found.confirm_token,
                    "unsubscribe_token": found.unsubscribe_token,
                }
        claimed.append(
            Claimed(
                row.id,
                row.incident_id,
                row.channel_id,
                row.attempts + 1,
                dict(row.payload),
                target,
                row.subscriber_id is not None,
            )
        )
    return claimed


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
    """Record one attempt (``error`` None: sent) on the delivery and as an event in the incident's timeline.

    A failed attempt is retried after :func:`backoff_delay` (``backoff`` is base and cap, in seconds) unless it
    was the ``max_attempts``-th or the error is ``permanent``: then the delivery is failed. Returns the row.
    """
    delivery = session.get_one(Delivery, delivery_id)
    delivery.attempts += 1
    delivery.last_error = error
    data: dict[str, Any] = {
        "delivery_id": delivery.id,
        "channel_id": delivery.channel_id,
        "change": delivery.change.value,
        "attempt": delivery.attempts,
        "error": error,
    }
    if error is None:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now
        body = f"Notification sent to {delivery.channel_id} (attempt {delivery.attempts})."
    elif permanent or delivery.attempts >= max_attempts:
        delivery.status = DeliveryStatus.FAILED
        body = f"Notification to {delivery.channel_id} failed (attempt {delivery.attempts}), given up: {error}"
    else:
        delivery.next_attempt_at = now + backoff_delay(delivery.attempts, base=backoff[0], cap=backoff[1])
        data["next_attempt_at"] = delivery.next_attempt_at.isoformat()
        body = (
            f"Notification to {delivery.channel_id} failed (attempt {delivery.attempts}): {error}; "
            f"next attempt at {delivery.next_attempt_at.isoformat()}."
        )
    data["status"] = delivery.status.value
    if delivery.subscriber_id is not None or delivery.incident_id is None:
        return delivery  # subscribers (0007): thousands of them would bury the incident's timeline
    incident = session.get_one(Incident, delivery.incident_id)
    add_event(session=session, incident=incident, event_type=EventType.NOTIFICATION, body=body, at=now, data=data)
    return delivery
