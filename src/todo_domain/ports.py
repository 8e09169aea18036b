"""The small interfaces the use cases need; adapters implement them, the service only sees these."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from todo_domain.events import Delivery, RecordedEvent, TaskEvent
from todo_domain.hierarchy import Sibling
from todo_domain.model import Task
from todo_domain.query import Page, TagCount, TaskQuery
from todo_domain.sync import FeedPage, StoredKey

__all__ = [
    "ChangeFeed",
    "ChangeSignal",
    "Clock",
    "DeliveryBatch",
    "EventOutbox",
    "EventSink",
    "IdGenerator",
    "IdempotencyKeys",
    "OutboxBatch",
    "TaskRepository",
    "TaskStore",
    "UnitOfWork",
    "WebhookSender",
]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware UTC."""
        ...


class ChangeSignal(Protocol):
    """Told after every commit whose writes reach an owner's change feed, so live readers (the
    event stream) look at the feed now rather than at their next poll. A hint, not a record: a
    lost signal may delay a reader, never make it miss a change (it reads the feed itself)."""

    def changed(self, owner: str) -> None:
        """Must not block or raise: called right after the commit, on the writer's path."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> UUID:
        """A fresh, time-ordered (UUID version 7) task id."""
        ...


class TaskRepository(Protocol):
    """Tasks of one unit of work. Every method is scoped to one owner; deleted tasks are invisible.

    Every write takes the owner's next revision and records its event (SPEC §16) in the outbox
    with that revision as the event's sequence, in the same transaction."""

    async def add(self, task: Task, event: TaskEvent) -> None: ...

    async def add_many(self, tasks: Sequence[tuple[Task, TaskEvent]]) -> None:
        """New tasks in order, each its own revision, in as few round trips as the store can."""
        ...

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        """A copy of the stored task; `for_update` locks it until the unit of work ends."""
        ...

    async def save(self, task: Task, *, expected_version: int, event: TaskEvent) -> None:
        """Compare-and-set: stores `task` only if the stored version is still `expected_version`,
        else raises VersionConflict."""
        ...

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        """One page of the owner's live tasks matching `query`, with the total count."""
        ...

    async def tag_counts(self, owner: str) -> Sequence[TagCount]:
        """Every tag of the owner's live tasks, by name, with open and total counts."""
        ...

    async def purge_tombstones(self, before: datetime) -> int:
        """Removes tombstones (of every owner) deleted before `before`; how many."""
        ...

    # -- the family of a task (SPEC §17) -------------------------------------------------------

    async def ancestors(self, owner: str, task_id: UUID) -> Sequence[UUID]:
        """`task_id` if it is a live task of the owner, then its parent, grandparent… up to the
        top level (at most a few more than MAX_DEPTH entries); empty if there is no such task."""
        ...

    async def descendants(self, owner: str, task_id: UUID) -> Sequence[tuple[int, Task]]:
        """The live subtasks at every level below `task_id` with their depth (1: a child),
        locked for update like `get(for_update=True)` (before any save takes the owner's row:
        task rows first, then the owner, in every write)."""
        ...

    async def siblings(self, owner: str, parent_id: UUID | None) -> Sequence[Sibling]:
        """The live children of `parent_id` (None: the top level), by position."""
        ...

    async def last_position(self, owner: str, parent_id: UUID | None) -> str | None:
        """The highest position among the live children of `parent_id`; None if it has none."""
        ...


