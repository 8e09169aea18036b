"""A committed npm project (package.json + lock file) installed into a temporary copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def installed_copy(source: Path, into: Path) -> Path:
    """`npm ci` in a copy of `source` under `into` (never in the tree); fails loudly without npm."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is needed to install {source.name} (Node 20 with npm)")
    copy = into / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("node_modules"))
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=copy, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"npm ci in {source.name} failed:\n{done.stdout}\n{done.stderr}"
    return copy
