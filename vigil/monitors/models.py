"""What the monitoring engine keeps: components and monitors with their current state, raw check results, the
outbox of state changes, and hourly/daily rollups.

Statuses are stored as their string values in plain ``VARCHAR`` columns without CHECK constraints, so that a new
state is a code change, not a migration (SQLite cannot alter a constraint without copying the table); SQLAlchemy
refuses values outside the enum on the way in and turns them back into members on the way out.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigil.db import Base
from vigil.model.types import Tier
from vigil.monitors.result import Outcome

__all__ = [
    "PING_BODY_LIMIT",
    "REASON_LIMIT",
    "CheckResult",
    "Component",
    "ComponentState",
    "Monitor",
    "Outcome",
    "PingKind",
    "Rollup",
    "RollupPeriod",
    "StateChange",
]

PING_BODY_LIMIT = 1000  # characters of a heartbeat ping's body kept: enough for a job's last error line
REASON_LIMIT = 1000  # characters of a check result's reason kept

# A bigint primary key that autoincrements on SQLite too: there only INTEGER PRIMARY KEY is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ComponentState(StrEnum):
    """The current state of a component, as the status page shows it."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"  # not checked yet, or no monitor says anything about it


class PingKind(StrEnum):
    """What a heartbeat ping reports: ``/start``, ``/ping`` (success) or ``/fail``."""

    START = "start"
    SUCCESS = "success"
    FAIL = "fail"


class RollupPeriod(StrEnum):
    HOUR = "hour"
    DAY = "day"


def _enum(enum: type[StrEnum]) -> Enum:
    # Values ("up"), not member names ("UP"); length 16 leaves room for new values without a migration.
    return Enum(
        enum, native_enum=False, create_constraint=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class Component(Base):
    """A component of the model (its id is the model's id), with the state the engine last worked out."""

    __tablename__ = "components"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    tier: Mapped[Tier] = mapped_column(_enum(Tier), default=Tier.STANDARD)
    state: Mapped[ComponentState] = mapped_column(_enum(ComponentState), default=ComponentState.UNKNOWN)
    state_since: Mapped[datetime | None]
    # The upstream component whose failure put this one down, None when its own monitors did.
    state_cause: Mapped[str | None] = mapped_column(ForeignKey("components.id", ondelete="SET NULL"))
    # Set when the component left the config: kept with its history, hidden from current views.
    retired_at: Mapped[datetime | None]

    monitors: Mapped[list[Monitor]] = relationship(back_populates="component", passive_deletes=True)


class Monitor(Base):
    """One configured check of a component, with the running counters the engine decides states from."""

    __tablename__ = "monitors"

    id: Mapped[str] = mapped_column(String(512), primary_key=True)  # "<component id>/<monitor id>"
    component_id: Mapped[str] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)  # False once it left the config (history kept)
    created_at: Mapped[datetime | None]  # a heartbeat's first period counts from here
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome))  # None until the first result
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    consecutive_successes: Mapped[int] = mapped_column(default=0)
    last_checked_at: Mapped[datetime | None]
    # Heartbeat monitors only: the secret in the ping URL, and what the job last reported.
    heartbeat_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    last_ping_at: Mapped[datetime | None]
    last_start_at: Mapped[datetime | None]
    last_fail_at: Mapped[datetime | None]
    last_ping_body: Mapped[str | None] = mapped_column(String(PING_BODY_LIMIT))

    component: Mapped[Component] = relationship(back_populates="monitors")


class CheckResult(Base):
    """One run of one monitor. Raw results are purged after the retention period; rollups outlive them."""

    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_monitor_id_started_at", "monitor_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    latency_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome))
    reason: Mapped[str] = mapped_column(Text, default="")


class StateChange(Base):
    """A change of state of a component or a monitor: the outbox that incidents and notifications read.

    Readers follow the ``id`` (:func:`vigil.monitors.store.state_changes_since`); writers make ids appear in
    commit order so that a reader never skips one (see :func:`vigil.monitors.store.record_state_change`).
    """

    __tablename__ = "state_changes"
    __table_args__ = (CheckConstraint("(component_id IS NULL) <> (monitor_id IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component_id: Mapped[str | None] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), index=True)
    monitor_id: Mapped[str | None] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), index=True)
    # Monitor outcomes (up, degraded, down) are a subset of component states, so one type holds both.
    from_state: Mapped[ComponentState] = mapped_column(_enum(ComponentState))
    to_state: Mapped[ComponentState] = mapped_column(_enum(ComponentState))
    at: Mapped[datetime]
    cause: Mapped[str | None] = mapped_column(String(512))  # the upstream component or monitor that caused it
    reason: Mapped[str] = mapped_column(Text, default="")


class Rollup(Base):
    """Aggregates of one monitor's results over one UTC hour or day.

    ``observed_seconds`` is the time the results cover (each lasting until the next one, within a bound), so
    that uptime is downtime over time actually watched, not over the calendar.
    """

    __tablename__ = "rollups"

    monitor_id: Mapped[str] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[RollupPeriod] = mapped_column(_enum(RollupPeriod), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    checks: Mapped[int]
    failures: Mapped[int]  # down results
    degraded: Mapped[int]
    latency_p50: Mapped[float | None] = mapped_column(Float)  # ms, over the results that got an answer
    latency_p95: Mapped[float | None] = mapped_column(Float)
    latency_p99: Mapped[float | None] = mapped_column(Float)
    downtime_seconds: Mapped[float] = mapped_column(Float)
    observed_seconds: Mapped[float] = mapped_column(Float)
