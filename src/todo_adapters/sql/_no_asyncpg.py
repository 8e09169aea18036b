"""Stands in for asyncpg when only the [sqlite] extra is installed: its exception classes exist
(so the shared error handling still reads), and anything else says what to install."""

from __future__ import annotations

from typing import Any

from todo_adapters._extras import require

__all__ = ["asyncpg"]


class _Missing:
    def __init__(self) -> None:
        self._errors: dict[str, type[Exception]] = {}

    def __getattr__(self, name: str) -> Any:
        if name.endswith("Error"):  # never raised: nothing runs asyncpg
            return self._errors.setdefault(name, type(name, (Exception,), {}))
        require("PostgreSQL", "postgres", "asyncpg")
        raise AttributeError(name)  # pragma: no cover  (require raised)


asyncpg = _Missing()
