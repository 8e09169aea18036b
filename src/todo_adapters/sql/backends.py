"""How statements reach each database: one small back-end per dialect, nothing about tasks.

A back-end opens sessions (one connection, one transaction; or, for reads on PostgreSQL, no
transaction: each statement is its own snapshot under READ COMMITTED), runs the Core
statements of statements.py, and turns driver trouble into two exceptions the flow
understands: `StorageUnavailable` (the domain's: retry later) and `DuplicateKey`.

- PostgreSQL runs on raw asyncpg: each statement object is compiled once by SQLAlchemy's
  asyncpg dialect, and its named parameters are laid out as `$n` arguments. This is the
  server's hot path: SQLAlchemy's async execution costs ≈ 1 ms per statement here against
  ≈ 0.2 ms on asyncpg (README, Performance). Values go to asyncpg as the domain made them
  (aware UTC datetimes, UUIDs, ints, str), so no bind processor is needed.
- SQLite runs on SQLAlchemy's async engine (aiosqlite), which does its own compilation,
  caching and type processing.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from todo_adapters._extras import require
from todo_adapters.sql.engine import (
    IDLE_PING_SECONDS,
    READ_ONLY,
    DatabaseConfig,
    create_engine,
    driver_arguments,
    normalise_url,
)
from todo_domain.errors import StorageUnavailable, WriteConflict

if TYPE_CHECKING:
    import asyncpg
else:
    try:
        import asyncpg
    except ImportError:  # the [sqlite] extra alone: PostgresBackend says what to install
        from todo_adapters.sql._no_asyncpg import asyncpg

__all__ = ["Backend", "DuplicateKey", "PostgresBackend", "Session", "SqliteBackend", "storage_errors"]

Row = Mapping[str, Any]


class DuplicateKey(Exception):
    """A unique key is taken (by a committed row, or by a transaction that just committed)."""


class Session(Protocol):
    """One connection of one unit of work."""

    async def fetch(self, statement: sa.Executable, params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def fetchrow(self, statement: sa.Executable, params: Mapping[str, Any]) -> Row | None: ...

    async def execute(self, statement: sa.Executable, params: Mapping[str, Any]) -> int:
        """Runs a write; the number of rows it touched."""
        ...

    async def execute_many(self, statement: sa.Executable, params: Sequence[Mapping[str, Any]]) -> None: ...

    async def commit(self) -> None: ...


class Backend(Protocol):
    dialect: str

    def session(self, *, read_only: bool) -> AbstractAsyncContextManager[Session]:
        """`async with backend.session(read_only=…) as session`: rolled back unless committed."""
        ...

    async def migrate(self) -> None: ...

    async def ping(self) -> None: ...

    def pool_usage(self) -> tuple[int, int]: ...

    async def dispose(self) -> None: ...


# SQLSTATE classes that mean "the database cannot serve us right now", not "our SQL is wrong":
# 08 connection exception, 53 insufficient resources, 57 operator intervention (incl. 57014
# statement timeout and 57P01 admin shutdown), 55P03 lock not available.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "55P03")


SCHEMA_MISSING = (
    "the tasks tables are missing: migrate the database first (`todo-api migrate`, "
    "AUTO_MIGRATE=true, SqlStore.from_url(..., migrate=True) or `await store.migrate()`)"
)


def _missing_table(error: object) -> bool:
    """An undefined table (42P01), as asyncpg or SQLite says it: the schema was never made."""
    if getattr(error, "sqlstate", None) == "42P01" or getattr(error, "pgcode", None) == "42P01":
        return True
    return type(error).__name__ == "OperationalError" and str(error).startswith("no such table")


# The transaction was aborted to let a concurrent one through: a deadlock, a serialization
# failure. Nothing was written; the use case does the unit of work again.
_CONFLICT_SQLSTATES = ("40P01", "40001")


def _unavailable_sqlstate(sqlstate: object) -> bool:
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


@asynccontextmanager
async def storage_errors() -> AsyncIterator[None]:
    """Driver trouble of either driver, directly or through SQLAlchemy, as StorageUnavailable
    (WriteConflict when the database aborted the transaction for a concurrent one)."""
    try:
        yield
    except sa.exc.TimeoutError:
        raise StorageUnavailable("the database connection pool is exhausted") from None
    except sa.exc.DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if _missing_table(exc.orig):
            raise StorageUnavailable(SCHEMA_MISSING) from exc
        if sqlstate in _CONFLICT_SQLSTATES:
            raise WriteConflict("a concurrent write got in the way; retry") from exc
        if (
            exc.connection_invalidated
            or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
            or _unavailable_sqlstate(sqlstate)
        ):
            raise StorageUnavailable("the database is unavailable") from exc
        raise
    except asyncpg.PostgresError as exc:
        if _missing_table(exc):
            raise StorageUnavailable(SCHEMA_MISSING) from exc
        if exc.sqlstate in _CONFLICT_SQLSTATES:
            raise WriteConflict("a concurrent write got in the way; retry") from exc
        if _unavailable_sqlstate(exc.sqlstate):
            raise StorageUnavailable("the database is unavailable") from exc
        raise
    except asyncpg.InternalClientError as exc:  # a protocol confused by a server-side disconnect
        raise StorageUnavailable("the database connection was lost") from exc
    except (OSError, TimeoutError) as exc:
        raise StorageUnavailable("the database is unreachable") from exc


# -- PostgreSQL: raw asyncpg ------------------------------------------------------------------------

_PG_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
# What a dead connection raises: a server that terminated it (Neon suspending a compute) can
# leave asyncpg's protocol in a state it reports as InternalClientError.
_CONNECTION_TROUBLE = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
# Connections idle longer than this are closed by the pool (on top of the idle ping).
_MAX_IDLE_SECONDS = 300.0


class _Compiled:
    """A statement as asyncpg runs it: SQL text with `$n`, and where each argument comes from."""

    __slots__ = ("_constants", "_pick", "sql")

    def __init__(self, statement: sa.Executable, schema: str | None) -> None:
        translate = (
            {}
            if schema is None
            else {"schema_translate_map": {None: schema}, "render_schema_translate": True}
        )
        compiled = statement.compile(dialect=_PG_DIALECT, **translate)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        names = list(compiled.positiontup)
        # Constants SQLAlchemy bound itself (the 1 of `revision + 1`); the caller names the rest.
        self._constants = {
            n: compiled.binds[n].effective_value for n in names if not compiled.binds[n].required
        }
        pick = operator.itemgetter(*names) if names else (lambda _: ())
        self._pick = pick if len(names) != 1 else (lambda p: (p[names[0]],))

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values: tuple[Any, ...] = self._pick({**self._constants, **params} if self._constants else params)
        return values


class _Statements:
    """Each statement object compiled once per schema (table names are qualified by it)."""

    __slots__ = ("_compiled", "_schema")

    _BY_SCHEMA: ClassVar[dict[str | None, dict[sa.Executable, _Compiled]]] = {}

    def __init__(self, schema: str | None) -> None:
        self._schema = schema
        self._compiled = self._BY_SCHEMA.setdefault(schema, {})

    def __call__(self, statement: sa.Executable) -> _Compiled:
        found = self._compiled.get(statement)
        if found is None:
            if len(self._compiled) > 4096:  # list shapes are finite, but keep the cache bounded anyway
                self._compiled.clear()
            found = self._compiled[statement] = _Compiled(statement, self._schema)
        return found


class _PgSession:
    __slots__ = ("_compiled", "_connection", "_transaction", "committed")

    def __init__(
        self, connection: asyncpg.Connection[Any], transaction: Any | None, compiled: _Statements
    ) -> None:
        self._connection = connection
        self._transaction = transaction
        self._compiled = compiled
        self.committed = False

    async def fetch(self, statement: sa.Executable, params: Mapping[str, Any]) -> Sequence[Row]:
        compiled = self._compiled(statement)
        rows: Sequence[Row] = await self._connection.fetch(compiled.sql, *compiled.args(params))
        return rows

    async def fetchrow(self, statement: sa.Executable, params: Mapping[str, Any]) -> Row | None:
        compiled = self._compiled(statement)
        row: Row | None = await self._connection.fetchrow(compiled.sql, *compiled.args(params))
        return row

    async def execute(self, statement: sa.Executable, params: Mapping[str, Any]) -> int:
        compiled = self._compiled(statement)
        try:
            status: str = await self._connection.execute(compiled.sql, *compiled.args(params))
        except asyncpg.UniqueViolationError:
            raise DuplicateKey() from None
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE 1", "INSERT 0 1", "DELETE 3"

    async def execute_many(self, statement: sa.Executable, params: Sequence[Mapping[str, Any]]) -> None:
        compiled = self._compiled(statement)
        try:
            await self._connection.executemany(compiled.sql, [compiled.args(p) for p in params])
        except asyncpg.UniqueViolationError:
            raise DuplicateKey() from None

    async def commit(self) -> None:
        if self._transaction is not None:
            await self._transaction.commit()
        self.committed = True


class PostgresBackend:
    """An asyncpg pool, opened on first use: at most pool_size + max_overflow connections,
    none kept while idle for 5 minutes; connections idle for a few seconds are pinged first."""

    dialect = "postgresql"

    def __init__(self, config: DatabaseConfig) -> None:
        require("PostgreSQL", "postgres", "asyncpg")
        target = normalise_url(config.url, pgbouncer=config.pgbouncer)
        if target.is_sqlite:
            raise ValueError("PostgresBackend needs a PostgreSQL URL")
        self.config = config
        self._dsn = target.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connect_args = driver_arguments(target, config)
        self._pool: asyncpg.Pool[Any] | None = None
        self._opening = asyncio.Lock()
        self._idle_since: dict[int, float] = {}  # by server pid
        self._statements = _Statements(config.schema)

    async def migrate(self) -> None:
        from todo_adapters.sql.migrate import migrate  # Alembic: loaded only when asked

        engine = create_engine(self.config)
        try:
            await migrate(engine, schema=self.config.schema)
        finally:
            await engine.dispose()

    async def _open(self) -> asyncpg.Pool[Any]:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=max(1, self.config.pool_size + self.config.max_overflow),
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
        except asyncpg.InternalClientError:  # its protocol is confused: never hand it out again
            if not _gone(connection):
                connection.terminate()
            raise
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
        try:
            closed = connection.is_closed()
        except asyncpg.InterfaceError:  # asyncpg already took the dead connection back
            return await self._acquire(pool)
        if not closed:
            connection.terminate()
        await pool.release(connection)  # closed or not, its pool slot comes back
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
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return True
        try:
            await connection.fetchval("SELECT 1", timeout=self.config.pool_timeout)
        except (*_CONNECTION_TROUBLE, TimeoutError):
            return False
        return True

    @asynccontextmanager
    async def session(self, *, read_only: bool) -> AsyncIterator[_PgSession]:
        async with storage_errors(), self._connection() as connection:
            if read_only:  # no BEGIN/ROLLBACK: two round trips of three for a get
                yield _PgSession(connection, None, self._statements)
                return
            transaction = connection.transaction()
            await transaction.start()
            session = _PgSession(connection, transaction, self._statements)
            try:
                yield session
            finally:
                if not session.committed and not _gone(connection):
                    await transaction.rollback()

    async def ping(self) -> None:
        async with storage_errors(), self._connection() as connection:
            await connection.fetchval("SELECT 1")

    def pool_usage(self) -> tuple[int, int]:
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


# -- SQLite: SQLAlchemy over aiosqlite ----------------------------------------------------------------

_SQLITE_DIALECT = sqlite.dialect()
_SQLITE_NAMES: dict[sa.Executable, frozenset[str]] = {}


def _names(statement: sa.Executable) -> frozenset[str]:
    """The parameters a statement takes: the flow passes one dict to several statements, and
    SQLAlchemy would read a stray key that names a column as a value for it."""
    found = _SQLITE_NAMES.get(statement)
    if found is None:
        if len(_SQLITE_NAMES) > 4096:
            _SQLITE_NAMES.clear()
        compiled = statement.compile(dialect=_SQLITE_DIALECT)  # type: ignore[attr-defined]
        found = _SQLITE_NAMES[statement] = frozenset(compiled.binds)
    return found


def _only(statement: sa.Executable, params: Mapping[str, Any]) -> dict[str, Any]:
    names = _names(statement)
    return {k: v for k, v in params.items() if k in names}


class _SqliteSession:
    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def fetch(self, statement: sa.Executable, params: Mapping[str, Any]) -> Sequence[Row]:
        result = await self._connection.execute(statement, _only(statement, params))
        rows: Sequence[Any] = result.mappings().all()
        return rows

    async def fetchrow(self, statement: sa.Executable, params: Mapping[str, Any]) -> Row | None:
        result = await self._connection.execute(statement, _only(statement, params))
        row: Row | None = result.mappings().first()  # type: ignore[assignment]
        return row

    async def execute(self, statement: sa.Executable, params: Mapping[str, Any]) -> int:
        try:
            result = await self._connection.execute(statement, _only(statement, params))
        except sa.exc.IntegrityError as exc:
            if "UNIQUE" in str(exc.orig):
                raise DuplicateKey() from None
            raise
        return int(result.rowcount)

    async def execute_many(self, statement: sa.Executable, params: Sequence[Mapping[str, Any]]) -> None:
        try:
            await self._connection.execute(statement, [_only(statement, p) for p in params])
        except sa.exc.IntegrityError as exc:
            if "UNIQUE" in str(exc.orig):
                raise DuplicateKey() from None
            raise

    async def commit(self) -> None:
        await self._connection.commit()


class SqliteBackend:
    """One SQLAlchemy engine (one connection per process, see engine.py): writes in BEGIN
    IMMEDIATE transactions, reads in one deferred transaction each."""

    dialect = "sqlite"

    def __init__(self, engine: AsyncEngine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("SqliteBackend needs a SQLite engine")
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    async def migrate(self) -> None:
        from todo_adapters.sql.migrate import migrate  # Alembic: loaded only when asked

        await migrate(self.engine)

    @asynccontextmanager
    async def session(self, *, read_only: bool) -> AsyncIterator[_SqliteSession]:
        async with storage_errors(), (self._reader if read_only else self.engine).connect() as connection:
            if not read_only:
                await connection.begin()
            yield _SqliteSession(connection)
            # leaving the connection block without commit rolls the transaction back

    async def ping(self) -> None:
        async with storage_errors(), self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    def pool_usage(self) -> tuple[int, int]:
        pool: Any = self.engine.pool
        return pool.checkedout(), pool.checkedout() + pool.checkedin()

    async def dispose(self) -> None:
        await self.engine.dispose()
