"""Tasks on PostgreSQL through raw asyncpg: the same contract as SqlTaskRepository, in SQL text.

Why a second repository: on the hot paths SQLAlchemy's async execution costs about 1 ms per
statement against 0.15–0.4 ms for the same statement on asyncpg (profiles in the README's
Performance section). The schema, the migrations and the row ↔ entity mapping stay shared
(tables.py, rows.py); the contract tests run both repositories on the same database.

Every statement is a constant or is assembled from constant fragments with `$n` parameters,
so asyncpg's per-connection statement cache prepares each shape once. Writes take one round
trip for the owner's revision bump and the row itself (a data-modifying CTE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

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
from todo_adapters.sql.tables import tasks
from todo_domain.errors import IdempotencyKeyInFlight, VersionConflict
from todo_domain.model import Task
from todo_domain.query import Page, SortField, TagCount, TaskQuery
from todo_domain.sync import FeedPage, Purged, StoredKey
from todo_domain.values import Owner, Status, Tags

__all__ = ["PgTaskRepository"]

_READ = [c.name for c in tasks.c if c.name not in ("title_key", "search_text", "revision")]
_COLUMNS = ", ".join(_READ)
_GET = f"SELECT {_COLUMNS} FROM tasks WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL"
_GET_FOR_UPDATE = _GET + " FOR UPDATE"

# Bumps the owner's change-feed revision and moves the task between the per-status counts
# ($2–$4 are deltas); the row stays locked until commit, so an owner's writes commit in
# revision order (see todo_domain.sync).
_BUMP = """
    INSERT INTO owners AS o
        (user_id, revision, purged_revision, pending_count, in_progress_count, completed_count)
    VALUES ($1, 1, 0, $2, $3, $4)
    ON CONFLICT (user_id) DO UPDATE SET
        revision = o.revision + 1,
        pending_count = o.pending_count + EXCLUDED.pending_count,
        in_progress_count = o.in_progress_count + EXCLUDED.in_progress_count,
        completed_count = o.completed_count + EXCLUDED.completed_count
    RETURNING revision
"""
_WRITTEN = [c.name for c in tasks.c if c.name != "revision"]
_INSERT = (
    f"WITH bump AS ({_BUMP}) INSERT INTO tasks ({', '.join(_WRITTEN)}, revision) "
    f"VALUES ({', '.join(f'${i + 5}' for i in range(len(_WRITTEN)))}, (SELECT revision FROM bump))"
)
_UPDATED = [c for c in _WRITTEN if c not in ("user_id", "id", "created_at")]
_UPDATE = (
    f"WITH bump AS ({_BUMP}) UPDATE tasks SET "
    + ", ".join(f"{name} = ${i + 7}" for i, name in enumerate(_UPDATED))
    + ", revision = (SELECT revision FROM bump) WHERE user_id = $1 AND id = $5 AND version = $6"
)
_STATUS_OF = "SELECT status, deleted_at FROM tasks WHERE user_id = $1 AND id = $2"
_VERSION_OF = "SELECT version FROM tasks WHERE user_id = $1 AND id = $2"

_CLEAR_TAGS = "DELETE FROM task_tags WHERE user_id = $1 AND task_id = $2"
_DROP_TAGS = "DELETE FROM task_tags WHERE user_id = $1 AND task_id = $2 AND tag = ANY($3::text[])"
_ADD_TAGS = "INSERT INTO task_tags (user_id, task_id, tag) SELECT $1, $2, unnest($3::text[])"

_SORT_COLUMNS = {
    SortField.CREATED_AT: ("created_at", "timestamptz"),
    SortField.UPDATED_AT: ("updated_at", "timestamptz"),
    SortField.DUE_DATE: ("due_date", "timestamptz"),
    SortField.PRIORITY: ("priority", "smallint"),
    SortField.TITLE: ("title_key", "text"),
}
_COMPLETED = Status.COMPLETED.value

# One statement, so one snapshot: the page and the owner's revision it reports can never
# disagree (two statements let a commit land between them, and an empty page then handed out a
# token past a write it never showed). The owner's row is always there once it has a task; the
# page is joined to it and comes back as NULL columns when empty.
_FEED = """
    SELECT o.revision AS owner_revision, o.purged_revision, page.*
    FROM owners o LEFT JOIN (
        SELECT {columns}, revision FROM tasks
        WHERE user_id = $1 AND revision > $2{live} ORDER BY revision LIMIT $3
    ) page ON true
    WHERE o.user_id = $1
    ORDER BY page.revision
