"""The live stream (SPEC §15) against real `todo-api serve` processes: two instances on one
PostgreSQL database (cross-instance delivery by LISTEN/NOTIFY), and one on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from todo_adapters.auth import StreamTickets, mint_token
from todo_adapters.sql.notify import LISTENER_NAME
from todo_domain import ChangeToken

from .servers import TODO_API, free_port, running_server, stop

pytestmark = pytest.mark.slow

SECRET = "stream-secret-" + "x" * 40
HEARTBEAT = 0.5


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "AUTO_MIGRATE": "true",
        "STREAM_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "STREAM_MAX_PER_USER": "3",
        "CORS_ORIGINS": "http://app.example",
        "METRICS_TOKEN": "stream-metrics",
        **extra,
    }


@pytest.fixture(scope="module")
def instances(postgres_url: str) -> Iterator[list[str]]:
    env = server_env(postgres_url, AUTO_MIGRATE="false")
    with running_server(env) as first, running_server(env) as second:
        yield [first, second]


@pytest.fixture(scope="module")
def sqlite_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("stream") / "todo.db"
    with running_server(server_env(f"sqlite:///{database}")) as base:
        yield base


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user)}"}


def new_user() -> str:
    return f"u{uuid.uuid4().hex}"


@dataclass
class Event:
    event: str
    id: str | None
    data: Any
    at: float


class Stream:
    """An open event stream: `next_event()` skips heartbeats, `heartbeats` counts them."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines
        self.heartbeats = 0

    async def next_event(self, seconds: float = 10) -> Event:
        async with asyncio.timeout(seconds):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "":
                    if "event" in fields:
                        return Event(
                            fields["event"], fields.get("id"), json.loads(fields["data"]), time.monotonic()
                        )
                    fields = {}
                elif line.startswith(":"):
                    self.heartbeats += 1
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
            raise EOFError("the stream ended")

    async def events_until(self, count: int, seconds: float = 20) -> list[Event]:
        return [await self.next_event(seconds) for _ in range(count)]


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    base: str,
    headers: dict[str, str],
    path: str = "/api/tasks/stream",
    **params: str,
) -> AsyncIterator[Stream]:
    async with client.stream("GET", f"{base}{path}", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response.aiter_lines())


