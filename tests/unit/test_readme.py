"""The README's Python example runs word for word."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_python_example_runs_and_prints_the_completed_task() -> None:
    (example,) = [b for b in python_blocks() if "print(done.status" in b]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), {"__name__": "__readme__"})
    assert out.getvalue().strip() == "completed 1 ['Buy milk']"


def test_the_readme_database_example_runs_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [b for b in python_blocks() if "SqlStore.from_url" in b]
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), {"__name__": "__readme__"})
    assert out.getvalue().strip() == "Buy milk"
    assert (tmp_path / "todo-example.db").exists()


def _block(marker: str) -> str:
    (block,) = [b for b in python_blocks() if marker in b]
    return block


def _printed_after(marker: str) -> str:
    """The plain block that follows the paragraph `marker` (what an example prints)."""
    text = README.read_text(encoding="utf-8")
    return text[text.index(marker) :].split("```\n", 2)[1]


def test_the_python_guide_runs_and_prints_what_it_says() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_block("async def guide()"), str(README), "exec"), {"__name__": "__readme__"})
    assert out.getvalue() == _printed_after("It prints:")


def test_the_testing_example_passes() -> None:
    from todo_domain.testing.contract import CHECKS

    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(_block("test_my_store_keeps_the_contract"), str(README), "exec"), namespace)
    asyncio.run(namespace["test_overdue_after_a_day"]())
    namespace["test_any_draft_has_a_title"]()  # hypothesis runs its examples
    for check in CHECKS:
        asyncio.run(namespace["test_my_store_keeps_the_contract"](check))


def test_env_example_lists_every_setting() -> None:
    from todo_entrypoints.settings import Settings

    example = (README.parent / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^# ([A-Z_]+)=", example, flags=re.MULTILINE))
    assert named == {name.upper() for name in Settings.model_fields}
