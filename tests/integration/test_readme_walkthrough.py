"""The README's shell walk-through runs as pasted (SPEC §13.11): the exact block, against a
live `todo-api serve` started the way `make run` starts it (SQLite, development secret beside
the database, no auth configured), from a project directory whose `.venv` is this one. The
only change made to the block is the port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from .servers import running_server

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"
UNCONFIGURED = {
    "ENVIRONMENT": "development",
    "DATABASE_URL": "",
    "AUTH_JWT_SECRET": "",
    "BETTER_AUTH_SECRET": "",
    "JWT_SECRET": "",
    "AUTH_JWKS_URL": "",
    "AUTH_SESSION_DATABASE_URL": "",
    "DEV_SECRET_FILE": "",
    "REDIS_URL": "",
}


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using the API from the command line") :]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README lost its shell walk-through"
    return match.group(1)


def test_the_walkthrough_block_is_what_the_readme_promises() -> None:
    block = walkthrough()
    assert "localhost:8000" in block
    assert ".venv/bin/todo-api token" in block
    assert "$ID" in block
    assert "ID=" in block


def test_the_readme_walkthrough_runs_top_to_bottom_when_pasted(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {**os.environ, **UNCONFIGURED}
    with running_server(UNCONFIGURED, cwd=project) as base:
        port = urlsplit(base).port
        script = walkthrough().replace("localhost:8000", f"localhost:{port}")
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    created = re.search(r"^created ([0-9a-f-]{36})$", out, re.M)
    assert created, out
    statuses = [int(s) for s in re.findall(r"^→ (\d{3})$", out, re.M)]
    assert statuses == [200, 200, 200, 200, 200, 204], out
    bodies = [orjson.loads(b) for b in re.findall(r"^(\[.*|\{.*)$", out, re.M)]
    listed, patched, toggled, reopened, tags = bodies
    assert [t["id"] for t in listed] == [created.group(1)]
    assert patched["priority"] == "high"
    assert patched["version"] == 2
    assert toggled["completed"] is True
    assert reopened["completed"] is False
    assert tags == [{"name": "home", "open": 1, "total": 1}]
    assert "→ 204" in out.splitlines()[-1]
    assert (project / "todo.db").exists()
    assert (project / ".todo-dev-secret").exists()
