"""Shared fixtures: a throwaway PostgreSQL database per test run, and per-adapter units of work.

PostgreSQL is the real server (TEST_POSTGRES_URL, default postgres@127.0.0.1:5432). With
CI=true an unreachable server fails the run; elsewhere the PostgreSQL tests are skipped with a
message saying how to enable them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from todo_adapters.memory import InMemoryStore
from todo_adapters.sql import DatabaseConfig, SqlStore, create_engine
from todo_adapters.sql.migrate import migrate

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _async_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    engine = create_async_engine(_async_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion on its own loop, even when called from inside one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database with a random name, dropped at the end of the run."""
    name = f"todo_test_{uuid.uuid4().hex[:12]}"
    try:
        run_in_thread(asyncio.wait_for(_admin(f'CREATE DATABASE "{name}"'), 10))
    except (OSError, TimeoutError, sa.exc.DBAPIError) as exc:
        message = f"PostgreSQL at {make_url(ADMIN_URL).render_as_string()} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message + "; start it or set TEST_POSTGRES_URL to run these tests")
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    async def _migrate() -> None:
        engine = create_engine(DatabaseConfig(url))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    run_in_thread(_migrate())
    yield url
    run_in_thread(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def empty_postgres_url(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own with no tables at all (a host application's, say), dropped after."""
    name = f"todo_empty_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'todo.db'}"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def uow(adapter: str, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """A unit of work of each kind: the contract suites run once per adapter."""
    if adapter == "memory":
        yield InMemoryStore()
        return
    if adapter == "sqlite":
        sql = SqlStore.from_url(request.getfixturevalue("sqlite_url"), migrate=True)
    else:  # asyncpg: what the server runs on PostgreSQL
        sql = SqlStore.from_url(request.getfixturevalue("postgres_url"))
    yield sql
    await sql.dispose()


@pytest.fixture
def alice() -> str:
    """A fresh owner id per test, so tests sharing one database never see each other's rows."""
    return f"alice-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bob() -> str:
    return f"bob-{uuid.uuid4().hex[:10]}"
