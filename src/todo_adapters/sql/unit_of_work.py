"""The SQL task store and its units of work: one session each, rolled back unless committed.

`SqlStore.from_url(...)` picks the back-end by URL (asyncpg for PostgreSQL and Neon,
SQLAlchemy/aiosqlite for SQLite). Driver trouble — refused connections, an exhausted pool, a
statement timeout, a dropped connection — leaves only as the domain's StorageUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from todo_adapters.sql.backends import Backend, PostgresBackend, Session, SqliteBackend
from todo_adapters.sql.engine import DatabaseConfig, create_engine, normalise_url
from todo_adapters.sql.repository import SqlChangeFeed, SqlIdempotencyKeys, SqlTaskRepository
from todo_adapters.sql.statements import Statements

__all__ = ["SqlStore", "SqlTransaction", "SqlUnitOfWork"]


class SqlTransaction:
    """One unit of work in progress (a database transaction): its tasks, keys, feed; commit."""

    def __init__(self, session: Session, statements: Statements) -> None:
        self._session = session
        self._tasks = SqlTaskRepository(session, statements)
        self._keys = SqlIdempotencyKeys(session, statements)
        self._feed = SqlChangeFeed(session, statements)

    @property
    def tasks(self) -> SqlTaskRepository:
        return self._tasks

    @property
    def keys(self) -> SqlIdempotencyKeys:
        return self._keys

    @property
    def feed(self) -> SqlChangeFeed:
        return self._feed

    async def commit(self) -> None:
        await self._session.commit()


class SqlStore:
    """Tasks in one database, handing out units of work (transactions). With `auto_migrate`
    the schema is brought up to date before the first transaction (the server's AUTO_MIGRATE)."""

    def __init__(self, backend: Backend, *, auto_migrate: bool = False) -> None:
        self.backend = backend
        self._statements = Statements.for_dialect(backend.dialect)
        self._migrated = not auto_migrate
        self._migrating = asyncio.Lock()

    @classmethod
    def from_config(cls, config: DatabaseConfig, *, auto_migrate: bool = False) -> SqlStore:
        if normalise_url(config.url, pgbouncer=config.pgbouncer).is_sqlite:
            return cls(SqliteBackend(create_engine(config)), auto_migrate=auto_migrate)
        return cls(PostgresBackend(config), auto_migrate=auto_migrate)

    @classmethod
    def from_url(cls, url: str, *, auto_migrate: bool = True) -> SqlStore:
        return cls.from_config(DatabaseConfig(url), auto_migrate=auto_migrate)

    async def ensure_schema(self) -> None:
        async with self._migrating:
            if not self._migrated:
                await self.backend.migrate()
                self._migrated = True

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[SqlTransaction]:
        if not self._migrated:
            await self.ensure_schema()
        async with self.backend.session(read_only=read_only) as session:
            yield SqlTransaction(session, self._statements)

    async def ping(self) -> None:
        """One round trip to the database; raises StorageUnavailable if it does not answer."""
        await self.backend.ping()

    def pool_usage(self) -> tuple[int, int]:
        """(connections in use, connections open), for metrics."""
        return self.backend.pool_usage()

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.dispose()

    async def dispose(self) -> None:
        await self.backend.dispose()


SqlUnitOfWork = SqlStore
"""The name SqlStore had before 0.2 (it hands out units of work; it is not one)."""
