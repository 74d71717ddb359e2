"""Subscribers (issue 4, docs/subscribers.md): people told by e-mail or webhook about the incidents and the
maintenance of the components they chose, and only those.

E-mail subscribers opt in twice: :func:`subscribe` stores them ``pending`` and queues a confirmation request (a
delivery like any other, sent by the dispatcher); the link in it leads to a page whose form confirms
(:func:`confirm`). Webhook subscribers are approved by an admin (:func:`approve`). Every message carries an
unsubscribe link (:func:`unsubscribe`). Links hold signed tokens (:func:`make_token`): a token whose signature
does not match the server's key is refused before the database is read, and one that matches must also be the
one stored.

Fan-out (:func:`fan_out`) is one ``INSERT ... SELECT`` into the deliveries outbox, whatever the number of
subscribers: 10,000 subscribers are one statement, not 10,000 objects. The dispatcher sends the rows with its
bounded concurrency, off the checks' path.

Plain keyword-only functions on a session: they flush, never commit (the caller owns the transaction).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, insert, literal, null, or_, select, true
from sqlalchemy.orm import Session

from vigil.notify.models import (
    ChangeKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberComponent,
    SubscriberKind,
    SubscriberStatus,
)

__all__ = [
    "CHANNEL_ID",
    "CONFIRM_RESEND",
    "EMAIL_PATTERN",
    "InvalidSubscriberError",
    "approve",
    "check_token",
    "components_of",
    "confirm",
    "delete_subscriber",
    "fan_out",
    "fan_out_maintenance",
    "list_subscribers",
    "make_token",
    "subscribe",
    "unsubscribe",
]

CHANNEL_ID = "subscriber"  # the channel_id of a subscriber's deliveries (the target is the subscriber row)
# A practical check, not RFC 5322: one @, a dotted domain, no spaces or angle brackets (header injection).
CONFIRM_RESEND = timedelta(hours=1)  # one confirmation mail per unconfirmed address in this time
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
CONFIRM, UNSUBSCRIBE = "confirm", "unsubscribe"

S = SubscriberStatus


class InvalidSubscriberError(ValueError):
    """Bad subscription input; ``field`` names the field at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


# -- tokens ---------------------------------------------------------------------------------------------------
def _signature(key: str, purpose: str, nonce: str) -> str:
    return hmac.new(key.encode(), f"{purpose}.{nonce}".encode(), hashlib.sha256).hexdigest()[:40]


def make_token(key: str, purpose: str) -> str:
    """Return a new token for ``purpose`` (confirm or unsubscribe): a random nonce and its HMAC under ``key``."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(key, purpose, nonce)}"


def check_token(key: str, purpose: str, token: str) -> bool:
    """Return whether ``token`` carries a valid signature for ``purpose`` (in constant time)."""
    nonce, _, signature = token.partition(".")
    if not key or not nonce or not signature or len(token) > 200:
        return False
    return hmac.compare_digest(signature.encode(), _signature(key, purpose, nonce).encode())


def _by_token(session: Session, key: str, purpose: str, token: str) -> Subscriber | None:
    if not check_token(key, purpose, token):
        return None
    column = Subscriber.confirm_token if purpose == CONFIRM else Subscriber.unsubscribe_token
    return session.scalars(select(Subscriber).where(column == token)).one_or_none()


# -- subscribing ----------------------------------------------------------------------------------------------
def subscribe(
    *,
    session: Session,
    key: str,
    kind: SubscriberKind,
    address: str,
    components: Sequence[str] | None,
    known_components: Iterable[str],
    now: datetime,
    secret: str | None = None,
) -> Subscriber:
    """Store a pending subscriber to ``components`` (None: all); for e-mail, queue the confirmation request.

    Raises InvalidSubscriberError (``field``: address, url, secret or components).
    """
    address = address.strip()
    if kind is SubscriberKind.EMAIL:
        if len(address) > 320 or not EMAIL_PATTERN.match(address):
            raise InvalidSubscriberError("address: not an e-mail address", field="address")
    else:
        if not re.match(r"^https?://[^\s]+$", address) or len(address) > 2000:
            raise InvalidSubscriberError("url: must be an http:// or https:// URL", field="url")
        if secret is not None and len(secret) < 16:
            raise InvalidSubscriberError("secret: at least 16 characters", field="secret")
        secret = secret or secrets.token_urlsafe(32)
    ids = None if components is None else list(dict.fromkeys(components))
    if ids is not None:
        if not ids:
            raise InvalidSubscriberError(
                "components: name at least one component (or leave it out)", field="components"
            )
        unknown = sorted(set(ids) - set(known_components))
        if unknown:
            raise InvalidSubscriberError(f"components: unknown component(s) {', '.join(unknown)}", field="components")
    if kind is SubscriberKind.EMAIL:
        # Asked again for an address still unconfirmed from a recent request: no new row and no new mail, so
        # that nobody can flood someone's inbox through the public form (the answer is the same either way).
        recent = session.scalars(
            select(Subscriber)
            .where(
                Subscriber.kind == kind,
                Subscriber.address == address,
                Subscriber.status == S.PENDING,
                Subscriber.created_at > now - CONFIRM_RESEND,
            )
            .order_by(Subscriber.id.desc())
            .limit(1)
        ).first()
        if recent is not None:
            return recent
    subscriber = Subscriber(
        kind=kind,
        address=address,
        secret=secret if kind is SubscriberKind.WEBHOOK else None,
        status=S.PENDING,
        all_components=ids is None,
        confirm_token=make_token(key, CONFIRM),
        unsubscribe_token=make_token(key, UNSUBSCRIBE),
        created_at=now,
    )
    session.add(subscriber)
    session.flush()
    if ids:
        session.execute(insert(SubscriberComponent), [{"subscriber_id": subscriber.id, "component_id": c} for c in ids])
    if kind is SubscriberKind.EMAIL:
        session.add(
            Delivery(
                incident_id=None,
                subscriber_id=subscriber.id,
                channel_id=CHANNEL_ID,
                change=ChangeKind.CONFIRM,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                payload={"version": 1, "change": ChangeKind.CONFIRM.value, "at": now.isoformat()},
                created_at=now,
            )
        )
    session.flush()
    return subscriber


def confirm(*, session: Session, key: str, token: str, now: datetime) -> Subscriber | None:
    """Confirm the pending subscriber of this confirmation token; None when the token is not valid.

    Confirming twice is harmless; an unsubscribed subscriber is not brought back by an old link.
    """
    subscriber = _by_token(session, key, CONFIRM, token)
    if subscriber is None or subscriber.status is S.UNSUBSCRIBED:
        return None
    if subscriber.status is S.PENDING:
        subscriber.status = S.CONFIRMED
        subscriber.confirmed_at = now
        session.flush()
    return subscriber


def unsubscribe(*, session: Session, key: str, token: str) -> Subscriber | None:
    """Unsubscribe the subscriber of this unsubscribe token (its queued messages are dropped); None if invalid."""
    subscriber = _by_token(session, key, UNSUBSCRIBE, token)
    if subscriber is None:
        return None
    subscriber.status = S.UNSUBSCRIBED
    session.execute(
        delete(Delivery).where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.PENDING)
    )
    session.flush()
    return subscriber


def approve(*, session: Session, subscriber_id: int, now: datetime) -> Subscriber | None:
    """Confirm a subscriber by an admin's decision (webhooks); None when there is none or it unsubscribed."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is S.UNSUBSCRIBED:
        return None
    if subscriber.status is S.PENDING:
        subscriber.status = S.CONFIRMED
        subscriber.confirmed_at = now
        session.flush()
    return subscriber


