"""Reminders, escalation and acknowledgement links (issue 4): nobody on duty must not mean nobody is told.

:func:`escalate` runs on the dispatcher's clock (every round of its loop). For each open incident nobody has
acknowledged, and each route that matches it:

- ``remind_every``: when that long has passed since the incident was detected or since the route's last
  reminder, one ``reminder`` delivery per channel of the route;
- ``escalate_after``: when that long has passed since the incident was detected, one ``escalation`` delivery
  per channel of ``escalate_to``, once (one level per route).

Each is an ``escalation`` event in the incident's timeline (``data``: ``kind``, ``route``, ``channels``), and
those events are the state: no extra columns, and a restart neither repeats nor forgets a step. Acknowledging
(or resolving) the incident stops both. On PostgreSQL the incidents are locked (``FOR UPDATE``) while a round
decides, so two servers on one database do not both remind.

Ack links: every message about an open incident carries ``{VIGIL_PUBLIC_URL}/ack/<token>``, the token being
``<incident id>.<expiry, Unix seconds>.<signature>`` with the signature
``base64url(HMAC-SHA256(VIGIL_SECRET_KEY, "vigil-ack:<incident id>.<expiry>"))`` without padding (stdlib only:
itsdangerous is not a dependency). :func:`read_ack_token` checks it in constant time; ``vigil/web/ack.py`` serves
the page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vigil.incidents.models import EventType, Incident, IncidentStatus
from vigil.incidents.service import add_event
from vigil.notify.config import NotifyConfig, RouteSpec
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus
from vigil.notify.service import _route_matches, payload_of

__all__ = [
    "ACK_TTL",
    "AckLinks",
    "AckTokenError",
    "AckUrl",
    "add_ack_url",
    "escalate",
    "make_ack_token",
    "read_ack_token",
    "route_key",
]

ACK_TTL = timedelta(days=7)  # a reminder carries a fresh link, so an old message's link may well expire
AckUrl = Callable[[int, datetime], str]  # (incident id, now) -> the ack link


# -- ack tokens -----------------------------------------------------------------------------------------------
class AckTokenError(ValueError):
    """A token that cannot be used; ``expired`` tells an expired one (410) from a bad one (400)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def _signature(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), f"vigil-ack:{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_ack_token(secret: str, incident_id: int, expires: datetime) -> str:
    """Return the signed token acknowledging ``incident_id`` until ``expires``."""
    if not secret:
        raise ValueError("an ack token needs a secret key")
    message = f"{incident_id}.{int(expires.timestamp())}"
    return f"{message}.{_signature(secret, message)}"


def read_ack_token(secret: str, token: str, now: datetime) -> int:
    """Return the incident id of a valid token; raises AckTokenError (``expired`` set when only time is wrong).

    The signature is checked first, in constant time: an expiry is only believed once it is known to be ours.
    """
    parts = token.split(".")
    if not secret or len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise AckTokenError("malformed acknowledgement link")
    message = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(secret, message).encode(), parts[2].encode()):
        raise AckTokenError("invalid signature: the link was altered or signed with another key")
    if int(parts[1]) <= now.timestamp():
        raise AckTokenError("this acknowledgement link has expired", expired=True)
    return int(parts[0])


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Makes ack links: ``{public_url}/ack/<token>``, valid for ``ttl``."""

    secret: str
    public_url: str
    ttl: timedelta = ACK_TTL

    def __call__(self, incident_id: int, now: datetime) -> str:
        token = make_ack_token(self.secret, incident_id, now + self.ttl)
        return f"{self.public_url.rstrip('/')}/ack/{token}"


def add_ack_url(payload: dict[str, Any], incident: Incident, ack_url: AckUrl | None, now: datetime) -> dict[str, Any]:
    """Return ``payload`` with ``ack_url`` when the incident is open and links can be made (a new dict)."""
    if ack_url is None or incident.status is IncidentStatus.RESOLVED:
        return payload
    return {**payload, "ack_url": ack_url(incident.id, now)}


# -- reminders and escalation ---------------------------------------------------------------------------------
def route_key(route: RouteSpec) -> str:
    """Name a route in the timeline by its channels (routes have no ids; a reload keeps a route's channels)."""
    return ",".join(route.channels)


def _steps(incident: Incident) -> list[dict[str, Any]]:
    return [
        {**(u.data or {}), "at": u.at}
        for u in incident.updates
        if u.event_type is EventType.ESCALATION and isinstance(u.data, dict)
    ]


def escalate(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    now: datetime,
    ack_url: AckUrl | None = None,
) -> list[Delivery]:
    """Queue the reminders and escalations due at ``now`` (see the module); return the deliveries queued."""
    routes = [r for r in config.routes if r.remind_every or (r.escalate_after and r.escalate_to)]
    if not routes:
        return []
    query = (
        select(Incident)
        .where(
            Incident.status != IncidentStatus.RESOLVED,
            Incident.acknowledged_at.is_(None),
            Incident.merged_into.is_(None),
        )
        .options(selectinload(Incident.components), selectinload(Incident.updates))
        .order_by(Incident.id)
        .with_for_update()
    )
    queued: list[Delivery] = []
    for incident in list(session.scalars(query)):
        components = [c.component_id for c in incident.components]
        steps = _steps(incident)
        for route in routes:
            if not _route_matches(route, owners, components, incident.impact):
                continue
            key = route_key(route)
            mine = [s for s in steps if s.get("route") == key]
            age = now - incident.detected_at
            due = route.escalate_after is not None and age >= timedelta(seconds=route.escalate_after)
            if due and route.escalate_to and not any(s.get("kind") == "escalation" for s in mine):
                step = ChangeKind.ESCALATION
                queued += _step(session, config, incident, step, key, route.escalate_to, now, ack_url)
            if route.remind_every:
                last = max((s["at"] for s in mine if s.get("kind") == "reminder"), default=incident.detected_at)
                if now - last >= timedelta(seconds=route.remind_every):
                    step = ChangeKind.REMINDER
                    queued += _step(session, config, incident, step, key, route.channels, now, ack_url)
    return queued


def _step(
    session: Session,
    config: NotifyConfig,
    incident: Incident,
    kind: ChangeKind,
    key: str,
    channel_ids: list[str],
    now: datetime,
    ack_url: AckUrl | None,
) -> list[Delivery]:
    channels = sorted(c for c in set(channel_ids) if c in config.channels)
    minutes = (now - incident.detected_at).total_seconds() / 60
    payload = add_ack_url(payload_of(incident, kind, None, now), incident, ack_url, now)
    rows = [
        Delivery(
            incident_id=incident.id,
            channel_id=channel_id,
            change=kind,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            payload=payload,
            created_at=now,
        )
        for channel_id in channels
    ]
    session.add_all(rows)
    what = "Reminder" if kind is ChangeKind.REMINDER else "Escalated"
    body = f"{what}: not acknowledged after {minutes:g} min; told {', '.join(channels) or 'nobody'}."
    data = {"kind": kind.value, "route": key, "channels": channels}
    add_event(session=session, incident=incident, event_type=EventType.ESCALATION, body=body, at=now, data=data)
    return rows
