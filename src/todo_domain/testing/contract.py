"""The checks every `TaskStore` must pass, for people writing their own store (SPEC §19).

Each check is an `async def check(store) -> None` that raises AssertionError saying what the
store got wrong. Checks work through `TaskService`, so they test the store as the service uses
it; each uses owners of its own, so one store may serve them all. With pytest:

    import pytest
    from todo_domain.testing.contract import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    async def test_my_store_keeps_the_contract(check):
        async with MyStore(...) as store:
            await check(store)

Without pytest: `failures = await run_contract(store)` (a list of (name, error); empty means
the store passes). The in-memory and both SQL stores of this package run these checks in its
own test suite; a store that drops one promise fails at least one of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from todo_domain.errors import TaskNotFound, VersionConflict
from todo_domain.model import NewTask, Task, TaskPatch
from todo_domain.ports import TaskStore
from todo_domain.query import Sort, SortField, TaskQuery, compare, sort_value
from todo_domain.service import TaskService
from todo_domain.testing import T0, ManualClock, task_event
from todo_domain.values import Frequency, Priority, Recurrence, Status, TimeZone

__all__ = ["CHECKS", "Check", "run_contract"]

Check = Callable[[TaskStore], Awaitable[None]]


def _service(store: TaskStore, clock: ManualClock | None = None) -> TaskService:
    # Real UUIDv7 ids (not SequentialIds): checks share one store, their ids must not collide.
    return TaskService(store, clock=clock or ManualClock(tick=timedelta(microseconds=3)))


def _owner(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def _require(condition: bool, failure: str) -> None:
    """An explicit AssertionError (not `assert`: the checks must also fail under python -O)."""
    if not condition:
        raise AssertionError(failure)


async def _expect(error: type[Exception], call: Awaitable[object], what: str) -> None:
    try:
        await call
    except error:
        return
    raise AssertionError(f"{what}: expected {error.__name__}")


async def a_task_comes_back_as_it_was_stored(store: TaskStore) -> None:
    """Every field round-trips: unicode, tags, microseconds, recurrence, zone, parent."""
    tasks, owner = _service(store), _owner("fields")
    parent = await tasks.create(owner, NewTask(title="parent"))
    draft = NewTask(
        title="Ünïcode ✓ 𝄞 title",
        description="line one\nline two",
        status=Status.IN_PROGRESS,
        priority=Priority.HIGH,
        tags=["Home", "work"],
        due_date=T0 + timedelta(days=3, microseconds=123_456),
        remind_at=T0 + timedelta(days=2),
        recurrence=Recurrence(Frequency.WEEKLY, 2),
        time_zone=TimeZone("Europe/Paris"),
        parent_id=parent.id,
    )
    made = await tasks.create(owner, draft)
    read = await tasks.get(owner, made.id)
    _require(read == made, f"read back {read!r}, stored {made!r}")
    _require(read.tags == ("home", "work") and read.due_date == draft.due_date, "tags or due date changed")
    _require(read.parent_id == parent.id and read.version == 1, "parent or version changed")


async def owners_never_see_each_other(store: TaskStore) -> None:
    tasks, alice, bob = _service(store), _owner("alice"), _owner("bob")
    mine = await tasks.create(alice, NewTask(title="alice's"))
    await _expect(TaskNotFound, tasks.get(bob, mine.id), "another owner's task")
    await _expect(TaskNotFound, tasks.update(bob, mine.id, TaskPatch(title="x")), "updating another's")
    await _expect(TaskNotFound, tasks.delete(bob, mine.id), "deleting another's")
    _require((await tasks.list(bob)).total == 0, "bob's list shows alice's task")
    _require((await tasks.get(alice, mine.id)).title == "alice's", "alice's task changed")


async def a_stale_version_is_refused(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("versions")
    task = await tasks.create(owner, NewTask(title="v1"))
    await tasks.update(owner, task.id, TaskPatch(title="v2"), expected_version=1)
    await _expect(
        VersionConflict,
        tasks.update(owner, task.id, TaskPatch(title="stale"), expected_version=1),
        "a write with a stale expected_version",
    )
    _require((await tasks.get(owner, task.id)).title == "v2", "the stale write applied")


async def concurrent_writes_are_never_lost(store: TaskStore) -> None:
    """20 concurrent unversioned edits of one task: each applies once (version 21)."""
    tasks, owner = _service(store), _owner("race")
    task = await tasks.create(owner, NewTask(title="t"))
    await asyncio.gather(
        *(tasks.update(owner, task.id, TaskPatch(description=f"edit {i}")) for i in range(20))
    )
    _require((await tasks.get(owner, task.id)).version == 21, "a concurrent write was lost")


async def an_uncommitted_unit_of_work_leaves_nothing(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("rollback")
    before = await tasks.create(owner, NewTask(title="kept"))
    try:
        async with store.begin() as uow:
            task = await uow.tasks.get(owner, before.id, for_update=True)
            if task is None:
                raise AssertionError("the task vanished inside a unit of work")
            task.update(TaskPatch(title="never committed"), T0 + timedelta(hours=1))
            await uow.tasks.save(task, expected_version=before.version, event=task_event())
            raise _Abandon()
    except _Abandon:
        pass
    after = await tasks.get(owner, before.id)
    _require(after.title == "kept" and after.version == before.version, "a rolled-back write is visible")


class _Abandon(Exception):
    pass


async def lists_filter_sort_and_page_like_the_reference(store: TaskStore) -> None:
    """Every sort, both directions, paged by cursor 3 at a time: each task once, in the order
    `TaskQuery.matches` and `compare` define (ties broken by id, missing due dates last)."""
    clock = ManualClock(tick=timedelta(minutes=1))
    tasks, owner = _service(store, clock), _owner("lists")
    titles = ["b", "B", "a", "école", "Zed", "b"]
    made = [
        await tasks.create(
            owner,
            NewTask(
                title=title,
                priority=list(Priority)[i % 3],
                status=list(Status)[i % 3],
                tags=["even"] if i % 2 == 0 else [],
                due_date=None if i % 3 == 0 else T0 + timedelta(days=i % 2),
            ),
        )
        for i, title in enumerate(titles)
    ]
    queries = [
        TaskQuery(sort=Sort(field, descending), limit=3)
        for field in SortField
        for descending in (False, True)
    ]
    queries += [
        TaskQuery(statuses=frozenset({Status.PENDING}), limit=3),
        TaskQuery(tags=("even",), priorities=frozenset({Priority.LOW, Priority.HIGH}), limit=3),
        TaskQuery(text="É", limit=3),
        TaskQuery(due_before=T0 + timedelta(hours=1), limit=3),
        TaskQuery(overdue=True, limit=3),
    ]
    now = clock.current
    for query in queries:
        expected = _reference(made, query, now)
        seen, page_query = [], query
        while True:
            page = await tasks.list(owner, page_query)
            _require(page.total == len(expected), f"{query}: total {page.total}, expected {len(expected)}")
            seen += [t.id for t in page.items]
            if page.next_cursor is None:
                break
            page_query = dataclasses.replace(query, cursor=page.next_cursor)
        _require(
            seen == [t.id for t in expected], f"{query.sort}: order or paging differs from the reference"
        )


def _reference(tasks: list[Task], query: TaskQuery, now: object) -> list[Task]:
    field, descending = query.sort.field, query.sort.descending

    def order(a: Task, b: Task) -> int:
        return compare((sort_value(a, field), a.id), (sort_value(b, field), b.id), descending)

    return sorted((t for t in tasks if query.matches(t, now)), key=functools.cmp_to_key(order))  # type: ignore[arg-type]


async def the_change_feed_hands_out_every_write_once(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("feed")
    first = await tasks.create(owner, NewTask(title="one"))
    start = (await tasks.list_changes(owner)).next.encode()
    second = await tasks.create(owner, NewTask(title="two"))
    await tasks.update(owner, first.id, TaskPatch(title="one, edited"))
    await tasks.delete(owner, second.id)
    changes = await tasks.list_changes(owner, start)
    _require([t.title for t in changes.changes] == ["one, edited"], "changed tasks missing or repeated")
    _require(changes.deleted == (second.id,), "the deletion is missing from the feed")
    again = await tasks.list_changes(owner, changes.next.encode())
    _require(not again.changes and not again.deleted, "a caught-up client was handed changes again")


async def one_idempotency_key_makes_one_task(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("keys")
    results = await asyncio.gather(
        *(tasks.create_with_key(owner, NewTask(title="once"), "the-key") for _ in range(10))
    )
    _require(len({r.task.id for r in results}) == 1, "one key made several tasks")
    _require((await tasks.list(owner)).total == 1, "one key made several tasks")
    _require(sum(not r.replayed for r in results) == 1, "more than one request claims to have created it")


async def subtasks_keep_their_order_and_follow_their_parent(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("family")
    parent = await tasks.create(owner, NewTask(title="parent"))
    children = [await tasks.create(owner, NewTask(title=f"c{i}", parent_id=parent.id)) for i in range(3)]
    await tasks.move(owner, children[2].id, after=None)  # first among its siblings
    listed = await tasks.list(owner, TaskQuery(parent_id=parent.id, sort=Sort(SortField.POSITION, False)))
    _require([t.title for t in listed.items] == ["c2", "c0", "c1"], "sibling order is wrong")
    # The whole list in manual order, across parents: by position, ties (siblings of different
    # parents may share one) by id; descending is the exact reverse.
    everyone = [await tasks.get(owner, t.id) for t in (parent, *children)]
    expected = [t.id for t in sorted(everyone, key=lambda t: (t.position, t.id))]
    for descending in (False, True):
        flat = await tasks.list(owner, TaskQuery(sort=Sort(SortField.POSITION, descending)))
        wanted = expected[::-1] if descending else expected
        _require([t.id for t in flat.items] == wanted, "the whole list in manual order is wrong")
    await tasks.delete(owner, parent.id)
    for child in children:
        await _expect(TaskNotFound, tasks.get(owner, child.id), "a subtask of a deleted task")


async def deleted_tasks_are_purged_after_the_retention(store: TaskStore) -> None:
    clock = ManualClock()
    tasks, owner = _service(store, clock), _owner("purge")
    task = await tasks.create(owner, NewTask(title="gone soon"))
    await tasks.delete(owner, task.id)
    clock.advance(timedelta(days=31))
    purged = await tasks.purge()
    _require(purged.tombstones >= 1, "an old tombstone was not purged")


async def tag_counts_count_open_and_all_tasks(store: TaskStore) -> None:
    tasks, owner = _service(store), _owner("tags")
    await tasks.create(owner, NewTask(title="a", tags=["home", "work"]))
    done = await tasks.create(owner, NewTask(title="b", tags=["home"]))
    await tasks.set_completed(owner, done.id, True)
    counts = {c.name: (c.open, c.total) for c in await tasks.list_tags(owner)}
    _require(counts == {"home": (1, 2), "work": (1, 1)}, f"tag counts {counts}")


CHECKS: tuple[Check, ...] = (
    a_task_comes_back_as_it_was_stored,
    owners_never_see_each_other,
    a_stale_version_is_refused,
    concurrent_writes_are_never_lost,
    an_uncommitted_unit_of_work_leaves_nothing,
    lists_filter_sort_and_page_like_the_reference,
    the_change_feed_hands_out_every_write_once,
    one_idempotency_key_makes_one_task,
    subtasks_keep_their_order_and_follow_their_parent,
    deleted_tasks_are_purged_after_the_retention,
    tag_counts_count_open_and_all_tasks,
)
"""Every check, in a sensible order (simple promises first)."""


async def run_contract(store: TaskStore) -> list[tuple[str, BaseException]]:
    """Runs every check against `store`; the (name, error) of each that failed."""
    failures: list[tuple[str, BaseException]] = []
    for check in CHECKS:
        try:
            await check(store)
        except Exception as error:
            failures.append((check.__name__, error))
    return failures
