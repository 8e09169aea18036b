"""The composition root: the only place that chooses adapters. Nothing is built until asked."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from dependency_injector import containers, providers

from todo_adapters.auth import SharedSecretVerifier, TokenRouter
from todo_adapters.memory import InMemoryUnitOfWork
from todo_adapters.sql import SqlUnitOfWork, create_engine, safe_url
from todo_domain import SystemClock, TaskService, UnitOfWork, Uuid7Generator
from todo_entrypoints.dev_secret import load_or_create_secret
from todo_entrypoints.settings import Environment, Settings

__all__ = ["Container", "HealthCheck"]

log = logging.getLogger("todo")

HealthCheck = tuple[str, Callable[[], Awaitable[None]]]


def _unit_of_work(settings: Settings) -> UnitOfWork:
    if settings.is_memory:
        return InMemoryUnitOfWork()
    return SqlUnitOfWork(create_engine(settings.database), auto_migrate=settings.should_migrate)


def _verifier(settings: Settings) -> TokenRouter:
    leeway = settings.auth_leeway_seconds
    secret = settings.auth_jwt_secret
    secret_value: str | None
    if secret is None and settings.environment is not Environment.PRODUCTION and not settings.has_verifier:
        path = settings.secret_file
        log.info("development auth: tokens signed with %s; mint one with `todo-api token USER_ID`", path)
        secret_value = load_or_create_secret(path)
    else:
        secret_value = None if secret is None else secret.get_secret_value()
    hmac = (
        None
        if secret_value is None
        else SharedSecretVerifier(
            secret_value, issuer=settings.auth_issuer, audience=settings.auth_audience, leeway=leeway
        )
    )
    return TokenRouter(hmac=hmac)


def _health_checks(uow: UnitOfWork) -> list[HealthCheck]:
    checks: list[HealthCheck] = []
    if isinstance(uow, SqlUnitOfWork):
        checks.append(("database", uow.ping))
    return checks


def _describe(settings: Settings) -> str:
    return "in-memory" if settings.is_memory else safe_url(settings.database_url.get_secret_value())


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(Uuid7Generator)
    unit_of_work = providers.Singleton(_unit_of_work, settings)
    service = providers.Singleton(TaskService, unit_of_work, clock=clock, ids=ids)
    verifier = providers.Singleton(_verifier, settings)
    health_checks = providers.Singleton(_health_checks, unit_of_work)
    database_description = providers.Callable(_describe, settings)
