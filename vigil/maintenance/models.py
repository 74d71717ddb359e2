"""Maintenance windows and the components they take out of service on purpose.

Statuses are stored as their values in plain ``VARCHAR`` columns without CHECK constraints, as in
:mod:`vigil.incidents.models`: a new status is a code change, not a migration.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigil.db import Base

__all__ = ["TITLE_LIMIT", "Maintenance", "MaintenanceComponent", "MaintenanceStatus"]

TITLE_LIMIT = 300

BigId = BigInteger().with_variant(Integer(), "sqlite")


class MaintenanceStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


def _enum(enum: type[StrEnum], length: int = 32) -> Enum:
    return Enum(
        enum, native_enum=False, create_constraint=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class Maintenance(Base):
    """One maintenance window. ``findings`` holds what the what-if check found when it was scheduled (a list
    of ``{"service", "tier", "status", "new_spofs"}``), kept when someone scheduled it anyway (``forced``)."""

    __tablename__ = "maintenances"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(TITLE_LIMIT))
    message: Mapped[str] = mapped_column(Text, default="")  # Markdown, for the announcement
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[MaintenanceStatus] = mapped_column(_enum(MaintenanceStatus), index=True)
    auto_start: Mapped[bool] = mapped_column(default=True)
    auto_complete: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]  # when it actually started (auto or by hand)
    completed_at: Mapped[datetime | None]  # when it actually ended (completed or cancelled)
    forced: Mapped[bool] = mapped_column(default=False)
    findings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))

    components: Mapped[list[MaintenanceComponent]] = relationship(
        back_populates="maintenance", cascade="all, delete-orphan", order_by="MaintenanceComponent.component_id"
    )

    @property
    def component_ids(self) -> list[str]:
        return [c.component_id for c in self.components]


class MaintenanceComponent(Base):
    """A component a window takes out of service."""

    __tablename__ = "maintenance_components"

    maintenance_id: Mapped[int] = mapped_column(ForeignKey("maintenances.id", ondelete="CASCADE"), primary_key=True)
    component_id: Mapped[str] = mapped_column(
        ForeignKey("components.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    maintenance: Mapped[Maintenance] = relationship(back_populates="components")
