"""The outbox of a SQL store, as the events worker uses it (todo_domain.ports.EventOutbox); its
statements are here, beside the flow that runs them (statements.py holds the task store's, and
the write path's event insert, `record_event`).

PostgreSQL, any number of workers: a claim locks some `event_buckets` rows with pending events
(FOR UPDATE SKIP LOCKED, in random order so no bucket waits behind busy ones) and relays their
earliest pending events in (bucket, owner, sequence) order, holding the locks until the batch is
marked published: one owner's events pass through one worker at a time, in order. Reminders
are fired by one UPDATE of the armed ones (SKIP LOCKED again), so two workers never fire the
same one. Webhook deliveries are claimed by bucket too (transaction-level advisory locks, so
the relay's row locks and the webhook loop do not get in each other's way).

SQLite (one worker, SPEC §16): the same statements without locks; what the worker reads is read
outside a write transaction, and written in a short one afterwards, so the API's writes do not
wait while the worker talks to its sinks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from todo_adapters.sql.backends import Backend, Session
from todo_adapters.sql.rows import bucket_of, event_from_row, snapshot, task_from_row
from todo_adapters.sql.statements import COUNTERS, READ_COLUMNS, reminder_write
from todo_adapters.sql.tables import ARMED, event_buckets, events, tasks, webhook_deliveries
from todo_domain.events import Delivery, EventType, RecordedEvent
from todo_domain.ports import IdGenerator

__all__ = ["SqlOutbox"]

# Buckets one claim takes at most: several workers then share the owners with pending events.
_BUCKETS_PER_CLAIM = 16

_NOW = sa.bindparam("now", type_=events.c.published_at.type)
_LIMIT = sa.bindparam("limit", type_=sa.Integer())
_PENDING = events.c.published_at.is_(None)
_D = webhook_deliveries.c
_OF_EVENT = sa.and_(_D.user_id == events.c.user_id, _D.sequence == events.c.sequence)
_DELIVERY_KEY = (
    _D.user_id == sa.bindparam("owner", type_=_D.user_id.type),
    _D.sequence == sa.bindparam("d_sequence", type_=_D.sequence.type),
    _D.url == sa.bindparam("d_url", type_=_D.url.type),
)
_DELIVERY_COLUMNS = [
    _D.url.label("d_url"),
    _D.attempts.label("d_attempts"),
    _D.first_attempt_at.label("d_first"),
    _D.next_attempt_at.label("d_next"),
    _D.last_error.label("d_error"),
    _D.dead.label("d_dead"),
]


@dataclass(frozen=True)
class _Sql:
    free_buckets: sa.Select[Any]
    pending: sa.Select[Any]
    mark: sa.Update
    schedule: sa.Insert
    fire: sa.Update
    record_reminder: tuple[sa.Executable, ...]
    webhook_buckets: sa.Select[Any]
    due: sa.Select[Any]
    delivered: sa.Delete
    retry: sa.Update
    give_up: sa.Update
    dead: sa.Select[Any]
    replay: sa.Update
    oldest_pending: sa.Select[Any]
    purge: sa.Delete

    @classmethod
    def for_dialect(cls, dialect: str) -> _Sql:
        has_pending = sa.exists().where(events.c.bucket == event_buckets.c.bucket, _PENDING)
        if dialect == "postgresql":
            buckets = events.c.bucket == sa.func.any(
                sa.bindparam("buckets", type_=postgresql.ARRAY(events.c.bucket.type))
            )
        else:
            buckets = sa.true()
        due_reminders = (
            sa.select(tasks.c.user_id, tasks.c.id)
            .where(ARMED, tasks.c.remind_at <= sa.bindparam("now", type_=tasks.c.remind_at.type))
            .order_by(tasks.c.remind_at)
            .limit(_LIMIT)
            .with_for_update(skip_locked=True)
        )
        return cls(
            free_buckets=sa.select(event_buckets.c.bucket)
            .where(has_pending)
            .order_by(sa.func.random())
            .limit(_BUCKETS_PER_CLAIM)
            .with_for_update(skip_locked=True),
            pending=sa.select(events)
            .where(buckets, _PENDING)
            .order_by(events.c.bucket, events.c.user_id, events.c.sequence)
            .limit(_LIMIT),
            mark=events.update()
            .where(
                events.c.user_id == sa.bindparam("owner", type_=events.c.user_id.type),
                events.c.sequence <= sa.bindparam("upto", type_=events.c.sequence.type),
                _PENDING,
            )
            .values(published_at=_NOW),
            schedule=webhook_deliveries.insert().values(
                user_id=sa.bindparam("owner", type_=_D.user_id.type),
                sequence=sa.bindparam("d_sequence", type_=_D.sequence.type),
                url=sa.bindparam("d_url", type_=_D.url.type),
                attempts=0,
                first_attempt_at=_NOW,
                next_attempt_at=_NOW,
            ),
            fire=tasks.update()
            .where(sa.tuple_(tasks.c.user_id, tasks.c.id).in_(due_reminders))
            .values(reminded_for=tasks.c.remind_at)
            .returning(*READ_COLUMNS),
            record_reminder=reminder_write(dialect),
            webhook_buckets=_webhook_buckets(),
            due=sa.select(events, *_DELIVERY_COLUMNS)
            .select_from(webhook_deliveries.join(events, _OF_EVENT))
            .where(_D.dead.is_(False), _D.next_attempt_at <= _NOW, buckets)
            .order_by(_D.next_attempt_at, _D.user_id, _D.sequence)
            .limit(_LIMIT)
            .with_for_update(of=webhook_deliveries, skip_locked=True),
            delivered=webhook_deliveries.delete().where(*_DELIVERY_KEY),
            retry=webhook_deliveries.update()
            .where(*_DELIVERY_KEY)
            .values(
                attempts=_D.attempts + 1,
                next_attempt_at=sa.bindparam("next", type_=_D.next_attempt_at.type),
                last_error=sa.bindparam("error", type_=_D.last_error.type),
            ),
            give_up=webhook_deliveries.update()
            .where(*_DELIVERY_KEY)
            .values(
                attempts=_D.attempts + 1,
                dead=True,
                last_error=sa.bindparam("error", type_=_D.last_error.type),
            ),
            dead=sa.select(events, *_DELIVERY_COLUMNS)
            .select_from(webhook_deliveries.join(events, _OF_EVENT))
            .where(_D.dead.is_(True))
            .order_by(_D.user_id, _D.sequence, _D.url)
            .limit(_LIMIT),
            replay=webhook_deliveries.update()
            .where(_D.dead.is_(True))
            .values(dead=False, attempts=0, first_attempt_at=_NOW, next_attempt_at=_NOW),
            oldest_pending=sa.select(sa.func.min(events.c.occurred_at).label("oldest")).where(_PENDING),
            purge=events.delete().where(events.c.published_at < _NOW, ~sa.exists().where(_OF_EVENT)),
        )


# The advisory-lock class of webhook buckets (PostgreSQL): a worker holds a bucket's webhook
# deliveries while it sends them, so one owner's deliveries go out through one worker, in order.
# (Not the event_buckets rows: those are the relay's, and the two loops run side by side.)
_WEBHOOK_LOCKS = 0x7D0F


def _webhook_buckets() -> sa.Select[Any]:
    """Up to 16 buckets with due deliveries, in random order, each locked for this transaction
    (pg_try_advisory_xact_lock, tried only on candidates, after the sort, until 16 are held)."""
    due = (
        sa.exists()
        .where(events.c.bucket == event_buckets.c.bucket, _D.dead.is_(False), _D.next_attempt_at <= _NOW)
        .select_from(webhook_deliveries.join(events, _OF_EVENT))
    )
    candidates = (
        sa.select(event_buckets.c.bucket).where(due).order_by(sa.func.random()).subquery("candidates")
    )
    held = sa.func.pg_try_advisory_xact_lock(sa.literal_column(str(_WEBHOOK_LOCKS)), candidates.c.bucket)
    return sa.select(candidates.c.bucket).where(held).limit(_BUCKETS_PER_CLAIM)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        event=event_from_row(row),
        url=row["d_url"],
        attempts=int(row["d_attempts"]),
        first_attempt_at=row["d_first"],
        next_attempt_at=row["d_next"],
        last_error=row["d_error"],
        dead=bool(row["d_dead"]),
    )


def _key(delivery: Delivery) -> dict[str, Any]:
    return {"owner": delivery.event.owner, "d_sequence": delivery.event.sequence, "d_url": delivery.url}


@dataclass
class _Claim:
    outbox: SqlOutbox
    session: Session | None  # PostgreSQL: the locking transaction; SQLite: None (write later)
    events: Sequence[RecordedEvent]

    async def published(
        self, events: Sequence[RecordedEvent], webhook_urls: Sequence[str], now: datetime
    ) -> None:
        if not events:
            return
        upto: dict[str, int] = {}
        for event in events:
            upto[event.owner] = max(upto.get(event.owner, 0), event.sequence)
        marks = [{"owner": o, "upto": s, "now": now} for o, s in upto.items()]
        deliveries = [
            {"owner": e.owner, "d_sequence": e.sequence, "d_url": url, "now": now}
            for e in events
            for url in webhook_urls
        ]
        sql = self.outbox.sql
        async with self.outbox.writing(self.session) as session:
            await session.execute_many(sql.mark, marks)
            if deliveries:
                await session.execute_many(sql.schedule, deliveries)
            await session.commit()


@dataclass
class _Due:
    outbox: SqlOutbox
    session: Session | None
    deliveries: Sequence[Delivery]
    _settled: list[tuple[sa.Executable, dict[str, Any]]] = field(default_factory=list)

    async def delivered(self, delivery: Delivery) -> None:
        self._settled.append((self.outbox.sql.delivered, _key(delivery)))

    async def retry(self, delivery: Delivery, at: datetime, error: str) -> None:
        self._settled.append((self.outbox.sql.retry, {**_key(delivery), "next": at, "error": error[:1000]}))

    async def give_up(self, delivery: Delivery, error: str) -> None:
        self._settled.append((self.outbox.sql.give_up, {**_key(delivery), "error": error[:1000]}))

    async def commit(self) -> None:
        if not self._settled:
            return
        async with self.outbox.writing(self.session) as session:
            for statement, params in self._settled:
                await session.execute(statement, params)
            await session.commit()
        self._settled.clear()


class SqlOutbox:
    """See the module docstring; made by SqlStore (`store.outbox`)."""

    def __init__(self, backend: Backend, ready: Callable[[], Awaitable[None]]) -> None:
        self._backend = backend
        self._ready = ready  # the store's migrate-once gate (SqlStore(migrate=True))
        self.sql = _Sql.for_dialect(backend.dialect)
        self._locks = backend.dialect == "postgresql"

    @asynccontextmanager
    async def _session(self, *, read_only: bool) -> AsyncIterator[Session]:
        await self._ready()
        async with self._backend.session(read_only=read_only) as session:
            yield session

    @asynccontextmanager
    async def writing(self, session: Session | None) -> AsyncIterator[Session]:
        """The claim's own transaction (PostgreSQL), or a short write transaction (SQLite)."""
        if session is not None:
            yield session
            return
        async with self._session(read_only=False) as fresh:
            yield fresh

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[_Claim]:
        if not self._locks:
            async with self._session(read_only=True) as session:
                rows = await session.fetch(self.sql.pending, {"limit": limit})
            yield _Claim(self, None, [event_from_row(r) for r in rows])
            return
        async with self._session(read_only=False) as session:
            held = [r["bucket"] for r in await session.fetch(self.sql.free_buckets, {})]
            rows = []
            if held:
                rows = await session.fetch(self.sql.pending, {"buckets": held, "limit": limit})
            yield _Claim(self, session, [event_from_row(r) for r in rows])

    @asynccontextmanager
    async def due_deliveries(self, now: datetime, limit: int) -> AsyncIterator[_Due]:
        params = {"now": now, "limit": limit}
        if not self._locks:
            async with self._session(read_only=True) as session:
                rows = await session.fetch(self.sql.due, params)
            yield _Due(self, None, [_delivery(r) for r in rows])
            return
        async with self._session(read_only=False) as session:
            held = [r["bucket"] for r in await session.fetch(self.sql.webhook_buckets, {"now": now})]
            rows = await session.fetch(self.sql.due, {**params, "buckets": held}) if held else []
            yield _Due(self, session, [_delivery(r) for r in rows])

    async def fire_reminders(
        self, now: datetime, *, skip_before: datetime, late_before: datetime, ids: IdGenerator, limit: int
    ) -> list[RecordedEvent]:
        fired: list[RecordedEvent] = []
        async with self._session(read_only=False) as session:
            rows = await session.fetch(self.sql.fire, {"now": now, "limit": limit})
            due = sorted((task_from_row(r) for r in rows), key=lambda t: (t.remind_at, t.id))
            for task in due:
                assert task.remind_at is not None
                if task.remind_at < skip_before:
                    continue  # too late to be useful: disarmed without an event
                event_id, late = ids.new_id(), task.remind_at < late_before
                params = {
                    "owner": task.owner,
                    **{f"d_{name}": 0 for name in COUNTERS},
                    "e_id": event_id,
                    "e_bucket": bucket_of(task.owner),
                    "e_type": EventType.REMINDER_DUE.value,
                    "e_task": snapshot(task),
                    "e_time": now,
                    "e_occurrence": None,
                    "e_remind_at": task.remind_at,
                    "e_late": late,
                }
                *before, numbered = self.sql.record_reminder
                for statement in before:
                    await session.execute(statement, params)
                row = await session.fetchrow(numbered, params)
                assert row is not None
                fired.append(
                    RecordedEvent(
                        event_id,
                        task.owner,
                        int(row["sequence"]),
                        EventType.REMINDER_DUE,
                        task,
                        now,
                        remind_at=task.remind_at,
                        late=late,
                    )
                )
            await session.commit()
        return fired

    async def dead_letters(self, limit: int) -> list[Delivery]:
        async with self._session(read_only=True) as session:
            return [_delivery(r) for r in await session.fetch(self.sql.dead, {"limit": limit})]

    async def replay_dead(self, now: datetime) -> int:
        async with self._session(read_only=False) as session:
            count = await session.execute(self.sql.replay, {"now": now})
            await session.commit()
        return count

    async def lag(self, now: datetime) -> float | None:
        async with self._session(read_only=True) as session:
            row = await session.fetchrow(self.sql.oldest_pending, {})
        oldest = None if row is None else row["oldest"]
        return None if oldest is None else max(0.0, (now - oldest).total_seconds())

    async def purge(self, published_before: datetime) -> int:
        async with self._session(read_only=False) as session:
            count = await session.execute(self.sql.purge, {"now": published_before})
            await session.commit()
        return count
