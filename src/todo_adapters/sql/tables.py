"""The schema as SQLAlchemy Core tables; Alembic migrations must match it (a test checks).

Every key and index starts with `user_id`, so every read is single-owner and the table can be
distributed by owner later. Indexes are partial (live rows only) and cover each supported sort
as (user_id, sort column, id), so a first page reads `limit` index entries whatever the size.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from todo_domain.values import as_utc

__all__ = [
    "INDEXES_IN_MIGRATIONS",
    "UTCDateTime",
    "idempotency_keys",
    "metadata",
    "owners",
    "task_tags",
    "tasks",
]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes everywhere: timestamptz on PostgreSQL; fixed-width ISO text on
    SQLite (naive UTC, so text order is time order), made aware again when read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value)


# Byte-order ("C") collation on PostgreSQL so title order is code-point order, as in SQLite
# and in Python.
CodePointText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

metadata = sa.MetaData()

LIVE = sa.text("deleted_at IS NULL")


def _live_index(name: str, *columns: Any) -> sa.Index:
    return sa.Index(name, *columns, postgresql_where=LIVE, sqlite_where=LIVE)


tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("title_key", CodePointText, nullable=False),
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
    sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"),
    # the family (SPEC §17, migration 0005): parent, position among siblings, time zone
    sa.Column("parent_id", sa.Uuid(), nullable=True),
    sa.Column("position", CodePointText, nullable=False, server_default="a0"),
    sa.Column("time_zone", sa.String(64), nullable=True),
    # the day of month a monthly/yearly recurrence aims for (migration 0006)
    sa.Column("recurrence_anchor", sa.SmallInteger(), nullable=True),
    sa.PrimaryKeyConstraint("user_id", "id", name="pk_tasks"),
)

_live_index("ix_tasks_created", tasks.c.user_id, tasks.c.created_at, tasks.c.id)
_live_index("ix_tasks_updated", tasks.c.user_id, tasks.c.updated_at, tasks.c.id)
_live_index("ix_tasks_due", tasks.c.user_id, tasks.c.due_date, tasks.c.id)
_live_index("ix_tasks_priority", tasks.c.user_id, tasks.c.priority, tasks.c.id)
_live_index("ix_tasks_title", tasks.c.user_id, tasks.c.title_key, tasks.c.id)
# Children of a parent by position (lists with ?parent_id=, a move's neighbours, the last child).
_live_index("ix_tasks_siblings", tasks.c.user_id, tasks.c.parent_id, tasks.c.position)
# Indexes only their migrations make, with SQL the metadata cannot say once for both databases:
# - due date descending with NULLs last cannot be read from ix_tasks_due backwards (that gives
#   NULLs first); PostgreSQL gets its own index (migration 0003). SQLite cannot declare NULLS
#   LAST in an index, and sorts instead;
# - no two live siblings share a position: a unique index over (user_id, parent or a fixed
#   stand-in for "top level", position) (migration 0005), since NULL parents never collide in
#   a plain unique index.
INDEXES_IN_MIGRATIONS = frozenset({"ix_tasks_due_desc", "ux_tasks_sibling_position"})

# The change feed reads all rows, tombstones included, in revision order.
sa.Index("ix_tasks_revision", tasks.c.user_id, tasks.c.revision)

# One row per owner: the revision counter of the change feed (its upsert also serialises the
# owner's writes), the newest revision whose tombstone has been purged, and live-task counts.
owners = sa.Table(
    "owners",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.Column("purged_revision", sa.BigInteger(), nullable=False, server_default="0"),
    # Live tasks by status, kept by every write: list totals without a count(*) (migration 0004).
    sa.Column("pending_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("in_progress_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("completed_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("user_id", name="pk_owners"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("task", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
)
sa.Index("ix_idempotency_keys_created", idempotency_keys.c.created_at)

task_tags = sa.Table(
    "task_tags",
    metadata,
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
sa.Index("ix_task_tags_tag", task_tags.c.user_id, task_tags.c.tag, task_tags.c.task_id)
