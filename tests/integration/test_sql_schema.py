"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from todo_adapters.sql import DatabaseConfig, SqlStore, create_engine
from todo_adapters.sql import backends as backends_module
from todo_adapters.sql import engine as engine_module
from todo_adapters.sql.migrate import VERSION_TABLE, current_revision, head_revision, migrate
from todo_adapters.sql.statements import find_plan
from todo_adapters.sql.tables import INDEXES_IN_MIGRATIONS, metadata
from todo_domain import NewTask, Sort, SortField, TaskQuery, TaskService


def _declared_elsewhere(obj: object, name: str | None, kind: str, reflected: bool, _: object) -> bool:
    """Indexes only their migrations make (per-database SQL), not the metadata."""
    return not (kind == "index" and reflected and name in INDEXES_IN_MIGRATIONS)


def _diff(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "include_object": _declared_elsewhere, "version_table": VERSION_TABLE},
    )
    with warnings.catch_warnings():  # SQLite cannot reflect the expression index of 0005
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
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
    first = SqlStore.from_url(sqlite_url, migrate=True)
    task = await TaskService(first).create("alice", NewTask(title="persisted"))
    await first.dispose()
    second = SqlStore.from_url(sqlite_url)
    assert (await TaskService(second).get("alice", task.id)).title == "persisted"
    await second.dispose()


async def test_an_engine_pings_a_connection_dropped_while_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLAlchemy engines (migrations, Better Auth's session table) check idle connections
    too; the unit of work's own pool is tested in test_sql_unit_of_work_postgres.py."""
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    engine = create_engine(DatabaseConfig(postgres_url, pool_size=1, max_overflow=0))
    admin = create_engine(DatabaseConfig(postgres_url))
    try:
        async with engine.connect() as connection:
            pid = await connection.scalar(sa.text("SELECT pg_backend_pid()"))
        async with admin.connect() as connection:  # what Neon does to a suspended compute
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        async with engine.connect() as connection:
            assert await connection.scalar(sa.text("SELECT 1")) == 1
    finally:
        await engine.dispose()
        await admin.dispose()


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("field", list(SortField), ids=[f.value for f in SortField])
async def test_every_sort_of_a_whole_list_reads_an_index_in_order(
    postgres_url: str, field: SortField, descending: bool
) -> None:
    """A first page costs the same at 100 tasks as at 100,000 (SPEC §10 growth) only if no sort
    runs over all of an owner's tasks: with sorting priced out, the plan of the statement the
    server runs (compiled as backends.py compiles it) has no Sort node."""
    plan = find_plan("alice", TaskQuery(sort=Sort(field, descending)), datetime.now(UTC))
    compiled = backends_module._Compiled(plan.page, None)
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("SET enable_sort = off")
        rows = await connection.fetch("EXPLAIN " + compiled.sql, *compiled.args(plan.params))
    finally:
        await connection.close()
    explained = "\n".join(r[0] for r in rows)
    assert "Sort" not in explained, explained
