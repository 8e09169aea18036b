"""Schema migrations with Alembic, run from the scripts shipped inside this package.

Works from an installed wheel (no alembic.ini, no working-directory assumptions). On
PostgreSQL an advisory lock makes concurrent starters (several workers with AUTO_MIGRATE)
take turns instead of racing.
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

__all__ = ["current_revision", "head_revision", "migrate"]

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x70D0_5C4E  # arbitrary, constant advisory-lock key for this schema


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Brings the database to the newest schema; a no-op when it is already there."""
    async with storage_errors(), engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with storage_errors(), engine.connect() as connection:
        return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
