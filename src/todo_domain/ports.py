"""The small interfaces the use cases need; adapters implement them, the service only sees these."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from todo_domain.model import Task
from todo_domain.query import Page, TagCount, TaskQuery
from todo_domain.sync import FeedPage, Purged, StoredKey

__all__ = ["Clock", "IdGenerator", "TaskRepository", "Transaction", "UnitOfWork"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware UTC."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> UUID:
        """A fresh, time-ordered (UUID version 7) task id."""
        ...


class TaskRepository(Protocol):
    """Tasks of one transaction. Every method is scoped to one owner; deleted tasks are invisible."""

    async def add(self, task: Task) -> None: ...

    async def get(self, owner: str, task_id: UUID, *, for_update: bool = False) -> Task | None:
        """A copy of the stored task; `for_update` locks it until the transaction ends."""
        ...

    async def save(self, task: Task, *, expected_version: int) -> None:
        """Compare-and-set: stores `task` only if the stored version is still `expected_version`,
        else raises VersionConflict."""
        ...

    async def find(self, owner: str, query: TaskQuery, now: datetime) -> Page:
        """One page of the owner's live tasks matching `query`, with the total count."""
        ...

    async def tag_counts(self, owner: str) -> Sequence[TagCount]:
        """Every tag of the owner's live tasks, by name, with open and total counts."""
        ...

    async def changes_since(
        self, owner: str, revision: int, limit: int, *, include_deleted: bool
    ) -> FeedPage:
        """Tasks (tombstones too, if asked) written after `revision`, in revision order."""
        ...

    async def find_key(self, owner: str, key: str) -> StoredKey | None: ...

    async def remember_key(self, owner: str, key: str, fingerprint: str, task: Task) -> None:
        """Stores the key with the task it created, in this transaction; raises
        IdempotencyKeyInFlight if another transaction holds or just committed the same key."""
        ...

    async def purge(self, tombstones_before: datetime, keys_before: datetime) -> Purged:
        """Removes old tombstones and idempotency keys of every owner."""
        ...


class Transaction(Protocol):
    """One unit of work in progress. Nothing is kept unless `commit()` is called."""

    @property
    def tasks(self) -> TaskRepository: ...

    async def commit(self) -> None: ...


class UnitOfWork(Protocol):
    """A store that hands out transactions: `async with uow.begin() as tx: ...; await tx.commit()`.

    Leaving the block without commit (or by an exception) rolls back. One UnitOfWork serves any
    number of concurrent transactions. `read_only` promises no writes and no commit, so a store
    may serve it without a transaction of its own (each read sees committed data).
    """

    def begin(self, *, read_only: bool = False) -> AbstractAsyncContextManager[Transaction]: ...
