"""Index for the whole list in manual order (`sort=position` without `parent_id`).

Without it PostgreSQL sorted every live task of the owner for each page: 12 ms for a first
page at 10,000 tasks, 60 ms at 100,000, against ≈ 2 ms for the other sorts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_tasks_position", "tasks", ["user_id", "position", "id"], postgresql_where=live, sqlite_where=live
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_position", "tasks")
