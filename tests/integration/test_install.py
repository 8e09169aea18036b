"""Install only what you use (SPEC §19): the wheel in a fresh virtual environment, as another
service would install it — nothing third-party without extras, an ImportError naming the extra
for each adapter, and the [sqlite] extra working without asyncpg. Needs PyPI for the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]

CONSUMER = """
import asyncio
from todo_domain import NewTask, TaskQuery, TaskService
from todo_adapters.memory import InMemoryStore

async def main():
    tasks = TaskService(InMemoryStore())
    made = await tasks.create("svc", NewTask(title="from a consumer", tags=["lib"]))
    page = await tasks.list("svc", TaskQuery(tags=("lib",)))
    print(made.title, page.total)

asyncio.run(main())
"""

SQLITE_CONSUMER = """
import asyncio, sys
from todo_adapters.sql import SqlStore
from todo_domain import NewTask, TaskService

async def main():
    store = SqlStore.from_url(f"sqlite:///{sys.argv[1]}", migrate=True)
    try:
        await TaskService(store).create("svc", NewTask(title="stored"))
        print((await TaskService(store).list("svc")).total)
    finally:
        await store.dispose()
    try:
        SqlStore.from_url("postgresql://nobody@127.0.0.1/none")
    except ImportError as exc:
        print("postgres:", exc)

asyncio.run(main())
"""


def run(python: Path, *args: str) -> str:
    done = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("install")
    run(Path(sys.executable), "-m", "pip", "wheel", "--no-deps", str(ROOT), "-w", str(root))
    wheel = next(root.glob("todo_service-*.whl"))
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--no-index", str(wheel))  # no index: nothing else
    return python, wheel


def test_the_plain_install_has_no_third_party_package(environment: tuple[Path, Path]) -> None:
    python, _ = environment
    installed = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format=json"))}
    assert installed <= {"pip", "setuptools", "todo-service"}, installed
    assert run(python, "-c", CONSUMER).split() == ["from", "a", "consumer", "1"]


@pytest.mark.parametrize(
    ("module", "extra"),
    [("todo_adapters.sql", "[sqlite]"), ("todo_adapters.auth", "[server]"), ("todo_entrypoints", "[server]")],
)
def test_an_adapter_without_its_extra_names_the_extra(
    environment: tuple[Path, Path], module: str, extra: str
) -> None:
    python, _ = environment
    script = textwrap.dedent(f"""
        try:
            import {module}
        except ImportError as exc:
            print(exc)
    """)
    assert f"pip install 'todo-service{extra}'" in run(python, "-c", script)


def test_the_sqlite_extra_works_without_asyncpg(environment: tuple[Path, Path], tmp_path: Path) -> None:
    python, wheel = environment
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[sqlite]")
    installed = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format=json"))}
    assert "sqlalchemy" in installed
    assert "asyncpg" not in installed
    assert "fastapi" not in installed
    lines = run(python, "-c", SQLITE_CONSUMER, str(tmp_path / "lib.db")).splitlines()
    assert lines[0] == "1"
    assert "pip install 'todo-service[postgres]'" in lines[1]
