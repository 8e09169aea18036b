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
from todo_domain.events import Delivery, EventType, RecordedEvent, TaskEvent
from todo_domain.hierarchy import MAX_DEPTH, Sibling
from todo_domain.model import Task
from todo_domain.ports import IdGenerator
from todo_domain.query import Page, TagCount, TaskQuery, compare, sort_value
from todo_domain.sync import FeedPage, StoredKey

__all__ = ["InMemoryOutbox", "InMemoryStore", "InMemoryUnitOfWork"]


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
    # The outbox: every committed event in commit order, which are published, the webhook
    # deliveries by (owner, sequence, url), and the remind_at value each task last fired for.
    events: list[RecordedEvent] = field(default_factory=list)
    published: dict[tuple[str, int], datetime] = field(default_factory=dict)
    deliveries: dict[tuple[str, int, str], Delivery] = field(default_factory=dict)
    reminded: dict[UUID, datetime] = field(default_factory=dict)
    relaying: asyncio.Lock = field(default_factory=asyncio.Lock)  # one claim at a time
    keep_events: bool = True
    # Indexes of `tasks`, as the SQL stores' are: each owner's tasks, and the live children of
    # each (owner, parent) by position (unique there, as a unique index makes it). A write then
    # costs its own siblings, not every task of every owner.
    by_owner: dict[str, dict[UUID, Task]] = field(default_factory=dict)
    children: dict[tuple[str, UUID | None], dict[str, UUID]] = field(default_factory=dict)

    def put(self, task: Task) -> None:
        """Commits one task, indexes included."""
        old = self.tasks.get(task.id)
        if old is not None and not old.deleted:
            slot = self.children[(old.owner, old.parent_id)]
            if slot.get(old.position) == old.id:  # a sibling committed first may own it now
                del slot[old.position]
        self.tasks[task.id] = task
        self.by_owner.setdefault(task.owner, {})[task.id] = task
        if not task.deleted:
            self.children.setdefault((task.owner, task.parent_id), {})[task.position] = task.id

    def drop(self, task: Task) -> None:
        """Forgets a tombstone (never in `children`)."""
        del self.tasks[task.id]
        del self.by_owner[task.owner][task.id]


