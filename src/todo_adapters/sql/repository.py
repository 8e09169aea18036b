"""Tasks in SQL: explicit row ↔ entity mapping, compare-and-set saves, keyset-paged queries.

Tags are stored twice on purpose: as a JSON list on the task row (so reading a task is one row)
and in `task_tags` (so "has all these tags" and per-tag counts are index lookups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_adapters.sql.rows import (
    STATUS_COUNT,
    count_changes,
    counted,
    counted_statuses,
    from_snapshot,
    snapshot,
    tag_changes,
    task_from_row,
    task_to_row,
)
from todo_adapters.sql.tables import idempotency_keys, owners, task_tags, tasks
from todo_domain.errors import IdempotencyKeyInFlight, VersionConflict
from todo_domain.model import Task
from todo_domain.query import Page, SortField, TagCount, TaskQuery
from todo_domain.sync import FeedPage, Purged, StoredKey
from todo_domain.values import Status, Tags

__all__ = ["SqlTaskRepository"]

_SORT_COLUMNS: Mapping[SortField, sa.ColumnElement[Any]] = {
    SortField.CREATED_AT: tasks.c.created_at,
    SortField.UPDATED_AT: tasks.c.updated_at,
    SortField.DUE_DATE: tasks.c.due_date,
    SortField.PRIORITY: tasks.c.priority,
    SortField.TITLE: tasks.c.title_key,
}

_SELECT = sa.select(*(c for c in tasks.c if c.name not in ("title_key", "search_text", "revision")))
# Built once: SQLAlchemy then reuses their cache keys and compiled forms on every call.
_GET = _SELECT.where(
    tasks.c.user_id == sa.bindparam("owner"),
    tasks.c.id == sa.bindparam("task_id"),
    tasks.c.deleted_at.is_(None),
)
_GET_FOR_UPDATE = _GET.with_for_update()


class SqlTaskRepository:
    """The repository of one transaction's connection; it never commits."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection
        self._loaded_tags: dict[UUID, Tags] = {}
        self._loaded_status: dict[UUID, Status | None] = {}

    async def _next_revision(self, owner: str, before: Status | None, after: Status | None) -> int:
        """Bumps the owner's change-feed counter and moves the task between the per-status
        counts (None: not counted, i.e. deleted or new). The row stays locked until commit, so
        an owner's writes commit in revision order (see todo_domain.sync)."""
        insert = postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        counts = count_changes(before, after)
        changes: dict[str, Any] = {"revision": owners.c.revision + 1}
        changes.update({column: owners.c[column] + n for column, n in counts.items() if n})
        stmt = (
            insert(owners)
            .values(user_id=owner, revision=1, purged_revision=0, **counts)
            .on_conflict_do_update(index_elements=[owners.c.user_id], set_=changes)
            .returning(owners.c.revision)
        )
        return int((await self._conn.execute(stmt)).scalar_one())

    async def add(self, task: Task) -> None:
        revision = await self._next_revision(task.owner, None, counted(task))
        await self._conn.execute(tasks.insert().values({**task_to_row(task), "revision": revision}))
        await self._write_tags(task, ())

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        stmt = _GET_FOR_UPDATE if for_update else _GET
        row = (await self._conn.execute(stmt, {"owner": owner, "task_id": task_id})).mappings().first()
        if row is None:
            return None
        task = task_from_row(row)
        self._loaded_tags[task.id] = task.tags
        self._loaded_status[task.id] = task.status
        return task

    async def save(self, task: Task, *, expected_version: int) -> None:
        values = task_to_row(task)
        del values["user_id"], values["id"], values["created_at"]
        if task.id in self._loaded_status:
            before = self._loaded_status[task.id]
        else:  # saved without being read here: ask the row (the UPDATE below locks it anyway)
            row = (
                await self._conn.execute(
                    sa.select(tasks.c.status, tasks.c.deleted_at).where(
                        tasks.c.user_id == task.owner, tasks.c.id == task.id
                    )
                )
            ).first()
            before = None if row is None or row[1] is not None else Status(row[0])
        values["revision"] = await self._next_revision(task.owner, before, counted(task))
        result = await self._conn.execute(
            tasks.update()
            .where(
                tasks.c.user_id == task.owner,
                tasks.c.id == task.id,
                tasks.c.version == expected_version,
            )
            .values(values)
        )
        if result.rowcount != 1:
            current = await self._conn.scalar(
                sa.select(tasks.c.version).where(tasks.c.user_id == task.owner, tasks.c.id == task.id)
            )
            raise VersionConflict(expected_version, current or 0)
        await self._write_tags(task, self._loaded_tags.get(task.id))
        self._loaded_status[task.id] = counted(task)

    async def _write_tags(self, task: Task, before: Sequence[str] | None) -> None:
        changes = tag_changes(task, before)
        mine = (task_tags.c.user_id == task.owner, task_tags.c.task_id == task.id)
        if changes.clear_all:
            await self._conn.execute(task_tags.delete().where(*mine))
        if changes.gone:
            await self._conn.execute(task_tags.delete().where(*mine, task_tags.c.tag.in_(changes.gone)))
        if changes.new:
            rows = [{"user_id": task.owner, "task_id": task.id, "tag": t} for t in changes.new]
            await self._conn.execute(task_tags.insert(), rows)
        self._loaded_tags[task.id] = changes.after

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        conditions = _filters(owner, query, now)
        counted = counted_statuses(query)
        if counted is None:
            total = await self._conn.scalar(sa.select(sa.func.count()).select_from(tasks).where(*conditions))
        else:  # the per-status counters on the owner's row: O(1) whatever the owner's size
            columns = [owners.c[STATUS_COUNT[s]] for s in sorted(counted)]
            row = (await self._conn.execute(sa.select(*columns).where(owners.c.user_id == owner))).first()
            total = 0 if row is None else sum(int(v) for v in row)
        column = _SORT_COLUMNS[query.sort.field]
        descending = query.sort.descending
        if query.cursor is not None:
            conditions.append(_after(column, query.cursor.value, query.cursor.task_id, descending))
        by_value = column.desc() if descending else column.asc()
        if column is tasks.c.due_date:
            # Only due_date can be NULL. Saying NULLS LAST on a NOT NULL column would stop
            # PostgreSQL from reading its (user_id, column, id) index backwards.
            by_value = by_value.nulls_last()
        order = [by_value, tasks.c.id.desc() if descending else tasks.c.id.asc()]
        stmt = _SELECT.where(*conditions).order_by(*order).limit(query.limit + 1)
        if query.offset:
            stmt = stmt.offset(query.offset)
        rows = (await self._conn.execute(stmt)).mappings().all()
        return Page.build([task_from_row(r) for r in rows], query, total=total or 0)

    async def changes_since(
        self, owner: str, revision: int, limit: int, *, include_deleted: bool
    ) -> FeedPage:
        # One statement, so one snapshot (see pg_repository._FEED): the page is joined to the
        # owner's row and comes back as NULL columns when empty.
        where = [tasks.c.user_id == owner, tasks.c.revision > revision]
        if not include_deleted:
            where.append(tasks.c.deleted_at.is_(None))
        page = (
            _SELECT.add_columns(tasks.c.revision)
            .where(*where)
            .order_by(tasks.c.revision)
            .limit(limit + 1)
            .subquery("page")
        )
        stmt = (
            sa.select(owners.c.revision.label("owner_revision"), owners.c.purged_revision, *page.c)
            .select_from(owners.outerjoin(page, sa.true()))
            .where(owners.c.user_id == owner)
            .order_by(page.c.revision)
        )
        rows = (await self._conn.execute(stmt)).mappings().all()
        if not rows:  # an owner who never wrote
            return FeedPage((), 0, 0)
        current, purged = int(rows[0]["owner_revision"]), int(rows[0]["purged_revision"])
        entries = tuple((int(r["revision"]), task_from_row(r)) for r in rows if r["id"] is not None)
        return FeedPage(entries, current, purged)

    async def find_key(self, owner: str, key: str) -> StoredKey | None:
        row = (
            await self._conn.execute(
                sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.task).where(
                    idempotency_keys.c.user_id == owner, idempotency_keys.c.key == key
                )
            )
        ).first()
        return None if row is None else StoredKey(row[0], from_snapshot(row[1]))

    async def remember_key(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        values = {
            "user_id": owner,
            "key": key,
            "fingerprint": fingerprint,
            "task": snapshot(task),
            "created_at": task.created_at,
        }
        try:
            # On PostgreSQL this waits for a concurrent transaction holding the same key.
            await self._conn.execute(idempotency_keys.insert().values(values))
        except sa.exc.IntegrityError:
            raise IdempotencyKeyInFlight() from None

    async def purge(self, tombstones_before: datetime, keys_before: datetime) -> Purged:
        old = tasks.c.deleted_at < tombstones_before
        newest = (
            await self._conn.execute(
                sa.select(tasks.c.user_id, sa.func.max(tasks.c.revision)).where(old).group_by(tasks.c.user_id)
            )
        ).all()
        for owner, revision in newest:
            await self._conn.execute(
                owners.update()
                .where(owners.c.user_id == owner, owners.c.purged_revision < revision)
                .values(purged_revision=revision)
            )
        removed = await self._conn.execute(tasks.delete().where(old))
        keys = await self._conn.execute(
            idempotency_keys.delete().where(idempotency_keys.c.created_at < keys_before)
        )
        return Purged(removed.rowcount, keys.rowcount)

    async def tag_counts(self, owner: str) -> list[TagCount]:
        open_ = sa.func.sum(sa.case((tasks.c.status != Status.COMPLETED.value, 1), else_=0))
        stmt = (
            sa.select(task_tags.c.tag, open_, sa.func.count())
            .join(tasks, sa.and_(tasks.c.user_id == task_tags.c.user_id, tasks.c.id == task_tags.c.task_id))
            .where(task_tags.c.user_id == owner, tasks.c.deleted_at.is_(None))
            .group_by(task_tags.c.tag)
            .order_by(task_tags.c.tag)
        )
        rows = (await self._conn.execute(stmt)).all()
        return [TagCount(tag, int(open_count or 0), int(total)) for tag, open_count, total in rows]


def _filters(owner: str, query: TaskQuery, now: datetime) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [tasks.c.user_id == owner, tasks.c.deleted_at.is_(None)]
    if query.statuses:
        where.append(tasks.c.status.in_(sorted(s.value for s in query.statuses)))
    if query.completed is not None:
        op = tasks.c.status.__eq__ if query.completed else tasks.c.status.__ne__
        where.append(op(Status.COMPLETED.value))
    if query.priorities:
        where.append(tasks.c.priority.in_(sorted(p.rank for p in query.priorities)))
    for tag in query.tags:
        where.append(
            sa.exists().where(
                task_tags.c.user_id == tasks.c.user_id,
                task_tags.c.task_id == tasks.c.id,
                task_tags.c.tag == tag,
            )
        )
    if query.folded_text:
        where.append(tasks.c.search_text.contains(query.folded_text, autoescape=True))
    if query.due_before is not None:
        where.append(tasks.c.due_date < query.due_before)
    if query.due_after is not None:
        where.append(tasks.c.due_date >= query.due_after)
    if query.overdue is not None:
        overdue = sa.and_(
            tasks.c.due_date.is_not(None),
            tasks.c.due_date < now,
            tasks.c.status != Status.COMPLETED.value,
        )
        where.append(overdue if query.overdue else sa.not_(overdue))
    return where


def _after(
    column: sa.ColumnElement[Any], value: Any, task_id: UUID, descending: bool
) -> sa.ColumnElement[bool]:
    """Rows strictly after (value, id) in list order, where NULL values come last."""
    if value is None:
        return sa.and_(column.is_(None), tasks.c.id < task_id if descending else tasks.c.id > task_id)
    position = sa.tuple_(column, tasks.c.id)
    cursor = sa.tuple_(sa.literal(value, column.type), sa.literal(task_id, tasks.c.id.type))
    beyond = position < cursor if descending else position > cursor
    return sa.or_(beyond, column.is_(None)) if column is tasks.c.due_date else beyond
