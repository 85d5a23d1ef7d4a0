"""Operators: parse-time behaviour, argument validation, and execute() against the emulator."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_butlr.client.scrub import redact_secret_fields
from airflow_provider_butlr.exceptions import (
    ButlrAPIError,
    ButlrConfigurationError,
    ButlrDataError,
    ButlrError,
    ButlrGraphQLError,
)
from airflow_provider_butlr.hooks.butlr import ButlrHook
from airflow_provider_butlr.operators.butlr import (
    ButlrDeviceHealthError,
    ButlrDeviceHealthOperator,
    ButlrGraphQLOperator,
    ButlrOperator,
    ButlrReportingOperator,
    ButlrStatsOperator,
)
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS
from airflow_provider_butlr.reporting.windows import run_day
from tests.conftest import connection_json

UTC = UTC
REPORTING = "/api/v3/reporting"
STATS = "/api/v4/reporting/stats"


def sites_by_tz(emu: Any) -> dict[str | None, str]:
    return {s.timezone: s.id for s in emu.org.sites}


def bodies(emu: Any, path: str) -> list[dict[str, Any]]:
    return [r.body_json for r in emu.counters.log if r.path == path]


def rendered(op: Any, context: dict[str, Any]) -> Any:
    op.render_template_fields(context)
    return op


def room_export(emu: Any, **kwargs: Any) -> ButlrReportingOperator:
    """Hourly room_occupancy of the emulator's first room, in UTC; ``kwargs`` add or override."""
    arguments: dict[str, Any] = {
        "task_id": "t",
        "measurements": "room_occupancy",
        "rooms": [next(iter(emu.org.rooms_by_id))],
        "timezone": "UTC",
    }
    return ButlrReportingOperator(**{**arguments, **kwargs})


def reporting_requests(emu: Any) -> list[Any]:
    return [r for r in emu.counters.log if r.path == "/api/v3/reporting"]


# --- parse time --------------------------------------------------------------------------------


def all_operators() -> list[Any]:
    return [
        ButlrOperator(
            task_id="generic", endpoint="/api/v3/graphql", json={"query": "{ sites { data { id } } }"}
        ),
        ButlrReportingOperator(
            task_id="export", measurements=["room_occupancy"], sites=["site_x"], local_day=True
        ),
        ButlrStatsOperator(
            task_id="stats", measurements="occupancy_avg_presence", items=["room_1"], local_day=True
        ),
        ButlrGraphQLOperator(task_id="gql", query="{ sites { data { id } } }"),
        ButlrDeviceHealthOperator(task_id="health", max_offline_share=0.2),
    ]


