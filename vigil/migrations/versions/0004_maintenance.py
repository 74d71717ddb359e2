"""Scheduled maintenance: windows and the components they take out of service.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Types are spelled out, as in 0001, so that this revision keeps creating the same tables whatever the models
become.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.String(length=32)
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # only INTEGER PRIMARY KEY autoincrements on SQLite


def upgrade() -> None:
    op.create_table(
        "maintenances",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("auto_start", sa.Boolean(), nullable=False),
        sa.Column("auto_complete", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("completed_at", TIME, nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_maintenances"),
    )
    op.create_index("ix_maintenances_status", "maintenances", ["status"])
    op.create_table(
        "maintenance_components",
        sa.Column("maintenance_id", BIG_ID, nullable=False),
        sa.Column("component_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["maintenance_id"],
            ["maintenances.id"],
            name="fk_maintenance_components_maintenance_id_maintenances",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["components.id"],
            name="fk_maintenance_components_component_id_components",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("maintenance_id", "component_id", name="pk_maintenance_components"),
    )
    op.create_index("ix_maintenance_components_component_id", "maintenance_components", ["component_id"])


def downgrade() -> None:
    for table in ("maintenance_components", "maintenances"):
        op.drop_table(table)
