"""Batch commands (SPEC §18) through the Python API, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from todo_adapters.memory import InMemoryStore
from todo_adapters.sql import SqlStore
from todo_domain import (
    BatchFailed,
    Command,
    FailedDependency,
    IdempotencyKeyReused,
    InvalidTask,
    NewTask,
    Op,
    Sort,
    SortField,
    Status,
    TaskNotFound,
    TaskPatch,
    TaskQuery,
    TaskService,
    TaskStore,
    ValidationFailed,
    VersionConflict,
)
from todo_domain.testing import ManualClock, SequentialIds


@pytest.fixture
def service(uow: TaskStore) -> TaskService:
    return TaskService(uow, clock=ManualClock(tick=timedelta(microseconds=7)), ids=SequentialIds())


def offline_queue() -> list[Command]:
    return [
        Command("c1", Op.CREATE, temp_id="trip", draft=NewTask(title="Plan the trip")),
        Command("c2", Op.CREATE, temp_id="tickets", draft=NewTask(title="Buy tickets"), parent="trip"),
        Command("c3", Op.CREATE, temp_id="hotel", draft=NewTask(title="Book a hotel"), parent="trip"),
        Command("c4", Op.MOVE, task_id="hotel", after=None),
        Command("c5", Op.UPDATE, task_id="tickets", draft=TaskPatch(priority="high")),
        Command("c6", Op.COMPLETE, task_id="hotel"),
        Command("c7", Op.TOGGLE, task_id="tickets"),
        Command("c8", Op.REOPEN, task_id="tickets"),
    ]


async def test_an_offline_queue_with_temp_ids_and_parents(service: TaskService, alice: str) -> None:
    result = await service.run_batch(alice, offline_queue())
    assert [o.error for o in result.outcomes] == [None] * 8
    assert set(result.temp_ids) == {"trip", "tickets", "hotel"}
    trip, tickets, hotel = (result.temp_ids[t] for t in ("trip", "tickets", "hotel"))
    children = await service.list(alice, TaskQuery(parent_id=trip, sort=Sort(SortField.POSITION, False)))
    assert [t.id for t in children.items] == [hotel, tickets]
    assert (await service.get(alice, hotel)).status is Status.COMPLETED
    ticket = await service.get(alice, tickets)
    assert (str(ticket.priority), ticket.status) == ("high", Status.PENDING)
    changes = await service.list_changes(alice)
    assert len(changes.changes) == 3


async def test_sending_a_batch_again_replays_it_and_applies_nothing_twice(
    service: TaskService, alice: str
) -> None:
    first = await service.run_batch(alice, offline_queue())
    since = (await service.list_changes(alice)).next.encode()
    again = await service.run_batch(alice, offline_queue())
    assert again.temp_ids == first.temp_ids
    assert [(o.task.id, o.task.version) for o in again.outcomes if o.task] == [
        (o.task.id, o.task.version) for o in first.outcomes if o.task
    ]
    assert (await service.list(alice)).total == 3
    nothing = await service.list_changes(alice, since)
    assert (nothing.changes, nothing.deleted) == ((), ())


async def test_failures_are_per_command_and_the_rest_apply(
    service: TaskService, alice: str, bob: str
) -> None:
    theirs = await service.create(bob, NewTask(title="bob's"))
    mine = await service.create(alice, NewTask(title="mine"))
    result = await service.run_batch(
        alice,
        [
            Command("a", Op.UPDATE, task_id=str(theirs.id), draft=TaskPatch(title="mallory")),  # 404
            Command("b", Op.COMPLETE, task_id=str(mine.id), expected_version=7),  # 412
            Command("c", Op.CREATE, temp_id="bad", draft=NewTask(title="x"), parent=str(uuid.uuid4())),  # 422
            Command("d", Op.CREATE, draft=NewTask(title="child of bad"), parent="bad"),  # 424
            Command("e", Op.DELETE, task_id="nobody"),  # 422 unknown temp id
            Command("f", Op.UPDATE, task_id=str(mine.id), draft=TaskPatch(title="renamed")),  # applies
        ],
    )
    errors = [type(o.error) for o in result.outcomes]
    assert errors == [TaskNotFound, VersionConflict, InvalidTask, FailedDependency, InvalidTask, type(None)]
    assert (await service.get(alice, mine.id)).title == "renamed"
    assert (await service.get(bob, theirs.id)).title == "bob's"
    assert (await service.list(alice)).total == 1
    assert result.temp_ids == {}


async def test_a_command_id_reused_for_another_command_is_refused(service: TaskService, alice: str) -> None:
    await service.run_batch(alice, [Command("same", Op.CREATE, draft=NewTask(title="one"))])
    result = await service.run_batch(alice, [Command("same", Op.CREATE, draft=NewTask(title="two"))])
    assert isinstance(result.outcomes[0].error, IdempotencyKeyReused)
    assert [t.title for t in (await service.list(alice)).items] == ["one"]


async def test_an_atomic_batch_applies_all_or_nothing(service: TaskService, alice: str) -> None:
    commands = [
        Command("x1", Op.CREATE, temp_id="p", draft=NewTask(title="parent")),
        Command("x2", Op.CREATE, draft=NewTask(title="child"), parent="p"),
        Command("x3", Op.DELETE, task_id=str(uuid.uuid4())),
    ]
    with pytest.raises(BatchFailed) as failed:
        await service.run_batch(alice, commands, atomic=True)
    assert failed.value.index == 2
    assert isinstance(failed.value.cause, TaskNotFound)
    assert (await service.list(alice)).total == 0
    done = await service.run_batch(alice, commands[:2], atomic=True)
    assert [o.error for o in done.outcomes] == [None, None]
    assert (await service.list(alice)).total == 2


async def test_malformed_batches_are_refused_whole(service: TaskService, alice: str) -> None:
    for commands in (
        [Command("a", Op.CREATE, draft=NewTask(title="t"))] * 2,
        [Command("a", Op.DELETE, temp_id="t", task_id="x")],
        [Command("a", Op.DELETE)],
        [Command("é", Op.CREATE, draft=NewTask(title="t"))],
        [Command(f"c{i}", Op.CREATE, draft=NewTask(title="t")) for i in range(1001)],
    ):
        with pytest.raises(ValidationFailed):
            await service.run_batch(alice, commands)
    assert (await service.list(alice)).total == 0


async def test_the_same_batch_sent_twice_at_once_makes_each_task_once(
    service: TaskService, alice: str
) -> None:
    """The second batch's bulk run meets the first's keys in flight, falls back to one command
    at a time, and replays them."""
    import asyncio

    queue = offline_queue()[:3]
    first, second = await asyncio.gather(service.run_batch(alice, queue), service.run_batch(alice, queue))
    assert [o.error for o in first.outcomes + second.outcomes] == [None] * 6
    assert first.temp_ids == second.temp_ids
    assert (await service.list(alice)).total == 3


async def test_an_import_of_many_creates_keeps_their_order(service: TaskService, alice: str) -> None:
    since: str | None = (await service.list_changes(alice)).next.encode()
    commands = [Command(f"i{n}", Op.CREATE, draft=NewTask(title=f"task {n:03}")) for n in range(300)]
    result = await service.run_batch(alice, commands)
    assert all(o.error is None for o in result.outcomes)
    in_order = TaskQuery(top_level=True, sort=Sort(SortField.POSITION, False), limit=1000)
    page = await service.list(alice, in_order)
    assert [t.title for t in page.items] == [f"task {n:03}" for n in range(300)]
    # each create its own revision: the feed paged 7 at a time meets every one exactly once
    # (creates sharing a revision would be skipped at a page boundary)
    seen = []
    while True:
        changes = await service.list_changes(alice, since, limit=7)
        seen += [t.id for t in changes.changes]
        since = changes.next.encode()
        if not changes.has_more:
            break
    assert len(seen) == len(set(seen)) == 300


async def test_temp_ids_work_in_moves_after_and_before(service: TaskService, alice: str) -> None:
    result = await service.run_batch(
        alice,
        [
            Command("m1", Op.CREATE, temp_id="a", draft=NewTask(title="a")),
            Command("m2", Op.CREATE, temp_id="b", draft=NewTask(title="b")),
            Command("m3", Op.CREATE, temp_id="c", draft=NewTask(title="c")),
            Command("m4", Op.MOVE, task_id="c", after="a", before="b"),
            Command("m5", Op.CREATE, temp_id="p", draft=NewTask(title="p")),
            Command("m6", Op.MOVE, task_id="a", parent="p"),
        ],
    )
    assert [o.error for o in result.outcomes] == [None] * 6
    top = await service.list(alice, TaskQuery(top_level=True, sort=Sort(SortField.POSITION, False)))
    assert [t.title for t in top.items] == ["c", "b", "p"]
    assert (await service.get(alice, result.temp_ids["a"])).parent_id == result.temp_ids["p"]


async def test_stores_are_async_context_managers(tmp_path: Path) -> None:
    for store in (InMemoryStore(), SqlStore.from_url(f"sqlite:///{tmp_path / 'ctx.db'}", migrate=True)):
        async with store as opened:
            assert opened is store
            made = await TaskService(opened).create("ctx", NewTask(title="t"))
            assert (await TaskService(opened).get("ctx", made.id)).title == "t"
