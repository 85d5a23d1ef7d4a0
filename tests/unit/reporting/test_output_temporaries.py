"""A writer killed with SIGKILL cannot remove its temporary file: the next attempt at the same file does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_butlr.reporting.output import files
from airflow_provider_butlr.reporting.output.files import write_rows

pytestmark = pytest.mark.airflow_independent  # pure: run once, not per Airflow minor

ROWS = [{"time": "2025-01-01T00:00:00Z", "value": 1}]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temporary_of(final: Path, pid: int) -> Path:
    name = files._temporary_name(final.name)  # this host's form of the name
    host = name.split(".")[-4]
    path = final.with_name(f".{final.name}.{host}.{pid}.0123abcd.tmp")
    path.write_text("half an export")
    return path


def test_a_dead_writers_temporary_file_is_removed_by_the_next_attempt(tmp_path: Path) -> None:
    final = tmp_path / "day.jsonl.gz"
    dead = _temporary_of(final, _dead_pid())
    alive = _temporary_of(final, os.getppid())  # a writer still running: left alone
    other = tmp_path / ".other.jsonl.gz.somehost.1.0123abcd.tmp"
    other.write_text("another file's")
    assert write_rows(ROWS, str(final), columns=("time", "value")) == 1
    assert final.exists() and not dead.exists()
    assert alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == sorted([alive.name, other.name])
