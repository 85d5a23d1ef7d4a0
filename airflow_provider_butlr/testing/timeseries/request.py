"""Validation of ``POST /api/v3/reporting`` bodies (butlr-api.md 3.1) into a :class:`ReportingQuery`.

Every problem raises :class:`BadRequest` with a message that names the field and the allowed values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_butlr.testing.timeseries.errors import BadRequest
from airflow_provider_butlr.testing.timeseries.series import (
    MEASUREMENTS,
    TRAFFIC_FLOOR_OCCUPANCY,
    TRAFFIC_ROOM_OCCUPANCY,
    TRAFFIC_ZONE_OCCUPANCY,
)
from airflow_provider_butlr.testing.timeseries.timeutils import (
    MINUTE,
    TimeFormatError,
    is_relative_time,
    parse_clock,
    parse_duration,
    parse_rfc3339,
    parse_weekday,
    zone,
)

TOP_KEYS = ("filter", "window", "group_by", "options", "paginate", "calibration_points")
ID_FILTERS = ("spaces", "rooms", "zones", "tags", "buildings", "clients", "sensors", "hives")
FILTER_KEYS = ("measurements", "start", "stop", *ID_FILTERS, "value", "calibrated", "time_constraints")
WINDOW_KEYS = ("every", "function", "timezone", "create_empty", "offset", "fill")
GROUP_KEYS = ("order", "raw")
OPTION_KEYS = ("format", "timestamp", "precision", "includeCalibrationPoints")
PAGINATE_KEYS = ("page", "limit")
FUNCTIONS = ("mean", "max", "min", "sum", "median", "first", "last")
VALUE_OPERATORS = ("gte", "gt", "lte", "lt")
CALIBRATED_VALUES = ("true", "raw", "false")
CALIBRATED_MEASUREMENTS = (TRAFFIC_FLOOR_OCCUPANCY, TRAFFIC_ROOM_OCCUPANCY, TRAFFIC_ZONE_OCCUPANCY)
GROUP_BY_KEYS = (
    "time",
    "field",
    "measurement",
    "tag_id",
    "building_id",
    "space_id",
    "room_id",
    "zone_id",
    "sensor_id",
    "hive_id",
    "mac_address",
    "hive_serial",
)
FORMATS = ("json",)
PRECISIONS = ("s", "ms", "us", "ns")
CALIBRATION_POINT_TYPES = ("manual_count", "user_provided", "pir_zero")

T = TypeVar("T")


@dataclass(frozen=True)
class TimeConstraints:
    """Time-of-day ranges (minutes after local midnight, stop exclusive, may wrap) and excluded weekdays."""

    ranges: tuple[tuple[int, int], ...] = ()
    excluded_weekdays: frozenset[int] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.ranges or self.excluded_weekdays)


@dataclass(frozen=True)
class ReportingQuery:
    """A validated reporting request; times are Unix seconds (UTC), durations seconds."""

    measurements: tuple[str, ...]
    start: int
    stop: int
    id_filters: Mapping[str, tuple[str, ...]]
    value_filter: Mapping[str, float]
    calibrated: str | None
    constraints: TimeConstraints
    every: int
    function: str
    timezone: str | None
    create_empty: bool
    fill_previous: bool
    fill_value: float | None
    offset: int
    group_order: tuple[str, ...]
    group_raw: bool
    page: int | None
    limit: int | None
    id_count: int = field(default=0)

    @property
    def grouped(self) -> bool:
        return bool(self.group_order)

    @property
    def paginated(self) -> bool:
        return self.page is not None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(message)


def _object(value: Any, name: str, allowed: tuple[str, ...], strict: bool) -> dict[str, Any]:
    _require(isinstance(value, dict), f"{name} must be a JSON object with keys from: {', '.join(allowed)}")
    unknown = [k for k in value if k not in allowed]
    if strict and unknown:
        raise BadRequest(
            f"{name}: unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    return value


def _bool(value: Any, name: str) -> bool:
    _require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
    return bool(value)


def _number(value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    _require(ok, f"{name} must be a number, got {value!r}")
    return float(value)


def _positive_int(value: Any, name: str) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    _require(ok, f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _time(text: Any, name: str, now: int, *, relative_ok: bool) -> int:
    if relative_ok and is_relative_time(text):
        return now + parse_duration(text)
    if isinstance(text, str) and text.strip().lower().startswith("now"):
        raise BadRequest(
            f"{name} {text!r} is not accepted; omit filter.stop to mean now, or give an RFC3339 time"
        )
    return _parsed(
        parse_rfc3339,
        text,
        name,
        "an RFC3339 timestamp like '2025-01-01T05:00:00Z'"
        + (" or a relative time like '-24h'" if relative_ok else ""),
    )


def _parsed(parser: Callable[[Any], T], value: Any, name: str, expected: str) -> T:
    try:
        return parser(value)
    except TimeFormatError as exc:
        raise BadRequest(f"{name}: {exc}") from None
    except (TypeError, AttributeError):
        raise BadRequest(f"{name} must be {expected}, got {value!r}") from None


def _measurements(value: Any) -> tuple[str, ...]:
    allowed = ", ".join(MEASUREMENTS)
    ok = isinstance(value, list) and value and all(isinstance(m, str) for m in value)
    _require(bool(ok), f"filter.measurements is required: a non-empty list of names from: {allowed}")
    unknown = [m for m in value if m not in MEASUREMENTS]
    _require(not unknown, f"filter.measurements: unknown {', '.join(map(repr, unknown))}; allowed: {allowed}")
    return tuple(dict.fromkeys(value))


def _id_filter(value: Any, name: str, strict: bool) -> tuple[str, ...]:
    body = _object(value, f"filter.{name}", ("eq",), strict)
    ids: Any = body.get("eq")
    ok = isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)
    _require(
        bool(ok), f'filter.{name} must look like {{"eq": ["id", ...]}} with a non-empty list of id strings'
    )
    return tuple(dict.fromkeys(ids))


def _value_filter(value: Any, strict: bool) -> dict[str, float]:
    body = _object(value, "filter.value", VALUE_OPERATORS, strict)
    parsed = {op: _number(body[op], f"filter.value.{op}") for op in VALUE_OPERATORS if op in body}
    _require(bool(parsed), f"filter.value needs at least one of: {', '.join(VALUE_OPERATORS)}")
    return parsed


def _calibrated(value: Any, measurements: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    _require(
        isinstance(value, str) and value in CALIBRATED_VALUES,
        f"filter.calibrated must be one of the strings {', '.join(map(repr, CALIBRATED_VALUES))}, got {value!r}",
    )
    others = [m for m in measurements if m not in CALIBRATED_MEASUREMENTS]
    _require(
        not others,
        f"filter.calibrated is only valid with {' / '.join(CALIBRATED_MEASUREMENTS)}; "
        f"not with {', '.join(others)}",
    )
    return str(value)


def parse_time_constraints(value: Any, name: str, strict: bool) -> TimeConstraints:
    """``{"time_ranges": [{"start": "09:00", "stop": "17:00"}], "exclude_days_of_week": [...]}``."""
    body = _object(value, name, ("time_ranges", "exclude_days_of_week"), strict)
    ranges: list[tuple[int, int]] = []
    raw_ranges = body.get("time_ranges", [])
    _require(
        isinstance(raw_ranges, list),
        f'{name}.time_ranges must be a list of {{"start": "HH:MM", "stop": "HH:MM"}}',
    )
    for i, item in enumerate(raw_ranges):
        where = f"{name}.time_ranges[{i}]"
        item = _object(item, where, ("start", "stop"), strict)
        _require("start" in item and "stop" in item, f"{where} needs both start and stop (HH:MM)")
        start = _parsed(parse_clock, item["start"], f"{where}.start", "HH:MM")
        stop = _parsed(parse_clock, item["stop"], f"{where}.stop", "HH:MM")
        _require(
            start != stop, f"{where}: start and stop are equal ({item['start']}); the range would be empty"
        )
        ranges.append((start, stop))
    days = body.get("exclude_days_of_week", [])
    _require(isinstance(days, list), f"{name}.exclude_days_of_week must be a list of day names")
    excluded = frozenset(
        _parsed(parse_weekday, d, f"{name}.exclude_days_of_week", "a day name") for d in days
    )
    return TimeConstraints(tuple(ranges), excluded)


def _calibration_points(value: Any, strict: bool) -> None:
    _require(isinstance(value, list), "calibration_points must be a list of {timestamp, occupancy, type}")
    for i, point in enumerate(value):
        where = f"calibration_points[{i}]"
        point = _object(point, where, ("timestamp", "occupancy", "type"), strict)
        _parsed(parse_rfc3339, point.get("timestamp"), f"{where}.timestamp", "an RFC3339 timestamp")
        occupancy = point.get("occupancy")
        ok = isinstance(occupancy, int) and not isinstance(occupancy, bool) and occupancy >= 0
        _require(ok, f"{where}.occupancy must be a non-negative integer, got {occupancy!r}")
        kind = point.get("type")
        _require(
            kind in CALIBRATION_POINT_TYPES,
            f"{where}.type must be one of {', '.join(CALIBRATION_POINT_TYPES)}, got {kind!r}",
        )


def _options(value: Any, strict: bool) -> None:
    body = _object(value, "options", OPTION_KEYS, strict)
    if "format" in body:
        _require(
            body["format"] in FORMATS,
            f"options.format {body['format']!r} is not supported; allowed: json "
            "(the CSV output shape of the real API is undocumented)",
        )
    if "timestamp" in body:
        _require(
            body["timestamp"] == "RFC3339", f"options.timestamp must be 'RFC3339', got {body['timestamp']!r}"
        )
    if "precision" in body:
        _require(
            body["precision"] in PRECISIONS,
            f"options.precision must be one of {', '.join(PRECISIONS)}, got {body['precision']!r}",
        )
    if "includeCalibrationPoints" in body:
        _bool(body["includeCalibrationPoints"], "options.includeCalibrationPoints")


@dataclass
class _Window:
    every: int = MINUTE
    function: str = "last"
    timezone: str | None = None
    create_empty: bool = False
    fill_previous: bool = False
    fill_value: float | None = None
    offset: int = 0


def _window(value: Any, strict: bool) -> _Window:
    if value is None:  # no aggregation: the raw minute points
        return _Window()
    body = _object(value, "window", WINDOW_KEYS, strict)
    _require("every" in body, "window.every is required, e.g. '1m', '5m', '15m', '1h', '1d'")
    every = _parsed(parse_duration, body["every"], "window.every", "a duration like '1h'")
    _require(
        every > 0 and every % MINUTE == 0,
        f"window.every must be a positive whole number of minutes (the emulator's resolution), got {body['every']!r}",
    )
    function = body.get("function")
    _require(
        function in FUNCTIONS,
        f"window.function is required, one of: {', '.join(FUNCTIONS)}; got {function!r}",
    )
    window = _Window(every=every, function=str(function))
    if body.get("timezone") is not None:
        _parsed(zone, body["timezone"], "window.timezone", "an IANA timezone name like 'America/New_York'")
        window.timezone = str(body["timezone"])
    if "create_empty" in body:
        window.create_empty = _bool(body["create_empty"], "window.create_empty")
    if "offset" in body:
        window.offset = _parsed(parse_duration, body["offset"], "window.offset", "a duration like '30m'")
    if "fill" in body:
        fill = _object(body["fill"], "window.fill", ("use_previous", "value"), strict)
        _require(len(fill) == 1, 'window.fill must be {"use_previous": true} or {"value": <number>}')
        if "use_previous" in fill:
            window.fill_previous = _bool(fill["use_previous"], "window.fill.use_previous")
        else:
            window.fill_value = _number(fill["value"], "window.fill.value")
    return window


def _group_by(value: Any, strict: bool) -> tuple[tuple[str, ...], bool]:
    if value is None:
        return (), False
    body = _object(value, "group_by", GROUP_KEYS, strict)
    order = body.get("order", [])
    ok = isinstance(order, list) and all(isinstance(k, str) for k in order)
    _require(ok, f"group_by.order must be a list of keys from: {', '.join(GROUP_BY_KEYS)}")
    unknown = [k for k in order if k not in GROUP_BY_KEYS]
    _require(
        not unknown,
        f"group_by.order: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(GROUP_BY_KEYS)}",
    )
    _require(len(set(order)) == len(order), f"group_by.order repeats a key: {order}")
    raw = _bool(body["raw"], "group_by.raw") if "raw" in body else False
    return tuple(order), raw


def _paginate(value: Any, strict: bool) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    body = _object(value, "paginate", PAGINATE_KEYS, strict)
    _require(
        "page" in body and "limit" in body,
        'paginate needs both page (1-based) and limit, e.g. {"page": 1, "limit": 100}',
    )
    return _positive_int(body["page"], "paginate.page"), _positive_int(body["limit"], "paginate.limit")


def parse_reporting_body(body: Any, now: int, *, strict: bool = True) -> ReportingQuery:
    """Validate a reporting body; ``now`` (Unix seconds) resolves relative starts and the default stop."""
    body = _object(body, "request body", TOP_KEYS, strict)
    _require("filter" in body, "filter is required (with filter.measurements and filter.start)")
    flt = _object(body["filter"], "filter", FILTER_KEYS, strict)
    measurements = _measurements(flt.get("measurements"))
    _require("start" in flt, "filter.start is required: an RFC3339 time like '2025-01-01T05:00:00Z'")
    start = _time(flt["start"], "filter.start", now, relative_ok=True)
    stop = _time(flt["stop"], "filter.stop", now, relative_ok=True) if flt.get("stop") is not None else now
    _require(
        start < stop, f"filter.start ({flt['start']}) must be before filter.stop ({flt.get('stop', 'now')})"
    )
    id_filters = {name: _id_filter(flt[name], name, strict) for name in ID_FILTERS if name in flt}
    value_filter = _value_filter(flt["value"], strict) if "value" in flt else {}
    constraints = (
        parse_time_constraints(flt["time_constraints"], "filter.time_constraints", strict)
        if "time_constraints" in flt
        else TimeConstraints()
    )
    calibrated = _calibrated(flt.get("calibrated"), measurements)
    window = _window(body.get("window"), strict)
    order, raw = _group_by(body.get("group_by"), strict)
    if "options" in body:
        _options(body["options"], strict)
    if "calibration_points" in body:
        _calibration_points(body["calibration_points"], strict)
    page, limit = _paginate(body.get("paginate"), strict)
    return ReportingQuery(
        measurements=measurements,
        start=start,
        stop=stop,
        id_filters=id_filters,
        value_filter=value_filter,
        calibrated=calibrated,
        constraints=constraints,
        every=window.every,
        function=window.function,
        timezone=window.timezone,
        create_empty=window.create_empty,
        fill_previous=window.fill_previous,
        fill_value=window.fill_value,
        offset=window.offset,
        group_order=order,
        group_raw=raw,
        page=page,
        limit=limit,
        id_count=sum(len(ids) for ids in id_filters.values()),
    )
