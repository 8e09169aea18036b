"""Subtasks, manual order and time zones (SPEC §17) on every store: memory, SQLite, PostgreSQL.

The `uow` fixture (tests/conftest.py) runs each test once per adapter.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from todo_domain import (
    Frequency,
    IdempotencyKeyReused,
    InvalidTask,
    NewTask,
    Recurrence,
    Sort,
    SortField,
    Status,
    TaskNotFound,
    TaskPatch,
    TaskQuery,
    TaskService,
    TaskStore,
)
from todo_domain.hierarchy import MAX_DEPTH
from todo_domain.positions import MAX_LENGTH
from todo_domain.testing import ManualClock, SequentialIds

BY_POSITION = Sort(SortField.POSITION, descending=False)


@pytest.fixture
def service(uow: TaskStore) -> TaskService:
    return TaskService(uow, clock=ManualClock(tick=timedelta(microseconds=7)), ids=SequentialIds())


async def titles(service: TaskService, owner: str, **query: object) -> list[str]:
    page = await service.list(owner, TaskQuery(sort=BY_POSITION, limit=1000, **query))  # type: ignore[arg-type]
    return [str(t.title) for t in page.items]


def field_of(exc: pytest.ExceptionInfo[InvalidTask]) -> tuple[str, str]:
    error = exc.value.errors[0]
    return error.field, error.code


async def test_new_tasks_go_after_their_last_sibling(service: TaskService, alice: str) -> None:
    a = await service.create(alice, NewTask(title="a"))
    b = await service.create(alice, NewTask(title="b"))
    child_1 = await service.create(alice, NewTask(title="a.1", parent_id=a.id))
    child_2 = await service.create(alice, NewTask(title="a.2", parent_id=a.id))
    assert a.position < b.position
    assert child_1.position < child_2.position
    assert (child_1.parent_id, child_2.parent_id) == (a.id, a.id)
    assert await titles(service, alice, top_level=True) == ["a", "b"]
    assert await titles(service, alice, parent_id=a.id) == ["a.1", "a.2"]
    assert sorted(await titles(service, alice)) == ["a", "a.1", "a.2", "b"]  # flat without a filter
    assert (await service.get(alice, child_1.id)).parent_id == a.id


async def test_a_parent_must_be_a_live_task_of_the_same_owner(
    service: TaskService, alice: str, bob: str
) -> None:
    theirs = await service.create(bob, NewTask(title="bob's"))
    gone = await service.create(alice, NewTask(title="gone"))
    await service.delete(alice, gone.id)
    for parent in (theirs.id, gone.id, SequentialIds().new_id()):
        with pytest.raises(InvalidTask) as refused:
            await service.create(alice, NewTask(title="orphan", parent_id=parent))
        assert field_of(refused) == ("parent_id", "parent_not_found")
    assert await titles(service, alice) == []


async def test_no_cycles_and_at_most_five_levels(service: TaskService, alice: str) -> None:
    chain = [await service.create(alice, NewTask(title="level 1"))]
    for level in range(2, MAX_DEPTH + 1):
        chain.append(await service.create(alice, NewTask(title=f"level {level}", parent_id=chain[-1].id)))
    with pytest.raises(InvalidTask) as refused:
        await service.create(alice, NewTask(title="level 6", parent_id=chain[-1].id))
    assert field_of(refused) == ("parent_id", "too_deep")
    for descendant in chain:  # under itself or under any of its subtasks
        with pytest.raises(InvalidTask) as refused:
            await service.update(alice, chain[0].id, TaskPatch(parent_id=descendant.id))
        assert field_of(refused) == ("parent_id", "parent_cycle")
        with pytest.raises(InvalidTask):
            await service.move(alice, chain[0].id, parent_id=descendant.id)
    # a subtree two levels tall fits only where two more levels fit
    other = await service.create(alice, NewTask(title="other"))
    await service.create(alice, NewTask(title="other's child", parent_id=other.id))
    with pytest.raises(InvalidTask) as refused:
        await service.move(alice, other.id, parent_id=chain[3].id)
    assert field_of(refused) == ("parent_id", "too_deep")
    moved = await service.move(alice, other.id, parent_id=chain[2].id)
    assert moved.parent_id == chain[2].id
    assert (await service.get(alice, chain[0].id)).version == 1  # refusals wrote nothing


async def test_deleting_a_task_deletes_its_subtasks_in_the_feed_too(service: TaskService, alice: str) -> None:
    root = await service.create(alice, NewTask(title="root"))
    child = await service.create(alice, NewTask(title="child", parent_id=root.id))
    grandchild = await service.create(alice, NewTask(title="grandchild", parent_id=child.id))
    keep = await service.create(alice, NewTask(title="keep"))
    since = (await service.list_changes(alice)).next.encode()
    await service.delete(alice, root.id)
    for gone in (root, child, grandchild):
        with pytest.raises(TaskNotFound):
            await service.get(alice, gone.id)
    assert await titles(service, alice) == ["keep"]
    changes = await service.list_changes(alice, since)
    assert set(changes.deleted) == {root.id, child.id, grandchild.id}
    assert keep.id not in changes.deleted


async def test_completing_completes_open_subtasks_and_reopening_reopens_none(
    service: TaskService, alice: str
) -> None:
    root = await service.create(alice, NewTask(title="root"))
    child = await service.create(alice, NewTask(title="child", parent_id=root.id))
    started = await service.create(alice, NewTask(title="started", parent_id=child.id, status="in_progress"))
    done = await service.create(alice, NewTask(title="done", parent_id=root.id, completed=True))
    await service.set_completed(alice, root.id, True)
    for task in (child, started):
        assert (await service.get(alice, task.id)).status is Status.COMPLETED
    assert (await service.get(alice, done.id)).version == done.version  # already completed: untouched
    await service.set_completed(alice, root.id, False)
    assert (await service.get(alice, root.id)).status is Status.PENDING
    assert (await service.get(alice, child.id)).status is Status.COMPLETED


async def test_a_recurring_parent_rolls_forward_without_completing_its_subtasks(
    service: TaskService, alice: str
) -> None:
    due = datetime(2030, 1, 1, 9, tzinfo=UTC)
    root = await service.create(
        alice, NewTask(title="weekly", due_date=due, recurrence=Recurrence(Frequency.WEEKLY))
    )
    child = await service.create(alice, NewTask(title="step", parent_id=root.id))
    rolled = await service.set_completed(alice, root.id, True)
    assert rolled.due_date == due + timedelta(weeks=1)
    assert (await service.get(alice, child.id)).status is Status.PENDING


async def test_moves_order_siblings_and_write_only_the_moved_task(service: TaskService, alice: str) -> None:
    a, b, c = [await service.create(alice, NewTask(title=t)) for t in "abc"]
    moved = await service.move(alice, c.id, after=None)  # first
    assert await titles(service, alice) == ["c", "a", "b"]
    assert moved.version == 2
    await service.move(alice, a.id, before=None)  # last
    assert await titles(service, alice) == ["c", "b", "a"]
    await service.move(alice, c.id, after=b.id)
    assert await titles(service, alice) == ["b", "c", "a"]
    await service.move(alice, b.id, after=c.id, before=a.id)
    assert await titles(service, alice) == ["c", "b", "a"]
    assert (await service.get(alice, a.id)).version == 2  # only its own move
    same = await service.move(alice, b.id, after=c.id)  # already there: nothing written
    assert same.version == (await service.get(alice, b.id)).version
    with pytest.raises(InvalidTask) as refused:
        await service.move(alice, b.id, after=a.id, before=c.id)
    assert field_of(refused) == ("before", "not_adjacent")
    stranger = await service.create(alice, NewTask(title="child", parent_id=a.id))
    with pytest.raises(InvalidTask) as refused:
        await service.move(alice, b.id, after=stranger.id)
    assert field_of(refused) == ("after", "not_a_sibling")
    under = await service.move(alice, b.id, parent_id=a.id, after=None)
    assert under.parent_id == a.id
    assert await titles(service, alice, parent_id=a.id) == ["b", "child"]
    back = await service.move(alice, b.id, parent_id=None)
    assert back.parent_id is None
    assert await titles(service, alice, top_level=True) == ["c", "a", "b"]


async def test_put_resets_parent_and_zone_but_keeps_position(service: TaskService, alice: str) -> None:
    root = await service.create(alice, NewTask(title="root"))
    other = await service.create(alice, NewTask(title="other"))
    task = await service.create(alice, NewTask(title="t", parent_id=root.id, time_zone="Europe/Paris"))
    replaced = await service.replace(alice, task.id, NewTask(title="t2", parent_id=root.id))
    assert (replaced.parent_id, replaced.time_zone, replaced.position) == (root.id, None, task.position)
    top = await service.replace(alice, task.id, NewTask(title="t3"))
    assert top.parent_id is None
    assert top.position > other.position  # a new parent: after its last child
    patched = await service.update(alice, task.id, TaskPatch(time_zone="Asia/Tokyo"))
    assert str(patched.time_zone) == "Asia/Tokyo"
    assert patched.position == top.position


async def test_many_moves_into_one_gap_keep_keys_short(service: TaskService, alice: str) -> None:
    """400 moves into one gap pass the point where a key would outgrow MAX_LENGTH, so the
    sibling list is rebalanced at least once here (10,000 moves: tests/unit/test_positions.py)."""
    first = await service.create(alice, NewTask(title="first"))
    last = await service.create(alice, NewTask(title="last"))
    moving = [await service.create(alice, NewTask(title=f"m{i}")) for i in range(2)]
    for i in range(400):
        await service.move(alice, moving[i % 2].id, after=first.id)
    page = await service.list(alice, TaskQuery(sort=BY_POSITION))
    keys = [t.position for t in page.items]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert max(map(len, keys)) <= MAX_LENGTH
    assert next(str(t.title) for t in page.items) == "first"
    assert str(page.items[-1].title) == "last"
    assert last.id in {t.id for t in page.items}


async def test_concurrent_moves_never_give_siblings_equal_positions(service: TaskService, alice: str) -> None:
    first = await service.create(alice, NewTask(title="first"))
    await service.create(alice, NewTask(title="last"))
    movers = [await service.create(alice, NewTask(title=f"m{i}")) for i in range(20)]
    await asyncio.gather(*(service.move(alice, m.id, after=first.id) for m in movers))
    page = await service.list(alice, TaskQuery(sort=BY_POSITION, limit=100))
    keys = [t.position for t in page.items]
    assert len(set(keys)) == len(keys) == 22
    assert str(page.items[0].title) == "first"
    assert str(page.items[-1].title) == "last"


async def test_recurrence_keeps_the_wall_clock_time_of_its_zone(service: TaskService, alice: str) -> None:
    # weekly 09:00 in New York, the Monday before the March 2030 change (EST, UTC-5)
    due = datetime(2030, 3, 4, 14, tzinfo=UTC)
    task = await service.create(
        alice,
        NewTask(
            title="standup",
            due_date=due,
            remind_at=due - timedelta(minutes=15),
            recurrence=Recurrence(Frequency.WEEKLY),
            time_zone="America/New_York",
        ),
    )
    rolled = await service.set_completed(alice, task.id, True)
    assert rolled.due_date == datetime(2030, 3, 11, 13, tzinfo=UTC)  # 09:00 EDT
    assert rolled.remind_at == datetime(2030, 3, 11, 12, 45, tzinfo=UTC)
    stored = await service.get(alice, task.id)
    assert stored.due_date == rolled.due_date
    assert str(stored.time_zone) == "America/New_York"


async def test_an_idempotency_key_knows_the_parent_and_the_zone(service: TaskService, alice: str) -> None:
    parent = await service.create(alice, NewTask(title="parent"))
    first = await service.create_with_key(alice, NewTask(title="t", parent_id=parent.id), "key-1")
    again = await service.create_with_key(alice, NewTask(title="t", parent_id=parent.id), "key-1")
    assert again.replayed
    assert again.task.id == first.task.id
    with pytest.raises(IdempotencyKeyReused):
        await service.create_with_key(alice, NewTask(title="t"), "key-1")
    with pytest.raises(IdempotencyKeyReused):
        await service.create_with_key(
            alice, NewTask(title="t", parent_id=parent.id, time_zone="UTC"), "key-1"
        )
