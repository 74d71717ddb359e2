"""The notifications outbox as ``GET /api/v1/incidents/{id}/deliveries`` and ``vigil incident deliveries`` show
it: each delivery to a channel, and counts of those to subscribers (thousands of rows would drown the list)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vigil.notify.models import Delivery, DeliveryStatus

__all__ = ["deliveries_document", "delivery_document", "list_deliveries", "subscriber_counts"]


def list_deliveries(*, session: Session, incident_id: int, limit: int = 500) -> list[Delivery]:
    """Return the incident's deliveries to channels (not to subscribers: see :func:`subscriber_counts`), oldest
    first, at most ``limit``."""
    query = (
        select(Delivery)
        .where(Delivery.incident_id == incident_id, Delivery.subscriber_id.is_(None))
        .order_by(Delivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def subscriber_counts(*, session: Session, incident_id: int) -> dict[str, int]:
    """Return how many of the incident's deliveries to subscribers are pending, sent and failed (thousands of
    rows would drown the list: counts are what an operator needs)."""
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.incident_id == incident_id, Delivery.subscriber_id.is_not(None))
        .group_by(Delivery.status)
    )
    counts = {status.value: 0 for status in DeliveryStatus}
    counts.update({DeliveryStatus(status).value: int(n) for status, n in session.execute(query)})
    return counts


def deliveries_document(*, session: Session, incident_id: int) -> dict[str, Any]:
    """Return what the API and ``vigil incident deliveries`` show of an incident's notifications: each delivery
    to a channel, and the counts of those to subscribers."""
    return {
        "incident_id": incident_id,
        "deliveries": [delivery_document(row) for row in list_deliveries(session=session, incident_id=incident_id)],
        "subscribers": subscriber_counts(session=session, incident_id=incident_id),
    }


def delivery_document(delivery: Delivery) -> dict[str, Any]:
    """Return a delivery as the API shows it (not its payload: the incident's own document says the same)."""
    return {
        "id": delivery.id,
        "channel_id": delivery.channel_id,
        "change": delivery.change.value,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.status is DeliveryStatus.PENDING else None,
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
    }
