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
from todo_adapters.sql.outbox import SqlOutbox
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
    """Tasks in one database, handing out units of work (transactions).

    A library user never gets DDL without asking (SPEC §19): pass `migrate=True` to bring the
    schema up to date before the first transaction, or `await store.migrate()` when you choose
    (both are no-ops on a database already at the newest revision). Hosts with their own
    migrations can merge `todo_adapters.sql.metadata` instead. Until the tables exist, every
    call raises StorageUnavailable saying how to migrate.
    """

    def __init__(self, backend: Backend, *, migrate: bool = False) -> None:
        self.backend = backend
        self._statements = Statements.for_dialect(backend.dialect)
        self._migrated = not migrate
        self._migrating = asyncio.Lock()
        self.outbox = SqlOutbox(backend, self._migrate_once)  # what the events worker reads (SPEC §16)

    @classmethod
    def from_config(cls, config: DatabaseConfig, *, migrate: bool = False) -> SqlStore:
        """A store for `config.url`: asyncpg for PostgreSQL and Neon, aiosqlite for SQLite.

        Raises ValueError for a URL (or schema name) it cannot use, ImportError naming the
        extra to install when the database's driver is missing.
        """
        if normalise_url(config.url, pgbouncer=config.pgbouncer).is_sqlite:
            return cls(SqliteBackend(create_engine(config)), migrate=migrate)
        return cls(PostgresBackend(config), migrate=migrate)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = False, schema: str | None = None) -> SqlStore:
        """`from_config(DatabaseConfig(url, schema=schema))` with the default pool settings.

        `schema` (PostgreSQL only) keeps every table, the version table included, in that
        schema. Raises as `from_config`.
        """
        return cls.from_config(DatabaseConfig(url, schema=schema), migrate=migrate)

    async def migrate(self) -> None:
        """Brings the schema to the newest revision now; on a database already there it only
        reads the version table. Safe from several processes at once (they take turns).

        Raises StorageUnavailable if the database cannot be reached.
        """
        async with self._migrating:
            await self.backend.migrate()
            self._migrated = True

    async def _migrate_once(self) -> None:
        if self._migrated:
            return
        async with self._migrating:
            if not self._migrated:
                await self.backend.migrate()
                self._migrated = True

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[SqlTransaction]:
        """A unit of work on one connection: a transaction rolled back unless committed
        (`read_only`: on PostgreSQL no transaction at all, each statement sees committed data).

        Raises StorageUnavailable if the database cannot be reached, the pool stays exhausted
        for `pool_timeout`, or the tables are missing (the message says how to migrate).
        """
        if not self._migrated:
            await self._migrate_once()
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
        """Closes the pool; units of work still open finish on their connections first."""
        await self.backend.dispose()


SqlUnitOfWork = SqlStore
"""The name SqlStore had before 0.2 (it hands out units of work; it is not one)."""
