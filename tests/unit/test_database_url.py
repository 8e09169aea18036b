"""DATABASE_URL accepts what users paste (SPEC §5)."""

from __future__ import annotations

import pytest

from todo_adapters.sql import normalise_url, safe_url

CASES = [
    ("postgres://u:p@db.example.com/app", "postgresql+asyncpg://u:***@db.example.com/app", {}, False),
    (
        "postgresql://u:p@db.example.com:6543/app",
        "postgresql+asyncpg://u:***@db.example.com:6543/app",
        {},
        False,
    ),
    ("postgresql+asyncpg://u:p@h/app", "postgresql+asyncpg://u:***@h/app", {}, False),
    (
        "postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=require",
        "postgresql+asyncpg://u:***@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb",
        {"ssl": "require"},
        False,
    ),
    (
        "postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require",
        "postgresql+asyncpg://u:***@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb",
        {"ssl": "require"},
        True,
    ),
    (
        "postgresql://u:p@h/app?connect_timeout=5&application_name=todo",
        "postgresql+asyncpg://u:***@h/app",
        {"timeout": 5.0, "server_settings": {"application_name": "todo"}},
        False,
    ),
    ("  'postgresql://u:p@h/app'  ", "postgresql+asyncpg://u:***@h/app", {}, False),
    ("sqlite:///todo.db", "sqlite+aiosqlite:///todo.db", {}, False),
    ("sqlite:////var/lib/todo/todo.db", "sqlite+aiosqlite:////var/lib/todo/todo.db", {}, False),
    ("sqlite+aiosqlite:///todo.db", "sqlite+aiosqlite:///todo.db", {}, False),
]


@pytest.mark.parametrize(("raw", "url", "connect_args", "pgbouncer"), CASES)
def test_pasted_urls_are_normalised(
    raw: str, url: str, connect_args: dict[str, object], pgbouncer: bool
) -> None:
    result = normalise_url(raw)
    assert result.url.render_as_string(hide_password=True) == url
    assert result.connect_args == connect_args
    assert result.pgbouncer is pgbouncer


def test_pgbouncer_mode_can_be_forced() -> None:
    assert normalise_url("postgresql://u:p@h/app", pgbouncer=True).pgbouncer


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://u:hunter2@h/app",
        "postgresql://u:hunter2@h/app?sslmode=sometimes",
        "postgresql://u:hunter2@h/app?frobnicate=1",
        "not a url hunter2",
    ],
)
def test_bad_urls_are_refused_without_revealing_the_password(raw: str) -> None:
    with pytest.raises(ValueError) as exc:
        normalise_url(raw)
    assert "hunter2" not in str(exc.value)


def test_safe_url_masks_the_password() -> None:
    assert "hunter2" not in safe_url("postgresql://u:hunter2@h/app")