def test_constructing_operators_touches_no_network_and_no_connection(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_BUTLR_DEFAULT", raising=False)  # a lookup would fail loudly
    all_operators()
    assert emulator.counters.total == 0


@pytest.mark.parametrize("op", all_operators(), ids=lambda op: op.task_id)
def test_template_fields_include_the_connection(op: Any) -> None:
    assert "butlr_conn_id" in op.template_fields


def test_reporting_and_stats_template_ids_and_time_bounds() -> None:
    for cls, fields in (
        (
            ButlrReportingOperator,
            {
                "sites",
                "buildings",
                "floors",
                "rooms",
                "zones",
                "tags",
                "start",
                "stop",
                "local_day",
                "output_path",
            },
        ),
        (ButlrStatsOperator, {"items", "sites", "buildings", "start", "stop", "local_day"}),
        (ButlrDeviceHealthOperator, {"sites", "buildings", "floors"}),
        (ButlrGraphQLOperator, {"query", "variables"}),
    ):
        assert fields <= set(cls.template_fields), cls.__name__


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: ButlrReportingOperator(task_id="t", measurements="occupancy", rooms=["room_1"]),
            r"measurements: 'occupancy' is not a reporting measurement",
        ),
        (
            lambda: ButlrReportingOperator(task_id="t", measurements="room_occupancy", floors=["room_1"]),
            r"floors: 'room_1' is not a floor id.*pass it as rooms=",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], window_every="hourly"
            ),
            r"window_every: 'hourly' is not a window duration",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], window_function="avg"
            ),
            r"window_function: 'avg' is not a window function",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], calibrated="true"
            ),
            r"calibrated='true' is only valid with traffic_floor_occupancy",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], max_concurrency=8
            ),
            r"max_concurrency must be an integer from 1 to 5",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], output_path="/tmp/x.xlsx"
            ),
            r"output_path '/tmp/x.xlsx' has no .jsonl/.ndjson/.csv/.parquet suffix",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], output_format="xml"
            ),
            r"output_format 'xml' is not supported; allowed: jsonl, csv",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], start=datetime(2025, 1, 1)
            ),
            r"start: 2025-01-01T00:00:00 has no timezone",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], local_day="last monday"
            ),
            r"local_day: 'last monday' is not a date",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t",
                measurements="room_occupancy",
                rooms=["room_1"],
                local_day=True,
                start="2025-01-01T00:00:00Z",
            ),
            r"pass either local_day or start/stop",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], timezone="CET+1"
            ),
            r"timezone: 'CET\+1' is not a known IANA timezone",
        ),
        (
            lambda: ButlrReportingOperator(
                task_id="t", measurements="room_occupancy", rooms=["room_1"], days=0
            ),
            r"days must be a positive integer",
        ),
        (
            lambda: ButlrStatsOperator(task_id="t", measurements="room_occupancy", items=["room_1"]),
            r"'room_occupancy' is not a stats measurement",
        ),
        (
            lambda: ButlrStatsOperator(task_id="t", measurements="occupancy_avg_presence", items=["site_1"]),
            r"items: 'site_1' is not a floor",
        ),
        (
            lambda: ButlrStatsOperator(
                task_id="t", measurements="occupancy_avg_presence", sites=["s1"], exclude_days_of_week=["Sat"]
            ),
            r"sites: 's1' is not a site id|'Sat' is not a day",
        ),
        (
            lambda: ButlrStatsOperator(
                task_id="t", measurements="occupancy_avg_presence", items=["room_1"], resolve_to="sites"
            ),
            r"resolve_to 'sites' is not allowed; use floors, rooms or zones",
        ),
        (
            lambda: ButlrOperator(task_id="t", endpoint="/api/v3/graphql", method="FETCH"),
            r"method 'FETCH' is not allowed; use one of GET, POST",
        ),
        (lambda: ButlrOperator(task_id="t", endpoint=""), r"endpoint must be a non-empty path"),
        (
            lambda: ButlrOperator(task_id="t", endpoint="/x", response_check="yes"),
            r"response_check must be a callable",
        ),
        (lambda: ButlrGraphQLOperator(task_id="t", query=" "), r"query must be a non-empty GraphQL document"),
        (
            lambda: ButlrDeviceHealthOperator(task_id="t", max_offline_share=20),
            r"max_offline_share must be a share between 0 and 1",
        ),
        (
            lambda: ButlrDeviceHealthOperator(task_id="t", max_critical_batteries=-1),
            r"max_critical_batteries must be an integer from 0 to 1000000",
        ),
        (
            lambda: ButlrDeviceHealthOperator(task_id="t", floors=["room_1"]),
            r"floors: 'room_1' is not a floor id",
        ),
    ],
)
def test_invalid_arguments_fail_at_construction_naming_the_argument(factory: Any, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        factory()


def test_templated_values_are_validated_after_rendering() -> None:
    op = ButlrReportingOperator(
        task_id="t", measurements="room_occupancy", rooms="{{ params.room }}", local_day="{{ ds }}"
    )
    rendered(op, {"params": {"room": "space_1"}, "ds": "2025-01-02"})
    assert (op.rooms, op.local_day) == ("space_1", "2025-01-02")
    with pytest.raises(ButlrConfigurationError, match="t: rooms: 'space_1' is not a room id"):
        op.execute({})


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("measurements", "room_ocupancy"),
        ("window_every", "1s"),
        ("window_function", "avg"),
        ("rooms", "room_1 room_2"),
        ("timezone", "Mars/Base"),
        ("output_format", "xml"),
        ("start", "2025-01-01T00:00:00"),
    ],
)
def test_literal_and_rendered_arguments_get_the_same_error(field: str, bad: Any) -> None:
    """One function per rule: at construction for plain values, after rendering for templates."""
    base: dict[str, Any] = {"task_id": "export_rooms", "measurements": "room_occupancy", "rooms": ["room_1"]}
    with pytest.raises(ButlrConfigurationError) as literal:
        ButlrReportingOperator(**{**base, field: bad})
    op = ButlrReportingOperator(**{**base, field: "{{ params.value }}"})
    rendered(op, {"params": {"value": bad}})
    with pytest.raises(ButlrConfigurationError) as after_rendering:
        op.execute({})  # refused before the connection is even looked up
    assert str(after_rendering.value) == str(literal.value)
    assert str(literal.value).startswith(f"export_rooms: {field}")


