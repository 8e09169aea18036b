"""The in-memory store interleaves concurrent calls where a database round trip would, so the
races a use case has on SQL show up in memory tests too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from todo_adapters.memory import InMemoryStore
from todo_domain import NewTask, TaskPatch, TaskQuery, TaskService
from todo_domain.testing import task_event


async def test_a_commit_can_land_between_two_calls_of_one_read() -> None:
    """Two reads in one read-only transaction are two round trips: a writer that runs between
    them is seen by the second, so a use case that needs one snapshot must ask in one call."""
    uow = InMemoryStore()
    service = TaskService(uow)
    now = datetime.now(UTC)
    async with uow.begin(read_only=True) as tx:
        before = await tx.tasks.find("alice", TaskQuery(), now)
        writer = asyncio.create_task(service.create("alice", NewTask(title="between")))
        while not writer.done():
            after = await tx.tasks.find("alice", TaskQuery(), now)
    assert before.total == 0
    assert after.total == 1


async def test_a_row_read_for_update_waits_for_the_transaction_holding_it() -> None:
    """As SELECT … FOR UPDATE: the second reader gets the row only after the first commits,
    and then sees the first one's write."""
    uow = InMemoryStore()
    service = TaskService(uow)
    task = await service.create("alice", NewTask(title="v1"))
    async with uow.begin() as first:
        held = await first.tasks.get("alice", task.id, for_update=True)
        assert held is not None
        second = asyncio.create_task(service.update("alice", task.id, TaskPatch(title="v3")))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not second.done()
        held.update(TaskPatch(title="v2"), datetime.now(UTC))
        await first.tasks.save(held, expected_version=1, event=task_event())
        await first.commit()
    assert (await second).version == 3


async def test_concurrent_unversioned_edits_interleave_and_none_is_lost() -> None:
    service = TaskService(InMemoryStore())
    task = await service.create("alice", NewTask(title="v"))
    await asyncio.gather(*(service.update("alice", task.id, TaskPatch(title=f"edit {n}")) for n in range(20)))
    assert (await service.get("alice", task.id)).version == 21
