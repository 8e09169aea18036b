"""PostgreSQL transactions on an asyncpg pool: what the server uses for PostgreSQL and Neon.

SqlUnitOfWork (SQLAlchemy) still serves SQLite, scripts and migrations; this one exists for
speed (see pg_repository.py). It keeps the same promises: leaving `begin()` without commit
rolls back, reads skip BEGIN/ROLLBACK (under READ COMMITTED every statement sees its own
snapshot either way), a connection that sat idle is pinged before use, and driver trouble
leaves only as the domain's StorageUnavailable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from todo_adapters.sql import engine as engine_module
from todo_adapters.sql.engine import DatabaseConfig, create_engine, driver_arguments, normalise_url
from todo_adapters.sql.pg_repository import PgTaskRepository
from todo_domain.errors import StorageUnavailable

__all__ = ["PgTransaction", "PgUnitOfWork", "pg_storage_errors"]

# SQLSTATE classes that mean "the database cannot serve us right now", not "our SQL is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (incl. 57014
# statement timeout and 57P01 admin shutdown), 55P03 lock not available.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "55P03")
# What a dead connection raises: a server that terminated it (Neon suspending a compute) can
# leave asyncpg's protocol in a state it reports as InternalClientError.
_CONNECTION_TROUBLE = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
# Connections idle longer than this are closed by the pool (on top of the idle ping).
_MAX_IDLE_SECONDS = 300.0


@asynccontextmanager
async def pg_storage_errors() -> AsyncIterator[None]:
    """Turns "the database is unavailable" asyncpg errors into StorageUnavailable."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if (exc.sqlstate or "").startswith(_UNAVAILABLE_SQLSTATES):
            raise StorageUnavailable("the database is unavailable") from exc
        raise
    except asyncpg.InternalClientError as exc:  # a protocol confused by a server-side disconnect
        raise StorageUnavailable("the database connection was lost") from exc
    except (OSError, TimeoutError) as exc:
        raise StorageUnavailable("the database is unreachable") from exc


class PgTransaction:
    def __init__(self, connection: asyncpg.Connection[Any], transaction: Any | None) -> None:
        self._connection = connection
        self._transaction = transaction
        self._tasks = PgTaskRepository(connection)
        self.committed = False

    @property
    def tasks(self) -> PgTaskRepository:
        return self._tasks

    async def commit(self) -> None:
        if self._transaction is not None:
            await self._transaction.commit()
        self.committed = True


class PgUnitOfWork:
    """Transactions on an asyncpg pool, opened on first use; sized like SqlUnitOfWork's
    (pool_size + max_overflow connections at most, none held while idle for 5 minutes)."""

    def __init__(self, config: DatabaseConfig, *, auto_migrate: bool = False) -> None:
        target = normalise_url(config.url, pgbouncer=config.pgbouncer)
        if target.is_sqlite:
            raise ValueError("PgUnitOfWork needs a PostgreSQL URL; use SqlUnitOfWork for SQLite")
        self.config = config
        self._dsn = target.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connect_args = driver_arguments(target, config)
        self._pool: asyncpg.Pool[Any] | None = None
        self._opening = asyncio.Lock()
        self._migrated = not auto_migrate
        self._idle_since: dict[int, float] = {}  # by server pid

    @classmethod
    def from_url(cls, url: str, *, auto_migrate: bool = True) -> PgUnitOfWork:
        return cls(DatabaseConfig(url), auto_migrate=auto_migrate)

    async def ensure_schema(self) -> None:
        async with self._opening:
            if not self._migrated:
                from todo_adapters.sql.migrate import migrate

                engine = create_engine(self.config)
                try:
                    await migrate(engine)
                finally:
                    await engine.dispose()
                self._migrated = True

    async def _open(self) -> asyncpg.Pool[Any]:
        if not self._migrated:
            await self.ensure_schema()
        async with self._opening:
            if self._pool is None:
                with_overflow = self.config.pool_size + self.config.max_overflow
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=max(1, with_overflow),
                    max_inactive_connection_lifetime=_MAX_IDLE_SECONDS,
                    reset=_keep_session,
                    **self._connect_args,
                )
            return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection[Any]]:
        pool = self._pool or await self._open()
        connection = await self._live_connection(pool)
        try:
            yield connection
        except asyncpg.InterfaceError as exc:
            if _gone(connection):  # otherwise a bug of ours (bad arguments…): not a 503
                raise StorageUnavailable("the database connection was lost") from exc
            raise
        finally:
            if not _gone(connection):
                if len(self._idle_since) > 16 + 4 * (self.config.pool_size + self.config.max_overflow):
                    self._idle_since.clear()  # pids of closed connections; costs one skipped ping
                self._idle_since[connection.get_server_pid()] = time.monotonic()
            await pool.release(connection)

    async def _live_connection(self, pool: asyncpg.Pool[Any]) -> Any:
        connection = await self._acquire(pool)
        try:
            alive = await self._answers(connection)
        except BaseException:  # cancelled mid-ping: the connection still goes back
            await pool.release(connection)
            raise
        if alive:
            return connection
        connection.terminate()
        await pool.release(connection)
        return await self._acquire(pool)

    async def _acquire(self, pool: asyncpg.Pool[Any]) -> Any:
        try:
            return await pool.acquire(timeout=self.config.pool_timeout)
        except TimeoutError:
            raise StorageUnavailable("the database connection pool is exhausted") from None

    async def _answers(self, connection: Any) -> bool:
        """Pings a connection that sat idle (Neon suspends idle computes, load balancers drop
        idle TCP connections); False if it is dead. A busy pool never pays for the ping."""
        idle_since = self._idle_since.get(connection.get_server_pid())
        if idle_since is None or time.monotonic() - idle_since < engine_module.IDLE_PING_SECONDS:
            return True
        try:
            await connection.fetchval("SELECT 1", timeout=self.config.pool_timeout)
        except _CONNECTION_TROUBLE:
            return False
        return True

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[PgTransaction]:
        async with pg_storage_errors(), self._connection() as connection:
            if read_only:
                yield PgTransaction(connection, None)
                return
            transaction = connection.transaction()
            await transaction.start()
            tx = PgTransaction(connection, transaction)
            try:
                yield tx
            finally:
                if not tx.committed and not _gone(connection):
                    await transaction.rollback()

    async def ping(self) -> None:
        """One round trip to the database; raises StorageUnavailable if it does not answer."""
        async with pg_storage_errors(), self._connection() as connection:
            await connection.fetchval("SELECT 1")

    def pool_usage(self) -> tuple[int, int]:
        """(connections in use, connections open), for metrics."""
        if self._pool is None:
            return 0, 0
        return self._pool.get_size() - self._pool.get_idle_size(), self._pool.get_size()

    async def dispose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def _gone(connection: Any) -> bool:
    """Closed, or already handed back to the pool by asyncpg because it closed mid-operation
    (then even asking is_closed() raises)."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


async def _keep_session(_connection: Any) -> None:
    """Release without asyncpg's default reset query (a round trip per request, ~37 % of
    throughput): our sessions change no settings, and open transactions are still rolled back."""