class _Tasks:
    def __init__(self, store: _Store) -> None:
        self._store = store
        self._committed = store.tasks
        self.staged: dict[UUID, tuple[Task, int | None]] = {}
        self.events: list[tuple[Task, TaskEvent]] = []  # numbered at commit, in this order
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

    async def add(self, task: Task, event: TaskEvent) -> None:
        await _round_trip()
        if self._current(task.id) is not None:
            raise ValueError(f"task {task.id} already exists")
        self.staged[task.id] = (_copy(task), None)
        self.events.append((_copy(task), event))

    async def add_many(self, tasks: Sequence[tuple[Task, TaskEvent]]) -> None:
        for task, event in tasks:
            await self.add(task, event)

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        await _round_trip()
        if for_update:
            await self._lock(task_id)
        task = self._current(task_id)
        if task is None or task.owner != owner or task.deleted:
            return None
        return _copy(task)

    async def save(self, task: Task, *, expected_version: int, event: TaskEvent) -> None:
        await _round_trip()
        await self._lock(task.id)
        stored = self._current(task.id)
        if stored is None or stored.owner != task.owner:
            raise VersionConflict(expected_version, 0)
        if stored.version != expected_version:
            raise VersionConflict(expected_version, stored.version)
        base = self.staged[task.id][1] if task.id in self.staged else expected_version
        self.staged[task.id] = (_copy(task), base)
        self.events.append((_copy(task), event))

    def _visible(self, owner: str) -> list[Task]:
        merged = dict(self._store.by_owner.get(owner, {}))
        merged.update({k: t for k, (t, _) in self.staged.items() if t.owner == owner})
        return list(merged.values())

    def _places(self, owner: str, parent_id: UUID | None) -> dict[str, UUID]:
        """Position → id of the live children of `parent_id` (None: the top level) as this
        transaction sees them (read only: it may be the index itself)."""
        slot = self._store.children.get((owner, parent_id), {})
        if not self.staged:
            return slot
        places = {position: i for position, i in slot.items() if i not in self.staged}
        places.update(
            {
                t.position: t.id
                for t, _ in self.staged.values()
                if t.owner == owner and _is_child(t, parent_id)
            }
        )
        return places

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
            store.drop(task)
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
        found: list[tuple[int, Task]] = []
        level, depth = [task_id], 1
        while level and depth <= 2 * MAX_DEPTH:
            below = [
                task
                for parent in level
                for _, child in sorted(self._places(owner, parent).items())
                if (task := self._current(child)) is not None
            ]
            found += [(depth, child) for child in below]
            level, depth = [child.id for child in below], depth + 1
        for _, task in found:
            await self._lock(task.id)
        return [(depth, _copy(task)) for depth, task in found]

    async def siblings(self, owner: str, parent_id: UUID | None) -> list[Sibling]:
        await _round_trip()
        return [Sibling(i, position) for position, i in sorted(self._places(owner, parent_id).items())]

    async def last_position(self, owner: str, parent_id: UUID | None) -> str | None:
        await _round_trip()
        return max(self._places(owner, parent_id), default=None)

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
            for t in self._store.by_owner.get(owner, {}).values()
            if revisions[t.id] > revision and (include_deleted or not t.deleted)
        )
        current, purged = self._store.owners.get(owner, [0, 0])
        return FeedPage(tuple(rows[: limit + 1]), current, purged)

    async def reminders_since(self, owner: str, revision: int, limit: int) -> list[RecordedEvent]:
        await _round_trip()
        return [
            e
            for e in self._store.events
            if e.owner == owner and e.sequence > revision and e.type is EventType.REMINDER_DUE
        ][:limit]


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
        for task, _ in staged.values():
            self._store.put(task)
        for task, event in self._tasks.events:  # each write its own revision, as on SQL
            owner_state = self._store.owners.setdefault(task.owner, [0, 0])
            owner_state[0] += 1
            self._store.revisions[task.id] = owner_state[0]
            if self._store.keep_events:
                self._store.events.append(
                    RecordedEvent(
                        event.id,
                        task.owner,
                        owner_state[0],
                        event.type,
                        task,
                        task.updated_at,
                        event.occurrence,
                    )
                )
        staged.clear()
        self._tasks.events.clear()
        for slot, stored in self._keys.staged.items():
            self._store.keys[slot] = (stored, stored.task.created_at)
        self.release()

    def _check_positions(self) -> None:
        """As the SQL stores' unique index: no two live siblings share a position. A staged
        task's place may be held by another staged one, or by a committed sibling this
        transaction does not move."""
        staged = self._tasks.staged
        seen: set[tuple[str, UUID | None, str]] = set()
        for task_id, (task, _) in staged.items():
            if task.deleted:
                continue
            place = (task.owner, task.parent_id, task.position)
            occupant = self._store.children.get(place[:2], {}).get(task.position)
            if place in seen or (occupant not in (None, task_id) and occupant not in staged):
                raise PositionTaken()
            seen.add(place)


class _Claim:
    def __init__(self, store: _Store, events: list[RecordedEvent]) -> None:
        self._store = store
        self.events = events

    async def published(
        self, events: Sequence[RecordedEvent], webhook_urls: Sequence[str], now: datetime
    ) -> None:
        await _round_trip()
        for event in events:
            self._store.published[(event.owner, event.sequence)] = now
            for url in webhook_urls:
                self._store.deliveries[(event.owner, event.sequence, url)] = Delivery(event, url, 0, now, now)


class _DueDeliveries:
    def __init__(self, store: _Store, deliveries: list[Delivery]) -> None:
        self._store = store
        self.deliveries = deliveries
        self._settled: dict[tuple[str, int, str], Delivery | None] = {}

    @staticmethod
    def _slot(delivery: Delivery) -> tuple[str, int, str]:
        return delivery.event.owner, delivery.event.sequence, delivery.url

    async def delivered(self, delivery: Delivery) -> None:
        self._settled[self._slot(delivery)] = None

    async def retry(self, delivery: Delivery, at: datetime, error: str) -> None:
        attempts = delivery.attempts + 1
        later = dataclasses.replace(delivery, attempts=attempts, next_attempt_at=at, last_error=error)
        self._settled[self._slot(delivery)] = later

    async def give_up(self, delivery: Delivery, error: str) -> None:
        attempts = delivery.attempts + 1
        dead = dataclasses.replace(delivery, attempts=attempts, last_error=error, dead=True)
        self._settled[self._slot(delivery)] = dead

    async def commit(self) -> None:
        await _round_trip()
        for slot, after in self._settled.items():
            if after is None:
                self._store.deliveries.pop(slot, None)
            else:
                self._store.deliveries[slot] = after
        self._settled.clear()


