"""``POST /api/v4/reporting/stats`` (butlr-api.md 3.9): one number per item per measurement.

Measurements ``occupancy_[used_]{avg,median}_{presence,traffic}``: the mean / median of the item's
per-minute occupancy over the range (minutes with data, passing ``filters``); the ``used_`` variants
only count minutes with occupancy > 0. ``presence`` reads floor/room/zone_occupancy, ``traffic`` reads
traffic_floor/room_occupancy. An item without such data (a zone has no traffic; a room without
traffic sensors) gets 0. Items must share one site timezone, in which ``filters`` are read.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_butlr.testing.org.model import Organization
from airflow_provider_butlr.testing.timeseries.errors import BadRequest, Overloaded
from airflow_provider_butlr.testing.timeseries.request import TimeConstraints, parse_time_constraints
from airflow_provider_butlr.testing.timeseries.series import (
    FLOOR_OCCUPANCY,
    ROOM_OCCUPANCY,
    TRAFFIC_FLOOR_OCCUPANCY,
    TRAFFIC_ROOM_OCCUPANCY,
    TRAFFIC_ZONE_OCCUPANCY,
    ZONE_OCCUPANCY,
    SeriesSource,
    series_source,
)
from airflow_provider_butlr.testing.timeseries.settings import EngineSettings
from airflow_provider_butlr.testing.timeseries.shapes import js_number
from airflow_provider_butlr.testing.timeseries.timeutils import (
    DAY,
    MINUTE,
    TimeFormatError,
    is_relative_time,
    parse_date_or_rfc3339,
)
from airflow_provider_butlr.testing.timeseries.windows import allowed_minute_runs

STATS_MEASUREMENTS: tuple[str, ...] = tuple(
    f"occupancy_{used}{agg}_{kind}"
    for used in ("", "used_")
    for agg in ("avg", "median")
    for kind in ("presence", "traffic")
)
STATS_KEYS = ("measurements", "items", "start", "stop", "filters")


@dataclass(frozen=True)
class StatsQuery:
    """A validated stats request (times in Unix seconds)."""

    measurements: tuple[str, ...]
    items: tuple[str, ...]
    start: int
    stop: int
    constraints: TimeConstraints


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(message)


def _time(value: Any, name: str) -> int:
    _require(
        not is_relative_time(value),
        f"{name} {value!r}: relative times are not accepted by the stats API; give an RFC3339 time",
    )
    try:
        return parse_date_or_rfc3339(value)
    except TimeFormatError as exc:
        raise BadRequest(f"{name}: {exc} (or a date like '2025-04-01')") from None


def _strings(value: Any, name: str, what: str) -> tuple[str, ...]:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    _require(bool(ok), f"{name} is required: a non-empty list of {what}")
    return tuple(dict.fromkeys(value))


def parse_stats_body(body: Any, strict: bool = True) -> StatsQuery:
    """Validate a stats body; BadRequest names the field and the allowed values."""
    _require(isinstance(body, dict), f"request body must be a JSON object with keys: {', '.join(STATS_KEYS)}")
    unknown = [k for k in body if k not in STATS_KEYS]
    _require(
        not (strict and unknown),
        f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(STATS_KEYS)}",
    )
    measurements = _strings(
        body.get("measurements"), "measurements", "names from: " + ", ".join(STATS_MEASUREMENTS)
    )
    wrong = [m for m in measurements if m not in STATS_MEASUREMENTS]
    _require(
        not wrong,
        f"measurements: unknown {', '.join(map(repr, wrong))}; allowed: {', '.join(STATS_MEASUREMENTS)}",
    )
    items = _strings(body.get("items"), "items", "floor (space_), room or zone ids")
    _require(
        "start" in body and "stop" in body,
        "start and stop are both required (RFC3339, e.g. '2025-04-01T00:00:00Z')",
    )
    start, stop = _time(body["start"], "start"), _time(body["stop"], "stop")
    _require(start < stop, f"start ({body['start']}) must be before stop ({body['stop']})")
    constraints = (
        parse_time_constraints(body["filters"], "filters", strict)
        if body.get("filters") is not None
        else TimeConstraints()
    )
    return StatsQuery(measurements, items, start, stop, constraints)


def _sources(org: Organization, item: str) -> tuple[str, str, str | None]:
    """(floor id, presence measurement, traffic measurement or None) of an item."""
    if item in org.floors_by_id:
        return item, FLOOR_OCCUPANCY, TRAFFIC_FLOOR_OCCUPANCY
    if item in org.rooms_by_id:
        return org.rooms_by_id[item].floor_id, ROOM_OCCUPANCY, TRAFFIC_ROOM_OCCUPANCY
    if item in org.zones_by_id:
        return org.zones_by_id[item].floor_id, ZONE_OCCUPANCY, TRAFFIC_ZONE_OCCUPANCY
    raise BadRequest(
        f"items: unknown id {item!r}; use floor (space_...), room or zone ids of this organisation"
    )


def _shared_timezone(org: Organization, items: Sequence[str]) -> str:
    zones: dict[str, list[str]] = {}
    for item in items:
        zones.setdefault(org.site_timezone(_sources(org, item)[0]), []).append(item)
    _require(
        len(zones) == 1,
        "items must share one timezone; got "
        + "; ".join(f"{tz}: {', '.join(ids)}" for tz, ids in zones.items()),
    )
    return next(iter(zones))


def _minutes(
    source: SeriesSource, measurement: str | None, item: str, runs: list[tuple[int, int]]
) -> list[int]:
    if measurement is None or item not in source.assets(measurement):
        return []
    values: list[int] = []
    for low, high in runs:
        values.extend(source.values(measurement, item, low, high - low))
    return values


def _stat(values: Sequence[int], measurement: str) -> float:
    chosen = [v for v in values if v > 0] if "_used_" in measurement else values
    if not chosen:
        return 0
    return js_number(statistics.median(chosen) if "_median_" in measurement else sum(chosen) / len(chosen))


def compute_stats(org: Organization, body: Any, now: datetime, settings: EngineSettings) -> dict[str, Any]:
    """The response body: ``{"data": {item: {measurement: number}}}`` (no ``page_info``)."""
    query = parse_stats_body(body, settings.reporting_strict_keys)
    tz_name = _shared_timezone(org, query.items)
    days = math.ceil((query.stop - query.start) / DAY)
    if settings.stats_max_item_days and len(query.items) * days > settings.stats_max_item_days:
        raise Overloaded(
            f"stats query too large ({len(query.items)} items x {days} days > "
            f"{settings.stats_max_item_days}); reduce time range or number of assets"
        )
    data_end = int(now.timestamp()) // MINUTE - settings.data_lag_minutes
    runs = [
        (a, min(b, data_end))
        for a, b in allowed_minute_runs(query.start, query.stop, query.constraints, tz_name)
        if a < data_end
    ]
    source = series_source(org, settings.seed)
    data: dict[str, dict[str, float]] = {}
    for item in query.items:
        _, presence, traffic = _sources(org, item)
        by_kind = {
            "presence": _minutes(source, presence, item, runs),
            "traffic": _minutes(source, traffic, item, runs),
        }
        data[item] = {m: _stat(by_kind[m.rsplit("_", 1)[1]], m) for m in query.measurements}
    return {"data": data}
