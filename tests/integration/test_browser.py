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
from collections.abc import Iterator
from pathlib import Path

import pytest

from .npm import installed_copy
from .servers import running_server

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


@pytest.fixture(scope="module")
def development_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dev")
    env = {
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite:///{home / 'todo.db'}",
        "RATE_LIMIT_ENABLED": "false",
    }
    env |= {"AUTH_JWT_SECRET": "", "AUTH_JWKS_URL": "", "BETTER_AUTH_URL": ""}  # the development secret
    with running_server(env, cwd=home) as base:
        yield base


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
    print(f"API create → visible on the page: {results['api_to_page_ms']} ms")
