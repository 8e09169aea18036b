"""The SQL adapters: asyncpg for PostgreSQL (PgUnitOfWork, what the server runs) and SQLAlchemy 2
Core for SQLite and for PostgreSQL from scripts (SqlUnitOfWork); one schema, one set of migrations."""

from todo_adapters.sql.engine import DatabaseConfig, create_engine, normalise_url, safe_url
from todo_adapters.sql.pg_unit_of_work import PgUnitOfWork
from todo_adapters.sql.unit_of_work import SqlUnitOfWork

__all__ = ["DatabaseConfig", "PgUnitOfWork", "SqlUnitOfWork", "create_engine", "normalise_url", "safe_url"]
