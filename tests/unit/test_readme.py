"""The README's Python example runs word for word."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_python_example_runs_and_prints_the_completed_task() -> None:
    (example,) = [b for b in python_blocks() if "InMemoryStore" in b]
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


def test_env_example_lists_every_setting() -> None:
    from todo_entrypoints.settings import Settings

    example = (README.parent / ".env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^# ([A-Z_]+)=", example, flags=re.MULTILINE))
    assert named == {name.upper() for name in Settings.model_fields}
