"""Notices of people's changes (issue 4): an incident update that people must be told about carries what to tell
(``notice``: opened, update, acknowledged) until the server's dispatcher has queued its deliveries; and an index
for the public subscribe form's resend check.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

Why a column rather than a cursor over ``incident_updates``: people's changes come from many writers (the API,
the CLI in another process, several instances on PostgreSQL), whose ids can commit out of order, so a cursor
could step over a row committed late. A pending mark is cleared in the transaction that queues its deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident_updates") as batch:
        batch.add_column(sa.Column("notice", sa.String(length=16), nullable=True))
    # Partial: only the few rows still to announce are in it, so finding them stays cheap whatever the timeline.
    op.create_index(
        "ix_incident_updates_notice",
        "incident_updates",
        ["id"],
        sqlite_where=sa.text("notice IS NOT NULL"),
        postgresql_where=sa.text("notice IS NOT NULL"),
    )
    # The public subscribe form's resend check looks at the last hour's subscribers only.
    op.create_index("ix_subscribers_created_at", "subscribers", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_created_at", table_name="subscribers")
    op.drop_index("ix_incident_updates_notice", table_name="incident_updates")
    with op.batch_alter_table("incident_updates") as batch:
        batch.drop_column("notice")