class InMemoryOutbox:
    """The outbox of an InMemoryStore (todo_domain.ports.EventOutbox): one worker at a time
    claims events or deliveries, as per-owner locks would allow on SQL."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[_Claim]:
        async with self._store.relaying:
            await _round_trip()
            published = self._store.published
            pending = [e for e in self._store.events if (e.owner, e.sequence) not in published]
            yield _Claim(self._store, pending[:limit])

    @asynccontextmanager
    async def due_deliveries(self, now: datetime, limit: int) -> AsyncIterator[_DueDeliveries]:
        async with self._store.relaying:
            await _round_trip()
            due = sorted(
                (d for d in self._store.deliveries.values() if not d.dead and d.next_attempt_at <= now),
                key=lambda d: (d.next_attempt_at, d.event.owner, d.event.sequence),
            )
            yield _DueDeliveries(self._store, due[:limit])

    async def fire_reminders(
        self, now: datetime, *, skip_before: datetime, late_before: datetime, ids: IdGenerator, limit: int
    ) -> list[RecordedEvent]:
        await _round_trip()
        store = self._store
        due = sorted(
            (
                t
                for t in store.tasks.values()
                if t.remind_at is not None
                and t.remind_at <= now
                and not t.deleted
                and not t.completed
                and store.reminded.get(t.id) != t.remind_at
            ),
            key=lambda t: (t.remind_at, t.id),
        )[:limit]
        fired = []
        for task in due:
            assert task.remind_at is not None
            store.reminded[task.id] = task.remind_at
            if task.remind_at < skip_before:
                continue
            owner_state = store.owners.setdefault(task.owner, [0, 0])
            owner_state[0] += 1
            event = RecordedEvent(
                ids.new_id(),
                task.owner,
                owner_state[0],
                EventType.REMINDER_DUE,
                _copy(task),
                now,
                remind_at=task.remind_at,
                late=task.remind_at < late_before,
            )
            store.events.append(event)
            fired.append(event)
        return fired

    async def dead_letters(self, limit: int) -> list[Delivery]:
        await _round_trip()
        return [d for d in self._store.deliveries.values() if d.dead][:limit]

    async def replay_dead(self, now: datetime) -> int:
        await _round_trip()
        dead = [k for k, d in self._store.deliveries.items() if d.dead]
        for slot in dead:
            delivery = self._store.deliveries[slot]
            self._store.deliveries[slot] = dataclasses.replace(
                delivery, dead=False, attempts=0, first_attempt_at=now, next_attempt_at=now
            )
        return len(dead)

    async def lag(self, now: datetime) -> float | None:
        await _round_trip()
        published = self._store.published
        pending = [e.time for e in self._store.events if (e.owner, e.sequence) not in published]
        return None if not pending else max(0.0, (now - min(pending)).total_seconds())

    async def purge(self, published_before: datetime) -> int:
        await _round_trip()
        store = self._store
        held = {(owner, sequence) for owner, sequence, _ in store.deliveries}
        gone = {slot for slot, at in store.published.items() if at < published_before and slot not in held}
        store.events = [e for e in store.events if (e.owner, e.sequence) not in gone]
        for slot in gone:
            del store.published[slot]
        return len(gone)


class InMemoryStore:
    """A process-local task store; every `begin()` is an isolated unit of work over it.
    `outbox` is what the events worker reads (SPEC §16). With `keep_events=False` the writes'
    events are not kept (they would pile up where nothing relays them: a `memory://` server,
    whose process no worker can share); revisions and the change feed are the same either way."""

    def __init__(self, *, keep_events: bool = True) -> None:
        self._store = _Store(keep_events=keep_events)
        self.outbox = InMemoryOutbox(self._store)

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
