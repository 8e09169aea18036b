"""The browser reference page (SPEC §15, examples/browser) in a real headless Chromium:
Debian's `chromium` package (installed here with apt-get when missing, never a downloaded
build), driven by playwright-core from npm (tests/browser, committed lock file). The page mints
a development token, lists, adds and toggles tasks, and follows the stream: a task created
through the API appears on it within 2 s, and two tabs follow each other."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .npm import installed_copy
from .servers import TODO_API, free_port, running_server, stop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DRIVER = ROOT / "tests" / "browser"


def _run(command: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "the browser test needs Debian's chromium (apt-get install chromium); it could not be installed"
        )
    return found


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_copy(DRIVER, tmp_path_factory.mktemp("browser"))


def _development_env(home: Path) -> dict[str, str]:
    env = {"ENVIRONMENT": "development", "DATABASE_URL": f"sqlite:///{home / 'todo.db'}"}
    env |= {"RATE_LIMIT_ENABLED": "false", "STREAM_HEARTBEAT_SECONDS": "2"}
    env |= {"AUTH_JWT_SECRET": "", "AUTH_JWKS_URL": "", "BETTER_AUTH_URL": ""}  # the development secret
    return env


@pytest.fixture(scope="module")
def development_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server, and `todo-api worker` beside it on the same SQLite file (it fires reminders)."""
    home = tmp_path_factory.mktemp("dev")
    env = _development_env(home)
    with running_server(env, cwd=home) as base:
        worker = subprocess.Popen(
            [str(TODO_API), "worker"],
            env={**os.environ, **env, "WORKER_POLL_SECONDS": "0.2"},
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield base
        finally:
            assert stop(worker) == 0


def test_the_reference_page_follows_changes_live(driver: Path, development_server: str) -> None:
    chromium = _chromium()
    line = (
        _run(["node", "live_page.mjs", development_server, chromium], driver, timeout=120)
        .strip()
        .splitlines()[-1]
    )
    results = json.loads(line)
    assert results["created"] == 201
    assert results["api_to_page_ms"] <= 2000
    assert results["tab_to_tab"] is True
    assert results["completed_titles"] == ["added in tab one"]
    assert results["error_text"] == ""
    assert results["reminder_shown"] is True
    print(f"API create → visible on the page: {results['api_to_page_ms']} ms")


def test_the_reference_page_comes_back_after_a_restart(driver: Path, tmp_path: Path) -> None:
    """A deploy: the server goes away under an open page and comes back on the same address;
    the page reconnects with a fresh ticket from its last event and shows what was written
    while it was away."""
    chromium, port = _chromium(), free_port()
    env = _development_env(tmp_path)
    command = ["node", "reconnect.mjs", f"http://127.0.0.1:{port}", chromium]
    with running_server(env, cwd=tmp_path, port=port) as base:
        page = subprocess.Popen(command, cwd=driver, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert page.stdin is not None
        assert page.stdout is not None
        ready = page.stdout.readline().split()
        assert ready[:1] == ["READY"], ready
    time.sleep(3)  # down long enough for reconnect attempts to fail first
    title = "written while the page was reconnecting"
    with running_server(env, cwd=tmp_path, port=port) as base:
        made = httpx.post(
            f"{base}/api/tasks", json={"title": title}, headers={"Authorization": f"Bearer {ready[1]}"}
        )
        assert made.status_code == 201
        out, _ = page.communicate(f"GO {title}\n", timeout=60)
    assert page.returncode == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {"seen_after_restart": True, "status": "live"}
