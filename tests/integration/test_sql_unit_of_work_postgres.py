"""The unit of work on PostgreSQL (asyncpg, what the server runs) with a database in trouble:
StorageUnavailable (never a driver error), PgBouncer mode, idle connections checked, rollback."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from todo_adapters.sql import DatabaseConfig, SqlStore
from todo_adapters.sql import backends as backends_module
from todo_adapters.sql.unit_of_work import SqlTransaction
from todo_domain import NewTask, StorageUnavailable, TaskPatch, TaskService, WriteConflict
from todo_domain.testing import task_event


def _raw(tx: SqlTransaction) -> Any:
    """The transaction's asyncpg connection, for what only a test does to it."""
    return tx._session._connection  # type: ignore[attr-defined]


async def _terminate_the_pooled_connection(uow: SqlStore, postgres_url: str) -> None:
    """The server ends the (single) pooled connection, as Neon does when a compute suspends."""
    async with uow.begin(read_only=True) as tx:
        pid = await _raw(tx).fetchval("SELECT pg_backend_pid()")
    admin = await asyncpg.connect(postgres_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await admin.close()


async def test_an_unreachable_database_is_storage_unavailable() -> None:
    uow = SqlStore.from_config(
        DatabaseConfig("postgresql://postgres:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    )
    with pytest.raises(StorageUnavailable) as exc:
        await TaskService(uow).create("alice", NewTask(title="lost"))
    assert "s3cret" not in str(exc.value)
    await uow.dispose()


async def test_a_statement_timeout_is_storage_unavailable(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, statement_timeout_ms=50))
    with pytest.raises(StorageUnavailable):
        async with uow.begin() as tx:
            await _raw(tx).execute("SELECT pg_sleep(1)")
    await uow.dispose()


async def test_an_exhausted_pool_is_storage_unavailable(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.2))
    async with uow.begin():
        with pytest.raises(StorageUnavailable, match="exhausted"):
            async with uow.begin(read_only=True):
                pass
    await uow.dispose()


async def test_pgbouncer_mode_prepares_no_lasting_statements(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, pgbouncer=True))
    service = TaskService(uow)
    try:
        for _ in range(3):
            task = await service.create("pgbouncer", NewTask(title="pooled", tags=["a"]))
            assert (await service.get("pgbouncer", task.id)).title == "pooled"
        async with uow.begin(read_only=True) as tx:
            connection = _raw(tx)
            assert connection._stmt_cache.get_max_size() == 0
            assert await connection.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
    finally:
        await uow.dispose()


async def test_a_connection_dropped_while_idle_never_reaches_the_caller(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends_module, "IDLE_PING_SECONDS", 0.0)
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0))
    service = TaskService(uow)
    try:
        task = await service.create("idle", NewTask(title="still here"))
        # Ten times: asyncpg sometimes has noticed the hang-up before the ping (the connection
        # is closed, or already back in the pool) and sometimes not; every case must heal.
        for _ in range(10):
            await _terminate_the_pooled_connection(uow, postgres_url)
            assert (await asyncio.wait_for(service.get("idle", task.id), 10)).title == "still here"
    finally:
        await asyncio.wait_for(uow.dispose(), 10)


async def test_leaving_without_commit_rolls_back_and_the_connection_is_reusable(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0))
    service = TaskService(uow)
    try:
        task = await service.create("rollback", NewTask(title="before"))
        with pytest.raises(RuntimeError):
            async with uow.begin() as tx:
                loaded = await tx.tasks.get("rollback", task.id, for_update=True)
                assert loaded is not None
                loaded.update(TaskPatch(title="after"), loaded.updated_at)
                await tx.tasks.save(loaded, expected_version=task.version, event=task_event())
                raise RuntimeError("the use case failed half-way")
        assert (await service.get("rollback", task.id)).title == "before"
    finally:
        await uow.dispose()


