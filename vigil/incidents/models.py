"""Incidents: what people and the engine say about an outage, its affected components and its timeline.

Statuses are stored as their values in plain ``VARCHAR`` columns without CHECK constraints, as in
:mod:`vigil.monitors.models`: a new status is a code change, not a migration. The names follow Statuspage
(``investigating``, ``major_outage``...), so that the status page and its API can speak them as they are.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigil.db import Base

__all__ = [
    "TITLE_LIMIT",
    "ComponentStatus",
    "EntryKind",
    "EventType",
    "Impact",
    "Incident",
    "IncidentComponent",
    "IncidentStatus",
    "IncidentUpdate",
    "OutboxCursor",
]

TITLE_LIMIT = 300

BigId = BigInteger().with_variant(Integer(), "sqlite")


class IncidentStatus(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Impact(StrEnum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class ComponentStatus(StrEnum):
    """A component's status within an incident, as Statuspage names it."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"


class EntryKind(StrEnum):
    UPDATE = "update"  # written by a person
    EVENT = "event"  # recorded automatically


class Notice(StrEnum):
    """What people must be told of a change a person made (0008); the values are the notifications' change kinds."""

    OPENED = "opened"
    UPDATE = "update"  # a person's update: its message, and the status it set if any
    ACKNOWLEDGED = "acknowledged"  # the team's channels only: subscribers are told of updates, not of who is on it


class EventType(StrEnum):
    OPENED = "opened"
    STATE_CHANGE = "state_change"  # a component of the incident changed state (from the outbox)
    COMPONENT = "component"  # an affected component was added or its status changed
    STATUS = "status"  # the incident's status changed without a person (recovery, quiet period)
    CAUSE = "cause"  # a deeper failure became the probable cause
    ACKNOWLEDGED = "acknowledged"
    MERGED = "merged"
    SPLIT = "split"
    NOTIFICATION = "notification"  # for the notifications issue
    ESCALATION = "escalation"  # for the escalation issue


def _enum(enum: type[StrEnum], length: int = 32) -> Enum:
    return Enum(
        enum, native_enum=False, create_constraint=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class Incident(Base):
    """One outage. The key times feed the metrics later: time to detect, acknowledge, mitigate and resolve."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(TITLE_LIMIT))
    status: Mapped[IncidentStatus] = mapped_column(_enum(IncidentStatus), index=True)
    impact: Mapped[Impact] = mapped_column(_enum(Impact))
    # The deepest failed component (or failure domain) that explains the failures; not a foreign key, since a
    # domain has no row and a component that leaves the config must not take the incident's history with it.
    probable_cause: Mapped[str | None] = mapped_column(String(200))
    auto: Mapped[bool] = mapped_column(default=False)  # opened by the engine
    taken_over: Mapped[bool] = mapped_column(default=False)  # a person changed it: no automatic status changes
    started_at: Mapped[datetime]  # first failure
    detected_at: Mapped[datetime]  # incident opened
    acknowledged_at: Mapped[datetime | None]
    mitigated_at: Mapped[datetime | None]  # everything affected is operational again
    resolved_at: Mapped[datetime | None]
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime]

    components: Mapped[list[IncidentComponent]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="IncidentComponent.component_id"
    )
    updates: Mapped[list[IncidentUpdate]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        order_by="[IncidentUpdate.at, IncidentUpdate.id]",
    )


class IncidentComponent(Base):
    """A component affected by an incident, with its status there."""

    __tablename__ = "incident_components"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    component_id: Mapped[str] = mapped_column(
        ForeignKey("components.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[ComponentStatus] = mapped_column(_enum(ComponentStatus))

    incident: Mapped[Incident] = relationship(back_populates="components")


class IncidentUpdate(Base):
    """One entry of an incident's timeline: an update a person wrote, or an event recorded automatically."""

    __tablename__ = "incident_updates"
    # Only the rows still to announce (0008): finding them stays cheap however long the timelines grow.
    __table_args__ = (
        Index(
            "ix_incident_updates_notice",
            "id",
            sqlite_where=text("notice IS NOT NULL"),
            postgresql_where=text("notice IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind, 16))
    at: Mapped[datetime]  # when it was recorded
    display_at: Mapped[datetime]  # the time shown to the public (Statuspage's display_at)
    status: Mapped[IncidentStatus | None] = mapped_column(_enum(IncidentStatus))  # the status it set, if any
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    author: Mapped[str | None] = mapped_column(String(200))
    event_type: Mapped[EventType | None] = mapped_column(_enum(EventType))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    # What people must be told of this change of theirs (a ChangeKind of the notifications: opened, update,
    # acknowledged), until the server's dispatcher has queued its deliveries; None: nothing (left) to tell.
    notice: Mapped[Notice | None] = mapped_column(_enum(Notice, 16))

    incident: Mapped[Incident] = relationship(back_populates="updates")


class OutboxCursor(Base):
    """How far a reader of the ``state_changes`` outbox has got: moved in the transaction that applies what it
    read, so that a restart continues where it stopped and never applies a change twice."""

    __tablename__ = "outbox_cursors"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