"""
_CHANGES_WITH_TOMBSTONES = _FEED.format(columns=_COLUMNS, live="")
_CHANGES_LIVE = _FEED.format(columns=_COLUMNS, live=" AND deleted_at IS NULL")
_FIND_KEY = "SELECT fingerprint, task FROM idempotency_keys WHERE user_id = $1 AND key = $2"
_REMEMBER_KEY = (
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, task, created_at) VALUES ($1, $2, $3, $4, $5)"
)
_TAG_COUNTS = f"""
    SELECT t.tag, count(*) FILTER (WHERE k.status <> '{_COMPLETED}') AS open, count(*) AS total
    FROM task_tags t JOIN tasks k ON k.user_id = t.user_id AND k.id = t.task_id
    WHERE t.user_id = $1 AND k.deleted_at IS NULL
    GROUP BY t.tag ORDER BY t.tag
"""
_PURGE_REVISIONS = """
    UPDATE owners o SET purged_revision = gone.revision
    FROM (SELECT user_id, max(revision) AS revision FROM tasks WHERE deleted_at < $1 GROUP BY user_id) gone
    WHERE o.user_id = gone.user_id AND o.purged_revision < gone.revision
"""
_PURGE_TASKS = "DELETE FROM tasks WHERE deleted_at < $1"
_PURGE_KEYS = "DELETE FROM idempotency_keys WHERE created_at < $1"


class PgTaskRepository:
    """The repository of one transaction's asyncpg connection; it never commits."""

    def __init__(self, connection: asyncpg.Connection[Any]) -> None:
        self._conn = connection
        self._loaded_tags: dict[UUID, Tags] = {}
        self._loaded_status: dict[UUID, Status | None] = {}

    async def add(self, task: Task) -> None:
        row = task_to_row(task)
        await self._conn.execute(
            _INSERT, task.owner, *_deltas(None, counted(task)), *(row[c] for c in _WRITTEN)
        )
        await self._write_tags(task, ())

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        row = await self._conn.fetchrow(_GET_FOR_UPDATE if for_update else _GET, owner, task_id)
        if row is None:
            return None
        task = task_from_row(row)
        self._loaded_tags[task.id] = task.tags
        self._loaded_status[task.id] = task.status
        return task

    async def save(self, task: Task, *, expected_version: int) -> None:
        if task.id in self._loaded_status:
            before = self._loaded_status[task.id]
        else:  # saved without being read here: ask the row (the UPDATE below locks it anyway)
            row = await self._conn.fetchrow(_STATUS_OF, task.owner, task.id)
            before = None if row is None or row["deleted_at"] is not None else Status(row["status"])
        values = task_to_row(task)
        status = await self._conn.execute(
            _UPDATE,
            task.owner,
            *_deltas(before, counted(task)),
            task.id,
            expected_version,
            *(values[c] for c in _UPDATED),
        )
        if status != "UPDATE 1":
            # The owner's revision bump above is rolled back with the transaction.
            current = await self._conn.fetchval(_VERSION_OF, task.owner, task.id)
            raise VersionConflict(expected_version, current or 0)
        await self._write_tags(task, self._loaded_tags.get(task.id))
        self._loaded_status[task.id] = counted(task)

    async def _write_tags(self, task: Task, before: Sequence[str] | None) -> None:
        changes = tag_changes(task, before)
        if changes.clear_all:
            await self._conn.execute(_CLEAR_TAGS, task.owner, task.id)
        if changes.gone:
            await self._conn.execute(_DROP_TAGS, task.owner, task.id, changes.gone)
        if changes.new:
            await self._conn.execute(_ADD_TAGS, task.owner, task.id, changes.new)
        self._loaded_tags[task.id] = changes.after

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        """One statement: the page, with the total as an uncorrelated subquery (evaluated once,
        in the page's snapshot). Only an empty page needs a second statement for its total."""
        where = _Where(owner)
        where.filter(query, now)
        statuses = counted_statuses(query)
        if statuses is None:
            total_sql, total_args = f"SELECT count(*) FROM tasks WHERE {where}", list(where.params)
        else:  # the per-status counters on the owner's row: O(1) whatever the owner's size
            summed = " + ".join(STATUS_COUNT[s] for s in sorted(statuses)) or "0"
            total_sql, total_args = f"SELECT {summed} FROM owners WHERE user_id = $1", [owner]
        column, sql_type = _SORT_COLUMNS[query.sort.field]
        descending = query.sort.descending
        if query.cursor is not None:
            where.after(column, sql_type, query.cursor.value, query.cursor.task_id, descending)
        direction = "DESC" if descending else "ASC"
        # Only due_date can be NULL. Saying NULLS LAST on a NOT NULL column would stop
        # PostgreSQL from reading its (user_id, column, id) index backwards.
        nulls = " NULLS LAST" if column == "due_date" else ""
        sql = (
            f"SELECT {_COLUMNS}, ({total_sql}) AS total FROM tasks WHERE {where} "
            f"ORDER BY {column} {direction}{nulls}, id {direction} LIMIT {where.param(query.limit + 1)}"
        )
        if query.offset:
            sql += f" OFFSET {where.param(query.offset)}"
        rows = await self._conn.fetch(sql, *where.params)
        if rows:
            total = rows[0]["total"]
        else:
            total = await self._conn.fetchval(total_sql, *total_args)
        the_owner = Owner(owner)
        return Page.build([task_from_row(r, the_owner) for r in rows], query, total=total or 0)

    async def changes_since(
        self, owner: str, revision: int, limit: int, *, include_deleted: bool
    ) -> FeedPage:
        sql = _CHANGES_WITH_TOMBSTONES if include_deleted else _CHANGES_LIVE
        rows = await self._conn.fetch(sql, owner, revision, limit + 1)
        if not rows:  # an owner who never wrote
            return FeedPage((), 0, 0)
        current, purged = int(rows[0]["owner_revision"]), int(rows[0]["purged_revision"])
        entries = tuple((int(r["revision"]), task_from_row(r)) for r in rows if r["id"] is not None)
        return FeedPage(entries, current, purged)

    async def find_key(self, owner: str, key: str) -> StoredKey | None:
        row = await self._conn.fetchrow(_FIND_KEY, owner, key)
        return None if row is None else StoredKey(row["fingerprint"], from_snapshot(row["task"]))

    async def remember_key(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        try:
            # This waits for a concurrent transaction holding the same key.
            await self._conn.execute(_REMEMBER_KEY, owner, key, fingerprint, snapshot(task), task.created_at)
        except asyncpg.UniqueViolationError:
            raise IdempotencyKeyInFlight() from None

    async def purge(self, tombstones_before: datetime, keys_before: datetime) -> Purged:
        await self._conn.execute(_PURGE_REVISIONS, tombstones_before)
        removed = await self._conn.execute(_PURGE_TASKS, tombstones_before)
        keys = await self._conn.execute(_PURGE_KEYS, keys_before)
        return Purged(_row_count(removed), _row_count(keys))

    async def tag_counts(self, owner: str) -> list[TagCount]:
        rows = await self._conn.fetch(_TAG_COUNTS, owner)
        return [TagCount(r["tag"], int(r["open"]), int(r["total"])) for r in rows]


def _deltas(before: Status | None, after: Status | None) -> tuple[int, ...]:
    """count_changes as the ($2, $3, $4) arguments of _BUMP."""
    change = count_changes(before, after)
    return change["pending_count"], change["in_progress_count"], change["completed_count"]


def _row_count(status: str) -> int:
    """The n of an asyncpg command status such as 'DELETE n'."""
    return int(status.rsplit(" ", 1)[-1])


class _Where:
    """A WHERE clause assembled from constant fragments, its values bound as $n parameters."""

    def __init__(self, owner: str) -> None:
        self.params: list[Any] = [owner]
        self._terms = ["user_id = $1", "deleted_at IS NULL"]

    def __str__(self) -> str:
        return " AND ".join(self._terms)

    def param(self, value: Any, cast: str = "") -> str:
        self.params.append(value)
        return f"${len(self.params)}{cast}"

    def filter(self, query: TaskQuery, now: datetime) -> None:
        terms = self._terms
        if query.statuses:
            terms.append(f"status = ANY({self.param(sorted(s.value for s in query.statuses), '::text[]')})")
        if query.completed is not None:
            terms.append(f"status {'=' if query.completed else '<>'} {self.param(_COMPLETED)}")
        if query.priorities:
            ranks = sorted(p.rank for p in query.priorities)
            terms.append(f"priority = ANY({self.param(ranks, '::smallint[]')})")
        for tag in query.tags:
            terms.append(
                "EXISTS (SELECT 1 FROM task_tags t WHERE t.user_id = tasks.user_id"
                f" AND t.task_id = tasks.id AND t.tag = {self.param(tag)})"
            )
        if query.folded_text:
            terms.append(f"strpos(search_text, {self.param(query.folded_text, '::text')}) > 0")
        if query.due_before is not None:
            terms.append(f"due_date < {self.param(query.due_before)}")
        if query.due_after is not None:
            terms.append(f"due_date >= {self.param(query.due_after)}")
        if query.overdue is not None:
            overdue = (
                f"(due_date IS NOT NULL AND due_date < {self.param(now)}"
                f" AND status <> {self.param(_COMPLETED)})"
            )
            terms.append(overdue if query.overdue else f"NOT {overdue}")

    def after(self, column: str, sql_type: str, value: Any, task_id: UUID, descending: bool) -> None:
        """Rows strictly after (value, id) in list order, where NULL values come last."""
        beyond = "<" if descending else ">"
        if value is None:
            self._terms.append(f"({column} IS NULL AND id {beyond} {self.param(task_id, '::uuid')})")
            return
        position = (
            f"({column}, id) {beyond} ({self.param(value, '::' + sql_type)}, {self.param(task_id, '::uuid')})"
        )
        self._terms.append(f"({position} OR {column} IS NULL)" if column == "due_date" else position)