async def test_pool_usage_counts_connections_in_use(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url))
    try:
        assert uow.pool_usage() == (0, 0)
        async with uow.begin(read_only=True):
            assert uow.pool_usage() == (1, 1)
        assert uow.pool_usage() == (0, 1)
    finally:
        await uow.dispose()


def test_the_back_end_follows_the_url(tmp_path: Any) -> None:
    assert SqlStore.from_url("postgresql://u@h/db").backend.dialect == "postgresql"
    assert SqlStore.from_url(f"sqlite:///{tmp_path / 'x.db'}").backend.dialect == "sqlite"


async def test_a_connection_dropped_while_in_use_fails_one_call_and_the_next_one_heals(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends_module, "IDLE_PING_SECONDS", 3600.0)  # no ping: the query finds out
    uow = SqlStore.from_config(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0))
    service = TaskService(uow)
    try:
        task = await service.create("dropped", NewTask(title="survives"))
        await _terminate_the_pooled_connection(uow, postgres_url)
        outcomes: list[str] = []
        for _ in range(2):
            try:
                outcomes.append(str((await service.get("dropped", task.id)).title))
            except StorageUnavailable:
                outcomes.append("unavailable")
        assert outcomes[-1] == "survives"
        assert set(outcomes) <= {"unavailable", "survives"}
    finally:
        await uow.dispose()


async def test_a_misuse_of_a_live_connection_is_a_bug_not_unavailability(postgres_url: str) -> None:
    uow = SqlStore.from_config(DatabaseConfig(postgres_url))
    try:
        with pytest.raises(asyncpg.InterfaceError):  # a 500 with a traceback, not a 503
            async with uow.begin(read_only=True) as tx:
                await _raw(tx).fetchval("SELECT $1::int", 1, 2)
        async with uow.begin(read_only=True) as tx:
            assert await _raw(tx).fetchval("SELECT 1") == 1
    finally:
        await uow.dispose()


async def test_a_deadlock_between_two_writers_is_a_write_conflict(postgres_url: str) -> None:
    """An atomic batch holds the owner's row (its first write bumped the revision) and then wants
    a task that a single write has locked while that one waits for the owner's row: PostgreSQL
    aborts one of the two (40P01). The loser gets WriteConflict, which the use cases do again
    (a StorageUnavailable, so never a 500); the winner commits."""
    store = SqlStore.from_url(postgres_url)
    service = TaskService(store)
    owner = "deadlock"
    a = await service.create(owner, NewTask(title="a"))
    b = await service.create(owner, NewTask(title="b"))
    batch_holds_owner, single_holds_b = asyncio.Event(), asyncio.Event()

    async def write(tx: SqlTransaction, task_id: Any, title: str) -> None:
        task = await tx.tasks.get(owner, task_id, for_update=True)
        assert task is not None
        version = task.version
        task.update(TaskPatch(title=title), task.updated_at)
        await tx.tasks.save(task, expected_version=version, event=task_event())

    async def batch() -> None:
        async with store.begin() as tx:
            await write(tx, a.id, "a by the batch")
            batch_holds_owner.set()
            await single_holds_b.wait()
            await write(tx, b.id, "b by the batch")
            await tx.commit()

    async def single() -> None:
        await batch_holds_owner.wait()
        async with store.begin() as tx:
            task = await tx.tasks.get(owner, b.id, for_update=True)
            assert task is not None
            single_holds_b.set()
            version = task.version
            task.update(TaskPatch(title="b alone"), task.updated_at)
            await tx.tasks.save(task, expected_version=version, event=task_event())
            await tx.commit()

    try:
        outcomes = await asyncio.wait_for(asyncio.gather(batch(), single(), return_exceptions=True), 30)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failed) == 1, outcomes
        assert isinstance(failed[0], WriteConflict), repr(failed[0])
        titles = {(await service.get(owner, a.id)).title, (await service.get(owner, b.id)).title}
        assert titles in ({"a by the batch", "b by the batch"}, {"a", "b alone"})
    finally:
        await store.dispose()
