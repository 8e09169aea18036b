"""Change notification across processes with PostgreSQL alone: LISTEN/NOTIFY (SPEC §15).

Each process keeps one dedicated connection (not from the pool) that LISTENs on the channel
`todo_changes` (`todo_changes_<schema>` with a schema). A commit wakes the followers of this
process at once, and queues its owner; a sender task drains the queue and sends one
`pg_notify` per distinct owner, many owners in one statement, so a burst of writes costs one
round trip rather than one per write. Other processes wake their followers of that owner.

Notifications are hints (see todo_adapters.changes): if the connection drops, the hub
reconnects with backoff and wakes every follower of the process, since it may have missed
some; a process killed between a commit and its NOTIFY delays other processes' followers until
their next look at the feed (each looks at least once per heartbeat), never loses a change.

LISTEN needs a session of its own: behind PgBouncer's transaction pooling or Neon's `-pooler`
host it does not work. `listen_url` (the server's `DATABASE_LISTEN_URL`) names a direct
connection; without it a Neon pooler URL is used with `-pooler` dropped from its host (Neon's
direct endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import asyncpg

from todo_adapters.changes import ChangeHub
from todo_adapters.sql.engine import DatabaseConfig, driver_arguments, normalise_url, safe_url

__all__ = ["LISTENER_NAME", "PostgresChangeHub", "listen_dsn"]

log = logging.getLogger("todo.changes")
LISTENER_NAME = "todo-changes-listener"
_MAX_BACKOFF_SECONDS = 10.0


def listen_dsn(config: DatabaseConfig, listen_url: str | None = None) -> str:
    """The URL LISTEN connects to: `listen_url`, else the database URL with a Neon `-pooler`
    host made direct."""
    target = normalise_url(listen_url or config.url)
    url = target.url.set(drivername="postgresql")
    if listen_url is None and url.host and "-pooler" in url.host:
        url = url.set(host=url.host.replace("-pooler", ""))
    return url.render_as_string(hide_password=False)


class PostgresChangeHub(ChangeHub):
    """A ChangeHub whose `changed` also reaches the other processes on the same database."""

    crosses_processes = True

    def __init__(
        self, config: DatabaseConfig, *, listen_url: str | None = None, max_per_owner: int = 5
    ) -> None:
        super().__init__(max_per_owner=max_per_owner)
        self._dsn = listen_dsn(config, listen_url)
        listen_target = normalise_url(listen_url or config.url)
        arguments = driver_arguments(listen_target, config)
        arguments.pop("statement_cache_size", None)
        # named, so an operator sees which connection listens (pg_stat_activity.application_name)
        arguments["server_settings"] = {
            **arguments.get("server_settings", {}),
            "application_name": LISTENER_NAME,
        }
        self._connect_args = arguments
        self.channel = "todo_changes" if config.schema is None else f"todo_changes_{config.schema}"
        self._pending: set[str] = set()
        self._queued = asyncio.Event()
        self._connection: asyncpg.Connection[Any] | None = None
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def changed(self, owner: str) -> None:
        super().changed(owner)
        if self._tasks:  # started: the other processes hear of it too
            self._pending.add(owner)
            self._queued.set()

    async def start(self) -> None:
        """Connects and listens (in the background: a database that is down at start delays
        cross-process wake-ups, it does not stop the server)."""
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._send())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 2)
        await super().stop()

    @property
    def listening(self) -> bool:
        return self._connected.is_set()

    async def check(self) -> None:
        """For readiness: raises ConnectionError while the LISTEN connection is down (streams
        then see other instances' changes only at their heartbeat)."""
        if not self.listening:
            raise ConnectionError("the LISTEN connection is down")

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(self._dsn, **self._connect_args)
                connection.add_termination_listener(functools.partial(_set, lost))
                await connection.add_listener(self.channel, self._heard)
            except Exception as exc:  # whatever it was, this background loop must go on
                log.warning("LISTEN on %s failed (%s); retrying in %.1fs", safe_url(self._dsn), exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            self._connection, backoff = connection, 0.1
            self._connected.set()
            self.wake_all()  # whatever happened while we were not listening
            await lost.wait()
            self._connected.clear()
            log.warning("the LISTEN connection to %s was lost; reconnecting", safe_url(self._dsn))

    def _heard(self, connection: Any, pid: int, _channel: str, owner: str) -> None:
        if pid != connection.get_server_pid():  # our own NOTIFYs woke our followers already
            ChangeHub.changed(self, owner)

    async def _send(self) -> None:
        while True:
            await self._queued.wait()
            await self._connected.wait()
            self._queued.clear()
            owners, self._pending = list(self._pending), set()
            connection = self._connection
            if connection is None:
                continue
            try:
                await connection.execute(
                    "SELECT pg_notify($1, owner) FROM unnest($2::text[]) AS owner", self.channel, owners
                )
            except Exception as exc:  # whatever it was, this background loop must go on
                # The followers elsewhere look again within a heartbeat; the listener reconnects.
                log.warning("NOTIFY failed (%s); other instances see these changes at their next look", exc)


def _set(event: asyncio.Event, _connection: object) -> None:
    event.set()
