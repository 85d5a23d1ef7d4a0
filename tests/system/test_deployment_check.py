"""The deployment check's own parts: the secret scan, the error-line detector, process-session stops
and the emulator clocks around day D (scripts/deployment_check.py runs the deployment itself)."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

from deploycheck.processes import Component
from deploycheck.scans import error_lines, is_error_line, scan_secrets, secret_needles
from deployment_check import Dates

SECRET = "s3cr3t/with+special=chars&more"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY"


def test_secret_scan_finds_every_form_in_text_and_sqlite_files(tmp_path: Path) -> None:
    (tmp_path / "clean.log").write_text("nothing to see\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "encoded.log").write_text(f"password={quote(SECRET, safe='')}\n")
    (tmp_path / "signature.log").write_text(f"Bearer ...{TOKEN.split('.')[2]}\n")
    with sqlite3.connect(tmp_path / "airflow.db") as db:
        db.execute("CREATE TABLE xcom (value BLOB)")
        db.execute("INSERT INTO xcom VALUES (?)", (f'{{"token": "{TOKEN}"}}'.encode(),))

    files, size, hits = scan_secrets([tmp_path], secret_needles([SECRET, TOKEN]))

    assert files == 4 and size > 0
    assert sorted(hits) == sorted(
        [
            f"{tmp_path / 'nested' / 'encoded.log'}: secret #0 (percent-encoded)",
            f"{tmp_path / 'signature.log'}: secret #1 (jwt signature)",
            f"{tmp_path / 'airflow.db'}: secret #1 (plain)",
            f"{tmp_path / 'airflow.db'}: secret #1 (jwt signature)",
        ]
    )
    assert not any(SECRET in hit or TOKEN in hit for hit in hits)  # the report never repeats a secret


def test_secret_scan_skips_excluded_files_and_missing_roots(tmp_path: Path) -> None:
    (tmp_path / "emulator.log").write_text(f"client secret: {SECRET}\n")
    files, _, hits = scan_secrets(
        [tmp_path, tmp_path / "absent"], secret_needles([SECRET]), exclude=[tmp_path / "emulator.log"]
    )
    assert (files, hits) == (0, [])


# Lines as Airflow 3.3.2 writes them (components' console output; task logs are JSON lines).
ERROR_LINES = [
    "2026-11-26T02:45:11.304554Z [error    ] XCom not found                 [airflow.sdk.api.client] dag_id=x",
    "2026-11-26T02:45:11.304554Z [critical ] Scheduler crashed [airflow.jobs]",
    '{"timestamp":"2026-11-26T02:45:24Z","level":"error","event":"Task failed with exception","logger":"task"}',
    "[2026-11-26T02:45:24.000+0000] {taskinstance.py:12} ERROR - Task failed",
    "ERROR:    Exception in ASGI application",
    "Traceback (most recent call last):",
    "\x1b[31m2026-11-26T02:45:11Z [error    ] coloured\x1b[0m",
]
CLEAN_LINES = [
    "2026-11-26T02:44:33Z [info     ] Retrying after an error: connection reset [airflow_provider_butlr]",
    "2026-11-26T02:44:02Z [warning  ] ASGI app factory detected. [uvicorn.error] loc=config.py:521",
    '{"timestamp":"2026-11-26T02:45:24Z","level":"warning","event":"error budget 1 of 5 used"}',
    '{"timestamp":"2026-11-26T02:45:24Z","level":"info","event":"ERROR - looks like one"}',
    "2026-11-26T02:44:03Z [info     ] 127.0.0.1 POST /api/v2/clients/login 200 3 ms",
]


@pytest.mark.parametrize("line", ERROR_LINES)
def test_error_level_lines_are_found(line: str) -> None:
    assert is_error_line(line)


@pytest.mark.parametrize("line", CLEAN_LINES)
def test_other_levels_mentioning_errors_are_not(line: str) -> None:
    assert not is_error_line(line)


def test_error_lines_name_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.write_text("\n".join([CLEAN_LINES[0], ERROR_LINES[0], CLEAN_LINES[1]]) + "\n")
    [finding] = error_lines([log])
    assert (finding.path, finding.line) == (log, 2)


ATEXIT_EXIT_0 = """Exception ignored in atexit callback: <function _exit_function at 0x7f907fc2e020>
Traceback (most recent call last):
  File "/usr/lib/python3.11/multiprocessing/util.py", line 357, in _exit_function
    p.join()
           ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/venv/lib/python3.11/site-packages/airflow/utils/cli.py", line 403, in sigint_handler
    sys.exit(0)
SystemExit: {code}
"""


def test_only_pythons_report_of_an_exit_0_at_shutdown_is_excused(tmp_path: Path) -> None:
    """Airflow's scheduler may print it after SIGTERM; any other traceback, or exit code, still counts."""
    log = tmp_path / "scheduler.log"
    log.write_text(CLEAN_LINES[0] + "\n" + ATEXIT_EXIT_0.format(code=0))
    assert error_lines([log]) == []
    log.write_text(CLEAN_LINES[0] + "\n" + ATEXIT_EXIT_0.format(code=1))
    assert [f.line for f in error_lines([log])] == [3]
    log.write_text(ATEXIT_EXIT_0.format(code=0).split("\n", 1)[1])  # no "Exception ignored" line
    assert [f.line for f in error_lines([log])] == [1]


CHILDREN = """
import multiprocessing, os, sys, time

def serve():  # like the triggerer's log server: a multiprocessing child in the same group
    time.sleep(600)

def runner():  # like Airflow's task runner: a forked child in a process group of its own
    if os.fork() == 0:
        os.setpgid(0, 0)
        time.sleep(600)
        os._exit(0)

if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    multiprocessing.Process(target=serve).start()
    runner()
    print("ready", flush=True)
    time.sleep(600)
"""


def test_kill_stops_the_whole_session_including_children_in_their_own_groups(tmp_path: Path) -> None:
    script = tmp_path / "component.py"
    script.write_text(CHILDREN)
    component = Component("fake", [sys.executable, str(script)], tmp_path / "fake.log", {}, tmp_path).start()
    try:
        deadline = time.monotonic() + 30
        while "ready" not in component.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        members = component.members()
        assert len(members) == 3, members  # leader, log-server-like child, runner in its own group
        killed = component.kill(signal.SIGKILL)
        assert sorted(killed) == sorted(members)
        assert component.members() == []
        assert component.process is not None and component.process.returncode == -signal.SIGKILL
    finally:
        component.stop()


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2025, 3, 9),
        dt.date(2025, 3, 30),
        dt.date(2025, 11, 2),
        dt.date(2025, 10, 26),
        dt.date(2026, 6, 1),
    ],
)
def test_emulator_clocks_bracket_every_sites_day_end_plus_grace(day: dt.date) -> None:
    """D 21:00Z: no site's local day D is over; D+1 07:00Z: every one is past end + 15 min + 2 min lag."""
    dates = Dates(day)
    incomplete = dt.datetime.fromisoformat(dates.incomplete_clock)
    complete = dt.datetime.fromisoformat(dates.complete_clock)
    for zone in ("America/New_York", "Europe/Berlin", "UTC"):
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZoneInfo(zone))
        assert incomplete < end, zone
        assert complete >= end + dt.timedelta(minutes=15 + 2), zone
    assert dates.first_logical_date.startswith(str(day + dt.timedelta(days=1)))  # exports the day before


# The check's own helpers (processes, scans, dates): run once, not per Airflow minor.
pytestmark = pytest.mark.airflow_independent
