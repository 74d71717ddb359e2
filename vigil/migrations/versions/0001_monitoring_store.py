"""The monitoring store: components, monitors, check results, state changes, rollups.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Types are spelled out here rather than imported from the models, so that this revision keeps creating the same
tables whatever the models become: statuses are VARCHAR(16) (the models read them as enums), times are
timezone-aware (SQLite stores them as naive UTC text).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATE = sa.String(length=16)
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # only INTEGER PRIMARY KEY autoincrements on SQLite


def upgrade() -> None:
    op.create_table(
        "components",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("tier", STATE, nullable=False),
        sa.Column("state", STATE, nullable=False),
        sa.Column("state_since", TIME, nullable=True),
        sa.Column("state_cause", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["state_cause"], ["components.id"], name="fk_components_state_cause_components", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_components"),
    )
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("component_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("outcome", STATE, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("last_checked_at", TIME, nullable=True),
        sa.Column("heartbeat_token", sa.String(length=64), nullable=True),
        sa.Column("last_ping_at", TIME, nullable=True),
        sa.Column("last_start_at", TIME, nullable=True),
        sa.Column("last_fail_at", TIME, nullable=True),
        sa.Column("last_ping_body", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["component_id"], ["components.id"], name="fk_monitors_component_id_components", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_monitors"),
        sa.UniqueConstraint("heartbeat_token", name="uq_monitors_heartbeat_token"),
    )
    op.create_index("ix_monitors_component_id", "monitors", ["component_id"])
    op.create_table(
        "check_results",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("monitor_id", sa.String(length=512), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", STATE, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name="fk_check_results_monitor_id_monitors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_check_results"),
    )
    op.create_index("ix_check_results_monitor_id_started_at", "check_results", ["monitor_id", "started_at"])
    op.create_table(
        "rollups",
        sa.Column("monitor_id", sa.String(length=512), nullable=False),
        sa.Column("period", STATE, nullable=False),
        sa.Column("bucket_start", TIME, nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("latency_p50", sa.Float(), nullable=True),
        sa.Column("latency_p95", sa.Float(), nullable=True),
        sa.Column("latency_p99", sa.Float(), nullable=True),
        sa.Column("downtime_seconds", sa.Float(), nullable=False),
        sa.Column("observed_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name="fk_rollups_monitor_id_monitors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("monitor_id", "period", "bucket_start", name="pk_rollups"),
    )
    op.create_table(
        "state_changes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("component_id", sa.String(length=200), nullable=True),
        sa.Column("monitor_id", sa.String(length=512), nullable=True),
        sa.Column("from_state", STATE, nullable=False),
        sa.Column("to_state", STATE, nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("cause", sa.String(length=512), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("(component_id IS NULL) <> (monitor_id IS NULL)", name="ck_state_changes_one_subject"),
        sa.ForeignKeyConstraint(
            ["component_id"], ["components.id"], name="fk_state_changes_component_id_components", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["monitor_id"], ["monitors.id"], name="fk_state_changes_monitor_id_monitors", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_state_changes"),
    )
    op.create_index("ix_state_changes_component_id", "state_changes", ["component_id"])
    op.create_index("ix_state_changes_monitor_id", "state_changes", ["monitor_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents for the foreign keys.
    for table in ("state_changes", "rollups", "check_results", "monitors", "components"):
        op.drop_table(table)
