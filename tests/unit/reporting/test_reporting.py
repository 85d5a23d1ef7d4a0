"""Pure functions of reporting.py: bodies, validation, splitting, local days, flattening (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.reporting.bodies import build_reporting_body, build_stats_body
from airflow_provider_butlr.reporting.planning import (
    BatchLimits,
    ReportingQuery,
    plan_units,
    split_ids,
    split_range,
    window_floor,
)
from airflow_provider_butlr.reporting.rows import ROW_COLUMNS, flatten_response, flatten_stats
from airflow_provider_butlr.reporting.times import format_time, local_day_bounds, parse_datetime
from airflow_provider_butlr.reporting.validation import normalise_calibrated, parse_every, validate_ids
from tests.support.paths import FIXTURES

pytestmark = pytest.mark.airflow_independent  # pure functions: run once, not per Airflow minor

# Sanitized real API responses from Butlr's MCP server repository (MIT, see fixtures/butlr/LICENSE).
FIXTURES = FIXTURES / "butlr"
UTC = UTC
START = datetime(2025, 1, 6, 5, 0, tzinfo=UTC)
STOP = datetime(2025, 1, 7, 5, 0, tzinfo=UTC)


def body(**overrides: object) -> dict:
    args: dict = {
        "measurement": "floor_occupancy",
        "kind": "floors",
        "ids": ["space_A"],
        "start": START,
        "stop": STOP,
        "every": "1h",
        "function": "max",
        "timezone": "America/New_York",
    }
    args.update(overrides)
    return build_reporting_body(**args)


# --- bodies ------------------------------------------------------------------------------------


def test_floor_body_uses_spaces_key_absolute_times_and_keeps_zeros() -> None:
    result = body(page=2, limit=500)
    assert result == {
        "filter": {
            "measurements": ["floor_occupancy"],
            "start": "2025-01-06T05:00:00Z",
            "stop": "2025-01-07T05:00:00Z",
            "spaces": {"eq": ["space_A"]},
            "value": {"gte": 0},
        },
        "window": {"every": "1h", "function": "max", "timezone": "America/New_York", "create_empty": True},
        "options": {"format": "json", "timestamp": "RFC3339"},
        "paginate": {"page": 2, "limit": 500},
    }


def test_include_zeros_false_sends_neither_value_filter_nor_create_empty() -> None:
    result = body(include_zeros=False)
    assert "value" not in result["filter"]
    assert result["window"]["create_empty"] is False
    assert "paginate" not in result


@pytest.mark.parametrize(
    ("given", "sent"), [(True, "true"), ("raw", "raw"), (False, "false"), ("TRUE", "true")]
)
def test_calibrated_is_sent_as_a_string(given: object, sent: str) -> None:
    result = body(measurement="traffic_room_occupancy", kind="rooms", ids=["room_1"], calibrated=given)
    assert result["filter"]["calibrated"] == sent
    assert result["filter"]["rooms"] == {"eq": ["room_1"]}


def test_calibrated_refused_for_presence_measurements() -> None:
    with pytest.raises(
        ButlrConfigurationError, match="calibrated is only valid with traffic_floor_occupancy"
    ):
        body(measurement="floor_occupancy", calibrated="true")


def test_calibrated_refuses_unknown_values() -> None:
    with pytest.raises(
        ButlrConfigurationError, match=r"calibrated: 'yes' is not allowed; use one of true, raw, false"
    ):
        normalise_calibrated("yes")


def test_offset_times_are_sent_in_utc() -> None:
    result = body(
        start="2025-01-06T00:00:00-05:00", stop=datetime(2025, 1, 7, tzinfo=ZoneInfo("America/New_York"))
    )
    assert result["filter"]["start"] == "2025-01-06T05:00:00Z"
    assert result["filter"]["stop"] == "2025-01-07T05:00:00Z"


# --- validation --------------------------------------------------------------------------------


def query(**overrides: object) -> ReportingQuery:
    args: dict = {
        "start": START,
        "stop": STOP,
        "assets": {"rooms": ["room_1"]},
        "every": "1h",
        "function": "mean",
        "timezone": "UTC",
    }
    args.update(overrides)
    measurements = args.pop("measurements", "room_occupancy")
    return ReportingQuery.build(measurements, **args)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"measurements": "occupancy"},
            r"measurements: 'occupancy' is not a reporting measurement; allowed: floor_occupancy, room_occupancy",
        ),
        ({"measurements": "occupancy_avg_presence"}, r"stats measurements go to ButlrStatsOperator"),
        ({"measurements": []}, r"measurements must name at least one measurement"),
        (
            {"function": "avg"},
            r"window_function: 'avg' is not a window function; allowed: mean, max, min, sum, median, first, last",
        ),
        (
            {"every": "2x"},
            r"window_every: '2x' is not a window duration; use <positive integer><s\|m\|h\|d\|w>, e.g. 1m",
        ),
        ({"every": "0m"}, r"window_every: '0m' is not a window duration"),
        ({"timezone": "Europe/Nowhere"}, r"timezone: 'Europe/Nowhere' is not a known IANA timezone name"),
        ({"start": datetime(2025, 1, 6)}, r"start: 2025-01-06T00:00:00 has no timezone"),
        ({"stop": "2025-01-07 05:00"}, r"stop: 2025-01-07T05:00:00 has no timezone"),
        ({"stop": "yesterday"}, r"stop: 'yesterday' is not an ISO 8601 / RFC3339 time"),
        ({"stop": START}, r"stop \(2025-01-06T05:00:00Z\) must be after start \(2025-01-06T05:00:00Z\)"),
        (
            {"assets": {"floors": ["room_1"]}},
            r"floors: 'room_1' is not a floor id \(expected the prefix space_\); it looks like a room id, pass it as rooms=\[...\]",
        ),
        ({"assets": {"rooms": []}}, r"no asset ids given; pass at least one of floors, rooms, zones, tags"),
        ({"assets": {"sites": ["site_1"]}}, r"asset kind 'sites' cannot be sent to the reporting API"),
        (
            {"assets": {"floors": ["space_1"]}},
            r"measurement 'room_occupancy' needs rooms or tags ids; given: floors",
        ),
        (
            {"calibrated": "true"},
            r"calibrated='true' is only valid with traffic_floor_occupancy, traffic_room_occupancy",
        ),
        ({"include_zeros": "yes"}, r"include_zeros must be True or False"),
    ],
)
def test_invalid_arguments_name_the_field_and_the_allowed_values(overrides: dict, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        query(**overrides)


def test_configuration_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        parse_every("soon")


def test_ids_are_deduplicated_in_order_and_checked_by_prefix_only() -> None:
    uuid_room = "room_43a4299f-d5ec-43c6-b854-f043cd009b43"
    assert validate_ids("rooms", ["room_b", uuid_room, "room_b"]) == ["room_b", uuid_room]
    with pytest.raises(
        ButlrConfigurationError, match=r"rooms: '' must be|every item must be a non-empty string"
    ):
        validate_ids("rooms", ["room_b", ""])


def test_a_query_keeps_the_requested_order_and_drops_duplicates() -> None:
    q = query(
        measurements=["room_occupancy", "traffic", "room_occupancy"],
        function=["max", "mean"],
        assets={"rooms": ["room_2", "room_1"], "floors": ["space_1"]},
    )
    assert q.measurements == ("room_occupancy", "traffic")
    assert q.functions == ("max", "mean")
    assert q.assets == {"rooms": ("room_2", "room_1"), "floors": ("space_1",)}
    assert q.asset_count == 3


def test_parse_datetime_accepts_z_and_offsets() -> None:
    assert parse_datetime("2025-03-09T05:00:00Z", "start") == datetime(2025, 3, 9, 5, tzinfo=UTC)
    assert parse_datetime("2025-03-09T01:00:00+01:00", "start") == datetime(2025, 3, 9, 0, tzinfo=UTC)
    assert format_time(datetime(2025, 3, 9, 5, 0, 0, 250000, tzinfo=UTC)) == "2025-03-09T05:00:00.25Z"


# --- local days --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "start", "hours"),
    [
        ("2025-01-15", "America/New_York", "2025-01-15T05:00:00Z", 24),
        ("2025-03-09", "America/New_York", "2025-03-09T05:00:00Z", 23),  # spring forward
        ("2025-11-02", "America/New_York", "2025-11-02T04:00:00Z", 25),  # fall back
        ("2025-03-30", "Europe/Berlin", "2025-03-29T23:00:00Z", 23),
        ("2025-10-26", "Europe/Berlin", "2025-10-25T22:00:00Z", 25),
        ("2025-07-01", "Asia/Kolkata", "2025-06-30T18:30:00Z", 24),
        ("2025-07-01", "UTC", "2025-07-01T00:00:00Z", 24),
    ],
)
def test_local_day_is_local_midnight_to_midnight_in_utc(day: str, tz: str, start: str, hours: int) -> None:
    begin, end = local_day_bounds(day, tz)
    assert format_time(begin) == start
    assert end - begin == timedelta(hours=hours)


def test_local_day_refuses_bad_dates_and_zones() -> None:
    with pytest.raises(ButlrConfigurationError, match="local_day: 'monday' is not a date"):
        local_day_bounds("monday", "UTC")
    with pytest.raises(ButlrConfigurationError, match="timezone: 'Mars/Olympus' is not a known IANA"):
        local_day_bounds("2025-01-01", "Mars/Olympus")


# --- windows and chunks ------------------------------------------------------------------------


def test_window_floor_on_local_clocks() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    moment = datetime(2025, 7, 1, 10, 47, 12, tzinfo=UTC)  # 16:17:12 in Kolkata
    assert window_floor(moment, timedelta(hours=1), kolkata) == datetime(2025, 7, 1, 10, 30, tzinfo=UTC)
    assert window_floor(moment, timedelta(minutes=1), kolkata) == datetime(2025, 7, 1, 10, 47, tzinfo=UTC)
    assert window_floor(moment, timedelta(days=1), kolkata) == datetime(2025, 6, 30, 18, 30, tzinfo=UTC)
    ny = ZoneInfo("America/New_York")
    # 6-hour windows on the DST day follow the wall clock: 06:00 local is 10:00Z after spring forward.
    assert window_floor(datetime(2025, 3, 9, 11, tzinfo=UTC), timedelta(hours=6), ny) == datetime(
        2025, 3, 9, 10, tzinfo=UTC
    )
    assert window_floor(moment, timedelta(days=7), ny) is None


def _assert_partition(chunks: list, start: datetime, stop: datetime) -> None:
    assert chunks[0][0] == start and chunks[-1][1] == stop
    for (_, a_stop), (b_start, _) in pairwise(chunks):
        assert a_stop == b_start


def test_one_minute_windows_are_split_into_at_most_24h() -> None:
    start, _ = local_day_bounds("2025-11-01", "America/New_York")
    _, stop = local_day_bounds("2025-11-03", "America/New_York")  # three local days, one of them 25 h long
    chunks = split_range(start, stop, timedelta(minutes=1), ZoneInfo("America/New_York"), timedelta(hours=24))
    _assert_partition(chunks, start, stop)
    assert all(b - a <= timedelta(hours=24) for a, b in chunks)
    assert len(chunks) == 4  # 73 h
    assert all(a.second == 0 and a.microsecond == 0 for a, _ in chunks)


def test_chunk_cuts_are_window_boundaries_in_the_local_timezone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    start, stop = local_day_bounds("2025-07-01", "Asia/Kolkata")
    chunks = split_range(start, stop + timedelta(days=3), timedelta(hours=1), kolkata, timedelta(hours=30))
    for cut, _ in chunks[1:]:
        assert cut.minute == 30  # local hour starts are at :30 UTC in Kolkata
    daily = split_range(start, start + timedelta(days=10), timedelta(days=1), kolkata, timedelta(days=4))
    assert [format_time(a) for a, _ in daily] == [
        "2025-06-30T18:30:00Z",
        "2025-07-04T18:30:00Z",
        "2025-07-08T18:30:00Z",
    ]


def test_a_range_shorter_than_the_limit_is_one_chunk() -> None:
    assert split_range(START, STOP, timedelta(hours=1), ZoneInfo("UTC"), timedelta(days=60)) == [
        (START, STOP)
    ]


def test_a_limit_below_one_window_is_refused() -> None:
    with pytest.raises(ButlrConfigurationError, match="shorter than one window"):
        split_range(START, STOP, timedelta(hours=1), ZoneInfo("UTC"), timedelta(minutes=30))


# --- batches and plans -------------------------------------------------------------------------


def test_batch_limits_follow_butlr_guidance_and_can_be_capped() -> None:
    limits = BatchLimits()
    assert limits.for_span(timedelta(hours=2)) == 30
    assert limits.for_span(timedelta(hours=24)) == 10
    assert limits.for_span(timedelta(hours=25)) == 10
    capped = BatchLimits.from_args(5)
    assert (capped.for_span(timedelta(hours=1)), capped.for_span(timedelta(days=2))) == (5, 5)
    # the long-range tier never exceeds the per-request cap (it returned 20 here before)
    assert BatchLimits.from_args(5, 20).for_span(timedelta(hours=24)) == 5
    raised = BatchLimits.from_args(40, 25)
    assert (raised.for_span(timedelta(hours=1)), raised.for_span(timedelta(days=2))) == (40, 25)
    with pytest.raises(
        ButlrConfigurationError,
        match=r"max_ids_per_request must be a positive integer \(at most 1000\), got 0",
    ):
        BatchLimits.from_args(0)
    with pytest.raises(
        ButlrConfigurationError, match=r"max_ids_per_request .*at most 1000.*got 1000000000000"
    ):
        BatchLimits.from_args(10**12)  # absurd values are refused by name, before any request
    with pytest.raises(ButlrConfigurationError, match="max_ids_long_range must be a positive integer"):
        BatchLimits.from_args(None, -1)


def test_split_ids_keeps_order() -> None:
    assert split_ids(["a", "b", "c", "d", "e"], 2) == [("a", "b"), ("c", "d"), ("e",)]


def rooms(n: int) -> list[str]:
    return [f"room_{i:03d}" for i in range(n)]


def test_95_rooms_over_one_day_of_minutes_never_exceed_10_ids_per_request() -> None:
    q = query(assets={"rooms": rooms(95)}, every="1m", function="median")
    units = plan_units(q)
    assert [len(u.ids) for u in units] == [10] * 9 + [5]
    assert {(u.start, u.stop) for u in units} == {(START, STOP)}
    assert [i for u in units for i in u.ids] == rooms(95)
    assert all(len(u.body(1, 1000)["filter"]["rooms"]["eq"]) <= 10 for u in units)


def test_short_ranges_use_batches_of_30() -> None:
    q = query(assets={"rooms": rooms(95)}, stop=START + timedelta(hours=2), every="5m")
    assert [len(u.ids) for u in plan_units(q)] == [30, 30, 30, 5]


def test_plan_order_is_measurement_function_chunk_batch() -> None:
    q = query(
        measurements=["room_occupancy", "floor_occupancy"],
        function=["mean", "max"],
        assets={"rooms": rooms(12), "floors": ["space_1"]},
        stop=START + timedelta(hours=30),
        every="1m",
    )
    units = plan_units(q, BatchLimits(max_ids=10, max_ids_long_range=10), max_rows_per_request=10 * 24 * 60)
    keys = [(u.measurement, u.function, u.start, u.ids[0]) for u in units]
    assert keys == sorted(
        keys,
        key=lambda k: (
            ["room_occupancy", "floor_occupancy"].index(k[0]),
            ["mean", "max"].index(k[1]),
            k[2],
            k[3],
        ),
    )
    # 30 h of minutes for 10 ids is over the 14,400-row budget: 2 chunks of 15 h; the floor fits in one
    assert (
        len(units) == 2 * 2 * 2 + 1 * 1 * 2
    )  # rooms: 2 batches x 2 chunks x 2 functions; floor: 2 functions
    assert {u.kind for u in units if u.measurement == "floor_occupancy"} == {"floors"}


def test_a_month_at_15_minutes_is_one_request_per_10_rooms() -> None:
    q = query(assets={"rooms": rooms(200)}, stop=START + timedelta(days=30), every="15m")
    units = plan_units(q)
    assert len(units) == 20 and {(u.start, u.stop) for u in units} == {(q.start, q.stop)}
    assert all("paginate" not in u.body() for u in units)


def test_the_row_budget_cuts_long_ranges_of_short_windows_into_even_chunks() -> None:
    q = query(assets={"rooms": rooms(20)}, stop=START + timedelta(days=7), every="1m", function="median")
    units = plan_units(q)  # 10 ids x 10,080 minutes = 100,800 rows > 50,000: three chunks of 56 h
    chunks = sorted({(u.start, u.stop) for u in units})
    assert len(chunks) == 3 and len(units) == 6
    assert {b - a for a, b in chunks} == {timedelta(hours=56)}
    assert all(len(u.ids) * u.windows <= 50_000 for u in units)
    assert len(plan_units(q, max_rows_per_request=1_000_000)) == 2


def test_a_typo_gets_the_closest_name() -> None:
    with pytest.raises(ButlrConfigurationError, match=r"did you mean 'room_occupancy'\?"):
        query(measurements="room_ocupancy")
    with pytest.raises(ButlrConfigurationError, match=r"did you mean 'median'\?"):
        query(function="medain")
    with pytest.raises(ButlrConfigurationError, match=r"did you mean 'occupancy_avg_presence'\?"):
        build_stats_body(measurements="occupancy_avg_presense", items=["room_1"], start=START, stop=STOP)


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("1s", r"window_every: '1s' is outside the windows the reporting API accepts: whole minutes from 1m"),
        ("90s", r"whole minutes"),
        ("53w", r"to 52w"),
        ("999999999999w", r"is not a window duration"),
        ("99999999w", r"to 52w"),
    ],
)
def test_window_lengths_outside_the_apis_range_are_refused_locally(every: str, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        query(every=every)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["room_1 room_2"], r"rooms: 'room_1 room_2' is not a valid id"),
        (["room_1\nroom_2"], r"is not a valid id"),
        (["room_" + "x" * 100_000], r"at most 128 characters"),
        ({"room_1": 1}, r"rooms must be a string or a list of strings, got dict"),
        (["room_"], r"is not a valid id"),
    ],
)
def test_ids_are_checked_for_syntax(ids: object, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        query(assets={"rooms": ids})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": "9999-01-01T00:00:00Z", "stop": "9999-01-02T00:00:00Z"}, r"outside the years 1970-2200"),
        ({"start": "0001-01-01T00:00:00Z"}, r"start: 0001-01-01T00:00:00\+00:00 is outside the years"),
    ],
)
def test_years_outside_the_apis_range_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ButlrConfigurationError, match=message):
        query(**overrides)
    with pytest.raises(ButlrConfigurationError, match=r"local_day: 9999-12-31 is outside the years"):
        local_day_bounds("9999-12-31", "UTC")


def test_times_are_sent_with_four_digit_years() -> None:
    assert format_time(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"


def test_calibrated_only_reaches_the_traffic_occupancy_units() -> None:
    q = query(measurements=["room_occupancy", "traffic_room_occupancy"], calibrated="true")
    calibrated = {u.measurement: u.body()["filter"].get("calibrated") for u in plan_units(q)}
    assert calibrated == {"room_occupancy": None, "traffic_room_occupancy": "true"}


# --- flattening --------------------------------------------------------------------------------


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_shape_a_rows_keep_the_requested_measurement_and_stable_columns() -> None:
    payload = load("reporting/traffic-flow-hourly.json")
    rows = list(flatten_response(payload, measurement="traffic", function="sum"))
    assert len(rows) == len(payload["data"]) == 4
    assert all(tuple(r) == ROW_COLUMNS for r in rows)
    first = rows[0]
    raw = payload["data"][0]
    assert first["measurement"] == "traffic" and first["function"] == "sum"
    assert first["field"] == raw["field"]
    assert first["floor_id"] == raw["space_id"] and first["floor_name"] == raw["space_name"]
    assert first["asset_type"] == "sensor" and first["asset_id"] == raw["sensor_id"]
    assert first["time"] == "2025-10-14T15:00:00Z" and first["value"] == raw["value"]
    assert first["data_incomplete"] is None and first["null_percentage"] is None


def test_shape_c_rows_do_not_use_the_internal_measurement_names() -> None:
    payload = load("reporting/current-occupancy-traffic.json")
    rows = list(
        flatten_response(
            payload, measurement="traffic_room_occupancy", function="max", group_by_order=["room_id", "time"]
        )
    )
    assert len(rows) == sum(len(leaf) for room in payload["data"].values() for leaf in room.values()) == 399
    assert {r["measurement"] for r in rows} == {"traffic_room_occupancy"}
    assert {r["asset_type"] for r in rows} == {"room"}
    assert all(r["asset_id"] == r["room_id"] and r["time"].endswith("Z") for r in rows)


def test_shape_b_leaves_give_the_window_function_stat() -> None:
    leaf = {
        "sum": 18,
        "min": 1,
        "max": 2,
        "count": 10,
        "mean": 1.8,
        "median": 2,
        "stddev": 0.4,
        "first": 1,
        "last": 2,
    }
    payload = {"data": {"room_1": {"2024-01-01T04:00:00": leaf, "2024-01-01T05:00:00Z": {**leaf, "max": 7}}}}
    rows = list(
        flatten_response(
            payload, measurement="room_occupancy", function="max", group_by_order=["room_id", "time"]
        )
    )
    assert [(r["room_id"], r["asset_id"], r["time"], r["value"]) for r in rows] == [
        ("room_1", "room_1", "2024-01-01T04:00:00Z", 2),
        ("room_1", "room_1", "2024-01-01T05:00:00Z", 7),
    ]
    traffic = {"data": {"2024-01-01T04:00:00Z": {"in": leaf, "out": {**leaf, "sum": 3}}}}
    rows = list(flatten_response(traffic, measurement="traffic", function="sum"))
    assert [(r["time"], r["field"], r["value"]) for r in rows] == [
        ("2024-01-01T04:00:00Z", "in", 18),
        ("2024-01-01T04:00:00Z", "out", 3),
    ]


def test_data_quality_fields_are_typed() -> None:
    payload = {
        "data": [
            {
                "time": "2025-11-02T10:00:00Z",
                "room_id": "room_1",
                "value": 3,
                "data_incomplete": True,
                "null_percentage": 0.4,
                "room_custom_id": None,
            }
        ]
    }
    (row,) = flatten_response(payload, measurement="room_occupancy", function="mean")
    assert (row["data_incomplete"], row["null_percentage"], row["room_custom_id"]) == (True, 0.4, "")


@pytest.mark.parametrize("payload", [{"rows": []}, {"data": "x"}, {"data": [1]}, [], {"data": {"k": 3}}])
def test_malformed_responses_are_data_errors(payload: object) -> None:
    with pytest.raises(ButlrDataError):
        list(flatten_response(payload, measurement="room_occupancy", function="mean"))


# --- stats -------------------------------------------------------------------------------------


def test_stats_body() -> None:
    result = build_stats_body(
        measurements=["occupancy_avg_presence", "occupancy_used_median_traffic"],
        items=["space_1", "room_2"],
        start="2025-04-01T00:00:00-04:00",
        stop="2025-04-08T04:00:00Z",
        exclude_days_of_week=["saturday", "SUNDAY"],
        time_ranges=[("08:00", "12:00"), {"start": "13:00", "stop": "17:30"}],
    )
    assert result == {
        "measurements": ["occupancy_avg_presence", "occupancy_used_median_traffic"],
        "items": ["space_1", "room_2"],
        "start": "2025-04-01T04:00:00Z",
        "stop": "2025-04-08T04:00:00Z",
        "filters": {
            "exclude_days_of_week": ["Saturday", "Sunday"],
            "time_ranges": [{"start": "08:00", "stop": "12:00"}, {"start": "13:00", "stop": "17:30"}],
        },
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"measurements": ["room_occupancy"]},
            r"'room_occupancy' is not a stats measurement; allowed: occupancy_avg_presence",
        ),
        (
            {"items": ["site_1"]},
            r"items: 'site_1' is not a floor \(space_\), room \(room_\) or zone \(zone_\) id",
        ),
        (
            {"exclude_days_of_week": ["Funday"]},
            r"exclude_days_of_week: 'Funday' is not a day of the week; allowed: Monday",
        ),
        ({"time_ranges": [("9:00", "17:00")]}, r"time_ranges: start '9:00' is not a time of day in HH:MM"),
        ({"time_ranges": [("17:00", "09:00")]}, r"time_ranges: stop '09:00' must be after start '17:00'"),
        ({"start": "-4w"}, r"start: '-4w' is not an ISO 8601 / RFC3339 time"),
    ],
)
def test_stats_validation(overrides: dict, message: str) -> None:
    args: dict = {
        "measurements": ["occupancy_avg_presence"],
        "items": ["room_1"],
        "start": START,
        "stop": STOP,
    }
    args.update(overrides)
    with pytest.raises(ButlrConfigurationError, match=message):
        build_stats_body(**args)


def test_flatten_stats_fixture() -> None:
    result = flatten_stats(load("stats/multi-room-stats.json"))
    assert set(result) == {"room_000301", "room_000302", "room_000303"}
    assert result["room_000301"]["occupancy_median_presence"] == 0
