"""Tasks, their change feed and idempotency keys in SQL, on PostgreSQL and SQLite alike: the
flow of every read and write, once.

The statements live in statements.py, how they reach each driver in backends.py; this module
decides what a save does and in which order. Tags are stored twice on purpose: as a JSON list
on the task row (so reading a task is one row) and in `task_tags` (so "has all these tags" and
per-tag counts are index lookups). The repository never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from todo_adapters.sql.backends import DuplicateKey, Session
from todo_adapters.sql.rows import (
    bucket_of,
    count_changes,
    counted,
    event_from_row,
    from_snapshot,
    snapshot,
    tag_changes,
    task_from_row,
    task_to_row,
)
from todo_adapters.sql.statements import COUNTERS, Statements, drop_tags, find_plan, row_params
from todo_domain.errors import IdempotencyKeyInFlight, PositionTaken, VersionConflict
from todo_domain.events import RecordedEvent, TaskEvent
from todo_domain.hierarchy import Sibling
from todo_domain.model import Task
from todo_domain.query import Page, TagCount, TaskQuery
from todo_domain.sync import FeedPage, StoredKey
from todo_domain.values import Owner, Status, Tags

__all__ = ["SqlChangeFeed", "SqlIdempotencyKeys", "SqlTaskRepository"]

# The parameters that move the owner's counters, in rows.count_changes' order.
_DELTAS = [f"d_{name}" for name in COUNTERS]


class SqlTaskRepository:
    """The tasks of one unit of work's session."""

    def __init__(self, session: Session, statements: Statements) -> None:
        self._db = session
        self._sql = statements
        # What this unit of work last read or wrote of each task: the tag rows to diff against
        # and the status counter the task sits in.
        self._loaded_tags: dict[UUID, Tags] = {}
        self._loaded_status: dict[UUID, Status | None] = {}
        # Tasks read for update and found to have no live subtasks (their subtree is empty
        # without a query, until this unit of work adds a child).
        self._childless: set[UUID] = set()

    async def add(self, task: Task, event: TaskEvent) -> None:
        await self._insert([(task, event)])

    async def add_many(self, tasks: Sequence[tuple[Task, TaskEvent]]) -> None:
        """New tasks in order, each its own revision. PostgreSQL: one pipelined executemany of
        the insert (whose CTEs bump the revision and store the tags per row); SQLite: row by
        row, its bump and insert alternating (a local call each)."""
        if self._sql.insert_writes_tags:
            await self._insert(tasks)
        else:
            for pair in tasks:
                await self._insert([pair])

    async def _insert(self, pairs: Sequence[tuple[Task, TaskEvent]]) -> None:
        if not pairs:
            return
        rows = []
        for task, event in pairs:
            params = self._write_params(task, None, event)
            params["new_tags"] = list(task.tags)
            rows.append(params)
        try:
            for statement in self._sql.insert:
                if len(rows) == 1:
                    await self._db.execute(statement, rows[0])
                else:
                    await self._db.execute_many(statement, rows)
        except DuplicateKey:  # ids are fresh UUIDs: the unique key taken is a sibling position
            raise PositionTaken() from None
        for task, _ in pairs:
            self._childless.discard(task.parent_id)
            if self._sql.insert_writes_tags:
                self._loaded_tags[task.id] = task.tags
            else:
                await self._write_tags(task, ())

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        statement = self._sql.get_for_update if for_update else self._sql.get
        row = await self._db.fetchrow(statement, {"owner": owner, "task_id": task_id})
        if row is None:
            return None
        task = task_from_row(row)
        self._loaded_tags[task.id] = task.tags
        self._loaded_status[task.id] = task.status
        if for_update and not row["has_children"]:
            self._childless.add(task.id)
        return task

    async def save(self, task: Task, *, expected_version: int, event: TaskEvent) -> None:
        """Compare-and-set on `version`, with the owner's revision bump in the same write."""
        if task.parent_id is not None:  # it may have just become somebody's child
            self._childless.discard(task.parent_id)
        if task.id in self._loaded_status:
            before = self._loaded_status[task.id]
        else:  # saved without being read here: ask the row (the UPDATE below locks it anyway)
            row = await self._db.fetchrow(self._sql.status_of, {"owner": task.owner, "task_id": task.id})
            before = None if row is None or row["deleted_at"] is not None else Status(row["status"])
        params = self._write_params(task, before, event)
        params["expected_version"] = expected_version
        try:
            for statement in self._sql.update:
                updated = await self._db.execute(statement, params)
        except DuplicateKey:
            raise PositionTaken() from None
        if updated != 1:
            # The owner's revision bump is rolled back with the unit of work.
            row = await self._db.fetchrow(self._sql.version_of, {"owner": task.owner, "task_id": task.id})
            raise VersionConflict(expected_version, 0 if row is None else row["version"])
        await self._write_tags(task, self._loaded_tags.get(task.id))
        self._loaded_status[task.id] = counted(task)

    @staticmethod
    def _write_params(task: Task, before: Status | None, event: TaskEvent) -> dict[str, Any]:
        """The row's values, how the owner's status counters move (`before` → now), and the
        write's event for the outbox (statements.record_event)."""
        row = task_to_row(task)
        params = row_params(row)
        params.update(zip(_DELTAS, count_changes(before, counted(task)).values(), strict=True))
        params["owner"], params["task_id"] = task.owner, task.id
        params["e_id"], params["e_bucket"], params["e_type"] = (
            event.id,
            bucket_of(task.owner),
            event.type.value,
        )
        params["e_task"], params["e_time"] = snapshot(task, row), task.updated_at
        params["e_occurrence"] = event.occurrence
        return params

    async def _write_tags(self, task: Task, before: Sequence[str] | None) -> None:
        changes = tag_changes(task, before)
        mine = {"owner": task.owner, "task_id": task.id}
        if changes.clear_all:
            await self._db.execute(self._sql.clear_tags, mine)
        if changes.gone:
            names = {f"tag_{i}": tag for i, tag in enumerate(changes.gone)}
            await self._db.execute(drop_tags(len(changes.gone)), {**mine, **names})
        if changes.new:
            await self._db.execute_many(self._sql.add_tag, [{**mine, "tag_name": t} for t in changes.new])
        self._loaded_tags[task.id] = changes.after

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        """One statement: the page, with the total as an uncorrelated subquery (evaluated once,
        in the page's snapshot). Only an empty page asks for its total on its own."""
        plan = find_plan(owner, query, now)
        rows = await self._db.fetch(plan.page, plan.params)
        if rows:
            total = rows[0]["total"]
        else:
            row = await self._db.fetchrow(plan.total, plan.params)
            total = None if row is None else row["total"]
        the_owner = Owner(owner)
        return Page.build([task_from_row(r, the_owner) for r in rows], query, total=int(total or 0))

    async def tag_counts(self, owner: str) -> list[TagCount]:
        rows = await self._db.fetch(self._sql.tag_counts, {"owner": owner})
        return [TagCount(r["tag"], int(r["open"]), int(r["total"])) for r in rows]

    async def purge_tombstones(self, before: datetime) -> int:
        await self._db.execute(self._sql.purge_revisions, {"tombstones_before": before})
        return await self._db.execute(self._sql.purge_tasks, {"tombstones_before": before})

    async def ancestors(self, owner: str, task_id: UUID) -> list[UUID]:
        rows = await self._db.fetch(self._sql.ancestors, {"owner": owner, "task_id": task_id})
        return [r["id"] for r in rows]

    async def descendants(self, owner: str, task_id: UUID) -> list[tuple[int, Task]]:
        if task_id in self._childless:
            return []
        rows = await self._db.fetch(self._sql.descendants, {"owner": owner, "task_id": task_id})
        found = []
        for row in rows:
            task = task_from_row(row)
            self._loaded_tags[task.id] = task.tags
            self._loaded_status[task.id] = task.status
            found.append((int(row["depth"]), task))
        return found

    async def siblings(self, owner: str, parent_id: UUID | None) -> list[Sibling]:
        statement = self._sql.siblings_top if parent_id is None else self._sql.siblings_in
        rows = await self._db.fetch(statement, {"owner": owner, "parent_id": parent_id})
        return [Sibling(r["id"], r["position"]) for r in rows]

    async def last_position(self, owner: str, parent_id: UUID | None) -> str | None:
        statement = self._sql.last_position_top if parent_id is None else self._sql.last_position_in
        row = await self._db.fetchrow(statement, {"owner": owner, "parent_id": parent_id})
        return None if row is None else row["last"]


