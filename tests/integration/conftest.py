"""Fixtures of the integration tests: the shared data folder and a runner for the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the checkout; the test is skipped (with the reason) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (expected ../shared/data next to the checkout)")
    return SHARED_DATA


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The single JSON object a ``--json`` command prints."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one JSON line on stdout, got: {self.stdout!r} (stderr: {self.stderr!r})"
        report: dict[str, Any] = json.loads(lines[0])
        return report


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
    """``python -m marketpulse.cli ARGS`` in a clean environment (no MARKETPULSE settings from outside)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE")}
    clean.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "marketpulse.cli", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Any:
    return run_cli
