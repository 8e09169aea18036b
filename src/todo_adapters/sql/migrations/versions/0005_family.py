"""Subtasks, manual order and time zones (SPEC §17): parent_id, position, time_zone.

Existing live tasks get positions in creation order, per owner (all top level). Their version
and revision stay as they are: the new fields are defaults, not edits.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from todo_domain import positions

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_POSITION = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("position", _POSITION, nullable=False, server_default="a0"))
        batch.add_column(sa.Column("time_zone", sa.String(64), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT user_id, id FROM tasks WHERE deleted_at IS NULL ORDER BY user_id, created_at, id")
    ).all()
    by_owner: dict[str, list[object]] = {}
    for user_id, task_id in rows:
        by_owner.setdefault(user_id, []).append(task_id)
    tasks = sa.table("tasks", sa.column("user_id"), sa.column("id", sa.Uuid()), sa.column("position"))
    update = (
        tasks.update()
        .where(tasks.c.user_id == sa.bindparam("owner"), tasks.c.id == sa.bindparam("task_id"))
        .values(position=sa.bindparam("key"))
    )
    for owner, ids in by_owner.items():
        keys = positions.spread(len(ids))
        bind.execute(
            update, [{"owner": owner, "task_id": i, "key": k} for i, k in zip(ids, keys, strict=True)]
        )
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_tasks_siblings",
        "tasks",
        ["user_id", "parent_id", "position"],
        postgresql_where=live,
        sqlite_where=live,
    )
    top_level = "'00000000-0000-0000-0000-000000000000'::uuid" if bind.dialect.name == "postgresql" else "''"
    op.execute(
        "CREATE UNIQUE INDEX ux_tasks_sibling_position ON tasks "
        f"(user_id, COALESCE(parent_id, {top_level}), position) WHERE deleted_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ux_tasks_sibling_position", "tasks")
    op.drop_index("ix_tasks_siblings", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("position")
        batch.drop_column("parent_id")
