"""An in-memory store as strict as the database: transactions, rollback, copies, compare-and-set.

Used by tests and by services that want the use cases without a database. Uncommitted writes
live in the transaction only; reads return copies, so mutating a returned task changes nothing
stored; a commit re-checks every compare-and-set before applying anything.

Every call that would be a database round trip yields to the event loop first, so concurrent
use cases interleave here at the same points as on SQL: a use case that reads twice without
one snapshot, or reads and then writes without a compare-and-set, fails in memory tests too.
Each call's own work, like one SQL statement, sees one consistent state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from todo_domain.errors import IdempotencyKeyInFlight, PositionTaken, VersionConflict
from todo_domain.hierarchy import MAX_DEPTH, Sibling
from todo_domain.model import Task
from todo_domain.query import Page, TagCount, TaskQuery, compare, sort_value
from todo_domain.sync import FeedPage, StoredKey

__all__ = ["InMemoryStore", "InMemoryUnitOfWork"]


def _copy(task: Task) -> Task:
    return dataclasses.replace(task)


async def _round_trip() -> None:
    """Where a database call would suspend the caller: other coroutines run here."""
    await asyncio.sleep(0)


@dataclass
class _Store:
    """Everything committed, shared by all transactions of one InMemoryStore."""

    tasks: dict[UUID, Task] = field(default_factory=dict)
    revisions: dict[UUID, int] = field(default_factory=dict)
    owners: dict[str, list[int]] = field(default_factory=dict)  # owner -> [revision, purged]
    keys: dict[tuple[str, str], tuple[StoredKey, datetime]] = field(default_factory=dict)
    # Keys staged by a transaction still open; others wait on the event, as an INSERT waits on
    # a unique index entry another transaction has not committed yet.
    keys_in_flight: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    # Row locks, as SELECT … FOR UPDATE and UPDATE take them: held until the transaction ends.
    row_locks: dict[UUID, asyncio.Lock] = field(default_factory=dict)


class _Tasks:
    def __init__(self, store: _Store) -> None:
        self._store = store
        self._committed = store.tasks
        self.staged: dict[UUID, tuple[Task, int | None]] = {}
        self._locked: list[UUID] = []

    async def _lock(self, task_id: UUID) -> None:
        """Waits for the row as a database would, for the rest of this transaction."""
        if task_id in self._locked:
            return
        lock = self._store.row_locks.setdefault(task_id, asyncio.Lock())
        await lock.acquire()
        self._locked.append(task_id)

    def _current(self, task_id: UUID) -> Task | None:
        if task_id in self.staged:
            return self.staged[task_id][0]
        return self._committed.get(task_id)

    async def add(self, task: Task) -> None:
        await _round_trip()
        if self._current(task.id) is not None:
            raise ValueError(f"task {task.id} already exists")
        self.staged[task.id] = (_copy(task), None)

    async def add_many(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            await self.add(task)

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        await _round_trip()
        if for_update:
            await self._lock(task_id)
        task = self._current(task_id)
        if task is None or task.owner != owner or task.deleted:
            return None
        return _copy(task)

    async def save(self, task: Task, *, expected_version: int) -> None:
        await _round_trip()
        await self._lock(task.id)
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
        await _round_trip()
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
        await _round_trip()
        counts: dict[str, list[int]] = {}
        for task in self._visible(owner):
            if task.deleted:
                continue
            for tag in task.tags:
                entry = counts.setdefault(tag, [0, 0])
                entry[0] += not task.completed
                entry[1] += 1
        return [TagCount(name, open_, total) for name, (open_, total) in sorted(counts.items())]

    async def purge_tombstones(self, before: datetime) -> int:
        await _round_trip()
        store = self._store
        old = [t for t in store.tasks.values() if t.deleted_at is not None and t.deleted_at < before]
        for task in old:
            owner_state = store.owners[task.owner]
            owner_state[1] = max(owner_state[1], store.revisions.pop(task.id))
            del store.tasks[task.id]
            store.row_locks.pop(task.id, None)
        return len(old)

    # -- the family of a task ------------------------------------------------------------------

    def _live(self, owner: str, task_id: UUID | None) -> Task | None:
        task = None if task_id is None else self._current(task_id)
        return task if task is not None and task.owner == owner and not task.deleted else None

    async def ancestors(self, owner: str, task_id: UUID) -> list[UUID]:
        await _round_trip()
        chain: list[UUID] = []
        task = self._live(owner, task_id)
        while task is not None and len(chain) <= 2 * MAX_DEPTH:
            chain.append(task.id)
            task = self._live(owner, task.parent_id)
        return chain

    async def descendants(self, owner: str, task_id: UUID) -> list[tuple[int, Task]]:
        await _round_trip()
        children: dict[UUID, list[Task]] = {}
        for task in self._visible(owner):
            if not task.deleted and task.parent_id is not None:
                children.setdefault(task.parent_id, []).append(task)
        found: list[tuple[int, Task]] = []
        level, depth = [task_id], 1
        while level and depth <= 2 * MAX_DEPTH:
            below = [child for parent in level for child in children.get(parent, ())]
            found += [(depth, child) for child in below]
            level, depth = [child.id for child in below], depth + 1
        for _, task in found:
            await self._lock(task.id)
        return [(depth, _copy(task)) for depth, task in found]

    async def siblings(self, owner: str, parent_id: UUID | None) -> list[Sibling]:
        await _round_trip()
        return sorted(
            (Sibling(t.id, t.position) for t in self._visible(owner) if _is_child(t, parent_id)),
            key=lambda s: (s.position, s.id),
        )

    async def last_position(self, owner: str, parent_id: UUID | None) -> str | None:
        await _round_trip()
        return max((t.position for t in self._visible(owner) if _is_child(t, parent_id)), default=None)

    def release(self) -> None:
        """Ends the row locks this transaction holds."""
        for task_id in self._locked:
            self._store.row_locks[task_id].release()  # kept: one small lock per task, like its row
        self._locked.clear()


def _is_child(task: Task, parent_id: UUID | None) -> bool:
    return not task.deleted and task.parent_id == parent_id


class _Feed:
    def __init__(self, store: _Store) -> None:
        self._store = store

    async def since(self, owner: str, revision: int, limit: int, *, include_deleted: bool) -> FeedPage:
        await _round_trip()
        revisions = self._store.revisions
        rows = sorted(
            (revisions[t.id], _copy(t))
            for t in self._store.tasks.values()
            if t.owner == owner and revisions[t.id] > revision and (include_deleted or not t.deleted)
        )
        current, purged = self._store.owners.get(owner, [0, 0])
        return FeedPage(tuple(rows[: limit + 1]), current, purged)


class _Keys:
    def __init__(self, store: _Store) -> None:
        self._store = store
        self.staged: dict[tuple[str, str], StoredKey] = {}

    async def find(self, owner: str, key: str) -> StoredKey | None:
        await _round_trip()
        found = self._store.keys.get((owner, key))
        return None if found is None else StoredKey(found[0].fingerprint, _copy(found[0].task))

    async def find_many(self, owner: str, keys: Sequence[str]) -> dict[str, StoredKey]:
        found = {}
        for key in keys:
            stored = await self.find(owner, key)
            if stored is not None:
                found[key] = stored
        return found

    async def remember_many(self, owner: str, entries: Sequence[tuple[str, str, Task]]) -> None:
        for key, fingerprint, task in entries:
            await self.remember(owner, key, fingerprint, task)

    async def remember(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        await _round_trip()
        slot = (owner, key)
        if slot in self.staged:  # this transaction's own key: a unique violation at once
            raise IdempotencyKeyInFlight()
        while (holder := self._store.keys_in_flight.get(slot)) is not None:
            await holder.wait()  # until that transaction commits or rolls back
        if slot in self._store.keys:  # it committed: the caller reads the key and replays
            raise IdempotencyKeyInFlight()
        self._store.keys_in_flight[slot] = asyncio.Event()
        self.staged[slot] = StoredKey(fingerprint, _copy(task))

    async def purge(self, before: datetime) -> int:
        await _round_trip()
        stale = [slot for slot, (_, created) in self._store.keys.items() if created < before]
        for slot in stale:
            del self._store.keys[slot]
        return len(stale)

    def release(self) -> None:
        """Ends what this transaction holds: its keys in flight."""
        for slot in self.staged:
            self._store.keys_in_flight.pop(slot).set()
        self.staged.clear()


class _Transaction:
    def __init__(self, store: _Store) -> None:
        self._store = store
        self._committed = store.tasks
        self._tasks = _Tasks(store)
        self._keys = _Keys(store)
        self._feed = _Feed(store)

    @property
    def tasks(self) -> _Tasks:
        return self._tasks

    @property
    def keys(self) -> _Keys:
        return self._keys

    @property
    def feed(self) -> _Feed:
        return self._feed

    def release(self) -> None:
        """Ends what this transaction holds: row locks and keys in flight."""
        self._tasks.release()
        self._keys.release()

    async def commit(self) -> None:
        await _round_trip()
        staged = self._tasks.staged
        for task_id, (_, base) in staged.items():
            current = self._committed.get(task_id)
            if base is None and current is not None:
                raise ValueError(f"task {task_id} already exists")
            if base is not None and (current is None or current.version != base):
                raise VersionConflict(base, 0 if current is None else current.version)
        self._check_positions()
        for task_id, (task, _) in staged.items():
            self._committed[task_id] = task
            owner_state = self._store.owners.setdefault(task.owner, [0, 0])
            owner_state[0] += 1
            self._store.revisions[task_id] = owner_state[0]
        staged.clear()
        for slot, stored in self._keys.staged.items():
            self._store.keys[slot] = (stored, stored.task.created_at)
        self.release()

    def _check_positions(self) -> None:
        """As the SQL stores' unique index: no two live siblings share a position."""
        staged = self._tasks.staged
        touched = {(t.owner, t.parent_id) for t, _ in staged.values() if not t.deleted}
        if not touched:
            return
        seen: set[tuple[str, UUID | None, str]] = set()
        merged = {**self._committed, **{k: t for k, (t, _) in staged.items()}}
        for task in merged.values():
            if task.deleted or (task.owner, task.parent_id) not in touched:
                continue
            slot = (task.owner, task.parent_id, task.position)
            if slot in seen:
                raise PositionTaken()
            seen.add(slot)


class InMemoryStore:
    """A process-local task store; every `begin()` is an isolated unit of work over it."""

    def __init__(self) -> None:
        self._store = _Store()

    async def dispose(self) -> None:
        """Nothing to close (the port's lifecycle, kept so code can swap stores freely)."""

    async def __aenter__(self) -> InMemoryStore:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.dispose()

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[_Transaction]:
        """A unit of work: reads see committed data, writes are staged until `commit()`, which
        raises VersionConflict or PositionTaken as a SQL store's constraints would. Leaving
        without commit drops the staged writes (a rollback) and releases row locks and keys."""
        transaction = _Transaction(self._store)
        try:
            yield transaction
        finally:
            transaction.release()


InMemoryUnitOfWork = InMemoryStore
"""The name InMemoryStore had before 0.2 (it hands out units of work; it is not one)."""
