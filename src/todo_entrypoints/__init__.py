"""Entrypoints: the HTTP app, the composition root and the `todo-api` command."""

from todo_adapters._extras import require

require("todo_entrypoints (the HTTP API and `todo-api`)", "server", "fastapi", "uvicorn", "pydantic_settings")
