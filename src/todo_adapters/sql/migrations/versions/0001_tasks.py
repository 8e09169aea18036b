"""Tasks and their tags.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from todo_adapters.sql.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "title_key",
            sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("due_date", UTCDateTime(), nullable=True),
        sa.Column("remind_at", UTCDateTime(), nullable=True),
        sa.Column("recurrence_frequency", sa.String(16), nullable=True),
        sa.Column("recurrence_interval", sa.SmallInteger(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "id", name="pk_tasks"),
    )
    for name, column in [
        ("ix_tasks_created", "created_at"),
        ("ix_tasks_updated", "updated_at"),
        ("ix_tasks_due", "due_date"),
        ("ix_tasks_priority", "priority"),
        ("ix_tasks_title", "title_key"),
    ]:
        op.create_index(name, "tasks", ["user_id", column, "id"], postgresql_where=LIVE, sqlite_where=LIVE)
    op.create_table(
        "task_tags",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "task_id", "tag", name="pk_task_tags"),
        sa.ForeignKeyConstraint(
            ["user_id", "task_id"],
            ["tasks.user_id", "tasks.id"],
            name="fk_task_tags_task",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_task_tags_tag", "task_tags", ["user_id", "tag", "task_id"])


def downgrade() -> None:
    op.drop_table("task_tags")
    op.drop_table("tasks")
