"""The outbox of notifications: one :class:`Delivery` per (incident change, channel), sent and retried by the
dispatcher (:mod:`vigil.notify.dispatcher`). Rows are written in the transaction that changes the incident, so a
change is never lost nor notified without having happened.

Statuses are stored as values in a plain ``VARCHAR``, as everywhere in Vigil: a new status is a code change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vigil.db import Base

__all__ = [
    "ChangeKind",
    "Delivery",
    "DeliveryStatus",
    "Subscriber",
    "SubscriberComponent",
    "SubscriberKind",
    "SubscriberStatus",
]

BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt


class ChangeKind(StrEnum):
    """What happened to the incident that is being told."""

    OPENED = "opened"
    STATUS = "status"
    # Subscribers (0007, docs/subscribers.md): the confirmation request and maintenance announcements.
    CONFIRM = "confirm"
    MAINTENANCE = "maintenance"
    # Escalation (issue 4, vigil/notify/escalation.py): still unacknowledged after remind_every / escalate_after.
    REMINDER = "reminder"
    ESCALATION = "escalation"
    # Changes people make (0008, vigil/notify/announce.py): an update they wrote, an acknowledgement.
    UPDATE = "update"
    ACKNOWLEDGED = "acknowledged"


def _enum(enum: type[StrEnum], length: int = 16) -> Enum:
    return Enum(
        enum, native_enum=False, create_constraint=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class Delivery(Base):
    __tablename__ = "notification_deliveries"
    # The dispatcher's query: pending rows by due time.
    __table_args__ = (Index("ix_notification_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # None for a subscriber's delivery about a maintenance or its confirmation request (0007).
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[str] = mapped_column(String(200))  # not a foreign key: channels live in the config
    # Set for a delivery to a subscriber (0007): the target is the subscriber's address, not a config channel.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    change: Mapped[ChangeKind] = mapped_column(_enum(ChangeKind))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The message as of the change (incident, status, components), so a late retry tells what happened then.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


# -- subscribers (0007, docs/subscribers.md) -----------------------------------------------------------------
class SubscriberKind(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # e-mail not confirmed yet (double opt-in); webhook not approved by an admin yet
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(Base):
    """Someone told about the incidents and maintenance of some components (or all: ``all_components``)."""

    __tablename__ = "subscribers"
    # The resend check of the public form (vigil.notify.subscribers.CONFIRM_RESEND) looks at the last hour only.
    __table_args__ = (Index("ix_subscribers_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[SubscriberKind] = mapped_column(_enum(SubscriberKind))
    address: Mapped[str] = mapped_column(String(2000))  # the e-mail address or the webhook URL
    secret: Mapped[str | None] = mapped_column(String(200))  # the webhook's HMAC key
    status: Mapped[SubscriberStatus] = mapped_column(_enum(SubscriberStatus))
    all_components: Mapped[bool] = mapped_column(Boolean)
    # Signed tokens (vigil.notify.subscribers.make_token), stored whole: the links of the messages.
    confirm_token: Mapped[str] = mapped_column(String(200), unique=True)
    unsubscribe_token: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]


class SubscriberComponent(Base):
    __tablename__ = "subscriber_components"

    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    # Not a foreign key: components come from the config; the API checks the ids against it.
    component_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
