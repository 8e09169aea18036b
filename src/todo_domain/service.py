"""The use cases: each call is one transaction that loads, asks the entity, saves and commits."""

from __future__ import annotations

import builtins
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar
from uuid import UUID

from todo_domain import hierarchy, positions
from todo_domain.batch import BatchFailed, BatchResult, Command, Op, Outcome, TempIds, check_batch
from todo_domain.errors import (
    ChangeTokenExpired,
    DomainError,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidQuery,
    InvalidTask,
    PositionTaken,
    StorageUnavailable,
    TaskNotFound,
    ValidationFailed,
    VersionConflict,
    WriteConflict,
)
from todo_domain.events import EventType, RecordedEvent, TaskEvent, classify
from todo_domain.model import UNSET, NewTask, Placement, Task, TaskPatch, Unset, reference, task_id_of
from todo_domain.ports import ChangeSignal, Clock, IdGenerator, TaskStore, UnitOfWork
from todo_domain.query import Page, TagCount, TaskQuery
from todo_domain.sync import (
    MAX_CHANGES,
    MAX_REVISION,
    Change,
    ChangeLog,
    ChangeSet,
    ChangeToken,
    Creation,
    FeedPage,
    IdempotencyKey,
    Purged,
    fingerprint,
)
from todo_domain.system import SystemClock, Uuid7Generator
from todo_domain.values import Owner

__all__ = ["TaskService"]

# Without an expected version a write applies to whatever is current ("last writer wins"): if
# a concurrent writer commits between our read and our compare-and-set, or takes the sibling
# position we computed, we retry from what it committed; N writers into one gap need up to N
# turns.
_RACE_ATTEMPTS = 64
# A unit of work the database aborted to break a deadlock is done again this many times in all
# (each deadlock costs PostgreSQL's deadlock_timeout, 1 s by default, to detect).
_DEADLOCK_ATTEMPTS = 3

Edit = Callable[[UnitOfWork, Task, datetime], Awaitable[Sequence[Task]]]
"""Changes the task (locked, in the unit of work) and returns the other tasks it changed."""

_T = TypeVar("_T")


class _LostRace(Exception):
    """A concurrent writer changed what this attempt read; the attempt starts again."""

    def __init__(self, conflict: VersionConflict) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


@dataclass(frozen=True, slots=True)
class _Unchanged(Generic[_T]):
    """A step that wrote nothing (a no-op change, a replayed key): no commit needed."""

    value: _T


@dataclass(frozen=True, slots=True)
class _Key:
    """An idempotency key with the fingerprint of what it was sent with."""

    key: IdempotencyKey
    fingerprint: str

    async def replay(self, uow: UnitOfWork, owner: Owner) -> Task | None:
        """The task stored under this key, if any (another request: IdempotencyKeyReused)."""
        stored = await uow.keys.find(owner, self.key)
        if stored is None:
            return None
        if stored.fingerprint != self.fingerprint:
            raise IdempotencyKeyReused()
        return stored.task


_Results = list[tuple[int, Outcome | DomainError]]
"""A run's answers by command index: its outcome, or the error it failed with."""
_Chains = dict[UUID, list[UUID]]


def _runs(commands: Sequence[Command]) -> list[tuple[int, int]]:
    """The batch cut into [start, end) slices: runs of consecutive creates (bulk-able), and
    every other command alone."""
    slices: list[tuple[int, int]] = []
    start = 0
    while start < len(commands):
        end = start + 1
        if _bulk(commands[start]):
            while end < len(commands) and _bulk(commands[end]):
                end += 1
        slices.append((start, end))
        start = end
    return slices


def _bulk(command: Command) -> bool:
    return command.op is Op.CREATE and command.refused is None


def _outcome(command: Command, result: Outcome | DomainError) -> Outcome:
    return result if isinstance(result, Outcome) else Outcome(command.id, command.op, error=result)


def _completing(completed: bool | None) -> Edit:
    return _simple(lambda task, now: task.set_completed(completed, now))


def _simple(change: Callable[[Task, datetime], None]) -> Edit:
    async def run(_: UnitOfWork, task: Task, now: datetime) -> Sequence[Task]:
        change(task, now)
        return ()

    return run


