"""Helpers for HTTP tests: an app on a chosen store, a client, and tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from todo_adapters.auth import mint_token
from todo_entrypoints.container import Container
from todo_entrypoints.http.app import create_app
from todo_entrypoints.settings import Settings

SECRET = "test-secret-" + "x" * 40


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": "memory://",
        "auth_jwt_secret": SECRET,
        "cors_origins": "http://localhost:3000",
        "rate_limit_enabled": False,  # enabled by the rate-limit tests themselves
    }
    values.update(overrides)
    return Settings(**values)


def auth(user: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user, **claims)}"}


@asynccontextmanager
async def serve(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def app_for(settings: Settings | None = None, **overrides: Any) -> FastAPI:
    return create_app(Container(settings=settings or make_settings(**overrides)))
