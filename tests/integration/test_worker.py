"""`todo-api worker` as a real process against real parts (SPEC §16): PostgreSQL, NATS with
JetStream, Redis, a webhook receiver on 127.0.0.1 — and the faults it must survive (`kill -9`
of workers, a broker restart), several workers at once, reminders, SIGTERM, SQLite.

Each test has a database of its own (so its outbox holds only its events), a JetStream stream
and Redis keys with random names; tests that restart NATS start a private nats-server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
import redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.servers import TODO_API, free_port
from todo_adapters.sql import SqlStore
from todo_domain import NewTask, TaskService

pytestmark = pytest.mark.slow

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes


# -- the parts --------------------------------------------------------------------------------------


class Worker:
    """One `todo-api worker` process; its output in a file, read back for assertions."""

    def __init__(self, env: dict[str, str]) -> None:
        handle, name = tempfile.mkstemp(prefix="worker-", suffix=".log")
        self.log = Path(name)
        with os.fdopen(handle, "wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [str(TODO_API), "worker"],
                env={**os.environ, "WORKER_POLL_SECONDS": "0.2", "LOG_FORMAT": "text", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def started(self) -> Worker:
        """Waits until it says it runs (its loops are about to start)."""
        wait_for(lambda: "worker started" in self.output() or self.process.poll() is not None, 20, "start")
        assert self.process.poll() is None, self.output()
        return self

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup at all
        self.process.wait(10)

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"the worker ignored SIGTERM:\n{self.output()}") from None
        return self.process.returncode


@contextmanager
def workers(env: dict[str, str], count: int = 1) -> Iterator[list[Worker]]:
    started = [Worker(env) for _ in range(count)]
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()


class PrivateNats:
    """A nats-server with JetStream of our own, on a free port, that a test may restart."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not installed (SPEC §16 tests need it)", pytrace=False)
        self.binary, self.port, self.store = binary, free_port(), tmp / "jetstream"
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not asyncio.run(_answers(self.url)):
            if time.monotonic() > deadline:
                raise AssertionError("the private nats-server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def _answers(url: str) -> bool:
    try:
        client = await nats.connect(url, connect_timeout=1, allow_reconnect=False, max_reconnect_attempts=0)
    except Exception:  # any failure to connect: not up yet
        return False
    await client.close()
    return True


class Receiver:
    """A webhook endpoint on 127.0.0.1 that verifies every signature; the first `failures`
    requests are answered 500."""

    def __init__(self, failures: int = 0) -> None:
        self.verified: list[dict[str, Any]] = []
        self.refused = 0
        self.failures = failures
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    envelope = Webhook(SECRET).verify(body, dict(self.headers))
                except WebhookVerificationError:
                    self.send_response(401)
                    self.end_headers()
                    return
                with receiver.lock:
                    if receiver.failures > 0:
                        receiver.failures -= 1
                        receiver.refused += 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    receiver.verified.append({"headers": dict(self.headers), "envelope": envelope})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def jetstream_messages(url: str, stream: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message of the stream: (Nats-Msg-Id, envelope), in stream order."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        try:
            state = (await js.stream_info(stream)).state
        except nats.js.errors.NotFoundError:  # the worker makes it with its first publish
            return []
        found = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            message = await js.get_msg(stream, seq)
            found.append(((message.headers or {}).get("Nats-Msg-Id", ""), json.loads(message.data or b"")))
        return found
    finally:
        await client.close()


async def stream_setup(url: str, stream: str) -> tuple[list[str], float, str]:
    """The stream's subjects, its duplicate window (seconds) and its first message's subject."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        first = await js.get_msg(stream, info.state.first_seq)
        return list(info.config.subjects or []), float(info.config.duplicate_window or 0), first.subject or ""
    finally:
        await client.close()


async def delete_stream(url: str, stream: str) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    except Exception:  # already gone, or never made: nothing to clean
        pass
    finally:
        await client.close()


def redis_events(stream: str) -> list[bytes]:
    """The `event` field of every entry of a Redis stream, in stream order."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        entries: Any = client.xrange(stream)
        return [fields[b"event"] for _, fields in entries]
    finally:
        client.close()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def outbox_lag(url: str) -> float | None:
    async def run() -> float | None:
        async with SqlStore.from_url(url) as store:
            return await store.outbox.lag(datetime.now(UTC))

    return asyncio.run(run())


def dead_letters(url: str) -> list[Any]:
    async def run() -> list[Any]:
        async with SqlStore.from_url(url) as store:
            return list(await store.outbox.dead_letters(100))

    return asyncio.run(run())


def write(url: str, owners: list[str], count: int, *, pause: float = 0.0, **fields: Any) -> list[str]:
    """`count` creates spread over `owners`, through the use cases (the API's write path)."""

    async def run() -> list[str]:
        async with SqlStore.from_url(url) as store:
            service, ids = TaskService(store), []
            for n in range(count):
                task = await service.create(owners[n % len(owners)], NewTask(title=f"task {n}", **fields))
                ids.append(str(task.id))
                if pause:
                    await asyncio.sleep(pause)
            return ids

    return asyncio.run(run())


def contiguous_per_owner(envelopes: list[dict[str, Any]]) -> dict[str, list[int]]:
    by_owner: dict[str, list[int]] = {}
    for envelope in envelopes:
        by_owner.setdefault(envelope["userid"], []).append(int(envelope["sequence"]))
    return by_owner


@pytest.fixture
def database(empty_postgres_url: str) -> str:
    asyncio.run(_migrate(empty_postgres_url))
    return empty_postgres_url


async def _migrate(url: str) -> None:
    async with SqlStore.from_url(url) as store:
        await store.migrate()


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    chosen = {
        "EVENTS_NATS_STREAM": f"TEST_{tag}",
        "EVENTS_NATS_SUBJECT_PREFIX": f"test{tag}.events",
        "EVENTS_REDIS_STREAM": f"test:{tag}:events",
    }
    yield chosen
    asyncio.run(delete_stream(NATS_URL, chosen["EVENTS_NATS_STREAM"]))
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(chosen["EVENTS_REDIS_STREAM"], chosen["EVENTS_REDIS_STREAM"] + ":sequences")
    client.close()


# -- every sink ----------------------------------------------------------------------------------


def test_one_worker_delivers_every_event_to_jetstream_redis_and_a_signed_webhook(
    database: str, names: dict[str, str]
) -> None:
    receiver = Receiver(failures=2)  # the first two deliveries get a 500: retried
    env = {
        "DATABASE_URL": database,
        "EVENTS_NATS_URL": NATS_URL,
        "EVENTS_REDIS_URL": REDIS_URL,
        "WEBHOOK_URLS": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        **names,
    }
    try:
        with workers(env) as (worker,):
            ids = write(database, ["ann", "ben"], 20)
            stream = names["EVENTS_NATS_STREAM"]
            messages = wait_for(
                lambda: (m := asyncio.run(jetstream_messages(NATS_URL, stream))) and len(m) >= 20 and m,
                20,
                "20 events in JetStream",
            )
            wait_for(lambda: len(receiver.verified) >= 20, 20, "20 verified webhooks")
            assert worker.stop() == 0
    finally:
        receiver.close()
    envelopes = [e for _, e in messages]
    assert sorted(e["subject"] for e in envelopes) == sorted(ids)
    assert [mid for mid, _ in messages] == [e["id"] for e in envelopes]  # Nats-Msg-Id = event id
    first = envelopes[0]
    assert {k: first[k] for k in ("specversion", "source", "type", "datacontenttype")} == {
        "specversion": "1.0",
        "source": "todo-service",
        "type": "task.created",
        "datacontenttype": "application/json",
    }
    assert first["data"]["task"]["id"] == first["subject"]
    prefix = names["EVENTS_NATS_SUBJECT_PREFIX"]
    subjects, window, subject = asyncio.run(stream_setup(NATS_URL, names["EVENTS_NATS_STREAM"]))
    assert (subjects, subject) == ([f"{prefix}.>"], f"{prefix}.task.created")  # made by the worker
    assert window >= 120  # SPEC §16: one copy per id for at least two minutes
    assert first["data"]["task"]["created_at"].endswith("Z")
    assert contiguous_per_owner(envelopes) == {"ann": list(range(1, 11)), "ben": list(range(1, 11))}
    in_redis = [json.loads(event) for event in redis_events(names["EVENTS_REDIS_STREAM"])]
    assert sorted(e["id"] for e in in_redis) == sorted(e["id"] for e in envelopes)
    assert contiguous_per_owner(in_redis) == contiguous_per_owner(envelopes)  # each owner in order
    hooked = [h["envelope"]["id"] for h in receiver.verified]
    assert sorted(hooked) == sorted(e["id"] for e in envelopes)  # each once, after 2 retries
    assert receiver.refused == 2
    assert all(h["headers"]["webhook-id"] == h["envelope"]["id"] for h in receiver.verified)
    assert outbox_lag(database) is None
    assert "relayed" in worker.output()
    assert "worker stopped" in worker.output()


# -- faults ------------------------------------------------------------------------------------------


def test_no_event_is_lost_while_workers_are_killed_and_the_broker_restarts(
    database: str, names: dict[str, str], tmp_path: Path
) -> None:
    broker = PrivateNats(tmp_path)
    broker.start()
    env = {"DATABASE_URL": database, "EVENTS_NATS_URL": broker.url, **names}
    owners = [f"owner-{n}" for n in range(5)]
    try:
        writer = threading.Thread(target=write, args=(database, owners, 300), kwargs={"pause": 0.01})
        worker = Worker(env).started()
        writer.start()
        time.sleep(1.0)
        worker.kill()  # kill -9 mid-stream
        worker = Worker(env).started()
        time.sleep(1.0)
        broker.stop()  # the broker goes away and comes back with its store
        time.sleep(1.0)
        broker.start()
        time.sleep(1.0)
        worker.kill()  # and once more
        worker = Worker(env).started()
        writer.join(60)
        wait_for(lambda: outbox_lag(database) is None, 60, "the outbox to drain")
        messages = asyncio.run(jetstream_messages(broker.url, names["EVENTS_NATS_STREAM"]))
        assert worker.stop() == 0
    finally:
        broker.stop()
    ids = [mid for mid, _ in messages]
    assert len(ids) == 300
    assert len(set(ids)) == 300  # one copy of each
    sequences = contiguous_per_owner([e for _, e in messages])
    assert sequences == {owner: list(range(1, 61)) for owner in owners}  # no gap, in order


def test_three_workers_at_once_publish_each_event_once_and_in_order(
    database: str, names: dict[str, str]
) -> None:
    receiver = Receiver()
    env = {
        "DATABASE_URL": database,
        "EVENTS_NATS_URL": NATS_URL,
        "WEBHOOK_URLS": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        **names,
    }
    owners = [f"owner-{n}" for n in range(6)]
    try:
        with workers(env, count=3) as running:
            for worker in running:
                worker.started()
            write(database, owners, 240, pause=0.002)
            wait_for(lambda: outbox_lag(database) is None, 60, "the outbox to drain")
            wait_for(lambda: len(receiver.verified) >= 240, 60, "240 webhooks")
            messages = asyncio.run(jetstream_messages(NATS_URL, names["EVENTS_NATS_STREAM"]))
            assert [w.stop() for w in running] == [0, 0, 0]
    finally:
        receiver.close()
    assert len(messages) == 240
    assert len({mid for mid, _ in messages}) == 240
    in_order = {o: list(range(1, 41)) for o in owners}
    assert contiguous_per_owner([e for _, e in messages]) == in_order
    # webhooks too: each owner's deliveries arrive in sequence order, whichever worker sent them
    assert contiguous_per_owner([h["envelope"] for h in receiver.verified]) == in_order
    assert all("worker stopped" in w.output() for w in running)


# -- reminders -----------------------------------------------------------------------------------------


def test_reminders_fire_exactly_once_with_three_workers(database: str, names: dict[str, str]) -> None:
    env = {"DATABASE_URL": database, "EVENTS_NATS_URL": NATS_URL, **names}
    soon = datetime.now(UTC) + timedelta(seconds=3)
    with workers(env, count=3) as running:
        for worker in running:
            worker.started()
        tasks = write(database, ["rita", "sam"], 40, remind_at=soon)
        stream = names["EVENTS_NATS_STREAM"]

        def reminders() -> list[dict[str, Any]]:
            found = asyncio.run(jetstream_messages(NATS_URL, stream))
            return [e for _, e in found if e["type"] == "reminder.due"]

        wait_for(lambda: len(reminders()) >= 40, 30, "40 reminders")
        time.sleep(1.5)  # time for a duplicate to show up, if any
        fired = reminders()
        assert [w.stop() for w in running] == [0, 0, 0]
    assert sorted(e["subject"] for e in fired) == sorted(tasks)  # one per task
    lateness = [
        (datetime.fromisoformat(e["time"]) - datetime.fromisoformat(e["data"]["remind_at"])).total_seconds()
        for e in fired
    ]
    assert max(lateness) < 2.0
    assert all(e["data"]["late"] is False for e in fired)


def test_sigterm_stops_the_worker_cleanly_and_a_new_one_continues(
    database: str, names: dict[str, str]
) -> None:
    env = {"DATABASE_URL": database, "EVENTS_NATS_URL": NATS_URL, **names}
    with workers(env) as (first,):
        write(database, ["tess"], 5)
        wait_for(lambda: outbox_lag(database) is None, 20, "the outbox to drain")
        started = time.monotonic()
        assert first.stop() == 0
        assert time.monotonic() - started < 5
    write(database, ["tess"], 5)
    assert outbox_lag(database) is not None  # nobody relays now
    with workers(env) as (second,):
        wait_for(lambda: outbox_lag(database) is None, 20, "the next worker to catch up")
        assert second.stop() == 0
    messages = asyncio.run(jetstream_messages(NATS_URL, names["EVENTS_NATS_STREAM"]))
    assert contiguous_per_owner([e for _, e in messages]) == {"tess": list(range(1, 11))}


def test_the_worker_runs_on_sqlite(tmp_path: Path, names: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'todo.db'}"
    asyncio.run(_migrate(url))
    env = {"DATABASE_URL": url, "EVENTS_REDIS_URL": REDIS_URL, **names}
    soon = datetime.now(UTC) + timedelta(seconds=1)
    with workers(env) as (worker,):
        write(url, ["uma"], 3, remind_at=soon)
        stream = names["EVENTS_REDIS_STREAM"]
        entries = wait_for(lambda: (e := redis_events(stream)) and len(e) >= 6 and e, 20, "6 entries")
        assert worker.stop() == 0
    kinds = [json.loads(event)["type"] for event in entries]
    assert kinds == ["task.created"] * 3 + ["reminder.due"] * 3


# -- operations ---------------------------------------------------------------------------------------


def todo_api(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(TODO_API), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dead_letters_are_listed_and_replayed_and_the_worker_reports_metrics_and_lag(
    database: str, names: dict[str, str]
) -> None:
    receiver = Receiver(failures=1_000)  # down until told otherwise
    port = free_port()
    env = {
        "DATABASE_URL": database,
        "WEBHOOK_URLS": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_RETRY_HOURS": "0.0005",  # 1.8 s of retries, then a dead letter
        "WORKER_METRICS_PORT": str(port),
        **names,
    }
    try:
        write(database, ["vic"], 2)
        assert "outbox lag: " in todo_api(env, "check")
        assert outbox_lag(database) is not None
        with workers(env) as (worker,):
            worker.started()

            wait_for(lambda: len(dead_letters(database)) == 2, 30, "two dead letters")
            listed = todo_api(env, "events", "dead")
            assert "\n2 dead letters" in listed
            assert "user=vic sequence=1" in listed
            assert "HTTP 500" in listed

            def metrics() -> str | None:  # the lag gauge is refreshed every 5 s
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                return text if "todo_outbox_lag_seconds 0.0" in text else None

            assert 'todo_event_delivery_failures_total{sink="webhook"}' in wait_for(metrics, 15, "metrics")
            receiver.failures = 0  # the endpoint is back
            assert "2 dead letters are due again" in todo_api(env, "events", "replay")
            wait_for(lambda: len(receiver.verified) == 2, 20, "the replayed deliveries")
            assert worker.stop() == 0
        assert todo_api(env, "events", "dead").startswith("0 dead letters")
        assert "outbox lag: none" in todo_api(env, "check")
    finally:
        receiver.close()
    assert sorted(int(h["envelope"]["sequence"]) for h in receiver.verified) == [1, 2]


def test_the_worker_refuses_an_in_memory_store() -> None:
    done = subprocess.run(
        [str(TODO_API), "worker"],
        env={**os.environ, "DATABASE_URL": "memory://"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "memory://" in done.stderr