async def create(client: httpx.AsyncClient, base: str, headers: dict[str, str], title: str) -> dict[str, Any]:
    response = await client.post(f"{base}/api/tasks", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_write_reaches_streams_on_the_same_and_the_other_instance(instances: list[str]) -> None:
    user = new_user()
    headers = auth(user)
    latencies: dict[str, list[float]] = {"same": [], "other": []}
    async with (
        httpx.AsyncClient(timeout=30) as client,
        open_stream(client, instances[0], headers) as here,
        open_stream(client, instances[1], headers) as there,
    ):
        assert (await here.next_event()).event == "ready"
        assert (await there.next_event()).event == "ready"
        for i in range(20):
            started = time.monotonic()
            made = await create(client, instances[0], headers, f"t{i}")
            for name, stream in (("same", here), ("other", there)):
                event = await stream.next_event()
                assert (event.event, event.data["id"]) == ("task", made["id"])
                latencies[name].append(event.at - started)
    for name, values in latencies.items():  # recorded, not a budget (the bench measures those)
        print(f"write → event, {name} instance: p50 {statistics.median(values) * 1000:.1f} ms")


async def test_since_and_last_event_id_replay_then_go_live(instances: list[str]) -> None:
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client:
        async with open_stream(client, instances[0], headers) as stream:
            start = (await stream.next_event()).id
        first = await create(client, instances[0], headers, "first")
        second = await create(client, instances[1], headers, "second")
        deleted = await client.delete(f"{instances[1]}/api/tasks/{first['id']}", headers=headers)
        assert deleted.status_code == 204
        assert start is not None
        async with open_stream(client, instances[1], headers, since=start) as stream:
            ready, *replayed = await stream.events_until(3)
            assert (ready.event, ready.id) == ("ready", start)
            assert [(e.event, e.data["id"]) for e in replayed] == [
                ("task", second["id"]),
                ("deleted", first["id"]),
            ]
            live = await create(client, instances[0], headers, "live")
            event = await stream.next_event()
            assert (event.event, event.data["id"]) == ("task", live["id"])
        # EventSource reconnects with Last-Event-ID (and the URL it first used): the header wins
        resume = {**headers, "Last-Event-ID": replayed[0].id or ""}
        async with open_stream(client, instances[0], resume, since=start) as stream:
            _, *again = await stream.events_until(3)
            assert [e.data["id"] for e in again] == [first["id"], live["id"]]


async def test_every_change_once_across_the_seam_and_a_reconnect(instances: list[str]) -> None:
    """100 creates on both instances while a stream replays, goes live, drops and resumes."""
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(10):
            await create(client, instances[0], headers, f"before {i}")
        writes = asyncio.gather(
            *(create(client, instances[i % 2], headers, f"during {i}") for i in range(100))
        )
        seen: list[str] = []
        from_the_start = ChangeToken(0, datetime.now(UTC)).encode()
        async with open_stream(client, instances[1], headers, since=from_the_start) as stream:
            await stream.next_event()
            while len(seen) < 50:
                event = await stream.next_event()
                seen.append(event.data["id"])
            last_id = event.id or ""
        async with open_stream(client, instances[0], {**headers, "Last-Event-ID": last_id}) as stream:
            assert (await stream.next_event()).id == last_id
            made = await writes
            while len(seen) < 110:
                seen.append((await stream.next_event()).data["id"])
    assert len(seen) == len(set(seen)) == 110
    assert {t["id"] for t in made} <= set(seen)


async def test_streams_never_see_another_users_changes(instances: list[str]) -> None:
    alice, bob = auth(new_user()), auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client, open_stream(client, instances[0], alice) as stream:
        await stream.next_event()
        await create(client, instances[1], bob, "bob's")
        mine = await create(client, instances[1], alice, "alice's")
        event = await stream.next_event()
        assert event.data["id"] == mine["id"]


async def test_tickets_open_streams_on_any_instance_and_nothing_else(instances: list[str]) -> None:
    user = new_user()
    headers = auth(user)
    async with httpx.AsyncClient(timeout=30) as client:
        issued = await client.post(f"{instances[0]}/api/tasks/stream/tickets", headers=headers)
        assert issued.status_code == 201
        ticket = issued.json()["ticket"]
        assert issued.json()["expires_at"].endswith("Z")
        async with open_stream(client, instances[1], {}, ticket=ticket) as stream:
            await stream.next_event()
            made = await create(client, instances[0], headers, "via ticket")
            assert (await stream.next_event()).data["id"] == made["id"]
        async with open_stream(
            client, instances[1], {}, path=f"/api/{user}/tasks/stream", ticket=ticket
        ) as s:
            assert (await s.next_event()).event == "ready"
        refused = [
            await client.get(f"{instances[0]}/api/tasks", headers={"Authorization": f"Bearer {ticket}"}),
            await client.get(f"{instances[0]}/api/tasks", params={"ticket": ticket}),
            await client.get(f"{instances[0]}/api/tasks/stream", params={"ticket": ticket + "x"}),
            await client.get(f"{instances[0]}/api/tasks/stream", params={"ticket": mint_token(SECRET, user)}),
            await client.get(
                f"{instances[0]}/api/tasks/stream",
                params={"ticket": StreamTickets(SECRET, ttl_seconds=-5).issue(user)[0]},
            ),
            await client.get(f"{instances[0]}/api/tasks/stream"),
        ]
        assert [r.status_code for r in refused] == [401] * 6
        assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
        other = await client.get(f"{instances[0]}/api/someone-else/tasks/stream", params={"ticket": ticket})
        assert other.status_code == 403


async def test_a_stream_answers_cors_for_allowed_origins_only(instances: list[str]) -> None:
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client:
        for origin, allowed in (("http://app.example", True), ("http://evil.example", False)):
            request = {**headers, "Origin": origin}
            async with client.stream("GET", f"{instances[0]}/api/tasks/stream", headers=request) as response:
                assert response.status_code == 200
                assert (response.headers.get("access-control-allow-origin") == origin) is allowed
        preflight = await client.options(
            f"{instances[0]}/api/tasks/stream/tickets",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"


async def test_bad_or_expired_tokens_are_refused_before_any_event(instances: list[str]) -> None:
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client:
        garbage = await client.get(
            f"{instances[0]}/api/tasks/stream", params={"since": "nope"}, headers=headers
        )
        assert garbage.status_code == 422
        old = "djE6MDox"  # revision 0, issued at the epoch: past any retention
        expired = await client.get(
            f"{instances[0]}/api/tasks/stream", headers={**headers, "Last-Event-ID": old}
        )
        assert expired.status_code == 410


async def test_head_answers_the_headers_without_holding_the_connection(instances: list[str]) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        head = await client.head(f"{instances[0]}/api/tasks/stream", headers=auth(new_user()))
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert (await client.head(f"{instances[0]}/api/tasks/stream")).status_code == 401


async def test_at_most_the_per_user_limit_of_streams_per_instance(instances: list[str]) -> None:
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client, contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(open_stream(client, instances[0], headers))
        refused = await client.get(f"{instances[0]}/api/tasks/stream", headers=headers)
        assert refused.status_code == 429
        assert refused.headers["retry-after"]
        async with open_stream(client, instances[1], headers) as elsewhere:  # no Redis: per instance
            assert (await elsewhere.next_event()).event == "ready"


@pytest.fixture(scope="module")
def shared_instances(postgres_url: str) -> Iterator[list[str]]:
    """Two instances sharing Redis: the per-user stream cap holds across them."""
    env = server_env(
        postgres_url,
        AUTO_MIGRATE="false",
        REDIS_URL="redis://127.0.0.1:6379",
        RATE_LIMIT_KEY_PREFIX=f"stream-{uuid.uuid4().hex}",
    )
    with running_server(env) as first, running_server(env) as second:
        yield [first, second]


async def test_with_redis_the_limit_holds_across_instances(shared_instances: list[str]) -> None:
    headers = auth(new_user())
    first, second = shared_instances
    async with httpx.AsyncClient(timeout=30) as client, contextlib.AsyncExitStack() as stack:
        held = []  # kept: a started line iterator that is collected closes its response
        for base in (first, second, first):
            held.append(await stack.enter_async_context(open_stream(client, base, headers)))
            await held[-1].next_event()
        for base in (first, second):
            async with client.stream("GET", f"{base}/api/tasks/stream", headers=headers) as refused:
                assert refused.status_code == 429  # (a stream, were it accepted, would never end)
        await stack.aclose()  # closing streams frees their slots
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 10
        while True:  # the slots are released as each instance notices its client is gone
            async with client.stream("GET", f"{second}/api/tasks/stream", headers=headers) as response:
                if response.status_code == 200:
                    break
            assert time.monotonic() < deadline, "closed streams kept their slots"
            await asyncio.sleep(0.2)


async def test_open_streams_are_a_metric(instances: list[str]) -> None:
    def open_streams(text: str) -> float:
        (line,) = [x for x in text.splitlines() if x.startswith("event_streams_open ")]
        return float(line.split()[1])

    metrics = {"Authorization": "Bearer stream-metrics"}
    async with httpx.AsyncClient(timeout=30) as client:
        before = open_streams((await client.get(f"{instances[1]}/metrics", headers=metrics)).text)
        async with open_stream(client, instances[1], auth(new_user())) as stream:
            await stream.next_event()
            during = open_streams((await client.get(f"{instances[1]}/metrics", headers=metrics)).text)
        assert during == before + 1


async def test_heartbeats_keep_an_idle_stream_alive(instances: list[str]) -> None:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        open_stream(client, instances[0], auth(new_user())) as s,
    ):
        await s.next_event()
        with contextlib.suppress(TimeoutError):
            await s.next_event(seconds=HEARTBEAT * 5)
        assert s.heartbeats >= 3


async def test_sqlite_streams_within_the_process(sqlite_instance: str) -> None:
    headers = auth(new_user())
    async with (
        httpx.AsyncClient(timeout=30) as client,
        open_stream(client, sqlite_instance, headers) as stream,
    ):
        await stream.next_event()
        made = await create(client, sqlite_instance, headers, "on sqlite")
        done = await client.patch(
            f"{sqlite_instance}/api/tasks/{made['id']}/complete", json={"completed": True}, headers=headers
        )
        assert done.status_code == 200
        events = await stream.events_until(2)
        assert [(e.event, e.data["id"], e.data["completed"]) for e in events] == [
            ("task", made["id"], False),
            ("task", made["id"], True),
        ]


def test_sigterm_closes_open_streams_at_once_and_the_server_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {**server_env(f"sqlite:///{tmp_path / 'todo.db'}"), "STREAM_HEARTBEAT_SECONDS": "15"}
    process = subprocess.Popen(
        [str(TODO_API), "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)

        async def hold_two_streams() -> list[float]:
            async with httpx.AsyncClient(timeout=30) as client:

                async def one(user: str) -> float:
                    async with open_stream(client, base, auth(user)) as stream:
                        await stream.next_event()
                        if len(opened) == 1:
                            process.terminate()  # SIGTERM once both are open
                        opened.append(user)
                        with contextlib.suppress(EOFError, httpx.RemoteProtocolError, httpx.ReadError):
                            await stream.next_event(seconds=10)
                    return time.monotonic()

                return list(await asyncio.gather(one(new_user()), one(new_user())))

        opened: list[str] = []
        started = time.monotonic()
        ended = asyncio.run(hold_two_streams())
        assert max(ended) - started < 5  # not the 15 s heartbeat, nor the 30 s drain
        assert process.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        stop(process)


@pytest.fixture(scope="module")
def quiet_instances(postgres_url: str) -> Iterator[list[str]]:
    """Two instances whose streams look at the feed only every 60 s unless notified."""
    env = server_env(postgres_url, AUTO_MIGRATE="false", STREAM_HEARTBEAT_SECONDS="60")
    with running_server(env) as first, running_server(env) as second:
        yield [first, second]


async def _listeners(url: str) -> set[int]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            LISTENER_NAME,
        )
        return {r["pid"] for r in rows}
    finally:
        await connection.close()


async def test_a_dropped_listen_connection_comes_back(quiet_instances: list[str], postgres_url: str) -> None:
    """Cross-instance events travel by NOTIFY (the heartbeat here is 60 s), and after the
    database drops the LISTEN connections the hubs reconnect and deliver again."""
    headers = auth(new_user())
    async with httpx.AsyncClient(timeout=30) as client, open_stream(client, quiet_instances[1], headers) as s:
        await s.next_event()
        before = await create(client, quiet_instances[0], headers, "before the drop")
        assert (await s.next_event(seconds=5)).data["id"] == before["id"]
        old = await _listeners(postgres_url)
        assert len(old) >= 2
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(old)
            )
        finally:
            await connection.close()
        deadline = time.monotonic() + 15
        while len((await _listeners(postgres_url)) - old) < len(old):  # every instance is back
            assert time.monotonic() < deadline, "the LISTEN connections did not come back"
            await asyncio.sleep(0.2)
        after = await create(client, quiet_instances[0], headers, "after the drop")
        assert (await s.next_event(seconds=5)).data["id"] == after["id"]


def test_readiness_reports_stream_notifications(postgres_url: str) -> None:
    env = server_env(postgres_url, AUTO_MIGRATE="false")
    with running_server(env) as base:
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{base}/health/ready").json())["checks"]["stream_notifications"] != "ok":
            assert time.monotonic() < deadline, ready
            time.sleep(0.1)
    down = server_env(
        postgres_url, AUTO_MIGRATE="false", DATABASE_LISTEN_URL="postgresql://postgres@127.0.0.1:1/x"
    )
    with running_server(down) as base:
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 200  # streams still work here, at their heartbeat elsewhere
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "stream_notifications": "unavailable"},
        }


