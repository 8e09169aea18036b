"""Operational resilience (SPEC §8): graceful shutdown keeps in-flight requests, and a
PostgreSQL outage gives 503s (not hangs, not 500s) and heals without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from todo_adapters.auth import mint_token

from .http_support import app_for, auth, serve
from .servers import TODO_API, free_port, running_server, stop

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def test_sigterm_lets_twenty_in_flight_requests_finish(tmp_path: Path) -> None:
    secret = "s" * 40
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}",
        "AUTH_JWT_SECRET": secret,
        "RATE_LIMIT_ENABLED": "false",
    }
    headers = {"Authorization": f"Bearer {mint_token(secret, 'alice')}", "Content-Type": "application/json"}
    port = free_port()
    process = subprocess.Popen(
        [str(TODO_API), "serve", "--port", str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"

    async def slow_body(i: int) -> AsyncIterator[bytes]:
        yield b'{"title": "slow '
        await asyncio.sleep(1.5)  # SIGTERM arrives while the body is still on its way
        yield f'{i}"}}'.encode()

    async def twenty_slow_posts() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            requests = [
                asyncio.create_task(client.post(f"{base}/api/tasks", content=slow_body(i), headers=headers))
                for i in range(20)
            ]
            await asyncio.sleep(0.7)
            process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*requests)

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        responses = asyncio.run(twenty_slow_posts())
        assert [r.status_code for r in responses] == [201] * 20
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        stop(process)
    with running_server(env) as restarted:
        listed = httpx.get(f"{restarted}/api/tasks", headers=headers, timeout=10)
    assert listed.headers["x-total-count"] == "20"


class Cluster:
    """A throwaway PostgreSQL cluster of this test's own (never the shared server)."""

    def __init__(self, root: Path) -> None:
        self.data, self.port = root / "data", free_port()
        root.chmod(0o777)
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"])

    def _as_postgres(self, command: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # No pipes: the server pg_ctl starts would inherit them and keep them open forever.
        subprocess.run(
            prefix + command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        log = str(self.data.parent / "postgres.log")
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start"]
        )

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=2"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    assert (PG_BIN / "initdb").exists(), f"PostgreSQL 15 binaries are needed at {PG_BIN}"
    # Directly under /tmp: pytest's own temp dirs are private to root, and initdb runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="todo-pg-"))
    cluster = Cluster(root)
    cluster.start()
    yield cluster
    with contextlib.suppress(subprocess.CalledProcessError):
        cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


async def test_a_database_outage_is_503_and_heals_without_a_restart(cluster: Cluster) -> None:
    headers = auth("alice")
    app = app_for(database_url=cluster.url, db_pool_timeout=2, auto_migrate=True)
    async with serve(app) as client:
        assert (await client.post("/api/tasks", json={"title": "before"}, headers=headers)).status_code == 201
        cluster.stop()
        started = time.monotonic()
        down = await client.post("/api/tasks", json={"title": "during"}, headers=headers)
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert int(down.headers["retry-after"]) >= 1
        assert elapsed < 10
        assert (await client.get("/api/tasks", headers=headers)).status_code == 503
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 503
        cluster.start()
        statuses = []
        for _ in range(20):
            response = await client.get("/api/tasks", headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert statuses[-1] == 200, statuses
        assert 500 not in statuses
        assert [t["title"] for t in response.json()] == ["before"]
        assert (await client.get("/health/ready")).status_code == 200
