"""The wheel as a host installs it (SPEC §19 packaging): license file and SPDX expression,
typed markers, bounded ranges for the dependencies a host most likely pins too, no build
warnings."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[zipfile.ZipFile, str]:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", str(ROOT), "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return zipfile.ZipFile(next(out.glob("todo_service-*.whl"))), built.stdout + built.stderr


def metadata(wheel: zipfile.ZipFile) -> list[str]:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return wheel.read(name).decode().splitlines()


def test_the_wheel_carries_its_license(wheel: tuple[zipfile.ZipFile, str]) -> None:
    archive, _ = wheel
    assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())
    assert "License-Expression: MIT" in metadata(archive)


def test_the_wheel_says_it_is_typed(wheel: tuple[zipfile.ZipFile, str]) -> None:
    archive, _ = wheel
    assert "Classifier: Typing :: Typed" in metadata(archive)
    for package in ("todo_domain", "todo_adapters", "todo_entrypoints"):
        assert f"{package}/py.typed" in archive.namelist()


def test_the_ranges_a_host_would_clash_on_are_bounded(wheel: tuple[zipfile.ZipFile, str]) -> None:
    archive, _ = wheel
    requirements = [
        line.split(": ", 1)[1] for line in metadata(archive) if line.startswith("Requires-Dist: ")
    ]
    for name in ("fastapi", "pydantic", "sqlalchemy"):
        ranges = [r.split(";")[0] for r in requirements if re.match(rf"{name}(\[|[<>=!~; ]|$)", r)]
        assert ranges, f"{name} is required by no extra"
        assert all("<" in r for r in ranges), ranges


def test_the_plain_install_requires_nothing(wheel: tuple[zipfile.ZipFile, str]) -> None:
    archive, _ = wheel
    unconditional = [
        line for line in metadata(archive) if line.startswith("Requires-Dist: ") and "extra ==" not in line
    ]
    assert unconditional == []


def test_building_it_warns_about_nothing(wheel: tuple[zipfile.ZipFile, str]) -> None:
    _, output = wheel
    assert "deprecated" not in output.lower(), output
