"""Alerts received from other systems, one row per (source, fingerprint): the deduplication key.

A row keeps the alert's last word (status, labels, annotations, times, the payload it came in) and the
component it mapped to; ``component_id`` is NULL when no mapping rule matched (the alert is recorded, not
dropped, and changes no state). Statuses are stored as values in plain ``VARCHAR`` columns, as elsewhere.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from vigil.db import Base

__all__ = ["FINGERPRINT_LIMIT", "Alert", "AlertSource", "AlertStatus"]

FINGERPRINT_LIMIT = 200
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class AlertSource(StrEnum):
    ALERTMANAGER = "alertmanager"
    WEBHOOK = "webhook"  # the generic JSON webhook


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _enum(enum: type[StrEnum]) -> Enum:
    return Enum(
        enum, native_enum=False, create_constraint=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class Alert(Base):
    """The last known state of one alert of one source."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("source", "fingerprint"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[AlertSource] = mapped_column(_enum(AlertSource))
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT_LIMIT))
    status: Mapped[AlertStatus] = mapped_column(_enum(AlertStatus))
    # SET NULL: a component deleted later leaves its alerts recorded, unmapped.
    component_id: Mapped[str | None] = mapped_column(ForeignKey("components.id", ondelete="SET NULL"), index=True)
    # Why the alert is not mapped (no rule matched, or a rule named an unknown component); "" when mapped.
    note: Mapped[str] = mapped_column(Text, default="")
    group_key: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # the alert as last received
