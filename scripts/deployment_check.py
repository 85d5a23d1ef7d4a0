#!/usr/bin/env python3
"""The deployment check (issue 16): the example DAGs in a real Airflow deployment against the emulator.

Started by ``scripts/deployment_check.sh`` (see docs/deployment-check.md). On a throw-away SQLite
``AIRFLOW_HOME`` with the LocalExecutor it starts the emulator, ``airflow api-server``,
``scheduler``, ``dag-processor`` and ``triggerer`` as separate processes (each its own process
group and log file), then:

1. unpauses every example DAG and runs ``butlr_quickstart``;
2. sets the emulator clock so day D (8 days ago) is not complete in any site's timezone, triggers
   ``butlr_asset_inventory`` and ``butlr_daily_occupancy_export`` for D, waits until the
   ``wait_for_complete_day`` sensors are ``deferred`` in the database, SIGKILLs the triggerer's
   process group, moves the clock past D's grace period, restarts the triggerer, waits for success;
3. runs the daily export for a second day; the event-driven DAG's watcher sees one crossing;
4. issue 24: the emulator pushes one room's minutes to the api-server's webhook receiver
   (``deploycheck/webhooks.py``): one crossing gives one run, duplicates and revisions none, a wrong key
   401, and no Reporting API request is made; the event-to-run latency is printed;
5. asserts: every run succeeded, the sensors went through ``deferred``, logins (emulator counter)
   at most ``BUTLR_CHECK_MAX_LOGINS``, no secret or issued token (nor their percent-encodings) in
   any byte under ``AIRFLOW_HOME``, the components' output or the token-store directory, no
   error-level line in any output or task log; stops everything by process group, also on failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploycheck.airflow_state import AirflowAPI, MetadataDB
from deploycheck.processes import Component, free_port, port_is_free
from deploycheck.scans import Finding, error_lines, iter_files, scan_secrets, secret_needles
from deploycheck.webhooks import (
    PUSH_DAG,
    SUBSCRIPTIONS_DAG,
    Receiver,
    StepFailed,
    WebhookReport,
    WebhookStep,
    find_scenario,
    organisation_id,
)

REPO = Path(__file__).resolve().parents[1]
# The emulator's documented default credentials (docs/emulator.md).
CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret-do-not-use"

QUICKSTART = "butlr_quickstart"
EXPORT = "butlr_daily_occupancy_export"
INVENTORY = "butlr_asset_inventory"
KNOWN_DAGS = (QUICKSTART, EXPORT, INVENTORY)
EXAMPLE_DAGS = REPO / "example_dags"
SENSOR = "wait_for_complete_day"
# Logins allowed for the whole check. Target with issue 16's token store: 2 (one per token
# lifetime). Until that store lands every task process logs in once (about 35 for the whole check).
DEFAULT_MAX_LOGINS = 2  # one per token lifetime: the host token store shares the token across processes
TOKEN_STORE_TARGET = 2
POKE_SECONDS = 5
FINAL = frozenset({"success", "failed"})

T = TypeVar("T")


class CheckFailed(AssertionError):
    """The deployment did not do what the check expects (the message says which part, which state)."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP: unwind through the ``finally`` blocks that stop the components."""


