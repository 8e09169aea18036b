"""SQL transactions for the use cases: one connection, one transaction, rolled back unless committed.

Driver trouble — refused connections, an exhausted pool, a statement timeout, a dropped
connection — leaves this module only as the domain's StorageUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from todo_adapters.sql.engine import READ_ONLY, DatabaseConfig, create_engine
from todo_adapters.sql.repository import SqlTaskRepository
from todo_domain.errors import StorageUnavailable

__all__ = ["SqlTransaction", "SqlUnitOfWork", "storage_errors"]

# SQLSTATE classes that mean "the database cannot serve us right now", not "our SQL is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (incl. 57014
# statement timeout and 57P01 admin shutdown), 55P03 lock not available.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "55P03")


def _is_unavailable(exc: sa.exc.DBAPIError) -> bool:
    if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Turns "the database is unavailable" driver errors into StorageUnavailable."""
    try:
        yield
    except sa.exc.TimeoutError:
        raise StorageUnavailable("the database connection pool is exhausted") from None
    except sa.exc.DBAPIError as exc:
        if _is_unavailable(exc):
            raise StorageUnavailable("the database is unavailable") from exc
        raise
    except (OSError, TimeoutError) as exc:
        raise StorageUnavailable("the database is unreachable") from exc


class SqlTransaction:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._tasks = SqlTaskRepository(connection)

    @property
    def tasks(self) -> SqlTaskRepository:
        return self._tasks

    async def commit(self) -> None:
        await self._connection.commit()


class SqlUnitOfWork:
    """Transactions on one engine; `SqlUnitOfWork.from_url("sqlite:///todo.db")` for scripts.

    With `auto_migrate` the schema is brought up to date before the first transaction.
    """

    def __init__(self, engine: AsyncEngine, *, auto_migrate: bool = False) -> None:
        self.engine = engine
        # Reads on PostgreSQL skip BEGIN/ROLLBACK (two round trips of three for a get): under
        # READ COMMITTED every statement sees its own snapshot either way, so a read that
        # needs one snapshot is one statement. SQLite reads run in one deferred transaction
        # (see engine.py).
        self._reader = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine.execution_options(**{READ_ONLY: True})
        )
        self._migrated = not auto_migrate
        self._migrate_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, auto_migrate: bool = True) -> SqlUnitOfWork:
        return cls(create_engine(DatabaseConfig(url)), auto_migrate=auto_migrate)

    async def ensure_schema(self) -> None:
        async with self._migrate_lock:
            if not self._migrated:
                from todo_adapters.sql.migrate import migrate

                await migrate(self.engine)
                self._migrated = True

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[SqlTransaction]:
        if not self._migrated:
            await self.ensure_schema()
        async with storage_errors(), (self._reader if read_only else self.engine).connect() as connection:
            if not read_only:
                await connection.begin()
            yield SqlTransaction(connection)
            # leaving the connection block without commit rolls the transaction back

    async def dispose(self) -> None:
        await self.engine.dispose()

    def pool_usage(self) -> tuple[int, int]:
        """(connections in use, connections open), for metrics."""
        pool: Any = self.engine.pool
        return pool.checkedout(), pool.checkedout() + pool.checkedin()

    async def ping(self) -> None:
        """One round trip to the database; raises StorageUnavailable if it does not answer."""
        async with storage_errors(), self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
