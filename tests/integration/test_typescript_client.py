"""clients/typescript (SPEC §19): the committed OpenAPI document and generated types are what
the code produces today, and the typed client type-checks against them. Uses npm (Node is on
the machine, packages come from the npm registry through the committed lock file); a missing
npm fails the test loudly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .npm import installed_copy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
CLIENT = ROOT / "clients" / "typescript"
STALE = "stale: run `make clients` and commit clients/typescript"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_copy(CLIENT, tmp_path_factory.mktemp("ts"))


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_committed_openapi_document_is_current() -> None:
    current = run([sys.executable, str(ROOT / "scripts" / "openapi_document.py")], ROOT)
    assert current == (CLIENT / "openapi.json").read_text(encoding="utf-8"), STALE


def test_the_generated_types_are_current(project: Path) -> None:
    run(["npx", "openapi-typescript", "openapi.json", "-o", "fresh.d.ts"], project)
    fresh = (project / "fresh.d.ts").read_text(encoding="utf-8")
    assert fresh == (CLIENT / "src" / "schema.d.ts").read_text(encoding="utf-8"), STALE


def test_the_typed_client_type_checks(project: Path) -> None:
    run(["npx", "tsc", "--noEmit", "-p", "."], project)


def test_the_types_catch_a_wrong_body(project: Path) -> None:
    """The check can fail: a client sending a string where `completed` is a boolean."""
    client = project / "src" / "client.ts"
    good = client.read_text(encoding="utf-8")
    client.write_text(good.replace("body: { completed },", 'body: { completed: "yes" },'), encoding="utf-8")
    try:
        done = subprocess.run(
            ["npx", "tsc", "--noEmit", "-p", "."], cwd=project, capture_output=True, text=True
        )
    finally:
        client.write_text(good, encoding="utf-8")
    assert done.returncode != 0
    assert "TS2322" in done.stdout
