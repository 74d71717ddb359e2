"""Reminders, escalation and acknowledgement links (issue 4): nobody on duty must not mean nobody is told.

:func:`escalate` runs on the dispatcher's clock (every round of its loop). For each open incident nobody has
acknowledged, and each route that matches it:

- ``remind_every``: when that long has passed since the incident was detected or since the route's last
  reminder, one ``reminder`` delivery per channel of the route;
- each escalation level (``escalate``, and the shorthand ``escalate_after``/``escalate_to``): when its ``after``
  has passed since the incident was detected, one ``escalation`` delivery per channel of its ``to``, once.

Each is an ``escalation`` event in the incident's timeline (``data``: ``kind``, ``route``, ``channels``, and
``after`` for a level), and
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

from vigil.incidents.models import EventType, Incident, IncidentStatus, IncidentUpdate
from vigil.incidents.service import add_event
from vigil.notify.config import NotifyConfig, RouteSpec
from vigil.notify.models import ChangeKind, Delivery
from vigil.notify.service import _route_matches, payload_of, queue_to_channels

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


def _steps_of(session: Session, incidents: list[Incident]) -> dict[int, list[dict[str, Any]]]:
    # Only the escalation entries, for all the incidents in one query: loading whole timelines every round cost
    # seconds once a storm had written thousands of events to one incident.
    found: dict[int, list[dict[str, Any]]] = {i.id: [] for i in incidents}
    if not incidents:
        return found
    query = select(IncidentUpdate).where(
        IncidentUpdate.incident_id.in_(list(found)), IncidentUpdate.event_type == EventType.ESCALATION
    )
    for u in session.scalars(query):
        if isinstance(u.data, dict):
            found[u.incident_id].append({**u.data, "at": u.at})
    return found


def _level_of(step: dict[str, Any]) -> float | None:
    after = step.get("after")
    # An escalation recorded before levels existed (no "after") was the route's one level: None stands for
    # "done, whichever level it was", so that such an incident is not escalated again at every level.
    return float(after) if isinstance(after, int | float) else None


def escalate(
    *,
    session: Session,
    config: NotifyConfig,
    owners: Mapping[str, str | None],
    now: datetime,
    ack_url: AckUrl | None = None,
) -> list[Delivery]:
    """Queue the reminders and escalations due at ``now`` (see the module); return the deliveries queued."""
    routes = [r for r in config.routes if r.remind_every or r.levels]
    if not routes:
        return []
    query = (
        select(Incident)
        .where(
            Incident.status != IncidentStatus.RESOLVED,
            Incident.acknowledged_at.is_(None),
            Incident.merged_into.is_(None),
        )
        .options(selectinload(Incident.components))
        .order_by(Incident.id)
        .with_for_update()
    )
    queued: list[Delivery] = []
    incidents = list(session.scalars(query))
    steps_of = _steps_of(session, incidents)
    for incident in incidents:
        components = [c.component_id for c in incident.components]
        steps = steps_of[incident.id]
        for route in routes:
            if not _route_matches(route, owners, components, incident.impact):
                continue
            key = route_key(route)
            mine = [s for s in steps if s.get("route") == key]
            age = now - incident.detected_at
            done = {_level_of(s) for s in mine if s.get("kind") == "escalation"}
            for level in route.levels:
                # Each level once. After a long downtime of the server, every level now due is told at once:
                # a late escalation still reaches the people who should have heard by now.
                if age >= timedelta(seconds=level.after) and level.after not in done and None not in done:
                    step = ChangeKind.ESCALATION
                    queued += _step(session, config, incident, step, key, level.to, now, ack_url, level.after)
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
    after: float | None = None,
) -> list[Delivery]:
    channels = sorted(c for c in set(channel_ids) if c in config.channels)
    minutes = (now - incident.detected_at).total_seconds() / 60
    payload = add_ack_url(payload_of(incident, kind, None, now), incident, ack_url, now)
    rows = queue_to_channels(
        session=session, incident_id=incident.id, channel_ids=channels, change=kind, payload=payload, now=now
    )
    what = "Reminder" if kind is ChangeKind.REMINDER else "Escalated"
    body = f"{what}: not acknowledged after {minutes:g} min; told {', '.join(channels) or 'nobody'}."
    data: dict[str, Any] = {"kind": kind.value, "route": key, "channels": channels}
    if after is not None:
        data["after"] = after  # which level: its time, which survives reordering the levels in the config
    add_event(session=session, incident=incident, event_type=EventType.ESCALATION, body=body, at=now, data=data)
    return rows
