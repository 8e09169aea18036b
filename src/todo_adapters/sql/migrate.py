"""Schema migrations with Alembic, run from the scripts shipped inside this package.

Works from an installed wheel (no alembic.ini, no working-directory assumptions). On
PostgreSQL an advisory lock makes concurrent starters (several workers with AUTO_MIGRATE)
take turns instead of racing.

Living beside a host application (SPEC §19): the version table is `todo_alembic_version`, so
a host's own `alembic_version` never collides with ours, and with `schema=` (PostgreSQL) every
table, the version table included, lives in that schema, created if missing. A database
migrated before 0.3 recorded its revision in `alembic_version`; the first migration moves that
record to `todo_alembic_version` (only when our tables are there too, so a host's own
`alembic_version` is never touched).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from todo_adapters.sql.backends import storage_errors

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "migrate"]

VERSION_TABLE = "todo_alembic_version"
_LEGACY_VERSION_TABLE = "alembic_version"
_OUR_TABLES = ("tasks", "owners", "idempotency_keys", "task_tags")
_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x70D0_5C4E  # arbitrary, constant advisory-lock key for this schema


def _config(schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["schema"] = schema
    config.attributes["version_table"] = VERSION_TABLE
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _revision(connection: sa.Connection, schema: str | None, table: str) -> str | None:
    context = MigrationContext.configure(
        connection, opts={"version_table": table, "version_table_schema": schema}
    )
    return context.get_current_revision()


def _adopt_legacy_version(connection: sa.Connection, config: Config, schema: str | None) -> None:
    """Moves our revision out of a pre-0.3 `alembic_version` (see the module docstring)."""
    inspector = sa.inspect(connection)
    if inspector.has_table(VERSION_TABLE, schema=schema) or not all(
        inspector.has_table(name, schema=schema) for name in _OUR_TABLES
    ):
        return
    legacy = _revision(connection, schema, _LEGACY_VERSION_TABLE)
    scripts = ScriptDirectory.from_config(config)
    if legacy is None or legacy not in {script.revision for script in scripts.walk_revisions()}:
        return
    command.stamp(config, legacy)
    table = sa.table(_LEGACY_VERSION_TABLE, sa.column("version_num"), schema=schema)
    connection.execute(table.delete().where(table.c.version_num == legacy))
    if connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0:
        connection.execute(sa.text(f"DROP TABLE {_qualified(schema, _LEGACY_VERSION_TABLE)}"))


def _qualified(schema: str | None, table: str) -> str:
    return table if schema is None else f'"{schema}".{table}'  # schema: a checked plain name


def _upgrade(connection: sa.Connection, schema: str | None) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        if schema is not None:
            # The migrations' own SQL names tables unqualified: they land in the schema.
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(sa.text(f'SET LOCAL search_path TO "{schema}"'))
    config = _config(schema)
    config.attributes["connection"] = connection
    _adopt_legacy_version(connection, config, schema)
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine, *, schema: str | None = None) -> None:
    """Brings the database to the newest schema; a no-op when it is already there."""
    async with storage_errors(), engine.begin() as connection:
        await connection.run_sync(_upgrade, schema)


async def current_revision(engine: AsyncEngine, *, schema: str | None = None) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with storage_errors(), engine.connect() as connection:
        return await connection.run_sync(_revision, schema, VERSION_TABLE)
