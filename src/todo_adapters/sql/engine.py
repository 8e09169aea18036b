"""Engines from the URLs users paste: Neon, Heroku-style `postgres://`, SQLite paths.

Also the connection hygiene that production needs: statement timeouts, PgBouncer mode, and
pinging only connections that sat idle (a ping on every checkout costs ~40 % throughput).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from todo_adapters._extras import require

__all__ = [
    "DatabaseConfig",
    "NormalisedUrl",
    "create_engine",
    "driver_arguments",
    "normalise_url",
    "safe_url",
]

# A connection idle longer than this is pinged before use: Neon suspends idle computes and
# load balancers drop idle TCP connections, but a busy pool never pays for the ping.
IDLE_PING_SECONDS = 5.0

# Execution option of SQLite connections that only read (see _sqlite_engine).
READ_ONLY = "todo_read_only"

_POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
# Plain identifiers only: no quoting rules to get wrong in DDL, search_path or logs.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
# libpq parameters with no asyncpg meaning that are safe to drop (asyncpg negotiates SCRAM itself).
_IGNORED_PARAMS = {"channel_binding", "target_session_attrs", "gssencmode"}


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str
    pool_size: int = 10
    max_overflow: int = 20
    pool_timeout: float = 30.0
    pool_recycle: int = 1800
    statement_timeout_ms: int = 10_000
    pgbouncer: bool = False
    schema: str | None = None
    """PostgreSQL only: every table (and the migration version table) lives in this schema,
    created by the first migration if missing. None: the connection's search_path (public)."""

    def __post_init__(self) -> None:
        if self.schema is not None and not _SCHEMA_NAME.fullmatch(self.schema):
            raise ValueError(
                f"schema {self.schema!r} is not a plain PostgreSQL name "
                "(letters, digits and _, not starting with a digit, at most 63 characters)"
            )


@dataclass(frozen=True, slots=True)
class NormalisedUrl:
    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    pgbouncer: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparseable database URL>"


def normalise_url(raw: str, *, pgbouncer: bool = False) -> NormalisedUrl:
    """Translates a pasted URL into an async SQLAlchemy URL plus driver arguments.

    Raises ValueError with a message that never contains the password.
    """
    text = raw.strip().strip("'\"")
    try:
        url = make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError("DATABASE_URL is not a valid database URL") from None
    scheme = url.drivername
    if scheme in _SQLITE_SCHEMES:
        return NormalisedUrl(url.set(drivername="sqlite+aiosqlite"))
    if scheme not in _POSTGRES_SCHEMES:
        raise ValueError(
            f"DATABASE_URL scheme {scheme!r} is not supported; use postgresql://… or sqlite:///…"
        )
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}
    if (sslmode := query.pop("sslmode", None)) is not None:
        if sslmode not in _SSL_MODES:
            raise ValueError(f"DATABASE_URL sslmode {sslmode!r} is not one of {sorted(_SSL_MODES)}")
        connect_args["ssl"] = sslmode
    if (timeout := query.pop("connect_timeout", None)) is not None:
        connect_args["timeout"] = float(str(timeout))
    if (name := query.pop("application_name", None)) is not None:
        server_settings["application_name"] = str(name)
    for ignored in _IGNORED_PARAMS:
        query.pop(ignored, None)
    if unknown := sorted(query):
        raise ValueError(f"DATABASE_URL has unsupported parameters: {', '.join(unknown)}")
    if server_settings:
        connect_args["server_settings"] = server_settings
    pooled = pgbouncer or "-pooler" in (url.host or "")
    return NormalisedUrl(url.set(drivername="postgresql+asyncpg", query={}), connect_args, pgbouncer=pooled)


def create_engine(config: DatabaseConfig) -> AsyncEngine:
    """A SQLAlchemy engine for the URL (migrations, SQLite, Better Auth's session table)."""
    target = normalise_url(config.url, pgbouncer=config.pgbouncer)
    if target.is_sqlite:
        if config.schema is not None:
            raise ValueError("schema= is for PostgreSQL; a SQLite database file is its own namespace")
        require("SQLite", "sqlite", "aiosqlite")
        return _sqlite_engine(target, config)
    require("PostgreSQL", "postgres", "asyncpg")
    connect_args = driver_arguments(target, config)
    if target.pgbouncer:
        # SQLAlchemy's dialect prepares named statements even without a cache; unique names
        # keep them from clashing on PgBouncer's shared server connections.
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4()}__"
    engine = create_async_engine(
        target.url,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout,
        pool_recycle=config.pool_recycle,
        connect_args=connect_args,
    )
    _ping_when_idle(engine)
    return engine


def driver_arguments(target: NormalisedUrl, config: DatabaseConfig) -> dict[str, Any]:
    """asyncpg's connect() arguments for a PostgreSQL target (both SQL adapters use them)."""
    connect_args = dict(target.connect_args)
    if target.pgbouncer:
        # Transaction pooling hands each statement to any server connection: no prepared
        # statement may outlive it, and startup parameters are not forwarded.
        connect_args["statement_cache_size"] = 0
    else:
        settings = dict(connect_args.get("server_settings", {}))
        settings["statement_timeout"] = str(config.statement_timeout_ms)
        connect_args["server_settings"] = settings
    return connect_args


def _create_private(path: Path) -> None:
    """A new SQLite file is created readable by its owner only (0600); SQLite gives its WAL and
    shared-memory files the database file's permissions. An existing file is left as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_engine(target: NormalisedUrl, config: DatabaseConfig) -> AsyncEngine:
    database = target.url.database
    if database and database != ":memory:":
        _create_private(Path(database).expanduser())
    # One connection per process serialises transactions in-process; other processes wait on
    # busy_timeout. Every write transaction starts with BEGIN IMMEDIATE, so a read-then-write
    # never fails half-way with "database is locked"; reads (execution option READ_ONLY) take a
    # deferred BEGIN: one WAL snapshot for all their statements, without blocking writers.
    engine = create_async_engine(target.url, pool_size=1, max_overflow=0, pool_timeout=config.pool_timeout)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={int(config.pool_timeout * 1000)}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling, but only for connections idle > IDLE_PING_SECONDS."""
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except (OSError, dialect.loaded_dbapi.Error) as exc:
            raise sa.exc.DisconnectionError("idle connection is gone") from exc
        if not alive:
            raise sa.exc.DisconnectionError("idle connection is gone")
