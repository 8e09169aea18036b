"""Events out and reminders (SPEC §16): the outbox, its buckets, webhook deliveries, and the
remind_at value each task's reminder last fired for.

Existing tasks whose reminder time has passed stay armed: the worker skips those more than
REMINDER_MAX_LATENESS_HOURS old and fires the rest as late ones. Nothing before this
migration is in the outbox (its writes were never recorded as events).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from todo_adapters.sql.tables import ARMED, EVENT_BUCKETS, PENDING, PUBLISHED, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("reminded_for", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_tasks_armed_reminders", "tasks", ["remind_at"], postgresql_where=ARMED, sqlite_where=ARMED
    )
    op.create_table(
        "events",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("occurrence", UTCDateTime(), nullable=True),
        sa.Column("remind_at", UTCDateTime(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "sequence", name="pk_events"),
    )
    op.create_index(
        "ix_events_pending",
        "events",
        ["bucket", "user_id", "sequence"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_events_published", "events", ["published_at"], postgresql_where=PUBLISHED, sqlite_where=PUBLISHED
    )
    buckets = op.create_table(
        "event_buckets",
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name="pk_event_buckets"),
    )
    op.bulk_insert(buckets, [{"bucket": b} for b in range(EVENT_BUCKETS)])
    op.create_table(
        "webhook_deliveries",
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
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["dead", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("event_buckets")
    op.drop_table("events")
    op.drop_index("ix_tasks_armed_reminders", "tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("reminded_for")