def test_a_measurement_typo_names_the_task_and_the_closest_match() -> None:
    with pytest.raises(
        ButlrConfigurationError,
        match=r"^export_rooms: measurements: 'room_ocupancy' is not a reporting measurement; allowed: .*"
        r"did you mean 'room_occupancy'\?$",
    ):
        ButlrReportingOperator(task_id="export_rooms", measurements="room_ocupancy", rooms=["room_1"])
    with pytest.raises(ButlrConfigurationError, match=r"did you mean 'occupancy_avg_presence'\?"):
        ButlrStatsOperator(task_id="t", measurements="occupancy_avg_presense", items=["room_1"])


def test_window_every_is_parsed_once_per_task_run(butlr_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_provider_butlr.reporting.validation as reporting

    sites = sites_by_tz(butlr_conn)
    op = ButlrReportingOperator(
        task_id="t",
        measurements=["room_occupancy", "floor_occupancy"],
        sites=[sites["America/New_York"], sites["Europe/Berlin"]],  # two queries, two timezones
        local_day="2025-03-09",
        window_every="{{ params.every }}",
        window_function=["mean", "max"],
    )
    rendered(op, {"params": {"every": "6h"}})
    calls: list[str] = []
    parse = reporting.parse_every

    def spy(every: str, name: str = "window_every") -> Any:
        calls.append(every)
        return parse(every, name)

    monkeypatch.setattr(reporting, "parse_every", spy)
    rows = op.execute({})
    assert rows and len({r["time"] for r in rows}) > 1 and len(reporting_requests(butlr_conn)) >= 4
    assert calls == ["6h"]  # every query, unit and request body reuse the parsed value


def test_templated_local_day_that_renders_false_leaves_start_and_stop_in_charge(butlr_conn: Any) -> None:
    op = room_export(
        butlr_conn,
        local_day="{{ params.local_day }}",
        start="2025-02-01T00:00:00Z",
        stop="2025-02-01T02:00:00Z",
    )
    rendered(op, {"params": {"local_day": False}})
    assert [r["time"] for r in op.execute({})] == ["2025-02-01T00:00:00Z", "2025-02-01T01:00:00Z"]


def test_output_format_and_output_conn_id_are_templated(butlr_conn: Any, tmp_path: Path) -> None:
    op = room_export(
        butlr_conn,
        window_every="6h",
        local_day="{{ ds }}",
        output_path=str(tmp_path / "{{ ds }}.out"),
        output_format="{{ params.fmt }}",
        output_conn_id="{{ params.storage }}",
    )
    rendered(op, {"ds": "2025-02-01", "params": {"fmt": "csv", "storage": "warehouse_fs"}})
    assert op.output_conn_id == "warehouse_fs"
    result = op.execute({})
    out = tmp_path / "2025-02-01.out"
    assert (result["path"], result["format"], result["rows"]) == (str(out), "csv", 4)
    with out.open() as handle:
        assert tuple(next(csv.reader(handle))) == ROW_COLUMNS


def test_graphql_operation_name_is_templated(butlr_conn: Any) -> None:
    op = ButlrGraphQLOperator(
        task_id="t",
        query="query Ids { sites { data { id } } } query Names { sites { data { name } } }",
        operation_name="{{ params.operation }}",
    )
    rendered(op, {"params": {"operation": "Names"}})
    assert op.execute({}) == {"sites": {"data": [{"name": s.name} for s in butlr_conn.org.sites]}}


# --- run_day -----------------------------------------------------------------------------------


def test_run_day_uses_the_data_interval_or_the_day_before_the_logical_date() -> None:
    start = pendulum.datetime(2025, 3, 9, tz="UTC")
    assert run_day({"data_interval_start": start, "data_interval_end": start.add(days=1)}) == start.date()
    cron_trigger = {"data_interval_start": start, "data_interval_end": start, "logical_date": start}
    assert run_day(cron_trigger) == start.date() - timedelta(days=1)
    assert run_day({}) is None
    op = ButlrReportingOperator(
        task_id="export", measurements=["room_occupancy"], rooms=["room_1"], local_day=True
    )
    with pytest.raises(ButlrConfigurationError, match="local_day=True needs a logical date"):
        op._window({}, "UTC")


# --- ButlrOperator -----------------------------------------------------------------------------


def test_generic_operator_posts_graphql_and_filters_the_answer(butlr_conn: Any) -> None:
    op = ButlrOperator(
        task_id="t",
        endpoint="/api/v3/graphql",
        json={"query": "query { sites { data { id timezone } } }"},
        response_check=lambda payload: "errors" not in payload,
        response_filter=lambda payload: sorted(s["id"] for s in payload["data"]["sites"]["data"]),
    )
    assert op.resolved_method() == "POST"
    assert op.execute({}) == sorted(s.id for s in butlr_conn.org.sites)
    assert [r.method for r in butlr_conn.counters.log if r.path == "/api/v3/graphql"] == ["POST"]


def test_generic_operator_defaults_to_get_elsewhere_and_checks_the_response(butlr_conn: Any) -> None:
    op = ButlrOperator(
        task_id="t",
        endpoint="/api/v3/graphql",
        method="post",
        json={"query": "{ sites { data { id } } }"},
        response_check=lambda payload: False,
    )
    with pytest.raises(Exception, match="response_check returned False for Butlr POST /api/v3/graphql"):
        op.execute({})
    assert ButlrOperator(task_id="g", endpoint="/api/v1/client").resolved_method() == "GET"


def test_generic_operator_refuses_a_non_json_xcom(butlr_conn: Any) -> None:
    op = ButlrOperator(
        task_id="t",
        endpoint="/api/v3/graphql",
        json={"query": "{ sites { data { id } } }"},
        response_filter=lambda payload: {1, 2},
    )
    with pytest.raises(ButlrDataError, match="response_filter's result is not JSON-serialisable"):
        op.execute({})


def test_generic_operator_keeps_a_new_clients_secret_out_of_xcom_and_logs(butlr_conn: Any) -> None:
    # POST /api/v1/client answers with the new client's secret (201); the emulator's fault schedule
    # plays that answer, since the emulator does not manage M2M clients.
    secret = "new-client-secret-4f1d9a7c"
    created = {"name": "etl", "description": "", "client_id": "client_new", "client_secret": secret}
    butlr_conn.faults.add(
        path="/api/v1/client",
        kind="status",
        status=201,
        body=json.dumps(created),
        content_type="application/json",
    )
    seen: list[Any] = []
    op = ButlrOperator(
        task_id="t",
        endpoint="/api/v1/client",
        method="POST",
        json={"name": "etl", "description": ""},
        response_check=lambda payload: seen.append(payload) is None,
    )
    result = op.execute({})
    assert result == {**created, "client_secret": "***"}
    assert seen == [created]  # user callables get the answer as sent
    try:
        from airflow.sdk.log import redact
    except ImportError:  # Airflow < 3.2
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    assert redact(f"created {secret}") == "created ***"


def test_redact_secret_fields_walks_nested_answers() -> None:
    answer = {"data": [{"id": "w1", "secret": "s1", "token": None}, {"access_token": "t"}], "n": 1}
    assert redact_secret_fields(answer) == {
        "data": [{"id": "w1", "secret": "***", "token": None}, {"access_token": "***"}],
        "n": 1,
    }


# --- ButlrReportingOperator --------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_site_export_uses_each_sites_local_day(butlr_conn: Any, tmp_path: Path) -> None:
    emu = butlr_conn
    sites = sites_by_tz(emu)
    out = tmp_path / "exports" / "day.jsonl"
    op = ButlrReportingOperator(
        task_id="t",
        measurements=["room_occupancy", "floor_occupancy"],
        sites=[sites["America/New_York"], sites["Europe/Berlin"], sites[None]],
        local_day="2025-03-09",
        window_function=["mean", "max"],
        output_path=str(out),
    )
    result = op.execute({})
    assert result["ranges"] == [
        {
            "timezone": "America/New_York",
            "start": "2025-03-09T05:00:00Z",
            "stop": "2025-03-10T04:00:00Z",
            "assets": 36,
        },
        {
            "timezone": "Europe/Berlin",
            "start": "2025-03-08T23:00:00Z",
            "stop": "2025-03-09T23:00:00Z",
            "assets": 36,
        },
        {"timezone": "UTC", "start": "2025-03-09T00:00:00Z", "stop": "2025-03-10T00:00:00Z", "assets": 36},
    ]
    rows = read_jsonl(out)
    assert result["rows"] == len(rows) > 0 and result["path"] == str(out) and result["format"] == "jsonl"
    assert {(r["measurement"], r["function"]) for r in rows} == {
        (m, f) for m in ("room_occupancy", "floor_occupancy") for f in ("mean", "max")
    }
    sent = bodies(emu, REPORTING)
    assert {(b["window"]["timezone"], b["filter"]["start"]) for b in sent} == {
        ("America/New_York", "2025-03-09T05:00:00Z"),
        ("Europe/Berlin", "2025-03-08T23:00:00Z"),
        ("UTC", "2025-03-09T00:00:00Z"),
    }
    ny_hours = {r["time"] for r in rows if r["timezone_offset"] in ("-5h", "-4h")}
    assert len(ny_hours) == 23  # the spring-forward day has 23 local hours
    assert not list(out.parent.glob(".*.tmp"))


def test_rerunning_overwrites_the_same_file_and_csv_has_the_stable_header(
    butlr_conn: Any, tmp_path: Path
) -> None:
    room = next(iter(butlr_conn.org.rooms_by_id))
    out = tmp_path / "room.csv"
    args = {
        "task_id": "t",
        "measurements": "room_occupancy",
        "rooms": [room],
        "timezone": "UTC",
        "start": "2025-02-01T00:00:00Z",
        "stop": "2025-02-01T06:00:00Z",
        "output_path": str(out),
    }
    first = ButlrReportingOperator(**args).execute({})
    content = out.read_text()
    second = ButlrReportingOperator(**args).execute({})
    assert first["rows"] == second["rows"] == 6 and out.read_text() == content
    with out.open() as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == ROW_COLUMNS
        assert len(list(reader)) == 6
    assert bodies(butlr_conn, REPORTING)[0]["filter"]["rooms"] == {"eq": [room]}  # no topology lookup needed
    assert butlr_conn.counters.requests("/api/v3/graphql") == 0


def test_output_path_expands_the_home_directory_and_syncs_before_the_move(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("HOME", str(tmp_path))
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (synced.append(f"replace {src}"), real_replace(src, dst))
    )
    summary = room_export(
        butlr_conn,
        start="2025-02-01T00:00:00Z",
        stop="2025-02-01T06:00:00Z",
        output_path="~/exports/room.jsonl",
    ).execute({})
    out = tmp_path / "exports" / "room.jsonl"
    assert summary["rows"] == 6 and len(read_jsonl(out)) == 6
    assert not (Path.cwd() / "~").exists()
    temporary = synced[0]
    assert Path(temporary).parent == out.parent and temporary.endswith(".tmp")  # the temporary file, synced
    assert synced[1] == f"replace {temporary}"  # ... before it is moved into place


def test_a_failed_export_leaves_no_half_written_file(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(butlr_conn, max_retries=0))
    rooms = list(butlr_conn.org.rooms_by_id)[:25]
    out = tmp_path / "day.jsonl"
    out.write_text("previous export\n")
    butlr_conn.faults.add(path=REPORTING, kind="status", status=500, at_calls=[3])
    op = ButlrReportingOperator(
        task_id="t",
        measurements="room_occupancy",
        rooms=rooms,
        timezone="UTC",
        local_day="2025-02-01",
        output_path=str(out),
    )
    with pytest.raises(ButlrAPIError, match="HTTP 500"):
        op.execute({})
    assert out.read_text() == "previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["day.jsonl"]


def test_object_storage_uris_are_written_through_objectstoragepath(butlr_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "bucket" / "2025-02-01.ndjson"
    result = room_export(
        butlr_conn,
        window_every="6h",
        local_day="2025-02-01",
        output_path=target.as_uri(),
    ).execute({})
    assert result["rows"] == 4 and len(read_jsonl(target)) == 4
    assert result["path"] == target.as_uri()


def test_small_exports_go_to_xcom_and_big_ones_are_refused(butlr_conn: Any) -> None:
    room = next(iter(butlr_conn.org.rooms_by_id))
    args = {"task_id": "t", "measurements": "room_occupancy", "rooms": [room], "timezone": "UTC"}
    context = {
        "data_interval_start": pendulum.datetime(2025, 2, 1, tz="UTC"),
        "data_interval_end": pendulum.datetime(2025, 2, 1, 3, tz="UTC"),
    }
    rows = ButlrReportingOperator(**args).execute(context)
    assert [r["time"] for r in rows] == [
        "2025-02-01T00:00:00Z",
        "2025-02-01T01:00:00Z",
        "2025-02-01T02:00:00Z",
    ]
    json.dumps(rows)
    with pytest.raises(
        ButlrDataError, match=r"more than max_xcom_rows=2 rows, too many for XCom; set output_path"
    ):
        ButlrReportingOperator(**args, max_xcom_rows=2).execute(context)


def test_a_refused_export_stops_its_worker_threads(butlr_conn: Any) -> None:
    before = set(threading.enumerate())
    op = room_export(
        butlr_conn,
        rooms=sorted(butlr_conn.org.rooms_by_id)[:40],
        local_day="2025-02-01",
        max_ids_per_request=5,
        max_concurrency=3,
        max_xcom_rows=5,
    )
    with pytest.raises(ButlrDataError, match="max_xcom_rows=5") as error:
        op.execute({})
    # The task runner keeps the error (and so the failed frame) while it runs failure callbacks.
    left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("butlr-export")]
    assert error.value is not None and left == []


def test_sigterm_stops_an_export_and_leaves_no_temporary_file(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3's task runner answers SIGTERM by calling ``on_kill()`` and carrying on until SIGKILL."""
    out = tmp_path / "day.jsonl"
    op = room_export(
        butlr_conn,
        rooms=sorted(butlr_conn.org.rooms_by_id)[:30],
        local_day="2025-02-01",
        max_ids_per_request=5,
        output_path=str(out),
    )
    fetch_reporting_answer = ButlrHook.fetch_reporting_answer

    def answer_then_terminate(hook: ButlrHook, body: Any) -> Any:
        answer = fetch_reporting_answer(hook, body)
        os.kill(os.getpid(), signal.SIGTERM)
        return answer

    monkeypatch.setattr(ButlrHook, "fetch_reporting_answer", answer_then_terminate)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())  # as the task runner does
    try:
        with pytest.raises(
            ButlrError, match=r"export was killed after [12] request\(s\); no output was written"
        ):
            op.execute({})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []
    # the first answer, plus at most the next unit if it was already on its way (fetched while the
    # first was written); nothing is sent once on_kill() ran
    assert butlr_conn.counters.requests(REPORTING) <= 2


def test_a_killed_export_starts_afresh_when_retried_in_the_same_process(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed once (SIGTERM -> on_kill), then run again by the same operator object, as a retry in
    the same process does: the second run exports everything (the kill flag is reset on start)."""
    out = tmp_path / "day.jsonl"
    op = room_export(
        butlr_conn,
        rooms=sorted(butlr_conn.org.rooms_by_id)[:10],
        local_day="2025-02-01",
        max_ids_per_request=5,
        output_path=str(out),
    )
    fetch_reporting_answer = ButlrHook.fetch_reporting_answer
    killed: list[bool] = []

    def answer_then_kill_once(hook: ButlrHook, body: Any) -> Any:
        answer = fetch_reporting_answer(hook, body)
        if not killed:
            killed.append(True)
            op.on_kill()
        return answer

    monkeypatch.setattr(ButlrHook, "fetch_reporting_answer", answer_then_kill_once)
    with pytest.raises(ButlrError, match="export was killed"):
        op.execute({})
    assert not out.exists()
    summary = op.execute({})
    assert summary["rows"] > 0 and summary["rows"] == len(out.read_text().splitlines())


def test_an_empty_data_interval_needs_explicit_bounds(butlr_conn: Any) -> None:
    moment = pendulum.datetime(2025, 2, 1, tz="UTC")
    op = ButlrReportingOperator(task_id="t", measurements="room_occupancy", rooms=["room_1"], timezone="UTC")
    with pytest.raises(ButlrConfigurationError, match=r"is empty.*pass start=/stop= or local_day=True"):
        op.execute({"data_interval_start": moment, "data_interval_end": moment})


def test_measurements_without_matching_assets_are_refused(butlr_conn: Any) -> None:
    op = ButlrReportingOperator(
        task_id="t",
        measurements="zone_occupancy",
        floors=[next(iter(butlr_conn.org.floors_by_id))],
        timezone="UTC",
        local_day="2025-02-01",
    )
    with pytest.raises(ButlrConfigurationError, match="measurement 'zone_occupancy' needs zones or tags ids"):
        op.execute({})


# --- ButlrStatsOperator ------------------------------------------------------------------------


def test_stats_group_items_by_site_timezone_over_local_days(butlr_conn: Any) -> None:
    emu = butlr_conn
    sites = sites_by_tz(emu)
    op = ButlrStatsOperator(
        task_id="t",
        measurements=["occupancy_avg_presence", "occupancy_median_presence"],
        sites=[sites["America/New_York"], sites["Europe/Berlin"]],
        local_day="2025-03-09",
        days=7,
        exclude_days_of_week=["saturday", "sunday"],
        time_ranges=[("08:00", "18:00")],
    )
    result = op.execute({})
    floors = [f.id for f in emu.org.floors_by_id.values() if emu.org.site_timezone(f.id) != "UTC"]
    assert set(result) == set(floors)
    assert all(set(v) == {"occupancy_avg_presence", "occupancy_median_presence"} for v in result.values())
    sent = {(b["start"], b["stop"]): b for b in bodies(emu, STATS)}
    assert set(sent) == {
        ("2025-03-03T05:00:00Z", "2025-03-10T04:00:00Z"),
        ("2025-03-02T23:00:00Z", "2025-03-09T23:00:00Z"),
    }
    for body in sent.values():
        assert len({emu.org.site_timezone(i) for i in body["items"]}) == 1
        assert body["filters"] == {
            "exclude_days_of_week": ["Saturday", "Sunday"],
            "time_ranges": [{"start": "08:00", "stop": "18:00"}],
        }
    json.dumps(result)


# --- ButlrGraphQLOperator ----------------------------------------------------------------------


def test_graphql_operator_renders_variables_and_returns_data(butlr_conn: Any) -> None:
    floor = next(iter(butlr_conn.org.floors_by_id.values()))
    op = ButlrGraphQLOperator(
        task_id="t",
        query="query Floor($id: ID!) { floor(id: $id) { id name } }",
        variables={"id": "{{ params.floor }}"},
    )
    rendered(op, {"params": {"floor": floor.id}})
    assert op.execute({}) == {"floor": {"id": floor.id, "name": floor.name}}


def test_graphql_errors_fail_the_task_even_with_partial_data(butlr_conn: Any) -> None:
    op = ButlrGraphQLOperator(task_id="t", query="{ sensors { data { id roomID } } }")
    with pytest.raises(ButlrGraphQLError):
        op.execute({})


# --- ButlrDeviceHealthOperator -----------------------------------------------------------------


class FakeTI:
    """Stands in for the task instance's XCom push (no network involved)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def real(devices: Iterator[Any]) -> list[Any]:
    return [d for d in devices if not d.is_placeholder]


def test_device_health_matches_the_emulators_devices(butlr_conn: Any) -> None:
    org = butlr_conn.org
    report = ButlrDeviceHealthOperator(task_id="t").execute({})
    sensors = real(iter(org.sensors_by_id.values()))
    assert report["sensors"]["total"] == len(sensors)
    assert {s["id"] for s in report["offline_sensors"]} == {s.id for s in sensors if not s.is_online}
    assert report["sensors"]["placeholders_excluded"] == len(org.sensors_by_id) - len(sensors)
    assert report["battery"]["wired"] == sum(1 for s in sensors if s.power_type == "Wired")
    assert all(
        s["hours_since_heartbeat"] is None or s["hours_since_heartbeat"] > 0
        for s in report["offline_sensors"]
    )
    hives = real(iter(org.hives_by_id.values()))
    assert {h["id"] for h in report["offline_hives"]} == {h.id for h in hives if not h.is_online}
    json.dumps(report)


def test_device_health_scoped_to_a_site(butlr_conn: Any) -> None:
    org = butlr_conn.org
    site = org.sites[0]
    report = ButlrDeviceHealthOperator(task_id="t", sites=[site.id]).execute({})
    floors = {f.id for b in site.buildings for f in b.floors}
    assert report["sensors"]["total"] == sum(
        1 for s in real(iter(org.sensors_by_id.values())) if s.floor_id in floors
    )


def test_device_health_fails_past_the_thresholds_and_still_pushes_the_report(butlr_conn: Any) -> None:
    ti = FakeTI()
    op = ButlrDeviceHealthOperator(task_id="t", max_offline_share=0.0, max_critical_batteries=0)
    with pytest.raises(ButlrDeviceHealthError, match=r"sensors offline \(.*> max_offline_share 0.0%\)"):
        op.execute({"ti": ti})
    assert ti.pushed["device_health"]["sensors"]["offline"] > 0
    lenient = ButlrDeviceHealthOperator(task_id="t", max_offline_share=1.0, max_critical_batteries=10_000)
    assert lenient.execute({"ti": FakeTI()})["sensors"]["total"] > 0


def test_device_health_compares_the_exact_offline_share(butlr_conn: Any) -> None:
    """A threshold a hair below the share fails, though the report rounds the share to 4 places."""
    report = ButlrDeviceHealthOperator(task_id="t").execute({})
    offline, total = report["sensors"]["offline"], report["sensors"]["total"]
    exact = offline / total
    assert round(exact, 4) != exact  # the rounded figure would hide the difference
    below = exact - 1e-9
    with pytest.raises(ButlrDeviceHealthError, match=r"sensors offline"):
        ButlrDeviceHealthOperator(task_id="t", max_offline_share=below).execute({"ti": FakeTI()})
    assert (
        ButlrDeviceHealthOperator(task_id="t", max_offline_share=exact).execute({})["sensors"]["total"]
        == total
    )


def test_hook_lists_tags_sensors_and_hives(butlr_conn: Any) -> None:
    from airflow_provider_butlr.hooks.butlr import ButlrHook

    emu = butlr_conn
    with ButlrHook() as hook:
        tags, sensors, hives = hook.get_tags(), hook.get_sensors(), hook.get_hives()
    assert {t["id"]: {r["id"] for r in t["rooms"]} for t in tags} == {
        t.id: set(t.room_ids) for t in emu.org.tags_by_id.values()
    }
    assert {s["id"]: s["room_id"] for s in sensors} == {
        s.id: s.room_id for s in emu.org.sensors_by_id.values()
    }
    real_hives = {
        h.id
        for h in emu.org.hives_by_id.values()
        if h.serial_number and not h.serial_number.startswith("fake")
    }
    assert {h["id"] for h in hives} == real_hives  # placeholder hives are left out by the API


def test_device_health_refuses_a_floor_the_topology_does_not_have(butlr_conn: Any) -> None:
    """A mistyped floor id must not pass the check on zero devices."""
    missing = "space_2NoSuchFloorInThisOrg00000"
    op = ButlrDeviceHealthOperator(task_id="t", floors=[missing], max_offline_share=0)
    with pytest.raises(ButlrConfigurationError, match=rf"floors: '{missing}' is not a floor in the topology"):
        op.execute({})


def test_more_ids_than_one_task_should_carry_fail_before_any_reporting_request(butlr_conn: Any) -> None:
    sites = sites_by_tz(butlr_conn)
    op = ButlrReportingOperator(
        task_id="t",
        measurements="room_occupancy",
        sites=[sites["America/New_York"], sites["Europe/Berlin"]],  # two queries, counted together
        local_day="2025-03-09",
        max_ids_per_task=10,
    )
    with pytest.raises(ButlrConfigurationError, match=r"more than max_ids_per_task=10.*dynamic task mapping"):
        op.execute({})
    assert reporting_requests(butlr_conn) == []
