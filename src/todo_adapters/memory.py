"""An in-memory store as strict as the database: transactions, rollback, copies, compare-and-set.

Used by tests and by services that want the use cases without a database. Uncommitted writes
live in the transaction only; reads return copies, so mutating a returned task changes nothing
stored; a commit re-checks every compare-and-set before applying anything.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from todo_domain.errors import VersionConflict
from todo_domain.model import Task
from todo_domain.query import Page, TagCount, TaskQuery, compare, sort_value

__all__ = ["InMemoryUnitOfWork"]


def _copy(task: Task) -> Task:
    return dataclasses.replace(task)


class _Repository:
    def __init__(self, committed: dict[UUID, Task]) -> None:
        self._committed = committed
        self.staged: dict[UUID, tuple[Task, int | None]] = {}

    def _current(self, task_id: UUID) -> Task | None:
        if task_id in self.staged:
            return self.staged[task_id][0]
        return self._committed.get(task_id)

    async def add(self, task: Task) -> None:
        if self._current(task.id) is not None:
            raise ValueError(f"task {task.id} already exists")
        self.staged[task.id] = (_copy(task), None)

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        task = self._current(task_id)
        if task is None or task.owner != owner or task.deleted:
            return None
        return _copy(task)

    async def save(self, task: Task, *, expected_version: int) -> None:
        stored = self._current(task.id)
        if stored is None or stored.owner != task.owner:
            raise VersionConflict(expected_version, 0)
        if stored.version != expected_version:
            raise VersionConflict(expected_version, stored.version)
        base = self.staged[task.id][1] if task.id in self.staged else expected_version
        self.staged[task.id] = (_copy(task), base)

    def _visible(self, owner: str) -> list[Task]:
        merged = {k: v for k, v in self._committed.items() if v.owner == owner}
        merged.update({k: t for k, (t, _) in self.staged.items() if t.owner == owner})
        return list(merged.values())

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        matching = [t for t in self._visible(owner) if query.matches(t, now)]
        field, descending = query.sort.field, query.sort.descending

        def order(a: Task, b: Task) -> int:
            return compare((sort_value(a, field), a.id), (sort_value(b, field), b.id), descending)

        matching.sort(key=functools.cmp_to_key(order))
        rows = matching
        if query.cursor is not None:
            position = (query.cursor.value, query.cursor.task_id)
            rows = [t for t in rows if compare((sort_value(t, field), t.id), position, descending) > 0]
        window = rows[query.offset : query.offset + query.limit + 1]
        return Page.build([_copy(t) for t in window], query, total=len(matching))

    async def tag_counts(self, owner: str) -> list[TagCount]:
        counts: dict[str, list[int]] = {}
        for task in self._visible(owner):
            if task.deleted:
                continue
            for tag in task.tags:
                entry = counts.setdefault(tag, [0, 0])
                entry[0] += not task.completed
                entry[1] += 1
        return [TagCount(name, open_, total) for name, (open_, total) in sorted(counts.items())]


class _Transaction:
    def __init__(self, committed: dict[UUID, Task]) -> None:
        self._committed = committed
        self._tasks = _Repository(committed)

    @property
    def tasks(self) -> _Repository:
        return self._tasks

    async def commit(self) -> None:
        staged = self._tasks.staged
        for task_id, (_, base) in staged.items():
            current = self._committed.get(task_id)
            if base is None and current is not None:
                raise ValueError(f"task {task_id} already exists")
            if base is not None and (current is None or current.version != base):
                raise VersionConflict(base, 0 if current is None else current.version)
        for task_id, (task, _) in staged.items():
            self._committed[task_id] = task
        staged.clear()


class InMemoryUnitOfWork:
    """A process-local store; every `begin()` is an isolated transaction over it."""

    def __init__(self) -> None:
        self._tasks: dict[UUID, Task] = {}

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_Transaction]:
        # Leaving without commit simply drops the transaction's staged writes: a rollback.
        yield _Transaction(self._tasks)
