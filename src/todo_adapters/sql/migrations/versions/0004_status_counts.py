"""Per-owner live task counts by status (list totals without count(*)).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COUNTS = {"pending_count": "pending", "in_progress_count": "in_progress", "completed_count": "completed"}


def upgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        for column in COUNTS:
            batch.add_column(sa.Column(column, sa.BigInteger(), nullable=False, server_default="0"))
    for column, status in COUNTS.items():
        op.execute(
            f"UPDATE owners SET {column} = (SELECT count(*) FROM tasks WHERE tasks.user_id = owners.user_id"
            f" AND tasks.deleted_at IS NULL AND tasks.status = '{status}')"
        )


def downgrade() -> None:
    with op.batch_alter_table("owners") as batch:
        for column in COUNTS:
            batch.drop_column(column)
