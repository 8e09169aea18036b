"""What each optional part of the package needs, and the ImportError that says how to get it.

`pip install todo-service` installs the domain and the in-memory store only; each adapter
checks its own third-party packages on import and, when one is missing, names the extra to
install instead of failing later with a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(part: str, extra: str, *modules: str, alternative: str | None = None) -> None:
    """Raises ImportError naming `pip install 'todo-service[<extra>]'` if a module is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        also = f" (or [{alternative}])" if alternative else ""
        raise ImportError(
            f"{part} needs {', '.join(missing)}: pip install 'todo-service[{extra}]'{also}",
            name=missing[0],
        )
