"""Incidents: incidents, their affected components, their timeline, and the outbox reader's position.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Types are spelled out, as in 0001, so that this revision keeps creating the same tables whatever the models
become.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.String(length=32)
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # only INTEGER PRIMARY KEY autoincrements on SQLite


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("impact", STATUS, nullable=False),
        sa.Column("probable_cause", sa.String(length=200), nullable=True),
        sa.Column("auto", sa.Boolean(), nullable=False),
        sa.Column("taken_over", sa.Boolean(), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("detected_at", TIME, nullable=False),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column("mitigated_at", TIME, nullable=True),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.Column("merged_into", BIG_ID, nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into"], ["incidents.id"], name="fk_incidents_merged_into_incidents", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "incident_components",
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("component_id", sa.String(length=200), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_components_incident_id_incidents", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["component_id"],
            ["components.id"],
            name="fk_incident_components_component_id_components",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "component_id", name="pk_incident_components"),
    )
    op.create_index("ix_incident_components_component_id", "incident_components", ["component_id"])
    op.create_table(
        "incident_updates",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("display_at", TIME, nullable=False),
        sa.Column("status", STATUS, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("event_type", STATUS, nullable=True),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_updates_incident_id_incidents", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_incident_updates"),
    )
    op.create_index("ix_incident_updates_incident_id", "incident_updates", ["incident_id"])
    op.create_table(
        "outbox_cursors",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name="pk_outbox_cursors"),
    )


def downgrade() -> None:
    for table in ("outbox_cursors", "incident_updates", "incident_components", "incidents"):
        op.drop_table(table)
