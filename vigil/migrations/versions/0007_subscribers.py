"""Subscribers (issue 4): people told by e-mail or webhook about the components they chose; their deliveries go
through the notifications outbox (``subscriber_id``; ``incident_id`` becomes optional for maintenance).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Types are spelled out, as in 0001, so that this revision keeps creating the same tables whatever the models
become.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.String(length=16)
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # only INTEGER PRIMARY KEY autoincrements on SQLite


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", STATUS, nullable=False),
        sa.Column("address", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("all_components", sa.Boolean(), nullable=False),
        sa.Column("confirm_token", sa.String(length=200), nullable=False),
        sa.Column("unsubscribe_token", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("confirmed_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.UniqueConstraint("confirm_token", name="uq_subscribers_confirm_token"),
        sa.UniqueConstraint("unsubscribe_token", name="uq_subscribers_unsubscribe_token"),
    )
    op.create_table(
        "subscriber_components",
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("component_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_subscriber_components_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "component_id", name="pk_subscriber_components"),
    )
    op.create_index("ix_subscriber_components_component_id", "subscriber_components", ["component_id"])
    # batch: SQLite cannot alter a column or add a foreign key in place; the table is copied there.
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.alter_column("incident_id", existing_type=BIG_ID, nullable=True)
        batch.add_column(sa.Column("subscriber_id", BIG_ID, nullable=True))
        batch.create_foreign_key(
            "fk_notification_deliveries_subscriber_id_subscribers",
            "subscribers",
            ["subscriber_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_notification_deliveries_subscriber_id", ["subscriber_id"])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM notification_deliveries WHERE incident_id IS NULL"))
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_index("ix_notification_deliveries_subscriber_id")
        batch.drop_constraint("fk_notification_deliveries_subscriber_id_subscribers", type_="foreignkey")
        batch.drop_column("subscriber_id")
        batch.alter_column("incident_id", existing_type=BIG_ID, nullable=False)
    op.drop_table("subscriber_components")
    op.drop_table("subscribers")