def delete_subscriber(*, session: Session, subscriber_id: int) -> bool:
    """Delete a subscriber, its components and its deliveries; return whether there was one."""
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))
    session.execute(delete(SubscriberComponent).where(SubscriberComponent.subscriber_id == subscriber_id))
    result = session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    return bool(getattr(result, "rowcount", 0))


def list_subscribers(*, session: Session, limit: int = 1000, after: int = 0) -> list[Subscriber]:
    """Return subscribers by id, ``limit`` at most, those with an id above ``after``."""
    query = select(Subscriber).where(Subscriber.id > after).order_by(Subscriber.id).limit(limit)
    return list(session.scalars(query))


def components_of(*, session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    """Return the components of each subscriber (absent: all components)."""
    found: dict[int, list[str]] = {}
    query = select(SubscriberComponent).where(SubscriberComponent.subscriber_id.in_(list(subscriber_ids)))
    for row in session.scalars(query.order_by(SubscriberComponent.component_id)):
        found.setdefault(row.subscriber_id, []).append(row.component_id)
    return found


# -- fan-out --------------------------------------------------------------------------------------------------
def fan_out(
    *,
    session: Session,
    components: Sequence[str],
    change: ChangeKind,
    payload: dict[str, Any],
    now: datetime,
    incident_id: int | None = None,
) -> int:
    """Queue one delivery of ``payload`` per confirmed subscriber to any of ``components`` (or to all), in one
    ``INSERT ... SELECT``; return how many rows it queued (-1 when the driver does not say)."""
    if not components:
        return 0
    table = Delivery.__table__
    wanted = list(dict.fromkeys(components))
    touches = exists().where(
        SubscriberComponent.subscriber_id == Subscriber.id, SubscriberComponent.component_id.in_(wanted)
    )
    source = select(
        literal(incident_id, table.c.incident_id.type) if incident_id is not None else null(),
        Subscriber.id,
        literal(CHANNEL_ID, table.c.channel_id.type),
        literal(change, table.c.change.type),
        literal(DeliveryStatus.PENDING, table.c.status.type),
        literal(0, table.c.attempts.type),
        literal(now, table.c.next_attempt_at.type),
        literal(payload, table.c.payload.type),
        literal(now, table.c.created_at.type),
    ).where(
        Subscriber.status == S.CONFIRMED,
        or_(Subscriber.all_components == true(), touches),
    )
    columns = [
        "incident_id",
        "subscriber_id",
        "channel_id",
        "change",
        "status",
        "attempts",
        "next_attempt_at",
        "payload",
        "created_at",
    ]
    result = session.execute(insert(Delivery).from_select(columns, source))
    return int(getattr(result, "rowcount", -1))


def fan_out_maintenance(*, session: Session, window: Any, now: datetime) -> int:
    """Tell the subscribers of a maintenance window's components that it was scheduled, started or completed
    (``window`` is a :class:`vigil.maintenance.models.Maintenance`, whose status is the news)."""
    components = [c.component_id for c in window.components]
    payload = {
        "version": 1,
        "change": ChangeKind.MAINTENANCE.value,
        "at": now.isoformat(),
        "maintenance": {
            "id": window.id,
            "title": window.title,
            "message": window.message,
            "status": window.status.value,
            "starts_at": window.starts_at.isoformat(),
            "ends_at": window.ends_at.isoformat(),
            "components": components,
        },
    }
    return fan_out(session=session, components=components, change=ChangeKind.MAINTENANCE, payload=payload, now=now)
