"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from todo_adapters.sql import DatabaseConfig, SqlUnitOfWork, create_engine
from todo_adapters.sql import engine as engine_module
from todo_adapters.sql.migrate import current_revision, head_revision, migrate
from todo_adapters.sql.tables import PG_ONLY_INDEXES, metadata
from todo_domain import NewTask, StorageUnavailable, TaskService


def _declared_elsewhere(obj: object, name: str | None, kind: str, reflected: bool, _: object) -> bool:
    """Indexes that only exist on PostgreSQL are made by their migration, not the metadata."""
    return not (kind == "index" and reflected and name in PG_ONLY_INDEXES)


def _diff(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": _declared_elsewhere}
    )
    return list(compare_metadata(context, metadata))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_the_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    engine = create_engine(DatabaseConfig(database_url))
    try:
        await migrate(engine)
        await migrate(engine)  # running it again is a no-op
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_sqlite_data_survives_a_restart(sqlite_url: str) -> None:
    first = SqlUnitOfWork.from_url(sqlite_url)
    task = await TaskService(first).create("alice", NewTask(title="persisted"))
    await first.dispose()
    second = SqlUnitOfWork.from_url(sqlite_url)
    assert (await TaskService(second).get("alice", task.id)).title == "persisted"
    await second.dispose()


async def test_an_unreachable_database_is_storage_unavailable() -> None:
    config = DatabaseConfig("postgresql://postgres:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    uow = SqlUnitOfWork(create_engine(config))
    with pytest.raises(StorageUnavailable) as exc:
        await TaskService(uow).create("alice", NewTask(title="lost"))
    assert "s3cret" not in str(exc.value)
    await uow.dispose()


async def test_a_statement_timeout_is_storage_unavailable(postgres_url: str) -> None:
    engine = create_engine(DatabaseConfig(postgres_url, statement_timeout_ms=50))
    uow = SqlUnitOfWork(engine)
    with pytest.raises(StorageUnavailable):
        async with uow.begin() as tx:
            await tx._connection.execute(sa.text("SELECT pg_sleep(1)"))  # type: ignore[attr-defined]
    await uow.dispose()


async def test_an_exhausted_pool_is_storage_unavailable(postgres_url: str) -> None:
    config = DatabaseConfig(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    uow = SqlUnitOfWork(create_engine(config))
    async with uow.begin():
        with pytest.raises(StorageUnavailable):
            async with uow.begin():
                pass
    await uow.dispose()


async def test_pgbouncer_mode_works_without_a_statement_cache(postgres_url: str) -> None:
    uow = SqlUnitOfWork(create_engine(DatabaseConfig(postgres_url, pgbouncer=True)))
    service = TaskService(uow)
    try:
        for _ in range(3):  # the same statements again: no named prepared statement may clash
            task = await service.create("pgbouncer", NewTask(title="pooled"))
            assert (await service.get("pgbouncer", task.id)).title == "pooled"
        async with uow.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert raw.driver_connection._stmt_cache.get_max_size() == 0  # type: ignore[union-attr]
    finally:
        await uow.dispose()


async def test_a_connection_dropped_while_idle_never_reaches_the_caller(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    uow = SqlUnitOfWork(create_engine(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0)))
    service = TaskService(uow)
    try:
        task = await service.create("idle", NewTask(title="still here"))
        async with uow.engine.connect() as connection:
            pid = await connection.scalar(sa.text("SELECT pg_backend_pid()"))
        admin = create_engine(DatabaseConfig(postgres_url))
        async with admin.connect() as connection:  # what Neon does to a suspended compute
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.dispose()
        assert (await service.get("idle", task.id)).title == "still here"
    finally:
        await uow.dispose()