class SqlChangeFeed:
    """The change feed of one unit of work's session."""

    def __init__(self, session: Session, statements: Statements) -> None:
        self._db = session
        self._sql = statements

    async def since(self, owner: str, revision: int, limit: int, *, include_deleted: bool) -> FeedPage:
        """One statement, so one snapshot (statements._feed)."""
        statement = self._sql.feed_all if include_deleted else self._sql.feed_live
        rows = await self._db.fetch(statement, {"owner": owner, "since": revision, "limit": limit + 1})
        if not rows:  # an owner who never wrote
            return FeedPage((), 0, 0)
        current, purged = int(rows[0]["owner_revision"]), int(rows[0]["purged_revision"])
        entries = tuple((int(r["revision"]), task_from_row(r)) for r in rows if r["id"] is not None)
        return FeedPage(entries, current, purged)

    async def reminders_since(self, owner: str, revision: int, limit: int) -> list[RecordedEvent]:
        params = {"owner": owner, "since": revision, "limit": limit}
        return [event_from_row(r) for r in await self._db.fetch(self._sql.reminders_since, params)]


class SqlIdempotencyKeys:
    """The idempotency keys of one unit of work's session."""

    def __init__(self, session: Session, statements: Statements) -> None:
        self._db = session
        self._sql = statements

    async def find(self, owner: str, key: str) -> StoredKey | None:
        row = await self._db.fetchrow(self._sql.find_key, {"owner": owner, "k_key": key})
        return None if row is None else StoredKey(row["fingerprint"], from_snapshot(row["task"]))

    async def find_many(self, owner: str, keys: Sequence[str]) -> dict[str, StoredKey]:
        if not keys:
            return {}
        rows = await self._db.fetch(self._sql.find_keys, {"owner": owner, "k_keys": list(keys)})
        return {r["key"]: StoredKey(r["fingerprint"], from_snapshot(r["task"])) for r in rows}

    async def remember_many(self, owner: str, entries: Sequence[tuple[str, str, Task]]) -> None:
        """Like `remember` for each (key, fingerprint, task), in one executemany."""
        if not entries:
            return
        try:
            await self._db.execute_many(
                self._sql.remember_key, [_key_row(owner, *entry) for entry in entries]
            )
        except DuplicateKey:
            raise IdempotencyKeyInFlight() from None

    async def remember(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        try:
            # On PostgreSQL this waits for a concurrent transaction holding the same key.
            await self._db.execute(self._sql.remember_key, _key_row(owner, key, fingerprint, task))
        except DuplicateKey:
            raise IdempotencyKeyInFlight() from None

    async def purge(self, before: datetime) -> int:
        return await self._db.execute(self._sql.purge_keys, {"keys_before": before})


def _key_row(owner: str, key: str, fingerprint: str, task: Task) -> dict[str, Any]:
    """The parameters of statements.remember_key: the key and the answer it replays."""
    return {
        "owner": owner,
        "k_key": key,
        "k_fingerprint": fingerprint,
        "k_snapshot": snapshot(task),
        "k_created_at": task.created_at,
    }
