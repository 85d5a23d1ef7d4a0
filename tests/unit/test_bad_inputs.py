"""A catalogue of bad inputs: each gets a specific error naming the field and the allowed values.

Every case runs the real thing against the emulator: a hook call for connection problems, an
operator or sensor rendered and executed as Airflow would. Configuration errors must come before
any request (the emulator's request counter stays at 0) and leave nothing behind in the output
directory. The few errors that need the API to answer (a wrong audience, too many rows for XCom)
state how many requests they may take.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_butlr import DEFAULT_BASE_URL
from airflow_provider_butlr.exceptions import (
    ButlrAuthError,
    ButlrConfigurationError,
    ButlrDataError,
    ButlrError,
)
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import (
    ButlrGraphQLOperator,
    ButlrReportingOperator,
    ButlrStatsOperator,
)
from airflow_provider_butlr.sensors.butlr import ButlrDataCompleteSensor, ButlrOccupancySensor
from tests.conftest import TEST_CLIENT_SECRET

DAY = dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
MEASUREMENT_NAMES = "floor_occupancy, room_occupancy"  # the start of the allowed list in messages
WINDOW_FUNCTIONS = "mean, max, min, sum, median, first, last"


@dataclass
class Env:
    """What a case needs: the emulator, its ids, a place for output, a way to add connections."""

    emu: Any
    out: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def rooms(self) -> list[str]:
        return sorted(self.emu.org.rooms_by_id)[:3]

    @property
    def floors(self) -> list[str]:
        return sorted(self.emu.org.floors_by_id)[:2]

    def file(self, name: str = "export.jsonl") -> str:
        return str(self.out / name)

    def connection(self, conn_id: str, value: dict[str, Any] | str) -> ButlrHook:
        """A hook on a connection defined as JSON (dict) or URI (str), with quick retries."""
        text = value if isinstance(value, str) else json.dumps(value)
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", text)
        return ButlrHook(conn_id, retry_wait_initial=0.01, retry_wait_max=0.02)

    def conn_fields(self, **overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "conn_type": "butlr",
            "host": self.emu.url,
            "login": self.emu.client_id,
            "password": self.emu.client_secret,
            "extra": {"audience": self.emu.audience},
        }
        extra = overrides.pop("extra", {})
        fields.update(overrides)
        fields["extra"].update(extra)
        return {k: v for k, v in fields.items() if v is not None}


def run_task(task: Any) -> Any:
    """Render the templates and execute, as a worker would, for a run on ``DAY``."""
    context: dict[str, Any] = {
        "data_interval_start": DAY,
        "data_interval_end": DAY + dt.timedelta(days=1),
        "logical_date": DAY,
        "ds": DAY.date().isoformat(),
        "params": {},
    }
    task.render_template_fields(context)
    return task.execute(context)


def reporting(env: Env, **kwargs: Any) -> Any:
    """A reporting export that would succeed but for ``kwargs`` (written to a file in ``env.out``)."""
    arguments: dict[str, Any] = {
        "task_id": "export",
        "measurements": "room_occupancy",
        "rooms": env.rooms,
        "start": DAY.isoformat(),
        "stop": (DAY + dt.timedelta(hours=6)).isoformat(),
        "timezone": "UTC",
        "output_path": env.file(),
    }
    arguments.update(kwargs)
    return run_task(ButlrReportingOperator(**arguments))


def directory(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def stats(env: Env, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {
        "task_id": "stats",
        "measurements": "occupancy_avg_presence",
        "items": env.rooms,
        "start": DAY.isoformat(),
        "stop": (DAY + dt.timedelta(days=7)).isoformat(),
        "timezone": "UTC",
    }
    arguments.update(kwargs)
    return run_task(ButlrStatsOperator(**arguments))


def occupancy_sensor(env: Env, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {"task_id": "occupied", "rooms": env.rooms, "deferrable": False}
    arguments.update(kwargs)
    return run_task(ButlrOccupancySensor(**arguments))


def complete_sensor(env: Env, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {
        "task_id": "complete",
        "rooms": env.rooms,
        "start": DAY.isoformat(),
        "stop": (DAY + dt.timedelta(days=1)).isoformat(),
        "timezone": "UTC",
        "deferrable": False,
    }
    arguments.update(kwargs)
    return run_task(ButlrDataCompleteSensor(**arguments))


def graphql(hook: ButlrHook) -> Any:
    return hook.graphql("{ sites { data { id } } }")


@dataclass(frozen=True)
class Case:
    """One bad input: what to run, the error type, regexes the message must match, requests allowed."""

    name: str
    run: Callable[[Env], Any]
    error: type[ButlrError]
    patterns: tuple[str, ...]
    requests: int = 0


CASES = [
    # --- connection -------------------------------------------------------------------------------
    Case(
        "garbage host",
        lambda e: graphql(e.connection("bad", e.conn_fields(host="not a host!"))),
        ButlrConfigurationError,
        (r"host 'not a host!' is not a valid API base URL", r"field host", re.escape(DEFAULT_BASE_URL)),
    ),
    Case(
        "host with a non-http scheme",
        lambda e: graphql(e.connection("bad", e.conn_fields(host="ftp://api.butlr.io"))),
        ButlrConfigurationError,
        (r"field host", r"expected e\.g\. https://"),
    ),
    Case(
        "missing client id",
        lambda e: graphql(e.connection("bad", e.conn_fields(login=""))),
        ButlrConfigurationError,
        (r"client id is missing", r"field login", r"Client ID"),
    ),
    Case(
        "missing client secret",
        lambda e: graphql(e.connection("bad", e.conn_fields(password=None))),
        ButlrConfigurationError,
        (r"client secret is missing", r"field password", r"Client Secret"),
    ),
    Case(
        "unknown auth_type",
        lambda e: graphql(e.connection("bad", e.conn_fields(extra={"auth_type": "oauth"}))),
        ButlrConfigurationError,
        (r"auth_type 'oauth'", r"client_credentials, password", r"extra\.auth_type"),
    ),
    Case(
        "non-numeric timeout from a URI connection",
        lambda e: graphql(
            e.connection("bad", f"butlr://id:{TEST_CLIENT_SECRET}@127.0.0.1:{e.emu.port}/?timeout=soon")
        ),
        ButlrConfigurationError,
        (r"timeout 'soon' is not a whole number", r"extra\.timeout"),
    ),
    Case(
        "non-numeric max_retries from a URI connection",
        lambda e: graphql(
            e.connection("bad", f"butlr://id:{TEST_CLIENT_SECRET}@127.0.0.1:{e.emu.port}/?max_retries=many")
        ),
        ButlrConfigurationError,
        (r"max_retries 'many' is not a whole number", r"extra\.max_retries"),
    ),
    Case(
        "negative max_retries",
        lambda e: graphql(e.connection("bad", e.conn_fields(extra={"max_retries": -1}))),
        ButlrConfigurationError,
        (r"max_retries -1 must be at least 0", r"extra\.max_retries"),
    ),
    Case(
        "zero timeout",
        lambda e: graphql(e.connection("bad", e.conn_fields(extra={"timeout": 0}))),
        ButlrConfigurationError,
        (r"timeout 0 must be at least 1", r"extra\.timeout"),
    ),
    Case(
        "wrong audience: login refused once, not retried",
        lambda e: graphql(e.connection("bad", e.conn_fields(extra={"audience": "https://wrong-audience/"}))),
        ButlrAuthError,
        (r"login refused", r"HTTP 403", r"Service not enabled within domain", r"audience"),
        requests=1,
    ),
    # --- reporting operator ------------------------------------------------------------------------
    Case(
        "unknown measurement",
        lambda e: reporting(e, measurements="room_occupancy_avg"),
        ButlrConfigurationError,
        (r"measurements: 'room_occupancy_avg' is not a reporting measurement", MEASUREMENT_NAMES),
    ),
    Case(
        "stats measurement given to the reporting operator",
        lambda e: reporting(e, measurements="occupancy_avg_presence"),
        ButlrConfigurationError,
        (r"measurements: 'occupancy_avg_presence'", r"ButlrStatsOperator"),
    ),
    Case(
        "calibrated with a measurement that does not support it",
        lambda e: reporting(e, calibrated="true"),
        ButlrConfigurationError,
        (r"calibrated='true' is only valid with traffic_floor_occupancy, traffic_room_occupancy",),
    ),
    Case(
        "calibrated with a value that is not allowed",
        lambda e: reporting(e, measurements="traffic_room_occupancy", calibrated="yes"),
        ButlrConfigurationError,
        (r"calibrated: 'yes' is not allowed", r"true, raw, false"),
    ),
    Case(
        "stop before start",
        lambda e: reporting(e, start="2025-03-04T06:00:00Z", stop="2025-03-04T00:00:00Z"),
        ButlrConfigurationError,
        (r"stop \(2025-03-04T00:00:00Z\) must be after start \(2025-03-04T06:00:00Z\)",),
    ),
    Case(
        "stop before start, known only after rendering",
        lambda e: reporting(
            e, start="{{ data_interval_end.isoformat() }}", stop="{{ data_interval_start.isoformat() }}"
        ),
        ButlrConfigurationError,
        (r"stop \(2025-03-04T00:00:00Z\) must be after start \(2025-03-05T00:00:00Z\)",),
    ),
    Case(
        "naive datetime",
        lambda e: reporting(e, start=dt.datetime(2025, 3, 4)),
        ButlrConfigurationError,
        (r"start: 2025-03-04T00:00:00 has no timezone", r"2025-01-01T00:00:00Z"),
    ),
    Case(
        "unparsable datetime",
        lambda e: reporting(e, stop="tomorrow-ish"),
        ButlrConfigurationError,
        (r"stop: 'tomorrow-ish' is not an ISO 8601 / RFC3339 time", r"2025-01-01T05:00:00Z"),
    ),
    Case(
        "unparsable datetime, known only after rendering",
        lambda e: reporting(e, start="{{ ds }} at noon"),
        ButlrConfigurationError,
        (r"start: '2025-03-04 at noon' is not an ISO 8601 / RFC3339 time",),
    ),
    Case(
        "relative time where an absolute one is required (reporting)",
        lambda e: reporting(e, start="-1d"),
        ButlrConfigurationError,
        (r"start: '-1d' is not an ISO 8601 / RFC3339 time",),
    ),
    Case(
        "relative time where an absolute one is required (stats)",
        lambda e: stats(e, start="now() - 7d"),
        ButlrConfigurationError,
        (r"start: 'now\(\) - 7d' is not an ISO 8601 / RFC3339 time",),
    ),
    Case(
        "empty id lists",
        lambda e: reporting(e, rooms=[]),
        ButlrConfigurationError,
        (r"select assets with at least one of sites, buildings, floors, rooms, zones, tags",),
    ),
    Case(
        "empty id list, known only after rendering",
        lambda e: reporting(e, rooms="{{ params.get('rooms', '') }}"),
        ButlrConfigurationError,
        (r"rooms: every item must be a non-empty string",),
    ),
    Case(
        "room ids passed as floors",
        lambda e: reporting(e, measurements="floor_occupancy", rooms=None, floors=e.rooms[:1]),
        ButlrConfigurationError,
        (
            r"floors: 'room_\w+' is not a floor id \(expected the prefix space_\)",
            r"pass it as rooms=\[\.\.\.\]",
        ),
    ),
    Case(
        "ids that are not strings",
        lambda e: reporting(e, rooms=[42]),
        ButlrConfigurationError,
        (r"rooms: every item must be a non-empty string, got 42",),
    ),
    Case(
        "window function not in the allowed list",
        lambda e: reporting(e, window_function="average"),
        ButlrConfigurationError,
        (r"window_function: 'average' is not a window function", WINDOW_FUNCTIONS),
    ),
    Case(
        "window every that is not a duration",
        lambda e: reporting(e, window_every="hourly"),
        ButlrConfigurationError,
        (r"window_every: 'hourly' is not a window duration", r"<positive integer><s\|m\|h\|d\|w>", r"1m, 5m"),
    ),
    Case(
        "window every of zero",
        lambda e: reporting(e, window_every="0m"),
        ButlrConfigurationError,
        (r"window_every: '0m' is not a window duration",),
    ),
    Case(
        "window every below the API's one minute",
        lambda e: reporting(e, window_every="1s"),
        ButlrConfigurationError,
        (
            r"window_every: '1s' is outside the windows the reporting API accepts",
            r"whole minutes from 1m to 52w",
        ),
    ),
    Case(
        "window every too large for a duration",
        lambda e: reporting(e, window_every="999999999999w"),
        ButlrConfigurationError,
        (r"window_every: '999999999999w' is not a window duration",),
    ),
    Case(
        "days too many to count back",
        lambda e: reporting(e, start=None, stop=None, local_day="2025-03-04", days=10**6),
        ButlrConfigurationError,
        (r"export: days must be at most 3660",),
    ),
    Case(
        "local day at the end of the calendar",
        lambda e: reporting(e, start=None, stop=None, local_day="9999-12-31"),
        ButlrConfigurationError,
        (r"local_day: 9999-12-31 is outside the years 1970-2200",),
    ),
    Case(
        "start in year 9999",
        lambda e: reporting(e, start="9999-01-01T00:00:00Z", stop="9999-01-02T00:00:00Z"),
        ButlrConfigurationError,
        (r"start: 9999-01-01T00:00:00\+00:00 is outside the years 1970-2200",),
    ),
    Case(
        "start in year 1",
        lambda e: reporting(e, start="0001-01-01T00:00:00Z"),
        ButlrConfigurationError,
        (r"start: 0001-01-01T00:00:00\+00:00 is outside the years",),
    ),
    Case(
        "ids with whitespace inside",
        lambda e: reporting(e, rooms=[f"{e.rooms[0]}\n{e.rooms[1]}"]),
        ButlrConfigurationError,
        (r"rooms: 'room_\w+\\nroom_\w+' is not a valid id", r"no spaces"),
    ),
    Case(
        "ids as a dict",
        lambda e: reporting(e, rooms={"room_1": "x"}),
        ButlrConfigurationError,
        (r"rooms must be a string or a list of strings, got dict",),
    ),
    Case(
        "output path that is a directory",
        lambda e: reporting(e, output_path=str(directory(e.out.parent / "a-directory.jsonl"))),
        ButlrConfigurationError,
        (r"output_path '.*a-directory.jsonl' is a directory",),
    ),
    Case(
        "unsupported output format",
        lambda e: reporting(e, output_format="xlsx"),
        ButlrConfigurationError,
        (r"output_format 'xlsx' is not supported", r"allowed: jsonl, csv, parquet"),
    ),
    Case(
        "unsupported output format, known only after rendering",
        lambda e: reporting(e, output_format="{{ params.get('format', 'xlsx') }}"),
        ButlrConfigurationError,
        (r"output_format 'xlsx' is not supported", r"allowed: jsonl, csv, parquet"),
    ),
    Case(
        "output path without a known suffix",
        lambda e: reporting(e, output_path=e.file("export.xlsx")),
        ButlrConfigurationError,
        (r"has no \.jsonl/\.ndjson/\.csv/\.parquet suffix", r"output_format", r"jsonl, csv, parquet"),
    ),
    Case(
        "unknown timezone",
        lambda e: reporting(e, timezone="Mars/Olympus_Mons"),
        ButlrConfigurationError,
        (r"timezone: 'Mars/Olympus_Mons' is not a known IANA timezone name", r"America/New_York"),
    ),
    Case(
        "too much concurrency",
        lambda e: reporting(e, max_concurrency=10),
        ButlrConfigurationError,
        (r"max_concurrency must be an integer from 1 to 5", r"got 10"),
    ),
    Case(
        "zero ids per request",
        lambda e: reporting(e, max_ids_per_request=0),
        ButlrConfigurationError,
        (r"max_ids_per_request must be a positive integer \(at most 1000\), got 0",),
    ),
    Case(
        "absurd ids per task",
        lambda e: reporting(e, max_ids_per_task=10**15),
        ButlrConfigurationError,
        (r"max_ids_per_task must be a positive integer \(at most 100000\), got 1000000000000000",),
    ),
    Case(
        "absurd XCom rows",
        lambda e: reporting(e, max_xcom_rows=10**12),
        ButlrConfigurationError,
        (r"max_xcom_rows must be a positive integer \(at most 100000\)",),
    ),
    # --- stats and GraphQL operators ---------------------------------------------------------------
    Case(
        "unknown stats measurement",
        lambda e: stats(e, measurements="room_occupancy"),
        ButlrConfigurationError,
        (r"measurements: 'room_occupancy' is not a stats measurement", r"occupancy_avg_presence"),
    ),
    Case(
        "stats items of the wrong kind",
        lambda e: stats(e, items=["tag_2abcdefghijklmnopqrstuvwxy"]),
        ButlrConfigurationError,
        (r"items: 'tag_\w+' is not a floor \(space_\), room \(room_\) or zone \(zone_\) id",),
    ),
    Case(
        "unknown day of the week",
        lambda e: stats(e, exclude_days_of_week=["Funday"]),
        ButlrConfigurationError,
        (r"exclude_days_of_week: 'Funday' is not a day of the week", r"Monday, Tuesday"),
    ),
    Case(
        "time range that is not HH:MM",
        lambda e: stats(e, time_ranges=[{"start": "09:00", "stop": "25:00"}]),
        ButlrConfigurationError,
        (r"time_ranges: stop '25:00' is not a time of day in HH:MM",),
    ),
    Case(
        "empty GraphQL query",
        lambda e: run_task(ButlrGraphQLOperator(task_id="gql", query="  ")),
        ButlrConfigurationError,
        (r"query must be a non-empty GraphQL document",),
    ),
    # --- sensors -----------------------------------------------------------------------------------
    Case(
        "occupancy sensor: unknown comparison",
        lambda e: occupancy_sensor(e, op="=>"),
        ButlrConfigurationError,
        (r"op '=>' is not one of", r"<=", r">="),
    ),
    Case(
        "occupancy sensor: unknown source",
        lambda e: occupancy_sensor(e, source="thermal"),
        ButlrConfigurationError,
        (r"source 'thermal' is not one of auto, presence, traffic",),
    ),
    Case(
        "occupancy sensor: two asset kinds",
        lambda e: occupancy_sensor(e, floors=e.floors),
        ButlrConfigurationError,
        (r"give exactly one of rooms, zones, floors",),
    ),
    Case(
        "occupancy sensor: room ids passed as floors",
        lambda e: occupancy_sensor(e, rooms=None, floors=e.rooms[:1]),
        ButlrConfigurationError,
        (r"floors: 'room_\w+' is not a floor id",),
    ),
    Case(
        "occupancy sensor: match not in the allowed list",
        lambda e: occupancy_sensor(e, match="most"),
        ButlrConfigurationError,
        (r"match 'most' is not one of all, any",),
    ),
    Case(
        "occupancy sensor: threshold that is not a number",
        lambda e: occupancy_sensor(e, threshold="lots"),
        ButlrConfigurationError,
        (r"threshold 'lots' must be a number or a mapping of asset id to number",),
    ),
    Case(
        "completeness sensor: unknown measurement",
        lambda e: complete_sensor(e, measurement="room_occupancy_avg"),
        ButlrConfigurationError,
        (r"measurement: 'room_occupancy_avg' is not a reporting measurement", MEASUREMENT_NAMES),
    ),
    Case(
        "completeness sensor: measurement not reported for the asset kind",
        lambda e: complete_sensor(e, measurement="floor_occupancy"),
        ButlrConfigurationError,
        (r"measurement 'floor_occupancy' is reported for floors or tags, not for rooms",),
    ),
    Case(
        "completeness sensor: unparsable window end",
        lambda e: complete_sensor(e, stop="yesterday"),
        ButlrConfigurationError,
        (r"stop: 'yesterday' is not an ISO 8601 / RFC3339 time", r"2025-01-01T05:00:00Z"),
    ),
    Case(
        "completeness sensor: relative window start",
        lambda e: complete_sensor(e, start="-1d"),
        ButlrConfigurationError,
        (r"start: '-1d' is not an ISO 8601 / RFC3339 time",),
    ),
    Case(
        "completeness sensor: no assets",
        lambda e: complete_sensor(e, rooms=[]),
        ButlrConfigurationError,
        (r"give at least one of floors, rooms, zones",),
    ),
    Case(
        "completeness sensor: window end before start",
        lambda e: complete_sensor(e, stop="2025-03-03T00:00:00Z"),
        ButlrConfigurationError,
        (r"stop \(2025-03-03T00:00:00Z\) must be after start",),
    ),
    Case(
        "completeness sensor: naive window start",
        lambda e: complete_sensor(e, start="2025-03-04T00:00:00"),
        ButlrConfigurationError,
        (r"start: 2025-03-04T00:00:00 has no timezone",),
    ),
    Case(
        "completeness sensor: unknown timezone",
        lambda e: complete_sensor(
            e,
            start=None,
            stop=None,
            local_day="2025-03-04",
            timezone="Atlantis/Central",
        ),
        ButlrConfigurationError,
        (r"timezone: 'Atlantis/Central' is not a known IANA timezone name",),
    ),
    Case(
        "completeness sensor: check_every that is not a duration",
        lambda e: complete_sensor(e, check_every="often"),
        ButlrConfigurationError,
        (r"check_every: 'often' is not a window duration",),
    ),
    Case(
        "completeness sensor: null percentage outside 0..1",
        lambda e: complete_sensor(e, max_null_percentage=5),
        ButlrConfigurationError,
        (r"max_null_percentage 5 must be between 0 and 1",),
    ),
    Case(
        "completeness sensor: zero check span (the check would read nothing and never complete)",
        lambda e: complete_sensor(e, check_span=0),
        ButlrConfigurationError,
        (r"check_span 0 must be longer than zero",),
    ),
]


@pytest.fixture
def env(butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(butlr_conn, tmp_path / "out", monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, env: Env) -> None:
    with pytest.raises(case.error) as info:
        case.run(env)
    message = str(info.value)
    for pattern in case.patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert TEST_CLIENT_SECRET not in message
    assert env.emu.counters.total == case.requests, env.emu.counters.per_path
    assert not env.out.exists() or list(env.out.iterdir()) == []


def test_catalogue_size() -> None:
    assert len(CASES) >= 25


def test_missing_host_means_the_public_api(env: Env) -> None:
    hook = env.connection("nohost", env.conn_fields(host=None))
    assert hook.settings.base_url == DEFAULT_BASE_URL
    assert env.emu.counters.total == 0


def test_the_harness_sees_requests_and_files(env: Env) -> None:
    """Control: the same export with good inputs talks to the emulator and writes its file."""
    summary = reporting(env)
    assert summary["rows"] > 0 and env.emu.counters.total > 0
    assert [p.name for p in env.out.iterdir()] == ["export.jsonl"]


def test_too_many_rows_for_xcom_without_output_path(env: Env) -> None:
    """Refused with a hint, after reading at most one row too many: never the whole export."""
    with pytest.raises(ButlrDataError, match=r"more than max_xcom_rows=5 rows.*set output_path"):
        reporting(env, output_path=None, max_xcom_rows=5, rooms=sorted(env.emu.org.rooms_by_id)[:90])
    reporting_calls = env.emu.counters.requests("/api/v3/reporting")
    # 90 rooms make 3 batches: the first, plus at most the next one already on its way while the
    # first is read (the export keeps one request in flight); the third is never asked
    assert 1 <= reporting_calls <= 2
    assert not env.out.exists()
