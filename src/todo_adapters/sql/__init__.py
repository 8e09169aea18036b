"""The SQL adapter: SQLAlchemy 2 Core on PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from todo_adapters.sql.engine import DatabaseConfig, create_engine, normalise_url, safe_url
from todo_adapters.sql.unit_of_work import SqlUnitOfWork

__all__ = ["DatabaseConfig", "SqlUnitOfWork", "create_engine", "normalise_url", "safe_url"]
