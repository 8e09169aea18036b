"""Living in a host application's database (SPEC §19): no DDL unless asked, a schema of our
own, a version table that never collides with the host's `alembic_version`."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from todo_adapters.sql import SqlStore, metadata
from todo_adapters.sql.migrate import VERSION_TABLE, head_revision
from todo_domain import NewTask, StorageUnavailable, TaskService


async def _sql(url: str, *statements: str) -> list[list[asyncpg.Record]]:
    connection = await asyncpg.connect(url)
    try:
        return [await connection.fetch(statement) for statement in statements]
    finally:
        await connection.close()


async def _host_database(url: str) -> None:
    """A host with its own migrations and a table named like ours."""
    await _sql(
        url,
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('host_0042')",
        "CREATE TABLE tasks (host_column int)",
        "INSERT INTO tasks VALUES (7)",
    )


async def _tables(url: str, schema: str) -> set[str]:
    (rows,) = await _sql(url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")
    return {r["tablename"] for r in rows}


async def test_a_store_runs_no_ddl_unless_asked(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    await _host_database(url)
    async with SqlStore.from_url(url, schema="todo") as store:
        with pytest.raises(StorageUnavailable, match="migrate"):
            await TaskService(store).create("alice", NewTask(title="nowhere to go"))
    (schemas,) = await _sql(url, "SELECT nspname FROM pg_namespace WHERE nspname = 'todo'")
    assert schemas == []
    assert await _tables(url, "public") == {"alembic_version", "tasks"}


async def test_a_schema_of_our_own_beside_the_hosts_tables_and_version(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    await _host_database(url)
    async with SqlStore.from_url(url, schema="todo", migrate=True) as store:
        service = TaskService(store)
        task = await service.create("alice", NewTask(title="in my schema", tags=["x"]))
        assert (await service.get("alice", task.id)).tags == ("x",)
        assert (await service.list("alice")).total == 1
    async with SqlStore.from_url(url, schema="todo") as again:
        await again.migrate()  # at head already: nothing to do
        assert (await TaskService(again).get("alice", task.id)).title == "in my schema"
    assert await _tables(url, "todo") == {t.name for t in metadata.sorted_tables} | {VERSION_TABLE}
    assert await _tables(url, "public") == {"alembic_version", "tasks"}
    host_version, host_tasks, ours = await _sql(
        url,
        "SELECT version_num FROM public.alembic_version",
        "SELECT host_column FROM public.tasks",
        f"SELECT version_num FROM todo.{VERSION_TABLE}",
    )
    assert [r[0] for r in host_version] == ["host_0042"]
    assert [r[0] for r in host_tasks] == [7]
    assert [r[0] for r in ours] == [head_revision()]


async def test_the_default_schema_keeps_the_hosts_alembic_version(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    await _sql(
        url,
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('0003')",  # the host's revision may look like ours
    )
    async with SqlStore.from_url(url, migrate=True) as store:
        await TaskService(store).create("alice", NewTask(title="t"))
    host, ours = await _sql(url, "SELECT * FROM alembic_version", f"SELECT * FROM {VERSION_TABLE}")
    assert [r[0] for r in host] == ["0003"]
    assert [r[0] for r in ours] == [head_revision()]


async def test_a_database_migrated_before_the_rename_keeps_its_data(empty_postgres_url: str) -> None:
    url = empty_postgres_url
    async with SqlStore.from_url(url, migrate=True) as store:
        task = await TaskService(store).create("alice", NewTask(title="old"))
    # what 0.2 left behind: our revision in alembic_version
    await _sql(
        url,
        f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version",
        f"ALTER TABLE alembic_version RENAME CONSTRAINT {VERSION_TABLE}_pkc TO alembic_version_pkc",
    )
    async with SqlStore.from_url(url, migrate=True) as store:
        assert (await TaskService(store).get("alice", task.id)).title == "old"
    assert "alembic_version" not in await _tables(url, "public")
    (ours,) = await _sql(url, f"SELECT * FROM {VERSION_TABLE}")
    assert [r[0] for r in ours] == [head_revision()]


async def test_sqlite_stores_refuse_a_schema_and_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        SqlStore.from_url(f"sqlite:///{tmp_path / 'x.db'}", schema="todo")
    for bad in ("", "1st", 'a"; DROP TABLE tasks; --', "x" * 64, "naïve"):
        with pytest.raises(ValueError, match="plain PostgreSQL name"):
            SqlStore.from_url("postgresql://u@127.0.0.1/db", schema=bad)


async def test_sqlite_without_migration_says_how_to_migrate(tmp_path: Path) -> None:
    async with SqlStore.from_url(f"sqlite:///{tmp_path / 'x.db'}") as store:
        with pytest.raises(StorageUnavailable, match="migrate"):
            await TaskService(store).list("alice")


async def test_the_server_keeps_its_tables_in_database_schema(empty_postgres_url: str) -> None:
    from .http_support import app_for, auth, serve

    url = empty_postgres_url
    await _host_database(url)
    app = app_for(database_url=url, database_schema="todo_api", auto_migrate=True)
    async with serve(app) as client:
        made = await client.post("/api/tasks", json={"title": "served"}, headers=auth("alice"))
        assert made.status_code == 201
        listed = await client.get("/api/tasks", headers=auth("alice"))
        assert [t["title"] for t in listed.json()] == ["served"]
    assert "tasks" in await _tables(url, "todo_api")
    assert await _tables(url, "public") == {"alembic_version", "tasks"}
