"""Benchmark of the tasks API on PostgreSQL (SPEC §10). Run: `make bench` (≈ 5 minutes).

Creates a throwaway database, seeds it with the service's own mapping code (owners with 100,
10,000 and 100,000 tasks, plus a working set), starts `todo-api serve` (1 worker, then 2), and
drives it from this process with a minimal keep-alive HTTP/1.1 client written on raw asyncio
sockets (so the load generator costs far less than the server: it drives the bare endpoint
well past the server's ceiling). Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from todo_adapters.auth import mint_token
from todo_adapters.sql import DatabaseConfig, create_engine
from todo_adapters.sql.migrate import migrate
from todo_adapters.sql.rows import task_to_row
from todo_adapters.sql.tables import owners
from todo_domain import NewTask, Priority, Status, Task, Uuid7Generator

ROOT = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-" + "x" * 40
TODO_API = Path(sys.executable).parent / "todo-api"


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


Request = tuple[str, str, dict[str, str], bytes]


async def drive(port: int, name: str, concurrency: int, seconds: float, make: Any) -> Result:
    """`concurrency` connections, each sending make(worker, i) requests back to back."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        connection = await Connection.open(port)
        i = 0
        try:
            while time.perf_counter() < deadline:
                method, path, headers, body = make(w, i)
                started = time.perf_counter()
                status, _ = await connection.request(method, path, headers, body)
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
        name, concurrency, len(latencies), errors, len(latencies) / elapsed,
        percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99),
    )  # fmt: skip


# -- database and seeding ---------------------------------------------------------------------------


async def admin(statement: str) -> None:
    engine = create_async_engine(
        ADMIN_URL.replace("postgresql://", "postgresql+asyncpg://"), isolation_level="AUTOCOMMIT"
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
            by_status = dict.fromkeys(Status, 0)
            for start in range(0, count, 1000):
                rows, tag_rows = [], []
                for n in range(start, min(count, start + 1000)):
                    draft = NewTask(
                        title=f"Task {n} {rng.choice(['milk', 'report', 'call', 'gym'])}",
                        priority=rng.choice(list(Priority)),
                        status=rng.choice(
                            [Status.PENDING, Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED]
                        ),
                        tags=rng.sample(["home", "work", "errands", "later"], rng.randint(0, 2)),
                        due_date=None if n % 3 == 0 else now + timedelta(days=rng.randint(-30, 60)),
                    )
                    task = Task.create(ids.new_id(), owner, draft, now - timedelta(seconds=count - n))
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


def start_server(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
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


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    peak = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


# -- scenarios ------------------------------------------------------------------------------------------


def auth(owner: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint_token(SECRET, owner, ttl_seconds=7200)}",
        "Content-Type": "application/json",
    }


async def scenarios(
    port: int, made: dict[str, list[str]], seconds: float, growth: bool, only: list[str]
) -> list[Result]:
    results: list[Result] = []
    reader = auth("bench")
    writers = [auth(f"writer-{w}") for w in range(32)]  # concurrent writers are different users
    writer_tasks: dict[int, list[str]] = {}
    bench_ids = made["bench"]

    async def run(name: str, make: Any, levels: tuple[int, ...] = (1, 32)) -> None:
        if only and not any(word in name for word in only):
            return
        for concurrency in levels:
            results.append(await drive(port, name, concurrency, seconds, make))
            print(format_row(results[-1]), flush=True)

    await run("bare endpoint", lambda w, i: ("GET", "/_bench/hello", {}, b""))
    await run("get one", lambda w, i: ("GET", f"/api/tasks/{random.choice(bench_ids)}", reader, b""))
    await run(
        "list first 100 (filtered)", lambda w, i: ("GET", "/api/tasks?status=active&limit=100", reader, b"")
    )
    await run("list 1,000", lambda w, i: ("GET", "/api/tasks?limit=1000", reader, b""))

    def create(w: int, i: int) -> Request:
        return (
            "POST",
            "/api/tasks",
            writers[w],
            json.dumps({"title": f"new {i}", "tags": ["bench"]}).encode(),
        )

    await run("create", create)
    connection = await Connection.open(port)
    for w in range(32):
        _, body = await connection.request("GET", "/api/tasks?limit=50", writers[w])
        writer_tasks[w] = [t["id"] for t in json.loads(body)]
    connection.close()

    def patch(w: int, i: int) -> Request:
        task_id = writer_tasks[w][i % len(writer_tasks[w])]
        return ("PATCH", f"/api/tasks/{task_id}", writers[w], json.dumps({"title": f"edit {i}"}).encode())

    def complete(w: int, i: int) -> Request:
        return ("PATCH", f"/api/tasks/{writer_tasks[w][i % len(writer_tasks[w])]}/complete", writers[w], b"")

    await run("patch", patch)
    await run("complete", complete)
    if growth:
        for owner in ("owner-100", "owner-10000", "owner-100000"):
            ids, headers = made[owner], auth(owner)
            await run(
                f"get one @ {owner[6:]} tasks",
                lambda w, i, ids=ids, h=headers: ("GET", f"/api/tasks/{random.choice(ids)}", h, b""),
            )
            await run(
                f"first page @ {owner[6:]} tasks",
                lambda w, i, h=headers: ("GET", "/api/tasks?status=active&limit=100", h, b""),
            )
    return results


def format_row(r: Result) -> str:
    return (
        f"{r.name:34} c={r.concurrency:<3} {r.throughput:9.0f}/s  p50 {r.p50_ms:7.2f} ms  "
        f"p95 {r.p95_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  errors {r.errors}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="per scenario and concurrency")
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
        print(f"seeded {sum(plan.values()):,} tasks in {time.perf_counter() - started:.1f} s", flush=True)
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "runs": {},
        }
        for workers in args.workers:
            port = 18000 + workers
            process = start_server(url, port, workers)
            try:
                print(f"\n== {workers} worker(s) ==", flush=True)
                results = await scenarios(
                    port, made, args.seconds, workers == 1 and not args.quick, args.only
                )
                rss = peak_rss_mb(process)
                print(f"peak RSS per process: {rss:.0f} MB", flush=True)
            finally:
                process.terminate()
                process.wait(30)
            report["runs"][f"{workers}_worker"] = {
                "results": [asdict(r) for r in results],
                "peak_rss_mb": rss,
            }
        out = ROOT / "results"
        out.mkdir(exist_ok=True)
        (out / "latest.json").write_text(json.dumps(report, indent=2))
        print(f"\nwrote {out / 'latest.json'}")
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
