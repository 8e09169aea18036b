"""Real `todo-api serve` processes on free loopback ports, for tests that need a true server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TODO_API = Path(sys.executable).parent / "todo-api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    env: dict[str, str], *, workers: int = 1, cwd: Path | None = None, port: int | None = None
) -> Iterator[str]:
    """Starts the server, waits until /health answers (≤ 20 s), and SIGTERMs it afterwards.
    Its output goes to a file (a pipe nobody reads would block a chatty server once full)."""
    port = port or free_port()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [str(TODO_API), "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, **env},
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(f"server did not start:\n{output.read().decode(errors='replace')}")
                time.sleep(0.1)
            yield base
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