@dataclass(frozen=True)
class Dates:
    """Day D of the first export run (long over in real time) and the emulator clocks around it."""

    day: dt.date

    @classmethod
    def from_now(cls, now: dt.datetime, days_ago: int = 8) -> Dates:
        return cls((now - dt.timedelta(days=days_ago)).date())

    def _at(self, day: dt.date, hour: int) -> str:
        return dt.datetime.combine(day, dt.time(hour), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def first_logical_date(self) -> str:  # the DAG exports the day before its logical date
        return self._at(self.day + dt.timedelta(days=1), 9)

    @property
    def second_logical_date(self) -> str:
        return self._at(self.day, 9)

    @property
    def incomplete_clock(self) -> str:
        """D 21:00Z: D is not over in New York or Berlin, nor in UTC (the site without timezone)."""
        return self._at(self.day, 21)

    @property
    def complete_clock(self) -> str:
        """D+1 07:00Z: past New York's day end (05:00Z in winter) + 15 min grace + data lag."""
        return self._at(self.day + dt.timedelta(days=1), 7)


@dataclass
class Timings:
    start: float = field(default_factory=time.monotonic)
    phases: list[tuple[str, float]] = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        self.phases.append((phase, now - self._last))
        self._last = now
        print(f"   [{now - self.start:6.1f} s] {phase} ({self.phases[-1][1]:.1f} s)", flush=True)

    @property
    def total(self) -> float:
        return time.monotonic() - self.start


class Deployment:
    """The throw-away deployment: work dir, environment, components, API, DB, emulator admin."""

    def __init__(self, work: Path, dates: Dates) -> None:
        self.work = work
        self.dates = dates
        self.home = work / "airflow-home"
        self.logs = work / "logs"
        self.token_dir = work / "token-store"
        self.exports = work / "exports"
        for folder in (self.home, self.logs, self.exports):
            folder.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.worker_log_port = free_port()
        self.trigger_log_port = free_port()
        self.components: dict[str, Component] = {}
        self.emulator_url = ""
        self.env: dict[str, str] = {}
        self.api = AirflowAPI(f"http://127.0.0.1:{self.api_port}")
        self.db = MetadataDB(self.home / "airflow.db")
        self.admin: Any = None
        self.triggerer_starts = 0
        self.jwt_secret = secrets.token_urlsafe(64)  # >= 64 bytes: no HMAC key-length warning
        # issue 24: the webhook receiver on the api-server, and the crossing the emulator will push
        self.receiver = Receiver(f"http://127.0.0.1:{self.api_port}/butlr/webhooks", organisation_id())
        self.push_scenario = find_scenario(dates.day, exclude=(EVENT_ROOM,))
        self.fernet_key = fernet_key()

    # --- environment ------------------------------------------------------------------------------
    def build_env(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
        connection = {
            "conn_type": "butlr",
            "host": self.emulator_url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": {
                "audience": "https://butlrauth/",
                "auth_type": "client_credentials",
                "token_cache_dir": str(self.token_dir),  # ignored until issue 16's token store lands
            },
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                # Only the runs this check triggers: no scheduled run of the cron DAGs on unpause.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                "AIRFLOW_CONN_BUTLR_DEFAULT": json.dumps(connection),
                "BUTLR_EXPORT_BASE_PATH": str(self.exports),
                "BUTLR_COMPLETENESS_POKE_SECONDS": str(POKE_SECONDS),
                "BUTLR_EVENT_ROOMS": EVENT_ROOM,
                "BUTLR_EVENT_EMPTY_MINUTES": "1",
                "BUTLR_EVENT_POLL_INTERVAL": str(EVENT_POLL_SECONDS),
                "PYTHONUNBUFFERED": "1",
                **self.receiver.env(self.push_scenario),
            }
        )
        self.env = env

    # --- components -------------------------------------------------------------------------------
    def start(self, name: str, *argv: str, log_name: str | None = None) -> Component:
        # cwd: the work directory, not the checkout, whose setuptools egg-info would make Airflow see the
        # provider's entry points twice ("Plugin 'butlr_webhooks' already registered")
        component = Component(name, argv, self.logs / f"{log_name or name}.log", self.env, self.work)
        self.components[log_name or name] = component.start()
        return component

    def start_emulator(self) -> None:
        ready = self.work / "emulator.url"
        self.start(
            "emulator",
            sys.executable,
            "-m",
            "airflow_provider_butlr.testing",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--clock",
            self.dates.complete_clock,  # the first token is issued here: valid for the whole check
        )
        emulator = self.components["emulator"]
        wait_for(
            "the emulator's ready file", lambda: ready.exists() and ready.read_text().strip(), 30, [emulator]
        )
        self.emulator_url = ready.read_text().strip().splitlines()[0]
        from airflow_provider_butlr.testing import EmulatorAdminClient

        self.admin = EmulatorAdminClient(self.emulator_url)

    def airflow(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]  # the Airflow of this interpreter

    def migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with open(log, "wb") as out:
            code = subprocess.call(
                self.airflow("db", "migrate"), stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        if code != 0:
            raise CheckFailed(f"airflow db migrate failed ({code}):\n{tail(log)}")

    def start_airflow(self) -> None:
        api = ("--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1")
        self.start("api-server", *self.airflow("api-server", *api))
        self.start("scheduler", *self.airflow("scheduler"))
        self.start("dag-processor", *self.airflow("dag-processor"))
        self.start_triggerer()

    def start_triggerer(self) -> Component:
        self.triggerer_starts += 1
        name = "triggerer" if self.triggerer_starts == 1 else f"triggerer-{self.triggerer_starts}"
        component = self.start("triggerer", *self.airflow("triggerer"), log_name=name)
        self.components["triggerer"] = component  # the live one
        return component

    def restart_scheduler_with_schedules(self) -> None:
        """A scheduler that also creates scheduled and asset-triggered runs (``use_job_schedule``)."""
        old = self.components["scheduler"]
        old.send(signal.SIGTERM)
        if not old.wait_gone(30.0):
            old.kill(signal.SIGKILL, wait=10.0)
        self.env = {**self.env, "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True"}
        self.components["scheduler-1"] = old
        self.components["scheduler"] = self.start(
            "scheduler", *self.airflow("scheduler"), log_name="scheduler-2"
        )

    def airflow_components(self) -> list[Component]:
        return [self.components[n] for n in ("api-server", "scheduler", "dag-processor", "triggerer")]

    def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM to every component at once; SIGKILL to any session left after ``grace`` seconds."""
        started = [c for c in self.components.values() if c.process is not None and c.members()]
        for component in started:
            component.send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        failures = []
        for component in started:
            if component.wait_gone(max(deadline - time.monotonic(), 0.0)):
                continue
            left = component.kill(signal.SIGKILL, wait=10.0)
            print(f">> {component.name}: SIGKILL to pids {left} (still running after SIGTERM)", flush=True)
            if component.members():
                failures.append(f"{component.name}: pids {component.members()} survived SIGKILL")
        if failures:
            raise CheckFailed("could not stop: " + "; ".join(failures))

    def tails(self, lines: int = 20) -> str:
        return "\n".join(
            f"--- last {lines} lines of {c.log}\n{c.tail(lines)}" for c in self.components.values()
        )


def fernet_key() -> str:
    from cryptography.fernet import Fernet  # comes with Airflow

    return Fernet.generate_key().decode()


# --- waiting ---------------------------------------------------------------------------------------


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for(
    what: str,
    probe: Callable[[], T],
    timeout: float,
    needed: list[Component],
    state: Callable[[], str] | None = None,
    interval: float = 1.0,
) -> T:
    """Poll ``probe`` until truthy; fail clearly on timeout or when a needed component exits."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        for component in needed:
            if not component.running():
                code = component.process.returncode if component.process else None
                raise CheckFailed(
                    f"{component.name} exited (code {code}) while waiting for {what}\n"
                    f"--- last lines of {component.log}\n{component.tail(30)}"
                )
        if time.monotonic() > deadline:
            detail = f"; state: {state()}" if state else ""
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def check_alive(dep: Deployment) -> None:
    """Fail when an Airflow component exited."""
    for component in dep.airflow_components():
        if not component.running():
            code = component.process.returncode if component.process else None
            raise CheckFailed(f"{component.name} exited (code {code})\n{component.tail(30)}")


def wait_for_run(dep: Deployment, dag_id: str, run_id: str, timeout: float = 360) -> None:
    def probe() -> bool:
        state = dep.db.run_state(dag_id, run_id)
        if state == "failed":
            raise CheckFailed(
                f"{dag_id} run {run_id} failed: {dep.db.task_states(dag_id, run_id)}\n"
                + failed_task_logs(dep, dag_id, run_id)
            )
        return state == "success"

    wait_for(
        f"{dag_id} run {run_id} to succeed",
        probe,
        timeout,
        dep.airflow_components(),
        lambda: f"run {dep.db.run_state(dag_id, run_id)}, tasks {dep.db.task_states(dag_id, run_id)}",
    )


def failed_task_logs(dep: Deployment, dag_id: str, run_id: str, lines: int = 15) -> str:
    """The last lines of the task logs of the run's failed task instances."""
    failed = {
        key.split("[")[0] for key, state in dep.db.task_states(dag_id, run_id).items() if state == "failed"
    }
    run_logs = dep.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    parts = []
    for task_id in sorted(failed):
        for log in sorted((run_logs / f"task_id={task_id}").rglob("attempt=*.log")):
            parts.append(f"--- last {lines} lines of {log}\n{tail(log, lines)}")
    return "\n".join(parts)


def wait_sensors_deferred(dep: Deployment, run_id: str, timeout: float = 300) -> dict[str, str | None]:
    """Every mapped ``wait_for_complete_day`` of the run is ``deferred`` (after the mapping expanded)."""

    def probe() -> dict[str, str | None]:
        sensors = {k: v for k, v in dep.db.task_states(EXPORT, run_id, SENSOR).items() if "[" in k}
        if sensors and any(v in ("success", "skipped", "failed") for v in sensors.values()):
            raise CheckFailed(f"the sensors finished before the data was complete: {sensors}")
        return sensors if sensors and all(v == "deferred" for v in sensors.values()) else {}

    return wait_for(
        f"the {SENSOR} sensors of {run_id} to be deferred",
        probe,
        timeout,
        dep.airflow_components(),
        lambda: f"tasks {dep.db.task_states(EXPORT, run_id)}",
    )


# --- the scenario ----------------------------------------------------------------------------------


@dataclass
class Results:
    runs: list[tuple[str, str, str]] = field(default_factory=list)
    deferred: dict[str, str | None] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    logins: int = -1
    token_count: int = 0
    scan: tuple[int, int, list[str]] = (0, 0, [])
    errors: list[Finding] = field(default_factory=list)
    token_store: str = ""
    logins_by_phase: list[tuple[str, int]] = field(default_factory=list)
    resumed: int | None = None  # the restarted triggerer's job id
    webhooks: WebhookReport | None = None

    def count_logins(self, dep: Deployment, phase: str) -> None:
        """Logins so far (emulator counter), to print the logins each phase added."""
        self.logins_by_phase.append((phase, dep.admin.logins()))


def process_line(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = "?"
    return f"{pid} {cmdline.strip()[:60]}"


def check_resumed_by_new_triggerer(dep: Deployment, run_id: str, sensors: dict[str, str | None]) -> int:
    """Every deferred sensor has a trigger log of the restarted triggerer's job; answers the job id."""
    job_id = dep.db.latest_job_id("TriggererJob")
    run_logs = dep.home / "logs" / f"dag_id={EXPORT}" / f"run_id={run_id}" / f"task_id={SENSOR}"
    missing = [
        key
        for key in sensors
        if not list(
            (run_logs / f"map_index={key.split('[')[1].rstrip(']')}").glob(
                f"attempt=*.log.trigger.{job_id}.log"
            )
        )
    ]
    if job_id is None or missing:
        raise CheckFailed(
            f"no trigger log of the restarted triggerer (job {job_id}) for {missing} under {run_logs}"
        )
    return job_id


def describe_store(folder: Path) -> str:
    if not folder.is_dir():
        return f"{folder} absent (the connection's token_cache_dir; issue 16's token store creates it)"
    files = list(iter_files([folder]))
    return f"{folder} (mode {folder.stat().st_mode & 0o777:o}): {len(files)} files, scanned"


def parsed_dags(dep: Deployment) -> list[str]:
    """The DAG ids in the database once every example DAG file has been parsed, else [].

    Every file, not only the known DAGs: a file parsed after this answers would stay paused (its
    watcher never runs), and the dag-processor parses files in no fixed order.
    """
    errors = dep.db.import_errors()
    if errors:
        raise CheckFailed(f"the dag-processor could not import: {errors}")
    files = {path.name for path in EXAMPLE_DAGS.glob("*.py") if not path.name.startswith("_")}
    if not files <= set(dep.db.dag_files()):
        return []
    dag_ids = dep.db.dag_ids()
    return dag_ids if set(KNOWN_DAGS) <= set(dag_ids) else []


EVENTS = "butlr_room_empty_events"
ASSET_SCHEDULED = (EVENTS, "butlr_weekly_occupancy_report", PUSH_DAG)  # DAGs whose runs assets start
EVENT_ROOM = "room_2joyX7ewAWbxvkgiOfNtRF31Ya0"  # the example's default room (the emulator's seed 42)
EVENT_POLL_SECONDS = 3


def occupancy_answer(newest: dt.datetime, values: list[int]) -> str:
    """A reporting answer for the event room: one row per minute, the last value at ``newest``."""
    rows = [
        {
            "time": (newest - dt.timedelta(minutes=len(values) - 1 - i)).strftime("%Y-%m-%dT%H:%M:00Z"),
            "value": value,
            "measurement": "occupancy",
            "field": "occupancy",
            "room_id": EVENT_ROOM,
        }
        for i, value in enumerate(values)
    ]
    return json.dumps({"data": rows, "page_info": {"page": 1, "page_item_count": 0, "total_item_count": 0}})


def reporting_requests(dep: Deployment) -> int:
    return int(dep.admin.counters().get("per_path", {}).get("/api/v3/reporting", 0))


def trigger_event_driven_dags(dep: Deployment) -> list[tuple[str, str]]:
    """Issue 17: the room-empty watcher, polling in the real triggerer, starts its DAG once.

    The emulator answers the watcher's reporting polls with a scripted room (a ``status`` fault with
    a body, through the admin API): first occupied (the watcher arms itself on that data), then
    empty for a minute (a crossing: one event, one asset-triggered run), and the same answer for a
    few more polls (no second event while the room stays empty).
    """
    if EVENTS not in dep.db.dag_ids():
        return []
    newest = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    occupied = occupancy_answer(newest - dt.timedelta(minutes=2), [2] * 8)
    emptied = occupancy_answer(newest, [2] * 8 + [0, 0])
    fault = dep.admin.add_fault(path="/api/v3/reporting", kind="status", status=200, body=occupied)
    armed_at = reporting_requests(dep)
    wait_for(
        "the room-empty watcher's first polls (occupied)",
        lambda: reporting_requests(dep) >= armed_at + 2,
        120,
        dep.airflow_components(),
    )
    dep.admin.remove_fault(fault)
    before = {run_id for dag, run_id, _ in dep.db.runs() if dag == EVENTS}
    fault = dep.admin.add_fault(path="/api/v3/reporting", kind="status", status=200, body=emptied)
    new_runs = wait_for(
        "an asset-triggered run of the room-empty DAG",
        lambda: sorted({r for d, r, _ in dep.db.runs() if d == EVENTS} - before),
        180,
        dep.airflow_components(),
    )
    polls_at = reporting_requests(dep)
    wait_for(
        "three more polls of the empty room",
        lambda: reporting_requests(dep) >= polls_at + 3,
        120,
        dep.airflow_components(),
    )
    dep.admin.remove_fault(fault)
    runs = sorted({r for d, r, _ in dep.db.runs() if d == EVENTS} - before)
    if runs != new_runs[:1] or len(runs) != 1:
        raise CheckFailed(f"the room-empty watcher started {len(runs)} runs for one crossing: {runs}")
    print(f">> {EVENTS}: one crossing, one run ({runs[0]}), none while the room stayed empty", flush=True)
    return [(EVENTS, runs[0])]


def check_event_reached_the_task(dep: Deployment, run_id: str) -> None:
    """The asset event's payload (Airflow keeps it under ``extra["payload"]``) reached the task."""
    requests = dep.db.return_value(EVENTS, run_id, "request_cleaning")
    if not requests or requests[0].get("room") != EVENT_ROOM or not requests[0].get("empty_since"):
        raise CheckFailed(f"{EVENTS} {run_id}: request_cleaning did not read the event's room: {requests}")
    print(
        f">> {EVENTS}: request_cleaning read room {EVENT_ROOM}, empty since {requests[0]['empty_since']}",
        flush=True,
    )


def run_scenario(dep: Deployment, timings: Timings, results: Results) -> None:
    dep.migrate()
    timings.mark("airflow db migrate")
    dep.start_emulator()
    dep.build_env()
    dep.start_airflow()
    wait_for("the api-server", dep.api.up, 180, dep.airflow_components())
    dag_ids = wait_for(
        f"the dag-processor to parse every file of {EXAMPLE_DAGS.name}/",
        lambda: parsed_dags(dep),
        180,
        dep.airflow_components(),
        lambda: f"DAGs {dep.db.dag_ids()}, import errors {dep.db.import_errors()}",
    )
    timings.mark(f"components up, DAGs parsed ({len(dag_ids)})")
    for dag_id in dag_ids:
        dep.api.unpause(dag_id)

    # 1. The first login happens at the later emulator clock: its token is valid through the whole check.
    dep.api.trigger(QUICKSTART, None, "deploycheck__quickstart")
    wait_for_run(dep, QUICKSTART, "deploycheck__quickstart")
    timings.mark(f"{QUICKSTART} succeeded")
    results.count_logins(dep, QUICKSTART)

    # 2. Day D not complete anywhere; the sensors defer; the triggerer dies; D becomes complete.
    dates = dep.dates
    dep.admin.set_clock(dates.incomplete_clock)
    inventory_run = dep.api.trigger(INVENTORY, dates.first_logical_date, "deploycheck__inventory")
    first = dep.api.trigger(EXPORT, dates.first_logical_date, "deploycheck__export_1")
    results.deferred = wait_sensors_deferred(dep, first)
    timings.mark(f"{len(results.deferred)} sensors deferred (emulator clock {dates.incomplete_clock})")
    triggerer = dep.components["triggerer"]
    results.killed = [process_line(pid) for pid in triggerer.members()]
    killed = triggerer.kill()
    if not any("serve-logs" in line for line in results.killed):
        raise CheckFailed(f"no log server in the triggerer's process group: {results.killed}")
    if triggerer.members():
        raise CheckFailed(f"processes of the triggerer's group survived SIGKILL: {triggerer.members()}")
    if not port_is_free(dep.trigger_log_port):
        raise CheckFailed(f"port {dep.trigger_log_port} of the triggerer's log server is still bound")
    print(f">> SIGKILL to the triggerer's process group {triggerer.pid}: {len(killed)} processes", flush=True)
    still = dep.db.task_states(EXPORT, first, SENSOR)
    if any(v != "deferred" for k, v in still.items() if "[" in k):
        raise CheckFailed(f"the sensors left 'deferred' without a triggerer: {still}")
    dep.admin.set_clock(dates.complete_clock)
    dep.start_triggerer()
    wait_for_run(dep, EXPORT, first)
    results.resumed = check_resumed_by_new_triggerer(dep, first, results.deferred)
    timings.mark(f"{EXPORT} {first} succeeded after the triggerer restart")
    results.count_logins(dep, f"{first} (and {INVENTORY} so far)")

    # 3. A second day (complete at this clock: the sensors succeed on their first check).
    second = dep.api.trigger(EXPORT, dates.second_logical_date, "deploycheck__export_2")
    wait_for_run(dep, EXPORT, second)
    wait_for_run(dep, INVENTORY, inventory_run)
    timings.mark(f"{EXPORT} {second} and {INVENTORY} succeeded")
    results.count_logins(dep, f"{second} (and the rest of {INVENTORY})")

    # 4. Any other example DAG: the event-driven one (issue 17) through its hook, others by hand.
    for dag_id in sorted(set(dag_ids) - set(KNOWN_DAGS) - {SUBSCRIPTIONS_DAG}):  # the webhook step runs it
        print(f">> {dag_id}: not known to the check; triggered once by hand", flush=True)
        dep.api.trigger(dag_id, dates.first_logical_date, f"deploycheck__{dag_id}")  # ds for templates
    all_finished = (
        "every DAG run to finish",
        lambda: all(state in FINAL for _, _, state in dep.db.runs()),
        360,
        dep.airflow_components(),
        lambda: f"runs {dep.db.runs()}",
    )
    wait_for(*all_finished)  # before the event part: its scripted answers must reach its watcher only
    # 5. Asset-scheduled runs (the weekly report after the asset export, the room-empty events) need a
    # scheduler that creates runs by itself: the cron DAGs are paused first (no scheduled run of them).
    scheduler = dep.components["scheduler"]
    wait_for("the last task processes to exit", lambda: not scheduler.other_groups(), 60, [scheduler])
    for dag_id in sorted(set(dag_ids) - set(ASSET_SCHEDULED)):
        dep.api.pause(dag_id)
    dep.restart_scheduler_with_schedules()
    for dag_id, run_id in trigger_event_driven_dags(dep):
        wait_for_run(dep, dag_id, run_id)
        check_event_reached_the_task(dep, run_id)
    timings.mark("the event-driven DAG ran once for one occupancy crossing")
    # 6. Issue 24: the emulator pushes to the api-server's receiver; one crossing, one run, 0 polls.
    if PUSH_DAG in dag_ids:
        step = WebhookStep(
            dep,
            dep.push_scenario,
            dep.receiver,
            lambda: check_alive(dep),
            lambda d, r: wait_for_run(dep, d, r),
        )
        try:
            results.webhooks = step.run()
        except StepFailed as err:
            raise CheckFailed(f"webhook step: {err}") from err
        timings.mark(f"webhooks: one pushed crossing, one run in {results.webhooks.latency_s:.2f} s")
    wait_for(*all_finished)
    results.runs = dep.db.runs()
    # A run is final in the DB before its last task process has exited: let them finish.
    scheduler = dep.components["scheduler"]
    wait_for("the last task processes to exit", lambda: not scheduler.other_groups(), 60, [scheduler])
    timings.mark("every run finished")

    results.logins = dep.admin.logins()
    tokens = dep.admin.issued_tokens()
    results.token_count = len(tokens)
    dep.stop_all()
    timings.mark("components stopped")
    roots = [dep.home, dep.logs, dep.token_dir, dep.exports]
    # The emulator prints its credentials at start (its own log, not an Airflow component's output).
    emulator_log = dep.components["emulator"].log
    needles = secret_needles([CLIENT_SECRET, dep.receiver.key, *tokens])
    results.scan = scan_secrets(roots, needles, exclude=[emulator_log])
    results.errors = error_lines(iter_files([dep.logs, dep.home / "logs"]))
    results.token_store = describe_store(dep.token_dir)
    timings.mark("scans")


def verdict(results: Results, max_logins: int) -> list[str]:
    problems = []
    bad = [r for r in results.runs if r[2] != "success"]
    if bad or not results.runs:
        problems.append(f"runs not successful: {bad or 'no runs'}")
    if not results.deferred:
        problems.append(f"the {SENSOR} sensors were never seen deferred")
    if results.logins > max_logins:
        problems.append(f"{results.logins} logins > BUTLR_CHECK_MAX_LOGINS={max_logins}")
    if results.scan[2]:
        problems.append("secrets found: " + "; ".join(results.scan[2][:20]))
    if results.errors:
        problems.append(
            f"{len(results.errors)} error-level lines:\n  " + "\n  ".join(map(str, results.errors[:30]))
        )
    return problems


def print_summary(results: Results, timings: Timings, max_logins: int) -> None:
    print("\n=== deployment check summary")
    for dag_id, run_id, state in results.runs:
        print(f"run  {dag_id:<32} {run_id:<28} {state}")
    print(f"sensors deferred before the triggerer was killed: {sorted(results.deferred)}")
    print(f"SIGKILLed triggerer group: {results.killed}")
    print(
        f"the sensors' triggers resumed by the restarted triggerer (job {results.resumed}): {sorted(results.deferred)}"
    )
    print(
        f"logins: {results.logins} (target: 1 per token lifetime; with the token store <= {TOKEN_STORE_TARGET}; limit now {max_logins})"
    )
    previous = 0
    for phase, count in results.logins_by_phase:
        print(f"  logins during {phase}: {count - previous}")
        previous = count
    files, size, hits = results.scan
    print(
        f"secret scan: {files} files, {size / 1e6:.1f} MB, client secret, webhook key + {results.token_count} issued tokens "
        f"(plain, percent-encoded, JWT signature): {len(hits)} hits"
    )
    print(f"token store: {results.token_store}")
    for line in results.webhooks.lines() if results.webhooks else []:
        print(line)
    print(f"error-level lines: {len(results.errors)}")
    for phase, seconds in timings.phases:
        print(f"  {seconds:6.1f} s  {phase}")
    print(f"total: {timings.total:.0f} s")


@contextmanager
def signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` (SIGINT raises KeyboardInterrupt) so cleanup runs."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work-dir", type=Path, help="keep everything here (default: a temp dir, removed on success)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir on success too")
    args = parser.parse_args(argv)
    max_logins = int(os.environ.get("BUTLR_CHECK_MAX_LOGINS", DEFAULT_MAX_LOGINS))
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="butlr-deploy-check-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dates = Dates.from_now(dt.datetime.now(dt.UTC))
    print(
        f">> deployment check in {work}; day D = {dates.day} (emulator clock {dates.incomplete_clock} -> {dates.complete_clock})"
    )
    timings, results = Timings(), Results()
    dep = Deployment(work, dates)
    dep.build_env()
    ok = False
    with signals_unwind():
        try:
            run_scenario(dep, timings, results)
            print_summary(results, timings, max_logins)
            problems = verdict(results, max_logins)
            if problems:
                print("\nDEPLOYMENT CHECK FAILED:\n- " + "\n- ".join(problems), file=sys.stderr)
            else:
                ok = True
                print(f"\nDEPLOYMENT CHECK PASSED in {timings.total:.0f} s")
        except (CheckFailed, Interrupted, KeyboardInterrupt) as exc:
            print(f"\nDEPLOYMENT CHECK FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            print(dep.tails(), file=sys.stderr)
        except Exception:  # a bug or an unexpected answer: the traceback, the logs, then the cleanup
            traceback.print_exc()
            print("\nDEPLOYMENT CHECK FAILED (unexpected error above)", file=sys.stderr)
            print(dep.tails(), file=sys.stderr)
        finally:
            try:
                dep.stop_all()
            except CheckFailed as exc:
                ok = False
                print(f"DEPLOYMENT CHECK FAILED: {exc}", file=sys.stderr)
    if ok and not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f">> everything is under {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
