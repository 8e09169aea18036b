"""`todo-api`: serve, worker, migrate, token, openapi, purge, check, events, mcp."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError

from todo_entrypoints.settings import Environment, Settings

__all__ = ["main"]


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        sys.exit(f"todo-api: invalid configuration:\n{problems}")


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from todo_entrypoints.logging_setup import configure_logging

    settings = _settings()
    configure_logging(settings)
    if settings.environment is not Environment.PRODUCTION and not settings.has_verifier:
        print(
            f"Development auth: get a token with `todo-api token alice`, then\n"
            f'  curl -H "Authorization: Bearer $TOKEN" http://{args.host}:{args.port}/api/tasks',
            file=sys.stderr,
        )
    uvicorn.run(
        "todo_entrypoints.http.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        # X-Forwarded-* only from the proxies named in FORWARDED_ALLOW_IPS (none by default,
        # loopback included), so a client cannot pick the IP its rate limit is counted under.
        proxy_headers=bool(settings.forwarded_allow_ips.strip()),
        forwarded_allow_ips=settings.forwarded_allow_ips.strip() or None,
        server_header=False,
        timeout_keep_alive=5,
        # header and body deadlines, a cap on connections (SPEC §13.6; HTTP_* settings)
        http="todo_entrypoints.http.server:GuardedHttpProtocol",
    )


def _migrate(_: argparse.Namespace) -> None:
    from todo_adapters.sql import create_engine, safe_url
    from todo_adapters.sql.migrate import current_revision, migrate

    settings = _settings()
    if settings.is_memory:
        sys.exit("todo-api migrate: DATABASE_URL=memory:// has no schema to migrate")

    async def run() -> str | None:
        engine = create_engine(settings.database)
        try:
            await migrate(engine, schema=settings.database_schema)
            return await current_revision(engine, schema=settings.database_schema)
        finally:
            await engine.dispose()

    revision = asyncio.run(run())
    print(f"{safe_url(settings.database_url.get_secret_value())} is at revision {revision}")


def _token(args: argparse.Namespace) -> None:
    from todo_adapters.auth import mint_token
    from todo_entrypoints.dev_secret import signing_secret

    settings = _settings()
    existed = settings.secret_file.exists()
    secret = signing_secret(settings)
    if secret is None:
        sys.exit("todo-api token: needs AUTH_JWT_SECRET (or development mode with no auth configured)")
    if settings.auth_jwt_secret is None:  # the development secret: say which one (SPEC §13.11)
        where = settings.secret_file
        if existed:
            print(f"signed with the development secret in {where}", file=sys.stderr)
        else:
            print(
                f"created a new development secret in {where}: only a server that uses the same "
                "file accepts this token (start it from the same directory, or set DEV_SECRET_FILE "
                "or DATABASE_URL alike for both)",
                file=sys.stderr,
            )
    print(
        mint_token(
            secret,
            args.user_id,
            ttl_seconds=args.ttl,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    )


def _purge(_: argparse.Namespace) -> None:
    from todo_entrypoints.container import Container, provide, shut_down

    settings = _settings()
    container = Container(settings=settings)

    async def run() -> None:
        try:
            purged = await (await provide(container.service)).purge()
        finally:
            await shut_down(container)
        days, hours = settings.tombstone_retention_days, settings.idempotency_retention_hours
        print(
            f"purged {purged.tombstones} tombstones older than {days} days "
            f"and {purged.idempotency_keys} idempotency keys older than {hours} h"
        )

    asyncio.run(run())


def _openapi(_: argparse.Namespace) -> None:
    from todo_entrypoints.http.app import create_app

    print(json.dumps(create_app(settings=_settings()).openapi(), indent=2))


def _masked(settings: Settings) -> dict[str, object]:
    from todo_adapters.sql import safe_url

    shown: dict[str, object] = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            shown[name] = safe_url(value.get_secret_value()) if name == "database_url" else "********"
        else:
            shown[name] = value
    return shown


def _check(_: argparse.Namespace) -> None:
    from todo_entrypoints.container import Container, provide, shut_down

    settings = _settings()
    for name, value in _masked(settings).items():
        print(f"{name.upper():28} {value}")
    container = Container(settings=settings)

    async def probe() -> bool:
        ok = True
        try:
            for name, check, _critical in await provide(container.health_checks):
                try:
                    await asyncio.wait_for(check(), 10)
                    print(f"{name}: ok")
                except Exception as exc:
                    print(f"{name}: FAILED ({type(exc).__name__}: {exc})")
                    ok = False
            if ok:
                lag = await (await provide(container.event_relay)).lag()
                print("outbox lag: " + ("none (every event is published)" if lag is None else f"{lag:.1f}s"))
        finally:
            await shut_down(container)
        return ok

    if not asyncio.run(probe()):
        sys.exit(1)


def _worker(_: argparse.Namespace) -> None:
    from todo_entrypoints.logging_setup import configure_logging
    from todo_entrypoints.worker import run_worker

    settings = _settings()
    if settings.is_memory:
        sys.exit("todo-api worker: DATABASE_URL=memory:// lives in one process; it needs the API's database")
    if settings.webhook_secret is not None:
        from todo_adapters.events.webhooks import check_secret

        try:
            check_secret(settings.webhook_secret.get_secret_value())
        except ValueError as exc:
            sys.exit(f"todo-api worker: WEBHOOK_SECRET is {exc}")
    configure_logging(settings)
    asyncio.run(run_worker(settings))


def _events(args: argparse.Namespace) -> None:
    """`events dead` lists the webhook dead letters; `events replay` sends them all again."""
    from todo_entrypoints.container import Container, provide, shut_down

    settings = _settings()
    container = Container(settings=settings)

    async def run() -> None:
        try:
            relay = await provide(container.event_relay)
            if args.action == "replay":
                print(f"{await relay.replay_dead()} dead letters are due again (the worker sends them)")
                return
            dead = await relay.dead_letters(args.limit)
            for d in dead:
                e = d.event
                print(
                    f"{e.id}  {e.type.value:15} user={e.owner} sequence={e.sequence} url={d.url} "
                    f"attempts={d.attempts} error={d.last_error}"
                )
            print(f"{len(dead)} dead letters" + (" (more not shown)" if len(dead) == args.limit else ""))
        finally:
            await shut_down(container)

    asyncio.run(run())


def _mcp(args: argparse.Namespace) -> None:
    """The MCP tools over stdio, acting for one user: `--token` (verified like any bearer
    token), or `--user` in development. Logs go to stderr; stdout carries the protocol."""
    from todo_adapters.auth import InvalidToken
    from todo_entrypoints.container import Container, provide, shut_down
    from todo_entrypoints.logging_setup import configure_logging
    from todo_entrypoints.mcp_tools import TaskTools, acting_for

    settings = _settings()
    configure_logging(settings)
    if args.user is not None and settings.environment is Environment.PRODUCTION:
        sys.exit("todo-api mcp: --user is for development; in production pass --token")
    container = Container(settings=settings)

    async def run() -> None:
        try:
            adapters = await provide(container.adapters)
            if args.token is not None:
                try:
                    owner = (await adapters.verifier.verify(args.token)).subject
                except InvalidToken as refused:
                    sys.exit(f"todo-api mcp: the token is not valid: {refused.description}")
            else:
                owner = args.user
            acting_for(owner)
            await TaskTools(lambda: provide(container.adapters)).run_stdio_async()
        finally:
            await shut_down(container)

    asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="todo-api", description="The tasks service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    serve.set_defaults(run=_serve)
    commands.add_parser(
        "worker", help="relay events to NATS/Redis/webhooks and fire reminders (until SIGTERM)"
    ).set_defaults(run=_worker)
    events = commands.add_parser("events", help="webhook dead letters: list them, or send them again")
    events.add_argument("action", choices=["dead", "replay"])
    events.add_argument("--limit", type=int, default=100, help="dead letters to list (default 100)")
    events.set_defaults(run=_events)
    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(run=_migrate)
    token = commands.add_parser("token", help="print a bearer token for USER_ID (shared secret)")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_token)
    commands.add_parser("openapi", help="print the OpenAPI document").set_defaults(run=_openapi)
    commands.add_parser(
        "purge", help="drop tombstones and idempotency keys past their retention (run daily)"
    ).set_defaults(run=_purge)
    commands.add_parser("check", help="show the configuration and test connections").set_defaults(run=_check)
    mcp = commands.add_parser("mcp", help="serve the MCP tools over stdio (for desktop AI clients)")
    who = mcp.add_mutually_exclusive_group(required=True)
    who.add_argument("--token", help="act for this bearer token's user")
    who.add_argument("--user", help="act for USER (development only)")
    mcp.set_defaults(run=_mcp)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
