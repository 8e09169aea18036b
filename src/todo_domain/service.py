"""The use cases: each call is one transaction that loads, asks the entity, saves and commits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from todo_domain.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidQuery,
    TaskNotFound,
    VersionConflict,
)
from todo_domain.model import NewTask, Task, TaskPatch
from todo_domain.ports import Clock, IdGenerator, TaskStore
from todo_domain.query import Page, TagCount, TaskQuery
from todo_domain.sync import (
    MAX_CHANGES,
    ChangeSet,
    ChangeToken,
    Creation,
    IdempotencyKey,
    Purged,
    fingerprint,
)
from todo_domain.system import SystemClock, Uuid7Generator
from todo_domain.values import Owner

__all__ = ["TaskService"]

# Without an expected version a write applies to whatever is current ("last writer wins");
# if a concurrent writer commits between our read and our compare-and-set, we simply retry.
_LAST_WRITER_WINS_ATTEMPTS = 10

Change = Callable[[Task, datetime], None]


class TaskService:
    """The Python API of the tasks service; every method acts for one explicit owner.

    Asking for another owner's task is indistinguishable from asking for a missing one.
    """

    def __init__(
        self,
        store: TaskStore,
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        tombstone_retention: timedelta = timedelta(days=30),
        idempotency_retention: timedelta = timedelta(hours=24),
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._ids = ids or Uuid7Generator()
        self._tombstone_retention = tombstone_retention
        self._idempotency_retention = idempotency_retention

    async def create(self, owner: str, new: NewTask) -> Task:
        task = Task.create(self._ids.new_id(), Owner(owner), new, self._clock.now())
        async with self._store.begin() as uow:
            await uow.tasks.add(task)
            await uow.commit()
        return task

    async def create_with_key(self, owner: str, new: NewTask, key: str) -> Creation:
        """Create at most once per key: a retry with the same draft gets the original task back
        (`replayed`), a different draft is IdempotencyKeyReused. The key is stored in the same
        transaction as the task, so neither can exist without the other."""
        owner, key, wanted = Owner(owner), IdempotencyKey(key), fingerprint(new)
        for attempt in range(2):
            async with self._store.begin() as uow:
                stored = await uow.keys.find(owner, key)
                if stored is not None:
                    if stored.fingerprint != wanted:
                        raise IdempotencyKeyReused()
                    return Creation(stored.task, replayed=True)
                task = Task.create(self._ids.new_id(), owner, new, self._clock.now())
                await uow.tasks.add(task)
                try:
                    await uow.keys.remember(owner, key, wanted, task)
                    await uow.commit()
                except IdempotencyKeyInFlight:
                    if attempt:
                        raise
                    continue  # the other request has committed by now: look again, replay
                return Creation(task)
        raise IdempotencyKeyInFlight()

    async def get(self, owner: str, task_id: UUID) -> Task:
        async with self._store.begin(read_only=True) as uow:
            task = await uow.tasks.get(Owner(owner), task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(self, owner: str, query: TaskQuery | None = None) -> Page:
        async with self._store.begin(read_only=True) as uow:
            return await uow.tasks.find(Owner(owner), query or TaskQuery(), self._clock.now())

    async def list_changes(self, owner: str, since: str | None = None, limit: int = 100) -> ChangeSet:
        """The change feed: every write after `since` exactly once, in its latest state.
        Without `since`, a full sync of the live tasks. See `todo_domain.sync` for the design."""
        if not 1 <= limit <= MAX_CHANGES:
            raise InvalidQuery.one("limit", f"must be between 1 and {MAX_CHANGES}", "out_of_range")
        owner = Owner(owner)
        token = None if since is None else ChangeToken.decode(since)
        now = self._clock.now()
        async with self._store.begin(read_only=True) as uow:
            page = await uow.feed.since(
                owner, 0 if token is None else token.revision, limit, include_deleted=token is not None
            )
        if token is not None:
            token.check_fresh(now, self._tombstone_retention, page.purged_revision)
        entries = page.entries[:limit]
        has_more = len(page.entries) > limit
        if entries:
            last = entries[-1][0]
        else:
            last = page.owner_revision if token is None else max(token.revision, page.owner_revision)
        return ChangeSet(
            changes=tuple(t for _, t in entries if not t.deleted),
            deleted=tuple(t.id for _, t in entries if t.deleted),
            next=ChangeToken(last, now),
            has_more=has_more,
        )

    async def purge(self) -> Purged:
        """Drops tombstones past the retention and expired idempotency keys (all owners)."""
        now = self._clock.now()
        async with self._store.begin() as uow:
            tombstones = await uow.tasks.purge_tombstones(now - self._tombstone_retention)
            keys = await uow.keys.purge(now - self._idempotency_retention)
            await uow.commit()
        return Purged(tombstones, keys)

    async def list_tags(self, owner: str) -> Sequence[TagCount]:
        async with self._store.begin(read_only=True) as uow:
            return await uow.tasks.tag_counts(Owner(owner))

    async def replace(
        self, owner: str, task_id: UUID, new: NewTask, *, expected_version: int | None = None
    ) -> Task:
        return await self._change(owner, task_id, expected_version, lambda t, now: t.replace(new, now))

    async def update(
        self, owner: str, task_id: UUID, patch: TaskPatch, *, expected_version: int | None = None
    ) -> Task:
        return await self._change(owner, task_id, expected_version, lambda t, now: t.update(patch, now))

    async def set_completed(
        self,
        owner: str,
        task_id: UUID,
        completed: bool | None,
        *,
        expected_version: int | None = None,
    ) -> Task:
        """True completes, False reopens, None toggles."""
        return await self._change(
            owner, task_id, expected_version, lambda t, now: t.set_completed(completed, now)
        )

    async def delete(self, owner: str, task_id: UUID, *, expected_version: int | None = None) -> Task:
        """Soft delete; returns the tombstone."""
        return await self._change(owner, task_id, expected_version, Task.delete)

    async def _change(self, owner: str, task_id: UUID, expected_version: int | None, change: Change) -> Task:
        owner = Owner(owner)
        for _ in range(_LAST_WRITER_WINS_ATTEMPTS):
            async with self._store.begin() as uow:
                task = await uow.tasks.get(owner, task_id, for_update=True)
                if task is None:
                    raise TaskNotFound(task_id)
                if expected_version is not None and task.version != expected_version:
                    raise VersionConflict(expected_version, task.version)
                loaded = task.version
                change(task, self._clock.now())
                if task.version == loaded:
                    return task  # nothing changed: no write, no version bump
                try:
                    await uow.tasks.save(task, expected_version=loaded)
                    await uow.commit()
                except VersionConflict:
                    if expected_version is not None:
                        raise
                    continue
                return task
        raise VersionConflict(loaded, loaded + 1)
