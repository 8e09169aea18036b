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


POSTGRES_CONSUMER = """
import asyncio, sys
from datetime import timedelta

from hypothesis import strategies as st

from todo_adapters.memory import InMemoryStore
from todo_adapters.sql import SqlStore
from todo_domain import NewTask, TaskService
from todo_domain.testing import ManualClock
from todo_domain.testing.contract import run_contract

async def main() -> None:
    async with SqlStore.from_url(sys.argv[1], schema="svc", migrate=True) as store:
        clock = ManualClock()
        tasks = TaskService(store, clock=clock)
        await tasks.create("svc", NewTask(title="in the host's database"))
        print((await tasks.list("svc")).total)
        print(await run_contract(store))
    print(await run_contract(InMemoryStore()))
    draft = st.from_type(NewTask).example()  # registered by the package's entry point
    print(type(draft).__name__)
    try:
        import aiosqlite  # noqa: F401
    except ImportError:
        print("no aiosqlite")

asyncio.run(main())
"""

TYPED_CONSUMER = """
from __future__ import annotations

from uuid import UUID

from todo_adapters.sql import SqlStore
from todo_domain import (
    Creation, DomainError, InvalidQuery, NewTask, Page, Priority, Task, TaskNotFound,
    TaskPatch, TaskQuery, TaskService, VersionConflict,
)
from todo_domain.testing import ManualClock, SequentialIds


async def tidy(url: str, owner: str, task_id: UUID) -> Task | None:
    async with SqlStore.from_url(url, schema="svc") as store:
        tasks = TaskService(store, clock=ManualClock(), ids=SequentialIds())
        made: Creation = await tasks.create_with_key(owner, NewTask(title="t", priority=Priority.HIGH), "k")
        page: Page = await tasks.list(owner, TaskQuery(tags=("home",), limit=10))
        try:
            version = made.task.version
            task = await tasks.update(owner, task_id, TaskPatch(title="x"), expected_version=version)
        except (TaskNotFound, VersionConflict):
            return None
        except InvalidQuery as exc:
            print([e.field for e in exc.errors])
            raise
        except DomainError:
            raise
        return task if page.total else made.task
"""

MISTYPED_CONSUMER = """
from todo_domain import NewTask, TaskService
from todo_adapters.memory import InMemoryStore

async def wrong() -> str:
    task = await TaskService(InMemoryStore()).create("o", NewTask(title="t"))
    return task.version
"""


@pytest.fixture(scope="module")
def postgres_environment(environment: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, wheel = environment
    root = tmp_path_factory.mktemp("install-postgres")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[postgres,testing]")
    return python


async def test_the_postgres_extra_shares_a_database_and_ships_test_helpers(
    postgres_environment: Path, empty_postgres_url: str
) -> None:
    python = postgres_environment
    installed = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format=json"))}
    assert {"asyncpg", "sqlalchemy", "alembic", "hypothesis"} <= installed
    assert not installed & {"aiosqlite", "fastapi", "uvicorn", "redis", "pyjwt"}, installed
    lines = run(python, "-c", POSTGRES_CONSUMER, empty_postgres_url).splitlines()
    assert lines == ["1", "[]", "[]", "NewTask", "no aiosqlite"]


def test_a_consumer_type_checks_with_mypy_strict(postgres_environment: Path, tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(TYPED_CONSUMER, encoding="utf-8")
    (tmp_path / "bad.py").write_text(MISTYPED_CONSUMER, encoding="utf-8")

    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
        command += ["--python-executable", str(postgres_environment), name]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    good = mypy("good.py")
    assert good.returncode == 0, good.stdout
    bad = mypy("bad.py")  # the installed package's types are seen, not Any
    assert bad.returncode == 1
    assert 'Incompatible return value type (got "int", expected "str")' in bad.stdout