async def test_a_fired_reminder_reaches_the_stream_and_replays_with_since(
    instances: list[str], postgres_url: str
) -> None:
    """`todo-api worker` fires it (another process); the stream on either instance shows
    `event: reminder` in order with the changes, and a replay from before it shows it again."""
    base, other = instances
    user = new_user()
    headers = auth(user)
    async with httpx.AsyncClient(timeout=10) as client:
        start = (await client.get(f"{base}/api/tasks/changes", headers=headers)).json()["next"]
        async with open_stream(client, other, headers) as stream:
            assert (await stream.next_event()).event == "ready"
            remind_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
            body = {"title": "stand up and stretch", "remind_at": remind_at.isoformat()}
            created = await client.post(f"{base}/api/tasks", json=body, headers=headers)
            assert created.status_code == 201
            assert (await stream.next_event()).event == "task"
            env = {
                **os.environ,
                **server_env(postgres_url, AUTO_MIGRATE="false"),
                "WORKER_POLL_SECONDS": "0.2",
            }
            worker = await asyncio.to_thread(
                subprocess.Popen,
                [str(TODO_API), "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                reminder = await stream.next_event(15)
            finally:
                assert await asyncio.to_thread(stop, worker) == 0
        assert reminder.event == "reminder"
        assert reminder.data["task"]["id"] == created.json()["id"]
        assert reminder.data["remind_at"] == remind_at.isoformat().replace("+00:00", "Z")
        assert reminder.data["late"] is False
        async with open_stream(client, base, headers, since=start) as replay:
            kinds = [e.event for e in await replay.events_until(3)]
        assert kinds == ["ready", "task", "reminder"]