class IdempotencyKeys(Protocol):
    """The Idempotency-Keys of creates, each stored with the task it made."""

    async def find(self, owner: str, key: str) -> StoredKey | None: ...

    async def find_many(self, owner: str, keys: Sequence[str]) -> dict[str, StoredKey]:
        """The stored ones among `keys`, by key."""
        ...

    async def remember_many(self, owner: str, entries: Sequence[tuple[str, str, Task]]) -> None:
        """`remember` for each (key, fingerprint, task)."""
        ...

    async def remember(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        """Stores the key with the task it created, in this unit of work; raises
        IdempotencyKeyInFlight if another one holds or just committed the same key."""
        ...

    async def purge(self, before: datetime) -> int:
        """Removes keys (of every owner) stored before `before`; how many."""
        ...


class ChangeFeed(Protocol):
    """Every write of an owner in commit order (SPEC §6.8; see todo_domain.sync)."""

    async def since(self, owner: str, revision: int, limit: int, *, include_deleted: bool) -> FeedPage:
        """Up to `limit` + 1 tasks (tombstones too, if asked) written after `revision`, in
        revision order, with the owner's revision read in the same snapshot."""
        ...

    async def reminders_since(self, owner: str, revision: int, limit: int) -> Sequence[RecordedEvent]:
        """The owner's fired reminders (`reminder.due` events still in the outbox) numbered after
        `revision`, up to `limit`, in sequence order: live readers merge them with the feed."""
        ...


class UnitOfWork(Protocol):
    """One unit of work in progress: its tasks, keys and feed. Nothing is kept unless
    `commit()` is called."""

    @property
    def tasks(self) -> TaskRepository: ...

    @property
    def keys(self) -> IdempotencyKeys: ...

    @property
    def feed(self) -> ChangeFeed: ...

    async def commit(self) -> None: ...


class TaskStore(Protocol):
    """Where tasks live; hands out units of work: `async with store.begin() as uow: ...;
    await uow.commit()`.

    Leaving the block without commit (or by an exception) rolls back. One store serves any
    number of concurrent units of work. `read_only` promises no writes and no commit, so a store
    may serve it without a transaction of its own (each read sees committed data).
    """

    def begin(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]: ...

    async def dispose(self) -> None:
        """Closes what the store holds open (a pool); the store is not used afterwards. Stores
        are also async context managers: `async with SqlStore.from_url(url) as store: …`."""
        ...


class OutboxBatch(Protocol):
    """Events claimed by one worker: nobody else relays these owners' events until it ends."""

    @property
    def events(self) -> Sequence[RecordedEvent]:
        """In sequence order per owner; every earlier event of these owners is published."""
        ...

    async def published(
        self, events: Sequence[RecordedEvent], webhook_urls: Sequence[str], now: datetime
    ) -> None:
        """Marks `events` (all of the batch, or per owner a first part of its events in it)
        published and schedules one delivery per webhook endpoint for each, then commits.
        Events of the batch left unmarked go to a later claim."""
        ...


class DeliveryBatch(Protocol):
    """Webhook deliveries due now, claimed by one worker; each is settled, then `commit()`."""

    @property
    def deliveries(self) -> Sequence[Delivery]:
        """By owner and sequence."""
        ...

    async def delivered(self, delivery: Delivery) -> None: ...

    async def retry(self, delivery: Delivery, at: datetime, error: str) -> None: ...

    async def give_up(self, delivery: Delivery, error: str) -> None:
        """Keeps it as a dead letter (listed, and sent again by `EventOutbox.replay_dead`)."""
        ...

    async def commit(self) -> None: ...


class EventOutbox(Protocol):
    """What the worker needs of a store's outbox (its events, reminders and webhook deliveries)."""

    def claim(self, limit: int) -> AbstractAsyncContextManager[OutboxBatch]:
        """Up to `limit` unpublished events of owners no other worker holds now."""
        ...

    def due_deliveries(self, now: datetime, limit: int) -> AbstractAsyncContextManager[DeliveryBatch]:
        """Up to `limit` webhook deliveries due by `now` that no other worker holds."""
        ...

    async def fire_reminders(
        self, now: datetime, *, skip_before: datetime, late_before: datetime, ids: IdGenerator, limit: int
    ) -> Sequence[RecordedEvent]:
        """Fires up to `limit` due reminders, each once per (task, remind_at): records a
        `reminder.due` event with the owner's next revision and disarms it, in one transaction
        (concurrent workers never fire the same one). Reminders due before `late_before` are
        `late`; those due before `skip_before` are disarmed without an event."""
        ...

    async def dead_letters(self, limit: int) -> Sequence[Delivery]: ...

    async def replay_dead(self, now: datetime) -> int:
        """Every dead letter due again now, with a fresh retry budget; how many."""
        ...

    async def lag(self, now: datetime) -> float | None:
        """Seconds since the oldest unpublished event was recorded; None when all are published."""
        ...

    async def purge(self, published_before: datetime) -> int:
        """Removes events published before then with no delivery left; how many."""
        ...


class EventSink(Protocol):
    """A broker the worker publishes to (NATS JetStream, Redis Streams)."""

    name: str

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """All of them, each owner's in order, or raise SinkUnavailable saying which it took
        (`done`); the others come again in a later batch, so a sink keeps one copy per event
        across retries (by event id, or by owner and sequence)."""
        ...

    async def close(self) -> None: ...


class WebhookSender(Protocol):
    """Sends one signed delivery to its endpoint."""

    async def send(self, delivery: Delivery) -> str | None:
        """None when the endpoint accepted it (any 2xx), else what went wrong."""
        ...

    async def close(self) -> None: ...
