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
    "EVENT_BUCKETS",
    "INDEXES_IN_MIGRATIONS",
    "UTCDateTime",
    "event_buckets",
    "events",
    "idempotency_keys",
    "metadata",
    "owners",
    "task_tags",
    "tasks",
    "webhook_deliveries",
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
    # the remind_at value whose reminder last fired (migration 0007; set by the worker only)
    sa.Column("reminded_for", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("user_id", "id", name="pk_tasks"),
)

_live_index("ix_tasks_created", tasks.c.user_id, tasks.c.created_at, tasks.c.id)
_live_index("ix_tasks_updated", tasks.c.user_id, tasks.c.updated_at, tasks.c.id)
_live_index("ix_tasks_due", tasks.c.user_id, tasks.c.due_date, tasks.c.id)
_live_index("ix_tasks_priority", tasks.c.user_id, tasks.c.priority, tasks.c.id)
_live_index("ix_tasks_title", tasks.c.user_id, tasks.c.title_key, tasks.c.id)
# Children of a parent by position (lists with ?parent_id=, a move's neighbours, the last child).
_live_index("ix_tasks_siblings", tasks.c.user_id, tasks.c.parent_id, tasks.c.position)
# Manual order of the whole list (`sort=position` without `parent_id`; migration 0008).
_live_index("ix_tasks_position", tasks.c.user_id, tasks.c.position, tasks.c.id)
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

# Armed reminders only (a live, open task whose remind_at has not fired yet): what the worker
# reads, by time, whatever the number of tasks (migration 0007).
ARMED = sa.text(
    "remind_at IS NOT NULL AND deleted_at IS NULL AND status <> 'completed'"
    " AND (reminded_for IS NULL OR reminded_for <> remind_at)"
)
sa.Index("ix_tasks_armed_reminders", tasks.c.remind_at, postgresql_where=ARMED, sqlite_where=ARMED)

# -- the outbox (SPEC §16, migration 0007) -------------------------------------------------------

# Owners are spread over EVENT_BUCKETS buckets (rows.bucket_of); a worker relays the buckets it
# holds locked, so one owner's events go out through one worker at a time, in sequence order.
EVENT_BUCKETS = 64

events = sa.Table(
    "events",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("sequence", sa.BigInteger(), nullable=False),  # the owner's revision of the write
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("bucket", sa.SmallInteger(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("task", sa.Text(), nullable=False),  # rows.snapshot of the task after the write
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("occurrence", UTCDateTime(), nullable=True),
    sa.Column("remind_at", UTCDateTime(), nullable=True),
    sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("published_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("user_id", "sequence", name="pk_events"),
)
PENDING = sa.text("published_at IS NULL")
sa.Index(
    "ix_events_pending",
    events.c.bucket,
    events.c.user_id,
    events.c.sequence,
    postgresql_where=PENDING,
    sqlite_where=PENDING,
)
# For the purge; partial, so that a write (whose event is unpublished) adds no entry to it.
PUBLISHED = sa.text("published_at IS NOT NULL")
sa.Index("ix_events_published", events.c.published_at, postgresql_where=PUBLISHED, sqlite_where=PUBLISHED)

event_buckets = sa.Table(
    "event_buckets",
    metadata,
    sa.Column("bucket", sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint("bucket", name="pk_event_buckets"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("sequence", sa.BigInteger(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("first_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("dead", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("user_id", "sequence", "url", name="pk_webhook_deliveries"),
    sa.ForeignKeyConstraint(
        ["user_id", "sequence"],
        ["events.user_id", "events.sequence"],
        name="fk_webhook_deliveries_event",
        ondelete="CASCADE",
    ),
)
sa.Index("ix_webhook_deliveries_due", webhook_deliveries.c.dead, webhook_deliveries.c.next_attempt_at)
