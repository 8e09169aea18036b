"""The Python API reference (SPEC §19): every public method documented, with what it raises,
and `make docs` builds the reference with pdoc."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import pytest

from todo_adapters.memory import InMemoryStore
from todo_adapters.sql import SqlStore
from todo_domain import TaskService

ROOT = Path(__file__).resolve().parents[2]
# Methods that raise nothing beyond what the class docstring says every method may raise.
RAISES_ONLY_STORAGE = {"list_tags"}


def _public_methods(cls: type) -> list[str]:
    return [n for n, m in vars(cls).items() if callable(m) and not n.startswith("_")] + [
        n for n, m in vars(cls).items() if isinstance(m, classmethod)
    ]


@pytest.mark.parametrize("cls", [TaskService, InMemoryStore, SqlStore])
def test_every_public_method_has_a_docstring(cls: type) -> None:
    missing = [name for name in _public_methods(cls) if not inspect.getdoc(getattr(cls, name))]
    assert missing == []


def test_every_use_case_says_what_it_raises() -> None:
    def says_it(name: str) -> bool:
        return "Raises" in (inspect.getdoc(getattr(TaskService, name)) or "")

    silent = [n for n in _public_methods(TaskService) if n not in RAISES_ONLY_STORAGE and not says_it(n)]
    assert silent == []


def test_make_docs_builds_the_reference(tmp_path: Path) -> None:
    subprocess.run(["make", "-s", "docs", f"DOCS={tmp_path}"], cwd=ROOT, check=True, capture_output=True)
    domain = (tmp_path / "todo_domain.html").read_text(encoding="utf-8")
    for name in ("TaskService", "create_with_key", "IdempotencyKeyReused", "TaskQuery", "__version__"):
        assert name in domain
    assert "Raises" in domain
    contract = tmp_path / "todo_domain" / "testing" / "contract.html"
    assert "run_contract" in contract.read_text(encoding="utf-8")
    assert "from_url" in (tmp_path / "todo_adapters" / "sql.html").read_text(encoding="utf-8")