def _room_for_reminders(page: FeedPage, since: int, limit: int) -> bool:
    """Whether some revision after `since` that the page covers holds no task: only then can a
    reminder (which takes a revision of its own) be among them. A stream woken by one write reads
    that write's revision and nothing else, so it needs no second statement."""
    top = page.entries[limit][0] if len(page.entries) > limit else page.owner_revision
    covered = sum(1 for revision, _ in page.entries if revision <= top)
    return covered < top - since


class _Silence:
    def changed(self, owner: str) -> None:
        """Nobody listens."""


_NO_SIGNAL = _Silence()


class TaskService:
    """The Python API of the tasks service; every method acts for one explicit owner.

    Asking for another owner's task is indistinguishable from asking for a missing one. Every
    method may raise StorageUnavailable (the store cannot be reached now; retrying later may
    work) and InvalidTask naming `owner` for an owner that is not 1–255 visible characters;
    the Raises sections list the rest. Task ids may be given as UUIDs or their text; anything
    else names no task (TaskNotFound), in every store alike.
    """

    def __init__(
        self,
        store: TaskStore,
        *,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        tombstone_retention: timedelta = timedelta(days=30),
        idempotency_retention: timedelta = timedelta(hours=24),
        signal: ChangeSignal | None = None,
        event_ids: IdGenerator | None = None,
    ) -> None:
        self._store = store
        self._event_ids = event_ids or Uuid7Generator()
        self._signal = signal or _NO_SIGNAL
        self._clock = clock or SystemClock()
        self._ids = ids or Uuid7Generator()
        self._tombstone_retention = tombstone_retention
        self._idempotency_retention = idempotency_retention

    async def create(self, owner: str, new: NewTask) -> Task:
        """A new task, after its last sibling (under `new.parent_id`, or at the top level).

        Raises InvalidTask naming `parent_id` for a parent that is missing, deleted, another
        owner's or too deep (more than 5 levels); PositionTaken after 64 lost races for the
        last place (only under extreme contention on one parent).
        """
        owner = Owner(owner)
        creation = await self._retried(owner, lambda uow: self._create_in(uow, owner, new, None))
        return creation.task

    async def create_with_key(self, owner: str, new: NewTask, key: str) -> Creation:
        """Create at most once per key: a retry with the same draft gets the original task back
        (`replayed`), a different draft is IdempotencyKeyReused. The key is stored in the same
        transaction as the task, so neither can exist without the other. A request whose key
        is still in flight waits for it and replays.

        Raises as `create`, and ValidationFailed naming `idempotency_key` for a key that is not
        1–255 visible ASCII characters; IdempotencyKeyReused for a key already used with
        another draft.
        """
        owner, remembered = Owner(owner), _Key(IdempotencyKey(key), fingerprint(new))
        return await self._retried(owner, lambda uow: self._create_in(uow, owner, new, remembered))

    async def _create_in(self, uow: UnitOfWork, owner: Owner, new: NewTask, key: _Key | None) -> Creation:
        if key is not None:
            replay = await key.replay(uow, owner)
            if replay is not None:
                return Creation(replay, replayed=True)
        parent = new.parent_id
        if parent is not None:
            hierarchy.check_parent(None, await uow.tasks.ancestors(owner, parent), height=1)
        last = await uow.tasks.last_position(owner, parent)
        task_id = self._ids.new_id()
        placement = Placement(parent, positions.after_last(last, task_id))
        task = Task.create(task_id, owner, new, self._clock.now(), placement)
        await uow.tasks.add(task, self._event(EventType.TASK_CREATED))
        if key is not None:
            await uow.keys.remember(owner, key.key, key.fingerprint, task)
        return Creation(task)

    async def _retried(
        self, owner: Owner, step: Callable[[UnitOfWork], Awaitable[_T | _Unchanged[_T]]]
    ) -> _T:
        """One unit of work around `step`, committed (and signalled: see ChangeSignal); started
        again when it lost a race to a concurrent writer (a version, a sibling position, an
        idempotency key in flight once)."""
        in_flight = deadlocked = 0
        for attempt in range(1, _RACE_ATTEMPTS + 1):
            try:
                async with self._store.begin() as uow:
                    result = await step(uow)
                    if isinstance(result, _Unchanged):
                        return result.value
                    await uow.commit()
                self._signal.changed(owner)
                return result
            except IdempotencyKeyInFlight:
                in_flight += 1
                if in_flight > 1:
                    raise
            except WriteConflict:
                deadlocked += 1
                if deadlocked == _DEADLOCK_ATTEMPTS or attempt == _RACE_ATTEMPTS:
                    raise
            except (_LostRace, PositionTaken) as lost:
                if attempt == _RACE_ATTEMPTS:
                    raise (lost.conflict if isinstance(lost, _LostRace) else lost) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, owner: str, task_id: UUID) -> Task:
        """The live task. Raises TaskNotFound if it is missing, deleted or another owner's."""
        owner, task_id = Owner(owner), task_id_of(task_id)
        async with self._store.begin(read_only=True) as uow:
            task = await uow.tasks.get(owner, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(self, owner: str, query: TaskQuery | None = None) -> Page:
        """One page of the owner's live tasks (filters, sort and paging in `query`); the page's
        `total` counts every match. Raises InvalidQuery only when the TaskQuery is built (a bad
        value); a cursor from another owner's list simply finds nothing of theirs."""
        async with self._store.begin(read_only=True) as uow:
            return await uow.tasks.find(Owner(owner), query or TaskQuery(), self._clock.now())

    async def list_changes(self, owner: str, since: str | None = None, limit: int = 100) -> ChangeSet:
        """The change feed: every write after `since` exactly once, in its latest state.
        Without `since`, a full sync of the live tasks. See `todo_domain.sync` for the design.

        Raises InvalidQuery naming `limit` (1–1000) or `since` (not a token of ours);
        ChangeTokenExpired for a token older than the tombstone retention, or ahead of every
        change this store has (from another database, e.g. before a restore): sync in full.
        """
        token = None if since is None else ChangeToken.decode(since)
        log = await self._changes(Owner(owner), token, limit)
        return ChangeSet(
            changes=tuple(c.task for c in log.entries if not c.task.deleted),
            deleted=tuple(c.task.id for c in log.entries if c.task.deleted),
            next=log.next,
            has_more=log.has_more,
        )

    async def current_token(self, owner: str) -> ChangeToken:
        """Where a live reader of the feed starts when it has no token: the owner's newest
        revision (one read). With a token, its first `changes_after` both checks and replays.
        Raises only StorageUnavailable."""
        owner = Owner(owner)
        async with self._store.begin(read_only=True) as uow:
            page = await uow.feed.since(owner, MAX_REVISION, 1, include_deleted=True)
        return ChangeToken(page.owner_revision, self._clock.now())

    async def changes_after(self, owner: str, token: ChangeToken, limit: int = MAX_CHANGES) -> ChangeLog:
        """The feed after `token` with each entry's own token (what a live stream sends as
        event ids); tombstones included, and the reminders fired meanwhile (entries with
        `remind_at`), in one order. Raises ChangeTokenExpired, InvalidQuery (limit)."""
        return await self._changes(Owner(owner), token, limit, reminders=True)

    async def _changes(
        self, owner: Owner, token: ChangeToken | None, limit: int, *, reminders: bool = False
    ) -> ChangeLog:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CHANGES:
            raise InvalidQuery.one("limit", f"must be between 1 and {MAX_CHANGES}", "out_of_range")
        now = self._clock.now()
        since = 0 if token is None else token.revision
        async with self._store.begin(read_only=True) as uow:
            page = await uow.feed.since(owner, since, limit, include_deleted=token is not None)
            fired: Sequence[RecordedEvent] = ()
            if reminders and _room_for_reminders(page, since, limit):
                fired = await uow.feed.reminders_since(owner, since, limit)
        if token is not None:
            token.check_fresh(now, self._tombstone_retention, page.purged_revision)
            if token.revision > page.owner_revision:  # handed out by another database (a restore?)
                raise ChangeTokenExpired("the change token is ahead of this store's changes; do a full sync")
        entries = [Change(task, ChangeToken(revision, now)) for revision, task in page.entries]
        # Reminders the feed's snapshot covers (a later one may have a write before it that this
        # page could not see yet): merged by number, so one token orders both.
        entries += [
            Change(e.task, ChangeToken(e.sequence, now), e.remind_at, e.late)
            for e in fired
            if e.sequence <= page.owner_revision
        ]
        entries.sort(key=lambda c: c.token.revision)
        rows = entries[:limit]
        if rows:
            last = rows[-1].token.revision
        else:
            last = page.owner_revision if token is None else max(token.revision, page.owner_revision)
        return ChangeLog(entries=tuple(rows), next=ChangeToken(last, now), has_more=len(entries) > limit)

    async def purge(self) -> Purged:
        """Drops tombstones past the retention and expired idempotency keys (all owners).
        Raises only StorageUnavailable."""
        now = self._clock.now()
        async with self._store.begin() as uow:
            tombstones = await uow.tasks.purge_tombstones(now - self._tombstone_retention)
            keys = await uow.keys.purge(now - self._idempotency_retention)
            await uow.commit()
        return Purged(tombstones, keys)

    async def list_tags(self, owner: str) -> Sequence[TagCount]:
        """Each tag of the owner's live tasks with its open and total counts, by name."""
        async with self._store.begin(read_only=True) as uow:
            return await uow.tasks.tag_counts(Owner(owner))

    async def replace(
        self, owner: str, task_id: UUID, new: NewTask, *, expected_version: int | None = None
    ) -> Task:
        """PUT: every writable field; an omitted parent_id means the top level. A task given a
        new parent goes after that parent's last child.

        Raises TaskNotFound; VersionConflict if `expected_version` is given and not the task's
        version; InvalidTask for a draft that breaks a rule on this task (a parent that would
        make a cycle or pass 5 levels, a recurrence without due date).
        """
        return await self._change(owner, task_id, expected_version, self._replacing(new))

    async def update(
        self, owner: str, task_id: UUID, patch: TaskPatch, *, expected_version: int | None = None
    ) -> Task:
        """PATCH: only the fields the patch sets. Raises as `replace`."""
        return await self._change(owner, task_id, expected_version, self._updating(patch))

    async def set_completed(
        self,
        owner: str,
        task_id: UUID,
        completed: bool | None,
        *,
        expected_version: int | None = None,
    ) -> Task:
        """True completes, False reopens, None toggles. Completing a recurring task rolls it
        forward to its next occurrence instead; completing for good completes its open subtasks.
        Raises TaskNotFound, VersionConflict."""
        return await self._change(owner, task_id, expected_version, _completing(completed))

    async def delete(self, owner: str, task_id: UUID, *, expected_version: int | None = None) -> Task:
        """Soft delete, with every subtask, in one transaction; returns the tombstone.
        Raises TaskNotFound, VersionConflict."""
        return await self._change(owner, task_id, expected_version, _simple(Task.delete))

    async def move(
        self,
        owner: str,
        task_id: UUID,
        *,
        parent_id: UUID | Unset | None = UNSET,
        after: UUID | Unset | None = UNSET,
        before: UUID | Unset | None = UNSET,
        expected_version: int | None = None,
    ) -> Task:
        """Moves a task among its siblings or under another parent (SPEC §17); see
        `hierarchy.place` for `after`/`before`. Only the task is written, unless the gap has
        become too fine and the sibling list is rebalanced (then each sibling is written too).

        Raises TaskNotFound; VersionConflict; InvalidTask naming `parent_id`, `after` or
        `before` for a target that is not a live sibling (or parent) of the owner's, or a move
        that would make a cycle or pass 5 levels.
        """
        targets = [
            UNSET if isinstance(v, Unset) else reference(n, v)
            for n, v in (("parent_id", parent_id), ("after", after), ("before", before))
        ]
        return await self._change(owner, task_id, expected_version, self._moving(*targets))

    # -- batches (SPEC §18) ----------------------------------------------------------------------

    async def run_batch(
        self, owner: str, commands: Sequence[Command], *, atomic: bool = False
    ) -> BatchResult:
        """Runs `commands` in order, each answered like its single use case (see todo_domain.batch).

        Not atomic: a failure is that command's outcome and the rest go on; each command is its
        own revision, and its own unit of work except in a run of consecutive creates, which
        share one with bulk statements (`_creates_in`; if that unit of work loses a race, the
        run is done again command by command). Atomic: one unit of work; the first failure
        rolls everything back and raises BatchFailed naming its index.

        Raises ValidationFailed for a malformed batch (more than 1,000 commands, duplicate
        command ids or temp ids, a temp_id on anything but a create, a missing task_id);
        BatchFailed (atomic only). Otherwise each command's error is in its Outcome.
        """
        check_batch(commands)
        owner = Owner(owner)
        if atomic:
            return await self._retried(owner, lambda uow: self._atomic_batch_in(uow, owner, commands))
        temps, outcomes = TempIds(), []
        for start, end in _runs(commands):
            if end - start > 1:
                run = list(enumerate(commands))[start:end]
                try:
                    async with self._store.begin() as uow:
                        results, after = await self._creates_in(uow, owner, run, temps)
                        await uow.commit()
                    self._signal.changed(owner)
                except (_LostRace, PositionTaken, IdempotencyKeyInFlight, WriteConflict):
                    pass  # done again below, one by one
                else:
                    temps = after
                    outcomes += [_outcome(commands[i], r) for i, r in results]
                    continue
            for command in commands[start:end]:
                outcomes.append(await self._one_command(owner, command, temps))
        return BatchResult(tuple(outcomes), dict(temps.made))

    async def _one_command(self, owner: Owner, command: Command, temps: TempIds) -> Outcome:
        try:
            if command.refused is not None:
                raise command.refused
            outcome = await self._retried(
                owner, functools.partial(self._command_in, owner=owner, command=command, temps=temps)
            )
        except DomainError as exc:
            if command.temp_id is not None:
                temps.failed.add(command.temp_id)
            return Outcome(command.id, command.op, error=exc)
        if command.temp_id is not None and outcome.task is not None:
            temps.made[command.temp_id] = outcome.task.id
        return outcome

    async def _atomic_batch_in(
        self, uow: UnitOfWork, owner: Owner, commands: Sequence[Command]
    ) -> BatchResult:
        temps, outcomes = TempIds(), builtins.list[Outcome]()
        for start, end in _runs(commands):
            if end - start > 1:
                results, temps = await self._creates_in(
                    uow, owner, list(enumerate(commands))[start:end], temps
                )
                for index, answer in results:
                    if isinstance(answer, DomainError):
                        raise BatchFailed(index, answer)
                    outcomes.append(answer)
                continue
            command = commands[start]
            if command.refused is not None:
                raise BatchFailed(start, command.refused)
            try:
                result = await self._command_in(uow, owner=owner, command=command, temps=temps)
            except (_LostRace, PositionTaken, IdempotencyKeyInFlight, WriteConflict):
                raise  # the whole batch starts again
            except DomainError as exc:
                raise BatchFailed(start, exc) from None
            outcome = result.value if isinstance(result, _Unchanged) else result
            if command.temp_id is not None and outcome.task is not None:
                temps.made[command.temp_id] = outcome.task.id
            outcomes.append(outcome)
        return BatchResult(tuple(outcomes), dict(temps.made))

    async def _creates_in(
        self, uow: UnitOfWork, owner: Owner, run: Sequence[tuple[int, Command]], temps: TempIds
    ) -> tuple[_Results, TempIds]:
        """A run of creates in one unit of work: their keys looked up in one statement, each
        distinct parent's chain and last child read once, the tasks and keys written in bulk
        (each task still its own revision). Per-command failures are returned in place; the
        temp ids as they stand afterwards are returned too (the caller keeps them once the unit
        of work commits)."""
        after = temps.copy()
        keys = {command.id: command.storage_key() for _, command in run}
        stored = await uow.keys.find_many(owner, list(keys.values()))
        chains: _Chains = {}  # the tasks made here: themselves, then their ancestors
        lasts: dict[UUID | None, str | None] = {}
        fresh: builtins.list[tuple[Task, TaskEvent]] = []
        remembered: builtins.list[tuple[str, str, Task]] = []
        results: _Results = []
        for index, command in run:
            key, wanted = keys[command.id], command.fingerprint()
            try:
                if key in stored:
                    if stored[key].fingerprint != wanted:
                        raise IdempotencyKeyReused()
                    task = stored[key].task
                else:
                    task = await self._new_in_run(uow, owner, command, after, chains, lasts)
                    fresh.append((task, self._event(EventType.TASK_CREATED)))
                    remembered.append((key, wanted, task))
            except StorageUnavailable:
                raise  # the unit of work is lost, not this command: the caller decides
            except DomainError as exc:
                if command.temp_id is not None:
                    after.failed.add(command.temp_id)
                results.append((index, exc))
                continue
            if command.temp_id is not None:
                after.made[command.temp_id] = task.id
            results.append((index, Outcome(command.id, command.op, task)))
        await uow.tasks.add_many(fresh)
        await uow.keys.remember_many(owner, remembered)
        return results, after

    async def _new_in_run(
        self,
        uow: UnitOfWork,
        owner: Owner,
        command: Command,
        temps: TempIds,
        chains: _Chains,
        lasts: dict[UUID | None, str | None],
    ) -> Task:
        draft = command.draft
        if not isinstance(draft, NewTask):
            raise InvalidTask.one("body", "a create needs the body of POST /api/tasks", "missing")
        parent = draft.parent_id
        if not isinstance(command.parent, Unset):
            parent = temps.resolve(command.parent, "parent_id") if command.parent else None
        chain: builtins.list[UUID] = []
        if parent is not None:
            chain = chains[parent] if parent in chains else list(await uow.tasks.ancestors(owner, parent))
            hierarchy.check_parent(None, chain, height=1)
        if parent not in lasts:
            lasts[parent] = None if parent in chains else await uow.tasks.last_position(owner, parent)
        task_id = self._ids.new_id()
        position = positions.after_last(lasts[parent], task_id)
        lasts[parent] = position
        chains[task_id] = [task_id, *chain]
        return Task.create(
            task_id, owner, draft.with_parent(parent), self._clock.now(), Placement(parent, position)
        )

    async def _command_in(
        self, uow: UnitOfWork, *, owner: Owner, command: Command, temps: TempIds
    ) -> Outcome | _Unchanged[Outcome]:
        key = _Key(command.storage_key(), command.fingerprint())
        draft = command.draft
        if command.op is Op.CREATE:
            if not isinstance(draft, NewTask):
                raise InvalidTask.one("body", "a create needs the body of POST /api/tasks", "missing")
            if not isinstance(command.parent, Unset):
                draft = draft.with_parent(
                    temps.resolve(command.parent, "parent_id") if command.parent else None
                )
            creation = await self._create_in(uow, owner, draft, key)
            outcome = Outcome(command.id, command.op, creation.task)
            return _Unchanged(outcome) if creation.replayed else outcome
        task_id = temps.resolve(command.task_id or "", "task_id")
        match command.op:
            case Op.REPLACE:
                if not isinstance(draft, NewTask):
                    raise InvalidTask.one(
                        "body", "a replace needs the body of PUT /api/tasks/{id}", "missing"
                    )
                parent = None if isinstance(command.parent, Unset) else command.parent
                change = self._replacing(
                    draft.with_parent(None if parent is None else temps.resolve(parent, "parent_id"))
                )
            case Op.UPDATE:
                if not isinstance(draft, TaskPatch):
                    raise InvalidTask.one(
                        "body", "an update needs the body of PATCH /api/tasks/{id}", "missing"
                    )
                change = self._updating(draft.with_parent(temps.optional(command.parent, "parent_id")))
            case Op.COMPLETE | Op.REOPEN | Op.TOGGLE:
                change = _completing({Op.COMPLETE: True, Op.REOPEN: False}.get(command.op))
            case Op.DELETE:
                change = _simple(Task.delete)
            case Op.MOVE:
                change = self._moving(
                    temps.optional(command.parent, "parent_id"),
                    temps.optional(command.after, "after"),
                    temps.optional(command.before, "before"),
                )
        result = await self._change_in(uow, owner, task_id, command.expected_version, change, key)
        if isinstance(result, _Unchanged):
            return _Unchanged(Outcome(command.id, command.op, result.value))
        return Outcome(command.id, command.op, result)

    # -- the changes ------------------------------------------------------------------------------

    def _event(self, kind: EventType, occurrence: datetime | None = None) -> TaskEvent:
        return TaskEvent(self._event_ids.new_id(), kind, occurrence)

    def _event_of(self, task: Task, was_completed: bool, was_deleted: bool) -> TaskEvent:
        return self._event(*classify(task, was_completed=was_completed, was_deleted=was_deleted))

    def _replacing(self, new: NewTask) -> Edit:
        async def change(uow: UnitOfWork, task: Task, now: datetime) -> Sequence[Task]:
            task.replace(new, now, await self._new_parent(uow, task, new.parent_id))
            return ()

        return change

    def _updating(self, patch: TaskPatch) -> Edit:
        async def change(uow: UnitOfWork, task: Task, now: datetime) -> Sequence[Task]:
            parent = task.parent_id if isinstance(patch.parent_id, Unset) else patch.parent_id
            task.update(patch, now, await self._new_parent(uow, task, parent))
            return ()

        return change

    def _moving(
        self, parent_id: UUID | Unset | None, after: UUID | Unset | None, before: UUID | Unset | None
    ) -> Edit:
        async def change(uow: UnitOfWork, task: Task, now: datetime) -> Sequence[Task]:
            target = task.parent_id if isinstance(parent_id, Unset) else parent_id
            if target != task.parent_id and target is not None:
                chain = await uow.tasks.ancestors(task.owner, target)
                hierarchy.check_parent(task.id, chain, await self._height(uow, task))
            siblings = [s for s in await uow.tasks.siblings(task.owner, target) if s.id != task.id]
            current = task.position if target == task.parent_id else None
            placement, rebalanced = hierarchy.place(
                siblings, target, after=after, before=before, current=current
            )
            task.move(placement, now)
            others = []
            for sibling_id, sibling_placement in rebalanced:
                sibling = await uow.tasks.get(task.owner, sibling_id, for_update=True)
                if sibling is not None:
                    sibling.move(sibling_placement, now)
                    others.append(sibling)
            return others

        return change

    async def _new_parent(self, uow: UnitOfWork, task: Task, parent: UUID | None) -> Placement | None:
        """The placement under a new parent (after its last child), once the family rules
        hold; None when the parent stays."""
        if parent == task.parent_id:
            return None
        if parent is not None:
            chain = await uow.tasks.ancestors(task.owner, parent)
            hierarchy.check_parent(task.id, chain, await self._height(uow, task))
        last = await uow.tasks.last_position(task.owner, parent)
        return Placement(parent, positions.after_last(last, task.id))

    @staticmethod
    async def _height(uow: UnitOfWork, task: Task) -> int:
        below = await uow.tasks.descendants(task.owner, task.id)
        return 1 + max((depth for depth, _ in below), default=0)

    async def _change(
        self,
        owner: str,
        task_id: UUID,
        expected_version: int | None,
        change: Edit,
        key: _Key | None = None,
    ) -> Task:
        """Load (locked), change, save by compare-and-set, commit — started again on a lost race
        when the caller gave no version."""
        owner, task_id = Owner(owner), task_id_of(task_id)
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool)
        ):
            raise ValidationFailed.one("expected_version", "must be an integer or None", "type_error")
        return await self._retried(
            owner, lambda uow: self._change_in(uow, owner, task_id, expected_version, change, key)
        )

    async def _change_in(
        self,
        uow: UnitOfWork,
        owner: Owner,
        task_id: UUID,
        expected_version: int | None,
        change: Edit,
        key: _Key | None,
    ) -> Task | _Unchanged[Task]:
        """One attempt. The task's subtasks follow its deletion or completion in the same unit
        of work (hierarchy.follow). A change that changes nothing writes nothing (_Unchanged)."""
        if key is not None:
            replay = await key.replay(uow, owner)
            if replay is not None:
                return _Unchanged(replay)
        task = await uow.tasks.get(owner, task_id, for_update=True)
        if task is None:
            raise TaskNotFound(task_id)
        if expected_version is not None and task.version != expected_version:
            raise VersionConflict(expected_version, task.version)
        loaded, was_completed, was_deleted = task.version, task.completed, task.deleted
        now = self._clock.now()
        others = list(await change(uow, task, now))
        before: dict[UUID, tuple[bool, bool]] = {}  # of the subtasks that follow
        if hierarchy.changes_subtree(task, was_completed, was_deleted):
            subtree = [t for _, t in await uow.tasks.descendants(owner, task.id)]
            before = {t.id: (t.completed, t.deleted) for t in subtree}
            others += hierarchy.follow(task, was_completed, was_deleted, subtree, now)
        if task.version == loaded and not others:
            return _Unchanged(task)  # nothing changed: no write, no version bump
        if task.version != loaded:
            try:
                event = self._event_of(task, was_completed, was_deleted)
                await uow.tasks.save(task, expected_version=loaded, event=event)
            except VersionConflict as conflict:
                if expected_version is not None:
                    raise  # the caller's precondition: theirs to resolve
                raise _LostRace(conflict) from None
        for other in others:
            try:
                event = self._event_of(other, *before.get(other.id, (other.completed, other.deleted)))
                await uow.tasks.save(other, expected_version=other.version - 1, event=event)
            except VersionConflict as conflict:  # a subtask or sibling changed meanwhile
                raise _LostRace(conflict) from None
        if key is not None:
            await uow.keys.remember(owner, key.key, key.fingerprint, task)
        return task
