"""The code is formatted by ``ruff format`` with no exceptions and passes ``ruff check``.

ruff is pinned in the dev extra: another release formats some lines differently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def _need_ruff() -> None:
    pytest.importorskip("ruff", reason="ruff is a dev dependency (pip install -e '.[dev]')")


def test_ruff_format_clean() -> None:
    out = _ruff("format", "--check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_format_exceptions() -> None:
    """No fmt skip / off markers: every line is as ruff formats it."""
    marks = [
        f"{p.relative_to(ROOT)}:{i}"
        for top in ("src", "tests", "scripts", "benchmarks", "docs")
        for p in (ROOT / top).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "# fmt: " + "skip" in line or "# fmt: " + "off" in line
    ]
    assert marks == []


def test_ruff_check_clean() -> None:
    out = _ruff("check", ".")
    assert out.returncode == 0, out.stdout + out.stderr
