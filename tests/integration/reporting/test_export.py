"""The streaming export against the emulator: rows equal the emulator's ground truth.

The expected rows are computed here, independently of the provider's and the emulator's windowing
code, from the emulator's per-minute series (``testing.timeseries.series.minute_values``) and plain zoneinfo
wall-clock truncation.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError, ButlrError
from airflow_provider_butlr.reporting.catalogue import ASSET_KINDS
from airflow_provider_butlr.reporting.export import fetch_pages, iter_export_rows, run_export, unit_rows
from airflow_provider_butlr.reporting.export_options import ExportOptions, ExportStats
from airflow_provider_butlr.reporting.planning import ExportUnit, ReportingQuery
from airflow_provider_butlr.reporting.rows import Row
from airflow_provider_butlr.reporting.times import format_time, local_day_bounds
from airflow_provider_butlr.testing import EmulatorConfig
from airflow_provider_butlr.testing.timeseries.series import minute_values, series_assets

UTC = UTC
REPORTING = "/api/v3/reporting"
AGGREGATE: dict[str, Callable[[list[int]], float]] = {
    "mean": statistics.fmean,
    "max": max,
    "sum": sum,
    "median": statistics.median,
}


def window_label(moment: datetime, every: timedelta, zone: ZoneInfo) -> datetime:
    """The start of the window holding ``moment``: the local wall clock truncated (fold kept)."""
    local = moment.astimezone(zone)
    if every >= timedelta(days=1):
        return datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(UTC)
    step = int(every.total_seconds() // 60)
    return local.replace(minute=local.minute - local.minute % step, second=0, microsecond=0).astimezone(UTC)


def ground_truth(
    emu: Any,
    measurement: str,
    ids: list[str],
    start: datetime,
    stop: datetime,
    every: timedelta,
    tz: str,
    function: str,
    fields: tuple[str | None, ...] = (None,),
) -> dict[tuple[str, str, str], float]:
    """``{(asset id, window time, field): value}`` for every window of every asset that has data."""
    seed, zone = emu.config.seed, ZoneInfo(tz)
    with_data = set(series_assets(emu.org, measurement, seed))
    expected: dict[tuple[str, str, str], float] = {}
    for asset in ids:
        if asset not in with_data:
            continue
        for field in fields:
            windows: dict[datetime, list[int]] = {}
            for moment, value in minute_values(emu.org, measurement, asset, start, stop, seed, field=field):
                windows.setdefault(window_label(moment, every, zone), []).append(value)
            for label, values in windows.items():
                expected[(asset, format_time(label), field or "")] = AGGREGATE[function](values)
    return expected


def exported(rows: list[dict[str, Any]], with_field: bool = False) -> dict[tuple[str, str, str], float]:
    keys = [(r["asset_id"], r["time"], r["field"] if with_field else "") for r in rows]
    assert len(keys) == len(set(keys)), "duplicated rows"
    return {k: r["value"] for k, r in zip(keys, rows, strict=True)}


def assert_same(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected), (
        f"missing {len(set(expected) - set(actual))} windows, unexpected {len(set(actual) - set(expected))}"
    )
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-6), key


def reporting_bodies(emu: Any) -> list[dict[str, Any]]:
    return [r.body_json for r in emu.counters.log if r.path == REPORTING]


def site_rooms(emu: Any, tz: str) -> list[str]:
    return [r.id for r in emu.org.rooms_by_id.values() if emu.org.site_timezone(r.floor_id) == tz]


def covered(emu: Any, measurement: str, ids: list[str]) -> list[str]:
    with_data = set(series_assets(emu.org, measurement, emu.config.seed))
    return [i for i in ids if i in with_data]


def export_rows(
    hook: Any,
    measurements: str | list[str],
    *,
    stats: ExportStats | None = None,
    max_ids_per_request: int | None = None,
    max_ids_long_range: int | None = None,
    **args: Any,
) -> Iterator[Row]:
    """``run_export`` from flat arguments: asset kinds, query arguments and export options."""
    assets = {kind: args.pop(kind) for kind in ASSET_KINDS if kind in args}
    option_names = ("max_concurrency", "max_windows_per_request", "page_limit", "max_rows_per_request")
    options = {name: args.pop(name) for name in option_names if name in args}
    query = ReportingQuery.build(measurements, assets=assets, **args)
    export_options = ExportOptions.from_args(
        max_ids_per_request=max_ids_per_request, max_ids_long_range=max_ids_long_range, **options
    )
    return run_export(hook, query, export_options, stats)


# --- acceptance --------------------------------------------------------------------------------


def test_95_rooms_over_one_day_send_at_most_10_ids_and_export_the_ground_truth(
    butlr_conn: Any, fast_hook: Any
) -> None:
    emu = butlr_conn
    rooms = list(emu.org.rooms_by_id)[:95]
    start, stop = local_day_bounds("2025-01-15", "America/New_York")  # a 24 h day
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="1h",
            function="max",
            timezone="America/New_York",
            stats=stats,
        )
    )
    bodies = reporting_bodies(emu)
    assert bodies and max(len(b["filter"]["rooms"]["eq"]) for b in bodies) <= 10
    assert {i for b in bodies for i in b["filter"]["rooms"]["eq"]} == set(rooms)
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(hours=1), "America/New_York", "max"
    )
    assert len(expected) == 24 * len(covered(emu, "room_occupancy", rooms)) > 0
    assert_same(exported(rows), expected)
    assert stats.rows == len(rows) and stats.requests == len(bodies)


@pytest.mark.parametrize(
    ("tz", "first_day", "last_day"),
    [
        ("America/New_York", "2025-03-08", "2025-03-09"),  # spring forward: a 23 h day
        ("Europe/Berlin", "2025-10-25", "2025-10-26"),  # fall back: a 25 h day
    ],
)
def test_chunks_pages_and_concurrency_across_a_dst_change(
    butlr_conn: Any, fast_hook: Any, tz: str, first_day: str, last_day: str
) -> None:
    emu = butlr_conn
    rooms = site_rooms(emu, tz)[:12]
    start, _ = local_day_bounds(first_day, tz)
    _, stop = local_day_bounds(last_day, tz)
    expected = ground_truth(emu, "room_occupancy", rooms, start, stop, timedelta(minutes=15), tz, "mean")
    outputs = []
    for concurrency in (1, 5):
        emu.counters.reset()
        rows = list(
            export_rows(
                fast_hook(),
                "room_occupancy",
                rooms=rooms,
                start=start,
                stop=stop,
                every="15m",
                function="mean",
                timezone=tz,
                max_ids_per_request=5,
                max_windows_per_request=40,
                page_limit=150,
                max_concurrency=concurrency,
            )
        )
        bodies = reporting_bodies(emu)
        chunks = {(b["filter"]["start"], b["filter"]["stop"]) for b in bodies}
        assert len(chunks) >= 5  # 47 h or 49 h of 15-minute windows, 10 h per request
        assert max(b["paginate"]["page"] for b in bodies) >= 2
        assert_same(exported(rows), expected)
        outputs.append(rows)
    assert outputs[0] == outputs[1]  # the same rows in the same order whatever the concurrency


def test_the_silent_empty_answer_is_detected_and_survived(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    rooms = covered(emu, "room_occupancy", list(emu.org.rooms_by_id))[:30]
    start, stop = local_day_bounds("2025-01-15", "America/New_York")
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="1h",
            function="max",
            timezone="America/New_York",
            max_ids_per_request=30,
            max_ids_long_range=30,
            stats=stats,
        )
    )
    sizes = [len(b["filter"]["rooms"]["eq"]) for b in reporting_bodies(emu)]
    assert sizes[:3] == [30, 15, 7]  # 30 and 15 ids come back empty (over Butlr's budget), halves retried
    assert stats.resplits == 3 and stats.empty_units == 0
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(hours=1), "America/New_York", "max"
    )
    assert len(expected) == 30 * 24
    assert_same(exported(rows), expected)


def test_an_injected_empty_answer_is_asked_again_in_halves(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    rooms = covered(emu, "room_occupancy", site_rooms(emu, "Europe/Berlin"))[:6]
    start, stop = local_day_bounds("2025-02-03", "Europe/Berlin")
    emu.faults.add(path=REPORTING, kind="empty_data", at_calls=[1])
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="1h",
            function="mean",
            timezone="Europe/Berlin",
            stats=stats,
        )
    )
    assert [len(b["filter"]["rooms"]["eq"]) for b in reporting_bodies(emu)] == [6, 3, 3]
    assert stats.resplits == 1
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(hours=1), "Europe/Berlin", "mean"
    )
    assert_same(exported(rows), expected)


def test_retried_server_errors_neither_lose_nor_duplicate_rows(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    rooms = site_rooms(emu, "America/New_York")[:20]
    start, stop = local_day_bounds("2025-06-02", "America/New_York")
    emu.faults.add(path=REPORTING, kind="status", status=503, every=3)
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="30m",
            function="max",
            timezone="America/New_York",
            page_limit=100,
        )
    )
    assert any(r.status == 503 for r in emu.counters.log)
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(minutes=30), "America/New_York", "max"
    )
    assert_same(exported(rows), expected)


def test_traffic_rows_are_per_sensor_and_direction(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    tz = "Europe/Berlin"
    floors = [f.id for f in emu.org.floors_by_id.values() if emu.org.site_timezone(f.id) == tz]
    sensors = [s.id for f in floors for s in (emu.org.floors_by_id[f].sensors or []) if s.mode == "traffic"]
    start, stop = local_day_bounds("2025-02-04", tz)
    rows = list(
        export_rows(
            fast_hook(),
            "traffic",
            floors=floors,
            start=start,
            stop=stop,
            every="1h",
            function="sum",
            timezone=tz,
        )
    )
    assert {r["asset_type"] for r in rows} == {"sensor"} and {r["field"] for r in rows} == {"in", "out"}
    assert {r["floor_id"] for r in rows} <= set(floors)
    expected = ground_truth(
        emu, "traffic", sensors, start, stop, timedelta(hours=1), tz, "sum", fields=("in", "out")
    )
    assert expected
    assert_same(exported(rows, with_field=True), expected)


def test_floor_occupancy_uses_the_spaces_filter_and_daily_windows(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    tz = "America/New_York"
    floors = [f.id for f in emu.org.floors_by_id.values() if emu.org.site_timezone(f.id) == tz]
    start, _ = local_day_bounds("2025-03-07", tz)
    _, stop = local_day_bounds("2025-03-10", tz)
    rows = list(
        export_rows(
            fast_hook(),
            "floor_occupancy",
            floors=floors,
            start=start,
            stop=stop,
            every="1d",
            function="max",
            timezone=tz,
        )
    )
    assert all("spaces" in b["filter"] for b in reporting_bodies(emu))
    expected = ground_truth(emu, "floor_occupancy", floors, start, stop, timedelta(days=1), tz, "max")
    assert len(expected) == 4 * len(covered(emu, "floor_occupancy", floors))
    assert_same(exported(rows), expected)


# --- the engine's own rules, with an in-memory fetch function ----------------------------------


def unit(ids: tuple[str, ...] = ("room_1",)) -> ExportUnit:
    query = ReportingQuery.build(
        "room_occupancy",
        assets={"rooms": ids},
        start=datetime(2025, 1, 1, tzinfo=UTC),
        stop=datetime(2025, 1, 2, tzinfo=UTC),
    )
    return ExportUnit("room_occupancy", "mean", "rooms", ids, query.start, query.stop, query)


def row(room: str, hour: int) -> dict[str, Any]:
    return {"time": f"2025-01-01T{hour:02d}:00:00Z", "room_id": room, "value": hour}


def test_a_full_page_with_zeroed_page_info_asks_for_the_next_one() -> None:
    pages = {1: [row("room_1", h) for h in range(3)], 2: [row("room_1", 3)]}
    zeroed = {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1}
    asked = []

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        page = body["paginate"]["page"]
        asked.append(page)
        return {"data": pages.get(page, []), "page_info": zeroed}

    pages = fetch_pages(fetch, unit(), 3, ExportStats())
    assert asked == [1, 2] and pages is not None and [r["value"] for r in unit_rows(pages)] == [0, 1, 2, 3]


def test_a_server_ignoring_paginate_is_refused_not_duplicated() -> None:
    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        return {"data": [row("room_1", h) for h in range(2)], "page_info": {}}

    with pytest.raises(ButlrDataError, match=r"identical to page 1.*ignore 'paginate'"):
        fetch_pages(fetch, unit(), 2, ExportStats())


def test_closing_the_export_early_stops_asking() -> None:
    calls: list[tuple[str, ...]] = []

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        ids = tuple(body["filter"]["rooms"]["eq"])
        calls.append(ids)
        return {"data": [row(i, 0) for i in ids]}

    units = [unit((f"room_{i}",)) for i in range(50)]
    rows: Iterator[dict[str, Any]] = iter_export_rows(units, lambda: fetch, ExportOptions(max_concurrency=2))
    assert next(rows)["room_id"] == "room_0"
    rows.close()  # type: ignore[attr-defined]
    assert len(calls) <= 4


def test_concurrency_is_bounded_to_butlrs_recommendation() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be an integer from 1 to 5"):
        ExportOptions(max_concurrency=6)


# --- planning by what the server answers (issue 14) ---------------------------------------------


def test_20_rooms_over_30_days_at_15_minutes_take_at_most_8_requests(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    rooms = site_rooms(emu, "Europe/Berlin")[:20]
    start, _ = local_day_bounds("2025-01-01", "Europe/Berlin")
    _, stop = local_day_bounds("2025-01-30", "Europe/Berlin")
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="15m",
            function="mean",
            timezone="Europe/Berlin",
            stats=stats,
        )
    )
    bodies = reporting_bodies(emu)
    assert len(bodies) <= 8 and stats.requests == len(bodies)
    assert all("paginate" not in b for b in bodies)
    assert max(len(b["filter"]["rooms"]["eq"]) for b in bodies) <= 10  # Butlr's budget for 24 h and more
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(minutes=15), "Europe/Berlin", "mean"
    )
    assert len(expected) == 30 * 96 * len(covered(emu, "room_occupancy", rooms)) > 0
    assert_same(exported(rows), expected)


def test_unknown_ids_exhaust_the_resplit_budget_and_are_named(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    unknown = [f"room_unknown{i:03d}" for i in range(60)]
    start = datetime(2025, 1, 15, 12, tzinfo=UTC)
    with pytest.raises(
        ButlrDataError, match=r"never returned data \(room_unknown000, room_unknown001"
    ) as err:
        list(
            export_rows(
                fast_hook(), "room_occupancy", rooms=unknown, start=start, stop=start + timedelta(hours=1)
            )
        )
    assert "extra requests" in str(err.value)
    planned, allowance = 2, 32  # 2 units of 30 ids; the allowance of a small export
    assert len(reporting_bodies(emu)) <= planned + allowance + 1


def test_a_few_ids_without_data_cost_a_few_requests_and_no_failure(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    rooms = [*covered(emu, "room_occupancy", site_rooms(emu, "America/New_York"))[:17], "room_nodata1"]
    start, stop = local_day_bounds("2025-01-15", "America/New_York")
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            timezone="America/New_York",
            stats=stats,
        )
    )
    assert stats.resplits == 0 and stats.empty_units == 0 and len(reporting_bodies(emu)) == 2
    assert {r["asset_id"] for r in rows} == set(rooms[:-1])


def test_too_many_ids_for_one_task_point_to_dynamic_task_mapping(butlr_conn: Any, fast_hook: Any) -> None:
    rooms = [f"room_r{i}" for i in range(2001)]
    start = datetime(2025, 1, 15, tzinfo=UTC)
    with pytest.raises(
        ButlrConfigurationError, match=r"2001 asset ids .* max_ids_per_task=2000.*dynamic task mapping"
    ):
        export_rows(fast_hook(), "room_occupancy", rooms=rooms, start=start, stop=start + timedelta(hours=1))
    assert reporting_bodies(butlr_conn) == []


needs_id_minutes_budget = pytest.mark.skipif(
    not hasattr(EmulatorConfig(), "reporting_max_id_minutes"),
    reason="the emulator's ids x range-minutes budget (EmulatorConfig.reporting_max_id_minutes) is not merged yet",
)


@needs_id_minutes_budget
def test_a_budget_in_ids_and_range_is_learned_in_both_dimensions(butlr_conn: Any, fast_hook: Any) -> None:
    emu = butlr_conn
    emu.config.reporting_max_id_minutes = 2 * 24 * 60  # one id over two days at most
    rooms = covered(emu, "room_occupancy", site_rooms(emu, "Europe/Berlin"))[:4]
    start, _ = local_day_bounds("2025-02-03", "Europe/Berlin")
    _, stop = local_day_bounds("2025-02-08", "Europe/Berlin")  # six days
    stats = ExportStats()
    rows = list(
        export_rows(
            fast_hook(),
            "room_occupancy",
            rooms=rooms,
            start=start,
            stop=stop,
            every="1h",
            function=["mean", "max"],
            timezone="Europe/Berlin",
            stats=stats,
        )
    )
    bodies = reporting_bodies(emu)
    later = [b for b in bodies if b["window"]["function"] == "max"]
    assert stats.resplits > 0
    assert later and all(len(b["filter"]["rooms"]["eq"]) == 1 for b in later)
    spans = {
        datetime.fromisoformat(b["filter"]["stop"]) - datetime.fromisoformat(b["filter"]["start"])
        for b in later
    }
    assert max(spans) <= timedelta(days=2)  # cut before sending: the learned size, no empty answer
    assert len(later) <= 4 * 4
    expected = ground_truth(
        emu, "room_occupancy", rooms, start, stop, timedelta(hours=1), "Europe/Berlin", "max"
    )
    assert_same(exported([r for r in rows if r["function"] == "max"]), expected)


# --- the engine's adaptation, with an in-memory server -------------------------------------------


def long_unit(ids: tuple[str, ...], days: int) -> ExportUnit:
    query = ReportingQuery.build(
        "room_occupancy",
        assets={"rooms": ids},
        start=datetime(2025, 1, 1, tzinfo=UTC),
        stop=datetime(2025, 1, 1 + days, tzinfo=UTC),
    )
    return ExportUnit("room_occupancy", "mean", "rooms", ids, query.start, query.stop, query)


class BudgetServer:
    """Answers like Butlr: empty data above ``ids x hours``; one row per id and hour otherwise."""

    def __init__(self, max_id_hours: int) -> None:
        self.max_id_hours = max_id_hours
        self.asked: list[tuple[int, float]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body["filter"]["rooms"]["eq"]
        start = datetime.fromisoformat(body["filter"]["start"])
        stop = datetime.fromisoformat(body["filter"]["stop"])
        hours = int((stop - start) / timedelta(hours=1))
        self.asked.append((len(ids), hours))
        if len(ids) * hours > self.max_id_hours:
            return {
                "data": {},
                "page_info": {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1},
            }
        rows = [
            {"time": format_time(start + timedelta(hours=h)), "room_id": i, "value": h}
            for i in ids
            for h in range(hours)
        ]
        return {"data": rows}


def test_a_single_id_over_a_long_range_is_asked_again_in_halves_of_time_and_the_size_is_kept() -> None:
    server = BudgetServer(max_id_hours=48)
    units = [long_unit(("room_a",), 8), long_unit(("room_b",), 8)]
    stats = ExportStats()
    rows = list(iter_export_rows(units, lambda: server, ExportOptions(), stats))
    assert len(rows) == 2 * 8 * 24 and [r["room_id"] for r in rows] == ["room_a"] * 192 + ["room_b"] * 192
    assert [r["time"] for r in rows[:192]] == sorted(r["time"] for r in rows[:192])
    first_unit = server.asked[: server.asked.index((1, 48)) + 1]
    assert first_unit == [(1, 192), (1, 96), (1, 48)]  # 8 days, 4 days, 2 days (which answers)
    assert server.asked[-4:] == [(1, 48)] * 4  # the second unit is cut to 2 days before it is sent
    assert stats.resplits == 3 and stats.empty_units == 0


def test_an_id_without_data_inside_a_proven_range_is_believed() -> None:
    server = BudgetServer(max_id_hours=10_000)

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        if body["filter"]["rooms"]["eq"] == ["room_empty"]:
            server.asked.append((1, 0))
            return {"data": []}
        return server(body)

    units = [long_unit(("room_a",), 8), long_unit(("room_empty",), 8)]
    stats = ExportStats()
    rows = list(iter_export_rows(units, lambda: fetch, ExportOptions(), stats))
    assert len(rows) == 192 and len(server.asked) == 2 and stats.empty_units == 1


def test_pages_are_asked_only_when_page_info_announces_more() -> None:
    asked: list[Any] = []

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        asked.append(body.get("paginate"))
        page = body.get("paginate", {}).get("page", 1)
        info = {"page": page, "page_item_count": 2, "total_item_count": 5, "total_pages": 3}
        return {"data": [row("room_1", h) for h in range(2 * page - 2, min(2 * page, 5))], "page_info": info}

    pages = fetch_pages(fetch, unit(), None, ExportStats())
    assert asked == [None, {"page": 2, "limit": 2}, {"page": 3, "limit": 2}]
    assert pages is not None and [r["value"] for r in unit_rows(pages)] == [0, 1, 2, 3, 4]
    asked.clear()
    zeroed = {"page": 1, "page_item_count": 0, "total_item_count": 0, "total_pages": 1}
    assert fetch_pages(
        lambda b: asked.append(b) or {"data": [row("room_1", 0)] * 3, "page_info": zeroed},
        unit(),
        None,
        ExportStats(),
    )
    assert len(asked) == 1 and "paginate" not in asked[0]


def test_jsonl_lines_are_the_same_with_or_without_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json
    import sys

    from airflow_provider_butlr.reporting.output.files import _jsonl_write
    from airflow_provider_butlr.reporting.rows import ROW_COLUMNS

    rows = [
        {
            **dict.fromkeys(ROW_COLUMNS, ""),
            "value": 1.5,
            "room_name": "Salle 1.1 café",
            "data_incomplete": None,
        },
        {**dict.fromkeys(ROW_COLUMNS, ""), "value": 7, "null_percentage": 0.25, "data_incomplete": True},
    ]
    fast, plain = io.BytesIO(), io.BytesIO()
    assert _jsonl_write(rows, fast) == 2
    monkeypatch.setitem(sys.modules, "msgspec", None)  # as on an Airflow without msgspec
    assert _jsonl_write(rows, plain) == 2
    assert fast.getvalue() == plain.getvalue()  # the same bytes: UTF-8, no spaces, no \u escapes
    parse = lambda data: [json.loads(line) for line in data.decode().splitlines()]  # noqa: E731
    assert parse(fast.getvalue()) == rows
    assert list(parse(fast.getvalue())[0]) == list(ROW_COLUMNS)  # column order kept


def test_a_stopped_export_sends_no_further_request() -> None:
    calls: list[tuple[str, ...]] = []
    stats = ExportStats()

    def fetch(body: dict[str, Any]) -> dict[str, Any]:
        ids = tuple(body["filter"]["rooms"]["eq"])
        calls.append(ids)
        return {"data": [row(i, 0) for i in ids]}

    rows = iter_export_rows([unit((f"room_{i}",)) for i in range(20)], lambda: fetch, ExportOptions(), stats)
    assert next(rows)["room_id"] == "room_0"
    stats.stop()  # what on_kill() does
    with pytest.raises(ButlrError, match=r"the export was stopped after [12] request\(s\)"):
        list(rows)
    assert len(calls) <= 2
