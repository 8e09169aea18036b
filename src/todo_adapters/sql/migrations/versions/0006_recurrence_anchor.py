"""The day of month a monthly or yearly recurrence aims for (so Jan 31 → Feb 28 → Mar 31).

Existing rows keep NULL: "the due date's own day", which is what they did before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("recurrence_anchor", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("recurrence_anchor")
