"""The development signing secret: made once, kept beside the SQLite file with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from todo_entrypoints.settings import Environment, Settings

__all__ = ["load_or_create_secret", "signing_secret"]


def signing_secret(settings: Settings) -> str | None:
    """The HS256 secret tokens are signed and checked with — AUTH_JWT_SECRET; in development
    with no verifier configured, a generated one kept in `settings.secret_file` — or None.
    The server's verifier and `todo-api token` both ask here, so they always agree."""
    if settings.auth_jwt_secret is not None:
        return settings.auth_jwt_secret.get_secret_value()
    if settings.environment is Environment.PRODUCTION or settings.has_verifier:
        return None
    return load_or_create_secret(settings.secret_file)


def load_or_create_secret(path: Path) -> str:
    """Reads the secret, creating it first if needed (safe when several workers race)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
