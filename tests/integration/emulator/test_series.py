"""The deterministic minute generator (``testing/timeseries/series.py``): determinism, model invariants, coverage."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.days import day_layout
from airflow_provider_butlr.testing.timeseries.series import (
    MEASUREMENTS,
    minute_values,
    room_capacity,
    series_assets,
)
from tests.integration.emulator.series_orgs import build_series_org

SEED = 7
UTC = UTC
NY = ZoneInfo("America/New_York")
# A Tuesday in the data-quality era; NY is UTC-5 then.
DAY_START = datetime(2025, 11, 4, 5, tzinfo=UTC)  # local midnight in New York
DAY_STOP = DAY_START + timedelta(days=1)


@pytest.fixture(scope="module")
def org() -> Organization:
    return build_series_org()


def values(
    org: Organization,
    measurement: str,
    asset: str,
    start: datetime = DAY_START,
    stop: datetime = DAY_STOP,
    seed: int = SEED,
    field: str | None = None,
) -> list[int]:
    return [v for _, v in minute_values(org, measurement, asset, start, stop, seed, field=field)]


def test_minute_values_cover_each_minute_of_the_range_once(org: Organization) -> None:
    points = minute_values(org, "room_occupancy", "room_a", DAY_START, DAY_STOP, SEED)
    assert len(points) == 1440
    assert points[0][0] == DAY_START and points[-1][0] == DAY_STOP - timedelta(minutes=1)
    assert all(isinstance(v, int) and v >= 0 for _, v in points)


def test_same_seed_same_values_other_seed_other_values(org: Organization) -> None:
    first = values(org, "room_occupancy", "room_a")
    assert values(org, "room_occupancy", "room_a") == first
    assert values(build_series_org(), "room_occupancy", "room_a") == first  # a fresh org object, same content
    assert values(org, "room_occupancy", "room_a", seed=SEED + 1) != first
    assert values(org, "room_occupancy", "room_b") != first


def test_a_minute_does_not_depend_on_the_range_that_asked_for_it(org: Organization) -> None:
    whole = dict(
        minute_values(org, "traffic", "sensor_ta", DAY_START - timedelta(days=1), DAY_STOP, SEED, field="in")
    )
    part_start = DAY_START + timedelta(hours=13, minutes=17)
    part = minute_values(
        org, "traffic", "sensor_ta", part_start, part_start + timedelta(minutes=90), SEED, field="in"
    )
    assert part and all(whole[t] == v for t, v in part)


def test_occupancy_never_exceeds_one_point_two_times_capacity(org: Organization) -> None:
    for room_id in series_assets(org, "room_occupancy"):
        cap = room_capacity(org.rooms_by_id[room_id])
        assert max(values(org, "room_occupancy", room_id)) <= math.ceil(cap * 1.2)


def _local_hour_mean(org: Organization, room: str, day: date, hours: range, tz: ZoneInfo) -> float:
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    series = values(org, "room_occupancy", room, start, start + timedelta(days=1))
    picked = [series[h * 60 + m] for h in hours for m in range(60)]
    return sum(picked) / len(picked)


@pytest.mark.parametrize(("room", "tz"), [("room_a", NY), ("room_be", ZoneInfo("Europe/Berlin"))])
def test_diurnal_and_weekday_pattern_follow_the_site_local_clock(
    org: Organization, room: str, tz: ZoneInfo
) -> None:
    weeks = [date(2025, 11, 3) + timedelta(days=7 * k) for k in range(3)]  # Mondays
    office = sum(_local_hour_mean(org, room, d + timedelta(days=1), range(10, 16), tz) for d in weeks)
    night = sum(_local_hour_mean(org, room, d + timedelta(days=1), range(0, 5), tz) for d in weeks)
    sunday = sum(_local_hour_mean(org, room, d + timedelta(days=6), range(10, 16), tz) for d in weeks)
    assert office > 5 * max(night, 0.05)
    assert office > 3 * max(sunday, 0.05)


def test_floor_occupancy_is_the_sum_of_its_covered_rooms(org: Organization) -> None:
    rooms = [values(org, "room_occupancy", r) for r in ("room_a", "room_b", "room_c")]
    assert values(org, "floor_occupancy", "space_ny1") == [sum(col) for col in zip(*rooms, strict=True)]


def test_tag_occupancy_is_the_sum_of_its_covered_rooms_and_zones(org: Organization) -> None:
    parts = [
        values(org, "room_occupancy", "room_a"),
        values(org, "room_occupancy", "room_b"),
        values(org, "zone_occupancy", "zone_a"),
    ]
    assert values(org, "tag_occupancy", "tag_meet") == [sum(col) for col in zip(*parts, strict=True)]


def test_presence_seconds_are_zero_exactly_when_empty(org: Organization) -> None:
    occupancy = values(org, "room_occupancy", "room_b")
    secs = values(org, "room_presence_time_secs", "room_b")
    assert all(0 <= s <= 60 for s in secs)
    assert [s == 0 for s in secs] == [o == 0 for o in occupancy]
    assert any(s > 0 for s in secs)


def test_floor_presence_seconds_are_the_max_over_rooms(org: Organization) -> None:
    rooms = [values(org, "room_presence_time_secs", r) for r in ("room_a", "room_b", "room_c")]
    assert values(org, "floor_presence_time_secs", "space_ny1") == [
        max(col) for col in zip(*rooms, strict=True)
    ]


def _running(net: list[int]) -> list[int]:
    out, total = [], 0
    for x in net:
        total = max(0, total + x)
        out.append(total)
    return out


def test_traffic_room_occupancy_is_clamped_cumulative_in_minus_out_since_local_midnight(
    org: Organization,
) -> None:
    start = DAY_START - timedelta(days=1)  # two New York days: the running sum restarts at local midnight
    ins = values(org, "traffic", "sensor_ta", start, DAY_STOP, field="in")
    outs = values(org, "traffic", "sensor_ta", start, DAY_STOP, field="out")
    occupancy = values(org, "traffic_room_occupancy", "room_a", start, DAY_STOP)
    net = [i - o for i, o in zip(ins, outs, strict=True)]
    assert occupancy[:1440] == _running(net[:1440])
    assert occupancy[1440:] == _running(net[1440:])
    assert min(occupancy) >= 0 and max(occupancy) > 0
    assert sum(ins) > 0 and sum(outs) > 0


def test_traffic_floor_occupancy_uses_the_entrance_sensors_only(org: Organization) -> None:
    nets = [
        [
            i - o
            for i, o in zip(
                values(org, "traffic", s, field="in"), values(org, "traffic", s, field="out"), strict=True
            )
        ]
        for s in ("sensor_e1", "sensor_e2")
    ]
    assert values(org, "traffic_floor_occupancy", "space_ny1") == _running(
        [a + b for a, b in zip(*nets, strict=True)]
    )


def test_only_covered_assets_have_series(org: Organization) -> None:
    assert series_assets(org, "room_occupancy") == ["room_a", "room_b", "room_c", "room_be", "room_null"]
    assert series_assets(org, "zone_occupancy") == ["zone_a", "zone_free"]
    assert series_assets(org, "floor_occupancy") == ["space_ny1", "space_be", "space_null"]
    assert series_assets(org, "traffic_room_occupancy") == ["room_a", "room_be"]
    assert series_assets(org, "traffic_floor_occupancy") == ["space_ny1"]
    assert series_assets(org, "traffic") == ["sensor_ta", "sensor_e1", "sensor_e2", "sensor_tbe"]
    assert series_assets(org, "tag_occupancy") == ["tag_meet"]
    with pytest.raises(KeyError):
        minute_values(org, "room_occupancy", "room_dark", DAY_START, DAY_STOP, SEED)
    with pytest.raises(ValueError, match="allowed"):
        series_assets(org, "people_count")


def test_every_measurement_has_a_series_in_the_seeded_org() -> None:
    """All but traffic_zone_occupancy: zones support presence only (Butlr's docs; its client says so too)."""
    from airflow_provider_butlr.testing.org.seed import build_org

    seeded = build_org(42, "small", now=DAY_START.timestamp())
    assert series_assets(seeded, "traffic_zone_occupancy") == []
    for measurement in (m for m in MEASUREMENTS if m != "traffic_zone_occupancy"):
        assets = series_assets(seeded, measurement)
        assert assets, measurement
        field = "in" if measurement == "traffic" else None
        assert (
            len(
                minute_values(
                    seeded, measurement, assets[0], DAY_START, DAY_START + timedelta(hours=1), 42, field=field
                )
            )
            == 60
        )


@pytest.mark.parametrize(
    ("day", "minutes"), [(date(2025, 3, 9), 1380), (date(2025, 11, 2), 1500), (date(2025, 11, 4), 1440)]
)
def test_local_days_have_23_24_or_25_hours(day: date, minutes: int) -> None:
    first, walls = day_layout("America/New_York", day.toordinal())
    assert len(walls) == minutes
    assert datetime.fromtimestamp(first * 60, NY).time().hour == 0
