"""A unit of work the database aborted for a concurrent one (a deadlock: WriteConflict) is done
again by the use cases, a few times, then reported as StorageUnavailable ("retry shortly")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from todo_adapters.memory import InMemoryStore
from todo_domain import NewTask, StorageUnavailable, TaskPatch, TaskService, WriteConflict
from todo_domain.batch import Command, Op


class AbortingStore:
    """An in-memory store whose repository call `method` fails as a deadlocked statement would
    (the unit of work is then rolled back): `aborts` times, after `passing` calls that work."""

    def __init__(self, method: str = "save") -> None:
        self.inner = InMemoryStore()
        self.method = method
        self.passing = self.aborts = self.calls = 0

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[Any]:
        async with self.inner.begin(read_only=read_only) as tx:
            yield _Aborting(self, tx)


class _Aborting:
    def __init__(self, store: AbortingStore, tx: Any) -> None:
        self._store, self._tx = store, tx
        self.keys, self.feed, self.commit = tx.keys, tx.feed, tx.commit

    @property
    def tasks(self) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        call: Callable[..., Awaitable[Any]] = getattr(self._tx.tasks, name)
        store = self._store
        if name != store.method:
            return call

        async def aborting(*args: Any, **kwargs: Any) -> Any:
            store.calls += 1
            if store.passing > 0:
                store.passing -= 1
            elif store.aborts > 0:
                store.aborts -= 1
                raise WriteConflict("deadlock detected")
            return await call(*args, **kwargs)

        return aborting


async def test_a_write_aborted_for_a_deadlock_is_done_again() -> None:
    store = AbortingStore()
    service = TaskService(store)  # type: ignore[arg-type]
    task = await service.create("alice", NewTask(title="v1"))
    store.aborts = 2
    updated = await service.update("alice", task.id, TaskPatch(title="v2"))
    assert store.calls == 3
    assert updated.version == 2
    assert (await service.get("alice", task.id)).title == "v2"


async def test_an_atomic_batch_aborted_for_a_deadlock_is_done_again_whole() -> None:
    store = AbortingStore()
    service = TaskService(store)  # type: ignore[arg-type]
    a = await service.create("alice", NewTask(title="a"))
    b = await service.create("alice", NewTask(title="b"))
    store.passing, store.aborts, store.calls = 1, 1, 0  # the second save, after the first was written
    commands = [
        Command("c1", Op.UPDATE, task_id=str(a.id), draft=TaskPatch(title="a2")),
        Command("c2", Op.UPDATE, task_id=str(b.id), draft=TaskPatch(title="b2")),
    ]
    await service.run_batch("alice", commands, atomic=True)
    assert store.calls == 4  # both, aborted at the second; both again
    assert {(await service.get("alice", t.id)).version for t in (a, b)} == {2}
    assert [(await service.get("alice", t.id)).title for t in (a, b)] == ["a2", "b2"]


async def test_a_run_of_creates_aborted_while_it_reads_is_not_one_commands_failure() -> None:
    """The unit of work is lost, not the command that happened to be reading: the run is done
    again command by command, and every create lands."""
    store = AbortingStore("last_position")
    service = TaskService(store)  # type: ignore[arg-type]
    store.aborts = 1
    commands = [Command(f"c{n}", Op.CREATE, draft=NewTask(title=f"t{n}")) for n in range(3)]
    result = await service.run_batch("alice", commands)
    assert [o.error for o in result.outcomes] == [None, None, None]
    assert (await service.list("alice")).total == 3


async def test_a_write_that_keeps_deadlocking_is_storage_unavailable() -> None:
    store = AbortingStore()
    service = TaskService(store)  # type: ignore[arg-type]
    task = await service.create("alice", NewTask(title="v1"))
    store.aborts = 100
    with pytest.raises(StorageUnavailable):
        await service.update("alice", task.id, TaskPatch(title="never"))
    assert store.calls == 3
    assert (await service.get("alice", task.id)).title == "v1"
