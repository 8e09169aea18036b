"""Benchmark of the tasks API on PostgreSQL (SPEC §10). Run: `make bench` (≈ 5 minutes).

Creates a throwaway database, seeds it with the service's own mapping code (owners with 100,
10,000 and 100,000 tasks, plus a working set), starts `todo-api serve` (1 worker, then 2), and
drives it with wrk (`apt-get install wrk`; bench/wrk.lua describes each scenario to it). Without
wrk it falls back to a minimal keep-alive HTTP/1.1 client on raw asyncio sockets, which shares
the 2 cores with the server and so reports lower figures. Prints a table and writes
bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from todo_adapters.auth import mint_token
from todo_adapters.sql import DatabaseConfig, create_engine
from todo_adapters.sql.migrate import migrate
from todo_adapters.sql.rows import task_to_row
from todo_adapters.sql.tables import owners
from todo_domain import NewTask, Placement, Priority, Status, Task, Uuid7Generator, positions
from todo_domain.sync import ChangeToken

ROOT = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-" + "x" * 40
# The server and worker under test: `make bench` runs them from a production install
# (BENCH_TODO_API); by default the todo-api beside this interpreter.
TODO_API = Path(os.environ.get("BENCH_TODO_API") or Path(sys.executable).parent / "todo-api").resolve()
SERVER_SHOWN = os.path.relpath(TODO_API, ROOT.parent)  # what the report says it ran


# -- a minimal HTTP/1.1 keep-alive client --------------------------------------------------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index] * 1000


@dataclass
class Scenario:
    """Requests of one kind. Each connection takes one (token, ids) line of `plan` (round
    robin): "{id}" in the path and the body becomes one of the line's ids, "{n}" in the body
    a counter; `headers` are sent besides Content-Type and Authorization."""

    name: str
    method: str
    path: str
    plan: list[tuple[str, list[str]]]
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


# MCP get_task over Streamable HTTP, as the current SDK sends it (protocol 2026-07-28: one
# self-contained POST, the envelope in `_meta` and mirrored in headers), and as handshake-era
# clients (the mcp 1.x line, 2025-06-18) send it once initialized: stateless, JSON answers.
MCP_ENVELOPE = (
    '"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", '
    '"io.modelcontextprotocol/clientCapabilities": {}}'
)
MCP_HEADERS = (
    ("Accept", "application/json, text/event-stream"),
    ("Mcp-Protocol-Version", "2026-07-28"),
    ("Mcp-Method", "tools/call"),
    ("Mcp-Name", "get_task"),
)
MCP_GET_TASK = (
    '{"jsonrpc": "2.0", "id": {n}, "method": "tools/call", '
    '"params": {"name": "get_task", "arguments": {"task_id": "{id}"}, ' + MCP_ENVELOPE + "}}"
)
MCP_V1_HEADERS = (("Accept", "application/json, text/event-stream"), ("Mcp-Protocol-Version", "2025-06-18"))
MCP_V1_GET_TASK = (
    '{"jsonrpc": "2.0", "id": {n}, "method": "tools/call", '
    '"params": {"name": "get_task", "arguments": {"task_id": "{id}"}}}'
)


WRK = shutil.which("wrk")


async def drive(port: int, scenario: Scenario, concurrency: int, seconds: float) -> Result:
    if WRK is not None:
        return await drive_wrk(port, scenario, concurrency, seconds)
    return await drive_python(port, scenario, concurrency, seconds)


async def drive_wrk(
    port: int, scenario: Scenario, concurrency: int, seconds: float, *, interval_ms: float | None = None
) -> Result:
    """wrk (C, its own process); "{id}"/"{n}" are filled in by bench/wrk.lua; `interval_ms`
    paces each connection by a schedule (one request per interval, whatever the latency)."""
    with tempfile.TemporaryDirectory() as folder:
        plan, out = Path(folder) / "plan.tsv", Path(folder) / "out.json"
        plan.write_text("".join(f"{token}\t{','.join(ids)}\n" for token, ids in scenario.plan))
        env = {
            **os.environ,
            "BENCH_PLAN": str(plan),
            "BENCH_OUT": str(out),
            "BENCH_METHOD": scenario.method,
            "BENCH_PATH": scenario.path,
            "BENCH_BODY": scenario.body,
            "BENCH_HEADERS": "\n".join(f"{name}: {value}" for name, value in scenario.headers),
            **({} if interval_ms is None else {"BENCH_INTERVAL_MS": str(interval_ms)}),
        }
        duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
        # One wrk thread per connection: each connection keeps its user, and no connection
        # waits behind another's response inside the client (which fewer threads showed as
        # longer tails, measured both ways).
        process = await asyncio.create_subprocess_exec(
            str(WRK), f"-t{concurrency}", f"-c{concurrency}", duration, "--timeout", "10s",
            "-s", str(ROOT / "wrk.lua"), f"http://127.0.0.1:{port}", env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if await process.wait() != 0:
            raise RuntimeError(f"wrk failed for {scenario.name}")
        data = json.loads(out.read_text())
    return Result(
        scenario.name, concurrency, data["requests"], data["http_errors"] + data["socket_errors"],
        data["requests"] / data["seconds"],
        data["p50_us"] / 1000, data["p95_us"] / 1000, data["p99_us"] / 1000,
    )  # fmt: skip


async def drive_python(port: int, scenario: Scenario, concurrency: int, seconds: float) -> Result:
    """The fallback without wrk: `concurrency` asyncio connections, requests back to back.
    It shares the CPU with the server, so its figures are lower than wrk's."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        token, ids = scenario.plan[w % len(scenario.plan)]
        headers = {"Content-Type": "application/json", **dict(scenario.headers)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection = await Connection.open(port)
        i = 0
        try:
            while time.perf_counter() < deadline:
                task_id = random.choice(ids) if ids else ""
                path = scenario.path.replace("{id}", task_id)
                body = scenario.body.replace("{n}", str(i)).replace("{id}", task_id).encode()
                started = time.perf_counter()
                status, _ = await connection.request(scenario.method, path, headers, body)
                latencies.append(time.perf_counter() - started)
                errors += status >= 400
                i += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        scenario.name, concurrency, len(latencies), errors, len(latencies) / elapsed,
        percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99),
    )  # fmt: skip


