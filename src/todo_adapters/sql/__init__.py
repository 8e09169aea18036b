"""The SQL adapter: one repository flow (repository.py) over PostgreSQL (raw asyncpg, what the
server runs) and SQLite (SQLAlchemy/aiosqlite); one schema, one set of statements, one set of
migrations."""

from todo_adapters._extras import require

require("todo_adapters.sql", "sqlite", "sqlalchemy", "alembic", alternative="postgres")


from todo_adapters.sql.engine import DatabaseConfig, create_engine, normalise_url, safe_url
from todo_adapters.sql.tables import metadata
from todo_adapters.sql.unit_of_work import SqlStore, SqlUnitOfWork

__all__ = [
    "DatabaseConfig",
    "SqlStore",
    "SqlUnitOfWork",
    "create_engine",
    "metadata",
    "normalise_url",
    "safe_url",
]
