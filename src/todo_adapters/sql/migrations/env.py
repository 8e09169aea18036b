"""Alembic environment: always run with a connection handed in by `todo_adapters.sql.migrate`."""

from __future__ import annotations

from alembic import context

from todo_adapters.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
    version_table=context.config.attributes["version_table"],
    version_table_schema=context.config.attributes["schema"],
)
with context.begin_transaction():
    context.run_migrations()
