"""Config sync: when a monitor was created (a heartbeat's first period starts there) and when a component left
the config (kept, with its history, rather than deleted).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add columns with every option in place; Alembic copies when it must.
    with op.batch_alter_table("monitors") as batch:
        batch.add_column(sa.Column("created_at", TIME, nullable=True))
    with op.batch_alter_table("components") as batch:
        batch.add_column(sa.Column("retired_at", TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("components") as batch:
        batch.drop_column("retired_at")
    with op.batch_alter_table("monitors") as batch:
        batch.drop_column("created_at")
