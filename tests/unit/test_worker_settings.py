"""The events settings (SPEC §16) refuse what the worker could not use, at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from todo_entrypoints import cli
from todo_entrypoints.settings import Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_webhook_urls_are_split_on_commas() -> None:
    settings = Settings(webhook_urls="https://a.example/h, http://b.example/h,", webhook_secret=SECRET)
    assert settings.webhook_urls == ["https://a.example/h", "http://b.example/h"]


def test_webhook_urls_need_a_secret() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET"):
        Settings(webhook_urls="https://a.example/h")


def test_webhook_urls_must_be_http() -> None:
    with pytest.raises(ValidationError, match="http"):
        Settings(webhook_urls="ftp://a.example/h", webhook_secret=SECRET)


def test_a_subject_prefix_must_be_nats_tokens() -> None:
    with pytest.raises(ValidationError):
        Settings(events_nats_subject_prefix="todo.>")
    assert Settings(events_nats_subject_prefix="acme.todo").events_nats_subject_prefix == "acme.todo"


def test_the_worker_refuses_a_secret_that_is_not_a_standard_webhooks_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///unused.db")
    monkeypatch.setenv("WEBHOOK_URLS", "https://a.example/h")
    monkeypatch.setenv("WEBHOOK_SECRET", "not-base64!")
    with pytest.raises(SystemExit, match="WEBHOOK_SECRET is not a Standard Webhooks secret"):
        cli.main(["worker"])
