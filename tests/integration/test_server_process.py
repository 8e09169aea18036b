"""The real `todo-api serve` process: starts on SQLite with no setup, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from todo_adapters.auth import mint_token

from .servers import TODO_API, free_port, running_server, stop


def test_the_server_serves_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}", "ENVIRONMENT": "development"}
    for key in ("AUTH_JWT_SECRET", "BETTER_AUTH_SECRET", "JWT_SECRET", "AUTH_JWKS_URL"):
        env[key] = ""
    token = subprocess.run(
        [str(TODO_API), "token", "alice"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (tmp_path / ".todo-dev-secret").stat().st_mode & 0o777 == 0o600
    headers = {"Authorization": f"Bearer {token}"}
    with running_server(env) as base:
        created = httpx.post(f"{base}/api/tasks", json={"title": "survive"}, headers=headers)
        assert created.status_code == 201
    with running_server(env) as base:
        listed = httpx.get(f"{base}/api/tasks", headers=headers).json()
    assert [t["title"] for t in listed] == ["survive"]


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    port = free_port()
    secret = "s" * 40
    process = subprocess.Popen(
        [str(TODO_API), "serve", "--port", str(port)],
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}", "AUTH_JWT_SECRET": secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/tasks",
                    headers={"Authorization": f"Bearer {mint_token(secret, 'bob')}"},
                    timeout=1,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why
        assert process.wait(20) in (0, -signal.SIGTERM)
    finally:
        stop(process)
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read().decode()
    assert "Application shutdown complete" in output
    assert secret not in output


def test_todo_api_token_says_which_development_secret_it_used(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}", "ENVIRONMENT": "development"}
    for key in ("AUTH_JWT_SECRET", "BETTER_AUTH_SECRET", "JWT_SECRET", "AUTH_JWKS_URL", "DEV_SECRET_FILE"):
        env[key] = ""
    secret = tmp_path / ".todo-dev-secret"
    runs = [
        subprocess.run([str(TODO_API), "token", "alice"], env=env, capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert f"created a new development secret in {secret}" in runs[0].stderr
    assert f"signed with the development secret in {secret}" in runs[1].stderr
    assert all(run.stdout.count(".") == 2 for run in runs)  # stdout is the token alone


def test_start_up_logs_no_migration_chatter(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}",
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "INFO",
    }
    port = free_port()
    process = subprocess.Popen(
        [str(TODO_API), "serve", "--port", str(port)],
        env={**os.environ, **env, "AUTH_JWT_SECRET": "s" * 40},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        stop(process)
    output = process.stdout.read().decode() if process.stdout else ""
    if process.stdout:
        process.stdout.close()
    assert "tasks API ready" in output
    assert "alembic" not in output.lower()