# -- database and seeding ---------------------------------------------------------------------------


async def admin(statement: str, url: str = ADMIN_URL) -> None:
    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://"), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as connection:
        await connection.execute(sa.text(statement))
    await engine.dispose()


async def copy(connection: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """COPY through asyncpg: seeding 100,000 rows takes seconds, not minutes."""
    if not rows:
        return
    raw = await connection.get_raw_connection()
    columns = list(rows[0])
    records = [tuple(row[c] for c in columns) for row in rows]
    await raw.driver_connection.copy_records_to_table(table, records=records, columns=columns)


async def seed(url: str, plan: dict[str, int]) -> dict[str, list[str]]:
    """Rows made by the domain (Task.create) and mapped by the SQL adapter, bulk-inserted."""
    engine = create_engine(DatabaseConfig(url))
    await migrate(engine)
    ids = Uuid7Generator()
    rng = random.Random(7)
    now = datetime.now(UTC)
    made: dict[str, list[str]] = {}
    all_tags: list[dict[str, Any]] = []
    async with engine.begin() as connection:
        for owner, count in plan.items():
            made[owner] = []
            # The growth owners' tasks are all active, so that the filtered first page holds
            # 100 tasks at every size (the 100-task owner would otherwise show a shorter page).
            statuses = [Status.PENDING, Status.PENDING, Status.IN_PROGRESS]
            if not owner.startswith("owner-"):
                statuses.append(Status.COMPLETED)
            by_status = dict.fromkeys(Status, 0)
            keys = positions.spread(count)  # all top level, in creation order
            for start in range(0, count, 1000):
                rows, tag_rows = [], []
                for n in range(start, min(count, start + 1000)):
                    draft = NewTask(
                        title=f"Task {n} {rng.choice(['milk', 'report', 'call', 'gym'])}",
                        priority=rng.choice(list(Priority)),
                        status=rng.choice(statuses),
                        tags=rng.sample(["home", "work", "errands", "later"], rng.randint(0, 2)),
                        due_date=None if n % 3 == 0 else now + timedelta(days=rng.randint(-30, 60)),
                    )
                    created = now - timedelta(seconds=count - n)
                    task = Task.create(ids.new_id(), owner, draft, created, Placement(None, keys[n]))
                    by_status[task.status] += 1
                    rows.append({**task_to_row(task), "revision": n + 1})
                    tag_rows += [{"user_id": owner, "task_id": task.id, "tag": t} for t in task.tags]
                    made[owner].append(str(task.id))
                await copy(connection, "tasks", rows)
                all_tags += tag_rows
            await connection.execute(
                owners.insert().values(
                    user_id=owner,
                    revision=count,
                    purged_revision=0,
                    pending_count=by_status[Status.PENDING],
                    in_progress_count=by_status[Status.IN_PROGRESS],
                    completed_count=by_status[Status.COMPLETED],
                )
            )
        # Statistics first: the foreign-key checks of the tag rows would otherwise keep the
        # sequential-scan plan they chose while `tasks` was empty.
        await connection.execute(sa.text("ANALYZE tasks"))
        await copy(connection, "task_tags", all_tags)
        await connection.execute(sa.text("ANALYZE"))
    await engine.dispose()
    return made


# -- the server ---------------------------------------------------------------------------------------


def start_server(url: str, port: int, workers: int, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "RATE_LIMIT_ENABLED": "false",  # the limits would (rightly) refuse a benchmark
        "BENCH_ENDPOINT": "true",
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "40",  # ≥ the concurrency: overflow connections are closed on return (churn)
        "HTTP_MAX_CONNECTIONS": "5000",  # each open event stream holds a connection
        **extra,
    }
    process = subprocess.Popen(
        [str(TODO_API), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket_to(port):
                return process
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


class socket_to:  # noqa: N801  (a tiny context manager)
    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        self.sock.close()


def rss_mb(process: subprocess.Popen[bytes], field: str = "VmHWM") -> float:
    """The largest VmHWM (peak) or VmRSS (now) among the server's processes, in MB."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    largest = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                largest = max(largest, int(line.split()[1]))
    return largest / 1024


# -- scenarios ------------------------------------------------------------------------------------------


def token(owner: str) -> str:
    return mint_token(SECRET, owner, ttl_seconds=7200)


async def scenarios(
    port: int, made: dict[str, list[str]], seconds: float, rounds: int, growth: bool, only: list[str]
) -> list[Result]:
    results: list[Result] = []
    reader = [(token("bench"), made["bench"])]
    writers = [(token(f"writer-{w}"), made[f"writer-{w}"]) for w in range(32)]  # one user each

    async def run(*group: Scenario) -> None:
        """Scenarios compared with each other take turns round by round, so a slow moment of
        the shared box falls on all of them rather than on one."""
        group = tuple(s for s in group if not only or any(word in s.name for word in only))
        for scenario in group:
            if scenario.path == "/mcp":
                await check_tool_call(port, scenario)
        for concurrency in (1, 32):
            runs: list[list[Result]] = [[] for _ in group]
            for _ in range(rounds):
                for scenario, done in zip(group, runs, strict=True):
                    done.append(await drive(port, scenario, concurrency, seconds))
            for done in runs:
                results.append(median_of(done))
                print(format_row(results[-1]), flush=True)

    await run(Scenario("bare endpoint", "GET", "/_bench/hello", [("", [])]))
    await run(
        Scenario("get one", "GET", "/api/tasks/{id}", reader),
        Scenario("mcp get_task", "POST", "/mcp", reader, MCP_GET_TASK, MCP_HEADERS),
        Scenario("mcp get_task, 2025-06-18", "POST", "/mcp", reader, MCP_V1_GET_TASK, MCP_V1_HEADERS),
    )
    await run(Scenario("list first 100 (filtered)", "GET", "/api/tasks?status=active&limit=100", reader))
    await run(Scenario("list 1,000", "GET", "/api/tasks?limit=1000", reader))
    await run(Scenario("create", "POST", "/api/tasks", writers, '{"title": "new {n}", "tags": ["bench"]}'))
    await run(Scenario("patch", "PATCH", "/api/tasks/{id}", writers, '{"title": "edit {n}"}'))
    # No body toggles: every request is a write (completing a completed task would be a no-op).
    await run(Scenario("complete", "PATCH", "/api/tasks/{id}/complete", writers))
    # The bench owner is never written to, so its revision stays at its task count: a token at
    # that revision polls a caught-up feed (empty page), one 100 behind reads a page of 100.
    issued = datetime.now(UTC)
    caught_up = ChangeToken(len(made["bench"]), issued).encode()
    behind = ChangeToken(len(made["bench"]) - 100, issued).encode()
    await run(Scenario("changes, caught up", "GET", f"/api/tasks/changes?since={caught_up}", reader))
    await run(Scenario("changes, page of 100", "GET", f"/api/tasks/changes?since={behind}&limit=100", reader))
    if growth:
        for owner in ("owner-100", "owner-10000", "owner-100000"):
            plan = [(token(owner), random.Random(owner).sample(made[owner], min(5000, len(made[owner]))))]
            size = owner.removeprefix("owner-")
            await run(Scenario(f"get one @ {size} tasks", "GET", "/api/tasks/{id}", plan))
            await run(
                Scenario(f"first page @ {size} tasks", "GET", "/api/tasks?status=active&limit=100", plan)
            )
    return results


async def check_tool_call(port: int, scenario: Scenario) -> None:
    """wrk counts HTTP statuses only, and a failed tool call is a 200: try one call first."""
    token, ids = scenario.plan[0]
    headers = {**dict(scenario.headers), "Authorization": f"Bearer {token}"}
    headers["Content-Type"] = "application/json"
    body = scenario.body.replace("{id}", ids[0]).replace("{n}", "1")
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"http://127.0.0.1:{port}/mcp", content=body, headers=headers)
    if answer.status_code != 200 or answer.json()["result"]["isError"]:
        raise RuntimeError(f"{scenario.name}: the tool call fails: {answer.status_code} {answer.text[:300]}")


# -- batches (SPEC §20: 1,000 creates in one batch ≤ 300 ms; 10,000 in 10 batches ≤ 5 s) -----------


def _creates(prefix: str, count: int) -> dict[str, Any]:
    commands = [
        {"id": f"{prefix}-{n}", "op": "create", "body": {"title": f"imported {n}"}} for n in range(count)
    ]
    return {"commands": commands}


async def batches(port: int) -> dict[str, float]:
    """Wall-clock times of imports, next to the same creates as single POSTs (32 at a time,
    from this process: the Python client shares the 2 cores, so that row is pessimistic)."""
    base = f"http://127.0.0.1:{port}/api/tasks"
    timings: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=120) as client:
        one_batch = []
        for run in range(3):
            headers = {"Authorization": f"Bearer {token(f'import-{run}')}"}
            started = time.perf_counter()
            response = await client.post(f"{base}/batch", json=_creates(f"r{run}", 1000), headers=headers)
            one_batch.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        timings["1,000 creates in one batch (median of 3), ms"] = 1000 * statistics.median(one_batch)
        headers = {"Authorization": f"Bearer {token('import-10k')}"}
        started = time.perf_counter()
        for n in range(10):
            response = await client.post(f"{base}/batch", json=_creates(f"b{n}", 1000), headers=headers)
            assert response.status_code == 200, response.text
        timings["10,000 creates in 10 batches, s"] = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {token('import-single')}"}
        gate = asyncio.Semaphore(32)

        async def post(n: int) -> None:
            async with gate:
                answer = await client.post(base, json={"title": f"single {n}"}, headers=headers)
                assert answer.status_code == 201, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(post(n) for n in range(1000)))
        timings["1,000 single POSTs at c=32, ms"] = 1000 * (time.perf_counter() - started)
    for name, value in timings.items():
        print(f"{name:48} {value:9.1f}", flush=True)
    return timings


class _Follower:
    """One raw-socket event stream (an httpx client per stream would measure the client): it
    waits for `ready`, then records when each task id arrives."""

    def __init__(self, port: int, owner: str) -> None:
        self.port, self.owner = port, owner
        self.arrived: dict[str, float] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = (
            f"GET /api/tasks/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token(self.owner)}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        self._writer = writer
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream of {self.owner}: {status.decode().strip()}")
        self._task = asyncio.create_task(self._read(reader))
        await asyncio.wait_for(self.ready.wait(), 60)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        event = ""
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
                if event == "ready":
                    self.ready.set()
            elif text.startswith("data: ") and event == "task":
                self.arrived[json.loads(text[6:])["id"]] = time.perf_counter()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._writer.close()


async def streams(
    url: str, port: int, process: subprocess.Popen[bytes], total: int = 2000
) -> dict[str, float]:
    """SPEC §20's fan-out rows: 2,000 open streams on one worker (RSS growth), then write →
    event latency with 1,000 streams open on this instance and 1,000 on another one (each write
    timed from the moment its POST is sent, so the write's own latency is included)."""
    other_port = port + 100
    # PostgreSQL here allows 100 connections: the second instance gets a smaller pool
    other = start_server(url, other_port, 1, DB_POOL_SIZE="20", DB_MAX_OVERFLOW="0")
    figures: dict[str, float] = {}
    here: list[_Follower] = []
    there: list[_Follower] = []
    try:
        await asyncio.sleep(1)
        before = rss_mb(process, "VmRSS")
        here = [_Follower(port, f"stream-{n}") for n in range(total)]
        for start in range(0, len(here), 200):  # 200 at a time: the backlog of one accept loop
            await asyncio.gather(*(f.open() for f in here[start : start + 200]))
        await asyncio.sleep(2)
        figures[f"{total:,} open streams: extra RSS, MB"] = rss_mb(process, "VmRSS") - before
        half = total // 2
        for follower in here[half:]:
            follower.close()
        here = here[:half]
        there = [_Follower(other_port, f.owner) for f in here]
        for start in range(0, len(there), 200):
            await asyncio.gather(*(f.open() for f in there[start : start + 200]))
        sent: dict[str, tuple[float, int]] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            for n in range(300):  # about 50 writes/s, to random followed owners
                who = random.randrange(len(here))
                started = time.perf_counter()
                made = await client.post(
                    f"http://127.0.0.1:{port}/api/tasks",
                    json={"title": f"fan-out {n}"},
                    headers={"Authorization": f"Bearer {token(here[who].owner)}"},
                )
                assert made.status_code == 201, made.text
                sent[made.json()["id"]] = (started, who)
                await asyncio.sleep(0.02)
        await asyncio.sleep(2)
        for name, side in (("same", here), ("other", there)):
            delays = sorted(
                side[who].arrived[task_id] - started
                for task_id, (started, who) in sent.items()
                if task_id in side[who].arrived
            )
            missing = len(sent) - len(delays)
            figures[f"write → event, {name} instance ({half:,} streams), p50 ms"] = percentile(delays, 50)
            figures[f"write → event, {name} instance ({half:,} streams), p99 ms"] = percentile(delays, 99)
            figures[f"events missing, {name} instance"] = float(missing)
    finally:
        for follower in here + there:
            follower.close()
        other.terminate()
        other.wait(30)
    for name, value in figures.items():
        print(f"{name:60} {value:9.1f}", flush=True)
    return figures


# -- events out and reminders (SPEC §20) ---------------------------------------------------------

NATS_URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")


def start_worker(url: str, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": url,
        "AUTH_JWT_SECRET": SECRET,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    return subprocess.Popen([str(TODO_API), "worker"], env=env, stdout=subprocess.DEVNULL)


async def seed_reminders(url: str, armed: int, due: int, at: datetime) -> None:
    """`armed` tasks with a reminder a day or more away, and `due` more whose reminders all fall
    in the second starting at `at`, over 100 owners, bulk-inserted like `seed`."""
    engine = create_engine(DatabaseConfig(url))
    ids, later = Uuid7Generator(), at + timedelta(days=1)
    counts: dict[str, int] = {}
    async with engine.begin() as connection:
        rows: list[dict[str, Any]] = []
        for n in range(armed + due):
            owner = f"remind-{n % 100}"
            counts[owner] = counts.get(owner, 0) + 1
            remind_at = (
                at + timedelta(microseconds=n * 997 % 1_000_000) if n < due else later + timedelta(seconds=n)
            )
            draft = NewTask(title=f"reminder {n}", remind_at=remind_at)
            task = Task.create(
                ids.new_id(), owner, draft, at - timedelta(hours=1), Placement(None, f"a{n:08d}")
            )
            rows.append({**task_to_row(task), "revision": counts[owner]})
            if len(rows) == 5000:
                await copy(connection, "tasks", rows)
                rows = []
        await copy(connection, "tasks", rows)
        for owner, count in counts.items():
            await connection.execute(
                owners.insert().values(user_id=owner, revision=count, purged_revision=0, pending_count=count)
            )
        await connection.execute(sa.text("ANALYZE tasks"))
    await engine.dispose()


async def events(url: str, port: int) -> dict[str, float]:
    """SPEC §20's outbox and reminder rows, with one `todo-api worker` relaying to JetStream:
    relay throughput on a backlog of 30,000 events; write → JetStream latency while the API
    takes about 500 creates/s (wrk, 32 connections each pausing 55 ms after every answer); and
    1,000 reminders due in the same second among 100,000 armed ones (lateness = recorded time −
    remind_at)."""
    import nats
    from nats.js.errors import NotFoundError

    from todo_adapters.sql import SqlStore
    from todo_domain import TaskService
    from todo_domain.batch import Command, Op

    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"BENCH_{tag}", f"bench{tag}.events"
    figures: dict[str, float] = {}
    await admin("UPDATE events SET published_at = now() WHERE published_at IS NULL", url)  # the scenarios'
    async with SqlStore.from_url(url) as store:
        service = TaskService(store)
        for b in range(30):
            commands = [
                Command(id=f"c{n}", op=Op.CREATE, draft=NewTask(title=f"backlog {n}")) for n in range(1000)
            ]
            await service.run_batch(f"relay-{b}", commands)
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    worker = start_worker(
        url, EVENTS_NATS_URL=NATS_URL, EVENTS_NATS_STREAM=stream, EVENTS_NATS_SUBJECT_PREFIX=prefix
    )
    try:
        first: float | None = None
        count = 0
        deadline = time.monotonic() + 120
        while count < 30_000 and time.monotonic() < deadline:
            try:
                count = (await js.stream_info(stream)).state.messages
            except NotFoundError:
                count = 0
            if count and first is None:
                first, first_count = time.perf_counter(), count
            await asyncio.sleep(0.05)
        if first is None or count < 30_000:
            raise RuntimeError(f"only {count} events reached JetStream")
        figures["relay to JetStream (30,000 backlog), events/s"] = (count - first_count) / (
            time.perf_counter() - first
        )

        # Each create's delay: its arrival here minus its `created_at` (the server's clock, the
        # same machine), so the row covers commit → outbox → worker → JetStream → consumer.
        delays: list[float] = []

        async def heard(message: Any) -> None:
            envelope = json.loads(message.data)
            if envelope["userid"].startswith("latency-"):
                created = datetime.fromisoformat(envelope["data"]["task"]["created_at"])
                delays.append(time.time() - created.timestamp())

        subscription = await client.subscribe(f"{prefix}.task.created", cb=heard)
        # 32 connections (users), each sending one create every 64 ms: 500 writes/s offered
        # (SPEC §20), by schedule, so a slower answer does not lower the rate it offers.
        lanes, seconds, rate = 32, 10, 500
        plan = [(token(f"latency-{k}"), list[str]()) for k in range(lanes)]
        paced = Scenario("paced create", "POST", "/api/tasks", plan, '{"title": "latency {n}"}')
        if WRK is not None:
            result = await drive_wrk(port, paced, lanes, seconds, interval_ms=1000 * lanes / rate)
        else:  # the Python client cannot pace: back to back, so the rate is whatever it reaches
            result = await drive_python(port, paced, lanes, seconds)
        await asyncio.sleep(3)
        await subscription.unsubscribe()
        delays.sort()
        figures["writes/s (32 paced connections)"] = result.throughput
        figures["write p99 ms (the POST itself)"] = result.p99_ms
        figures["write → JetStream, p50 ms"] = percentile(delays, 50)
        figures["write → JetStream, p99 ms"] = percentile(delays, 99)
        # wrk does not count the requests still in flight when it stops; their events arrive
        figures["write → JetStream, events missing"] = float(
            max(0, result.requests - result.errors - len(delays))
        )

        remind_at = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
        await seed_reminders(url, 99_000, 1_000, remind_at)
        await asyncio.sleep(max(0.0, (remind_at - datetime.now(UTC)).total_seconds() + 5))
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.text(
                        "SELECT extract(epoch FROM occurred_at - remind_at) FROM events "
                        "WHERE type = 'reminder.due' AND user_id LIKE 'remind-%'"
                    )
                )
            ).all()
        await engine.dispose()
        lateness = sorted(float(r[0]) for r in rows)
        figures["reminders fired (1,000 due in one second, 100,000 armed)"] = float(len(lateness))
        figures["reminder lateness p50 s"] = percentile(lateness, 50) / 1000
        figures["reminder lateness p99 s"] = percentile(lateness, 99) / 1000
    finally:
        worker.terminate()
        worker.wait(30)
        try:
            await js.delete_stream(stream)
        finally:
            await client.close()
    for name, value in figures.items():
        print(f"{name:60} {value:9.2f}", flush=True)
    return figures


def median_of(runs: list[Result]) -> Result:
    """Each figure's median over the rounds: one slow moment of the shared machine does not
    decide a row (requests and errors are summed)."""
    first = runs[0]
    return Result(
        first.name, first.concurrency, sum(r.requests for r in runs), sum(r.errors for r in runs),
        statistics.median(r.throughput for r in runs), statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p95_ms for r in runs), statistics.median(r.p99_ms for r in runs),
    )  # fmt: skip


async def warm_up(port: int, made: dict[str, list[str]]) -> None:
    """Not reported: fills the pools and caches so the first scenario is not penalised."""
    plan = [(token("bench"), made["bench"])]
    await drive(port, Scenario("warm-up", "GET", "/api/tasks/{id}", plan), 32, 2.0)
    await drive(port, Scenario("warm-up", "GET", "/api/tasks?limit=100", plan), 32, 1.0)


async def soak(port: int, made: dict[str, list[str]]) -> int:
    """At least 100,000 more reads and writes, so the RSS before and after shows any growth."""
    reader = [(token("bench"), made["bench"])]
    writers = [(token(f"writer-{w}"), made[f"writer-{w}"]) for w in range(32)]
    mix = [
        Scenario("soak get", "GET", "/api/tasks/{id}", reader),
        Scenario("soak page", "GET", "/api/tasks?status=active&limit=100", reader),
        Scenario("soak patch", "PATCH", "/api/tasks/{id}", writers, '{"title": "soak {n}"}'),
    ]
    served = 0
    while served < 100_000:
        for scenario in mix:
            served += (await drive(port, scenario, 32, 5)).requests
    return served


def markdown(report: dict[str, Any]) -> str:
    """The README's tables, from a report."""
    runs = report["runs"]
    one = {(r["name"], r["concurrency"]): r for r in runs.get("1_worker", {}).get("results", [])}
    two = {(r["name"], r["concurrency"]): r for r in runs.get("2_worker", {}).get("results", [])}
    bare = one.get(("bare endpoint", 32), {}).get("throughput") or float("nan")
    lines = [
        f"Measured {report['date'][:10]} ({report['machine']}; load generator: {report['load_generator']}; "
        f"server: {report.get('server', 'todo-api')}).",
        "",
        "| operation | c=1 req/s | c=1 p50 / p95 / p99 ms | c=32 req/s | c=32 p50 / p95 / p99 ms "
        "| % of bare (c=32) | 2 workers c=32 req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    names = [name for (name, c) in one if c == 1 and "@" not in name]
    for name in names:
        low, high = one[(name, 1)], one.get((name, 32))
        if high is None:
            continue
        pair = two.get((name, 32))
        paired = f"{pair['throughput']:.0f}" if pair else "–"
        lines.append(
            f"| {name} | {low['throughput']:.0f} | {_ms(low)} | {high['throughput']:.0f} | {_ms(high)} "
            f"| {100 * high['throughput'] / bare:.0f} % | {paired} |"
        )
    lines += [
        "",
        "| tasks of the owner | get one c=1 p50 ms | get one c=32 req/s | first page c=1 p50 ms "
        "| first page c=32 req/s |",
        "|---|---|---|---|---|",
    ]
    for size in ("100", "10000", "100000"):
        get1, get32 = one.get((f"get one @ {size} tasks", 1)), one.get((f"get one @ {size} tasks", 32))
        page1, page32 = (
            one.get((f"first page @ {size} tasks", 1)),
            one.get((f"first page @ {size} tasks", 32)),
        )
        if get1 and get32 and page1 and page32:
            lines.append(
                f"| {int(size):,} | {get1['p50_ms']:.2f} | {get32['throughput']:.0f} "
                f"| {page1['p50_ms']:.2f} | {page32['throughput']:.0f} |"
            )
    if report.get("batches"):
        lines += ["", "| import (1 worker) | measured |", "|---|---|"]
        lines += [f"| {name} | {value:,.1f} |" for name, value in report["batches"].items()]
    if report.get("streams"):
        lines += ["", "| live stream (1 worker per instance) | measured |", "|---|---|"]
        lines += [f"| {name} | {value:,.1f} |" for name, value in report["streams"].items()]
    if report.get("events"):
        lines += ["", "| events out (1 API worker, 1 `todo-api worker`) | measured |", "|---|---|"]
        lines += [f"| {name} | {value:,.2f} |" for name, value in report["events"].items()]
    for key, run in runs.items():
        lines.append(
            f"\n{key.replace('_', ' ')}: peak RSS {run['peak_rss_mb']:.0f} MB per process "
            f"({run['peak_rss_serving_requests_mb']:.0f} MB before the import, stream and event rows); RSS "
            f"{run['rss_after_warm_up_mb']:.0f} MB after warm-up, {run['rss_at_end_mb']:.0f} MB after "
            f"{run['requests_after_warm_up']:,} requests"
            + (
                f"; {run['rss_before_soak_mb']:.0f} MB before {run['soak_requests']:,} more, "
                f"{run['rss_after_soak_mb']:.0f} MB after."
                if run.get("soak_requests")
                else "."
            )
        )
    return "\n".join(lines) + "\n"


def _ms(result: dict[str, Any]) -> str:
    return " / ".join(
        f"{result[k]:.1f}" if result[k] >= 10 else f"{result[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms")
    )


def format_row(r: Result) -> str:
    return (
        f"{r.name:34} c={r.concurrency:<3} {r.throughput:9.0f}/s  p50 {r.p50_ms:7.2f} ms  "
        f"p95 {r.p95_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3, help="per scenario and concurrency (median kept)")
    parser.add_argument("--quick", action="store_true", help="skip the 100,000-task owner")
    parser.add_argument("--only", nargs="*", default=[], help="scenarios whose name contains a word")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="server processes")
    args = parser.parse_args()
    name = f"todo_bench_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        plan = {"bench": 1000, "owner-100": 100, "owner-10000": 10_000}
        if not args.quick:
            plan["owner-100000"] = 100_000
        plan.update({f"writer-{w}": 50 for w in range(32)})
        started = time.perf_counter()
        made = await seed(url, plan)
        await admin("VACUUM ANALYZE", url)  # or autovacuum would wake up during the runs
        await admin("CHECKPOINT", url)  # and the seeding's dirty pages would be flushed mid-run
        print(f"seeded {sum(plan.values()):,} tasks in {time.perf_counter() - started:.1f} s", flush=True)
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_generator": "wrk" if WRK else "python asyncio client",
            "server": SERVER_SHOWN,
            "runs": {},
        }
        for workers in args.workers:
            port = 18000 + workers
            process = start_server(url, port, workers)
            try:
                print(f"\n== {workers} worker(s) ==", flush=True)
                await warm_up(port, made)
                warm_rss = rss_mb(process, "VmRSS")
                results = await scenarios(
                    port, made, args.seconds, args.rounds, workers == 1 and not args.quick, args.only
                )
                # §10's memory row is about serving requests: its peak is read before the
                # import, stream (2,000 open streams) and event rows add theirs.
                end_rss, requests_peak = rss_mb(process, "VmRSS"), rss_mb(process)
                served = sum(r.requests for r in results)
                if workers == 1 and (not args.only or "batch" in args.only):
                    report["batches"] = await batches(port)
                if workers == 1 and (not args.only or "stream" in args.only):
                    report["streams"] = await streams(url, port, process)
                if workers == 1 and (not args.only or "events" in args.only):
                    report["events"] = await events(url, port)
                pre_soak_rss = rss_mb(process, "VmRSS")
                soaked = await soak(port, made) if workers == 1 and not args.quick else 0
                rss, soak_rss = rss_mb(process), rss_mb(process, "VmRSS")
                print(
                    f"peak RSS per process: {rss:.0f} MB ({requests_peak:.0f} MB before the import, "
                    f"stream and event rows); RSS after warm-up {warm_rss:.0f} MB, "
                    f"after {served:,} more requests {end_rss:.0f} MB"
                    + (
                        f"; {pre_soak_rss:.0f} MB before {soaked:,} more, {soak_rss:.0f} MB after"
                        if soaked
                        else ""
                    ),
                    flush=True,
                )
            finally:
                process.terminate()
                process.wait(30)
            report["runs"][f"{workers}_worker"] = {
                "results": [asdict(r) for r in results],
                "peak_rss_mb": rss,
                "peak_rss_serving_requests_mb": requests_peak,
                "rss_before_soak_mb": pre_soak_rss,
                "rss_after_warm_up_mb": warm_rss,
                "rss_at_end_mb": end_rss,
                "requests_after_warm_up": served,
                "soak_requests": soaked,
                "rss_after_soak_mb": soak_rss,
            }
        out = ROOT / "results"
        out.mkdir(exist_ok=True)
        (out / "latest.json").write_text(json.dumps(report, indent=2))
        (out / "latest.md").write_text(markdown(report))
        print(f"\nwrote {out / 'latest.json'} and {out / 'latest.md'}")
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
