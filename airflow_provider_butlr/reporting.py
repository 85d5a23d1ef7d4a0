"""Pure functions for the Butlr reporting and stats APIs: validate, build bodies, split, flatten.

No I/O here. The hook and the export engine (``export.py``) call these; every function is unit-tested
on its own. Errors are :class:`ButlrConfigurationError` (also a ``ValueError``) naming the argument
and the allowed values.

API traps handled here (see the Butlr API reference, section 3):

* floors are filtered with the key ``spaces`` (ids ``space_...``);
* ``calibrated`` is a *string* (``"true"``/``"raw"``/``"false"``), valid only with the two
  traffic-based occupancy measurements;
* zero values are dropped unless ``filter.value.gte = 0`` (with ``window.create_empty``);
* start/stop must be absolute RFC3339 times; windows align to ``window.timezone``;
* the ``measurement``/``field`` inside response rows are internal names: rows keep the *requested*
  measurement name instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_butlr.exceptions import ButlrConfigurationError, ButlrDataError
from airflow_provider_butlr.timeutil import format_rfc3339, parse_iso, parse_iso_utc

REPORTING_PATH = "/api/v3/reporting"
STATS_PATH = "/api/v4/reporting/stats"

Row = dict[str, Any]

# --- asset kinds ------------------------------------------------------------------------------

# User-facing asset kind -> (reporting filter key, accepted id prefixes).
ASSET_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "floors": ("spaces", ("space_",)),
    "rooms": ("rooms", ("room_",)),
    "zones": ("zones", ("zone_",)),
    "tags": ("tags", ("tag_",)),
    "buildings": ("buildings", ("building_",)),
    "sensors": ("sensors", ("sensor_",)),
    "hives": ("hives", ("hive_",)),
}
# Kinds that are never sent to the reporting API but resolved through the topology.
CONTAINER_PREFIXES: dict[str, tuple[str, ...]] = {
    "sites": ("site_",),
    **{k: v[1] for k, v in ASSET_KINDS.items()},
}
_PREFIX_KIND = {prefix: kind for kind, prefixes in CONTAINER_PREFIXES.items() for prefix in prefixes}

# --- measurements ------------------------------------------------------------------------------

# Requested measurement -> (asset kinds accepted as a filter, natural kind first; the row's asset kind).
MEASUREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "floor_occupancy": (("floors", "tags"), "floors"),
    "room_occupancy": (("rooms", "tags"), "rooms"),
    "zone_occupancy": (("zones", "tags"), "zones"),
    "tag_occupancy": (("tags",), "tags"),
    "traffic_floor_occupancy": (("floors",), "floors"),
    "traffic_room_occupancy": (("rooms",), "rooms"),
    "traffic": (("floors", "rooms", "sensors", "hives", "buildings"), "sensors"),
    "floor_presence_time_secs": (("floors",), "floors"),
    "room_presence_time_secs": (("rooms",), "rooms"),
    "zone_presence_time_secs": (("zones",), "zones"),
}
# Measurements that count people or passages, and the window functions that keep such counts whole:
# their values are ints in every output format (an API answer of 3.0 becomes 3); mean/median and the
# presence seconds stay floats.
WHOLE_NUMBER_MEASUREMENTS = frozenset(
    {
        "floor_occupancy",
        "room_occupancy",
        "zone_occupancy",
        "tag_occupancy",
        "traffic_floor_occupancy",
        "traffic_room_occupancy",
        "traffic",
    }
)
WHOLE_NUMBER_FUNCTIONS = frozenset({"max", "min", "sum", "first", "last"})
CALIBRATED_MEASUREMENTS = ("traffic_floor_occupancy", "traffic_room_occupancy")
CALIBRATED_VALUES = ("true", "raw", "false")
WINDOW_FUNCTIONS = ("mean", "max", "min", "sum", "median", "first", "last")
STAT_KEYS = frozenset({"sum", "min", "max", "count", "mean", "median", "stddev", "first", "last"})
EVERY_EXAMPLES = ("1m", "5m", "15m", "30m", "1h", "6h", "12h", "1d")
_EVERY_RE = re.compile(r"^(\d{1,9})(s|m|h|d|w)$")
MIN_EVERY = timedelta(minutes=1)
MAX_EVERY = timedelta(weeks=52)
_EVERY_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

STATS_MEASUREMENTS = tuple(
    f"occupancy_{metric}_{source}"
    for metric in ("avg", "median", "used_avg", "used_median")
    for source in ("presence", "traffic")
)
DAYS_OF_WEEK = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_ID_LENGTH = 128
_ID_RE = re.compile(r"[a-z]+_[A-Za-z0-9][A-Za-z0-9_-]*")
FIRST_YEAR, LAST_YEAR = 1970, 2200  # outside: refused (the API has no data, date arithmetic overflows)
_HHMM_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# --- defaults for splitting --------------------------------------------------------------------

DEFAULT_MAX_IDS_PER_REQUEST = 30
DEFAULT_MAX_IDS_LONG_RANGE = 10
DEFAULT_LONG_RANGE = timedelta(hours=24)
DEFAULT_MAX_ROWS_PER_REQUEST = 50_000  # estimated rows per answer: bounds its size, not the server's budget
DEFAULT_PAGE_LIMIT = 1000

# --- output rows -------------------------------------------------------------------------------

ROW_COLUMNS: tuple[str, ...] = (
    "time",
    "local_time",
    "measurement",
    "function",
    "field",
    "value",
    "asset_type",
    "asset_id",
    "building_id",
    "building_name",
    "floor_id",
    "floor_name",
    "room_id",
    "room_name",
    "zone_id",
    "zone_name",
    "tag_id",
    "sensor_id",
    "mac_address",
    "hive_id",
    "hive_serial",
    "floor_custom_id",
    "room_custom_id",
    "zone_custom_id",
    "timezone_offset",
    "data_incomplete",
    "null_percentage",
)
# API row key -> output column (everything else keeps its name; unknown keys are dropped).
_API_TO_COLUMN = {"space_id": "floor_id", "space_name": "floor_name"}
_STRING_COLUMNS = tuple(
    c for c in ROW_COLUMNS if c not in ("value", "data_incomplete", "null_percentage", "time")
)
_EMPTY_ROW: dict[str, Any] = {
    column: "" if column in _STRING_COLUMNS or column == "time" else None for column in ROW_COLUMNS
}
_ASSET_ID_COLUMN = {
    "floors": "floor_id",
    "rooms": "room_id",
    "zones": "zone_id",
    "tags": "tag_id",
    "sensors": "sensor_id",
    "hives": "hive_id",
    "buildings": "building_id",
}
_GROUP_KEY_COLUMN = {"space_id": "floor_id", "floor_id": "floor_id"}


def _error(message: str) -> ButlrConfigurationError:
    return ButlrConfigurationError(message)


# --- validation --------------------------------------------------------------------------------


def as_list(value: str | Iterable[str] | None, name: str) -> list[str]:
    """A list of non-empty strings from a string or an iterable (a bare string is one item)."""
    if value is None:
        return []
    if isinstance(value, Mapping) or not isinstance(value, (str, Iterable)):
        raise _error(f"{name} must be a string or a list of strings, got {type(value).__name__}")
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _error(f"{name}: every item must be a non-empty string, got {item!r}")
    return [item.strip() for item in items]


def pick(
    values: str | Iterable[str],
    allowed: Sequence[str],
    name: str,
    noun: str,
    elsewhere: Mapping[str, str] | None = None,
    short_noun: str | None = None,
) -> list[str]:
    """``values`` checked against the ``allowed`` names, de-duplicated in order.

    A name not in the list fails naming the argument, the allowed names and the closest match
    (``did you mean 'room_occupancy'?``); ``elsewhere`` maps names known elsewhere to a hint.
    """
    items = as_list(values, name)
    if not items:
        raise _error(f"{name} must name at least one {short_noun or noun}; allowed: {', '.join(allowed)}")
    for item in items:
        if item in allowed:
            continue
        hint = (elsewhere or {}).get(item, "")
        import difflib  # only on a typo: keeps DAG parsing light

        close = difflib.get_close_matches(item, allowed, n=1, cutoff=0.6) if not hint else []
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise _error(f"{name}: {item!r} is not a {noun}; allowed: {', '.join(allowed)}{hint}{suggestion}")
    return list(dict.fromkeys(items))


_STATS_ELSEWHERE = dict.fromkeys(
    STATS_MEASUREMENTS, " (stats measurements go to ButlrStatsOperator / query_stats)"
)
_REPORTING_ELSEWHERE = dict.fromkeys(MEASUREMENTS, " (reporting measurements go to ButlrReportingOperator)")


def validate_measurements(measurements: str | Iterable[str], name: str = "measurements") -> list[str]:
    """Known reporting measurement names, de-duplicated in the given order."""
    return pick(
        measurements, tuple(MEASUREMENTS), name, "reporting measurement", _STATS_ELSEWHERE, "measurement"
    )


def validate_functions(functions: str | Iterable[str], name: str = "window_function") -> list[str]:
    return pick(functions, WINDOW_FUNCTIONS, name, "window function", short_noun="function")


def validate_stats_measurements(measurements: str | Iterable[str], name: str = "measurements") -> list[str]:
    return pick(measurements, STATS_MEASUREMENTS, name, "stats measurement", _REPORTING_ELSEWHERE)


def counts_whole_numbers(measurement: str, function: str) -> bool:
    """True when ``function`` over ``measurement`` gives whole numbers (``max`` of occupancy, ``sum`` of traffic)."""
    return measurement in WHOLE_NUMBER_MEASUREMENTS and function in WHOLE_NUMBER_FUNCTIONS


def parse_every(every: str, name: str = "window_every") -> timedelta:
    """A window duration such as ``1m``, ``15m``, ``1h``, ``1d``: whole minutes from 1m to 52w."""
    match = _EVERY_RE.match(every.strip()) if isinstance(every, str) else None
    seconds = int(match.group(1)) * _EVERY_UNITS[match.group(2)] if match else 0
    if not match or seconds <= 0:
        raise _error(
            f"{name}: {every!r} is not a window duration; use <positive integer><s|m|h|d|w>, "
            f"e.g. {', '.join(EVERY_EXAMPLES)}"
        )
    if seconds % 60 or not MIN_EVERY.total_seconds() <= seconds <= MAX_EVERY.total_seconds():
        raise _error(
            f"{name}: {every!r} is outside the windows the reporting API accepts: whole minutes from 1m "
            f"to {MAX_EVERY.days // 7}w, e.g. {', '.join(EVERY_EXAMPLES)}"
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Every:
    """A parsed window length: the API's text (``15m``) and its duration."""

    text: str
    length: timedelta

    @classmethod
    def parse(cls, every: Every | str, name: str = "window_every") -> Every:
        if isinstance(every, Every):
            return every
        return cls(every.strip(), parse_every(every, name))


def validate_timezone(tz: str, name: str = "timezone") -> ZoneInfo:
    if not isinstance(tz, str) or not tz.strip():
        raise _error(f"{name} must be an IANA timezone name such as 'America/New_York' or 'UTC', got {tz!r}")
    try:
        return ZoneInfo(tz.strip())
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise _error(
            f"{name}: {tz!r} is not a known IANA timezone name (e.g. 'America/New_York', 'Europe/Berlin', 'UTC')"
        ) from err


def kind_of_id(asset_id: str) -> str | None:
    """The asset kind an id's prefix names (``room_x`` -> ``rooms``), or None."""
    for prefix, kind in _PREFIX_KIND.items():
        if asset_id.startswith(prefix):
            return kind
    return None


def validate_ids(kind: str, ids: str | Iterable[str] | None, name: str | None = None) -> list[str]:
    """Ids of one kind (checked by prefix only, as Butlr advises), de-duplicated in order."""
    name = name or kind
    if kind not in CONTAINER_PREFIXES:
        raise _error(f"unknown asset kind {kind!r}; allowed: {', '.join(CONTAINER_PREFIXES)}")
    prefixes = CONTAINER_PREFIXES[kind]
    items = as_list(ids, name)
    for item in items:
        if item.startswith(prefixes):
            if len(item) > MAX_ID_LENGTH or not _ID_RE.fullmatch(item):
                raise _error(
                    f"{name}: {item[:80]!r} is not a valid id: <prefix><letters, digits, '-' or '_'>, "
                    f"at most {MAX_ID_LENGTH} characters, no spaces"
                )
            continue
        actual = kind_of_id(item)
        hint = f"; it looks like a {actual[:-1]} id, pass it as {actual}=[...]" if actual else ""
        raise _error(
            f"{name}: {item!r} is not a {kind[:-1]} id (expected the prefix {' or '.join(prefixes)}){hint}"
        )
    return list(dict.fromkeys(items))


def normalise_calibrated(value: str | bool | None, name: str = "calibrated") -> str | None:
    """``calibrated`` as the string the API expects (``True`` -> ``"true"``), or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in CALIBRATED_VALUES:
        return value.strip().lower()
    raise _error(
        f"{name}: {value!r} is not allowed; use one of {', '.join(CALIBRATED_VALUES)} (strings) or None"
    )


def parse_datetime(value: datetime | str, name: str) -> datetime:
    """An aware datetime (UTC) from a datetime or an ISO 8601 string with an offset; naive is refused."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = parse_iso(text)
        except ValueError as err:
            raise _error(
                f"{name}: {value!r} is not an ISO 8601 / RFC3339 time such as 2025-01-01T05:00:00Z"
            ) from err
        value = parsed
    if not isinstance(value, datetime):
        raise _error(
            f"{name} must be a timezone-aware datetime or an RFC3339 string, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise _error(
            f"{name}: {value.isoformat()} has no timezone; pass an aware datetime or a string with an offset "
            "(e.g. 2025-01-01T00:00:00Z) so the API gets an absolute time"
        )
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise _error(f"{name}: {value.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}")
    utc = value.astimezone(UTC)
    # A plain datetime: pendulum's DateTime (Airflow's context) loses a stdlib tzinfo in arithmetic.
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )


def validate_range(start: datetime | str, stop: datetime | str) -> tuple[datetime, datetime]:
    start_utc = parse_datetime(start, "start")
    stop_utc = parse_datetime(stop, "stop")
    if stop_utc <= start_utc:
        raise _error(f"stop ({format_time(stop_utc)}) must be after start ({format_time(start_utc)})")
    return start_utc, stop_utc


def format_time(moment: datetime) -> str:
    """RFC3339 in UTC with a ``Z`` suffix (fractional seconds only when present)."""
    return format_rfc3339(moment)


def normalise_time(value: Any) -> str:
    """A response time key/value as canonical RFC3339 UTC (``...Z``); unparseable values are kept."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    return _normalise_time_text(value)


@lru_cache(maxsize=8192)
def _normalise_time_text(value: str) -> str:
    """Cached: every asset of a request repeats the same window times (pure function of ``value``)."""
    try:  # some doc examples print time keys without Z: they are UTC
        return format_rfc3339(parse_iso_utc(value))
    except ValueError:
        return value.strip()


# --- local days --------------------------------------------------------------------------------


def local_day_bounds(day: date | str, tz: str) -> tuple[datetime, datetime]:
    """``[local midnight, next local midnight)`` of ``day`` in ``tz``, as UTC (23 h or 25 h on DST days)."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day.strip()[:10])
        except ValueError as err:
            raise _error(f"local_day: {day!r} is not a date such as 2025-03-09") from err
    if isinstance(day, datetime):
        day = day.date()
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise _error(f"local_day: {day.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}")
    zone = validate_timezone(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    stop = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), stop.astimezone(UTC)


# --- windows, chunks and batches ---------------------------------------------------------------


def window_floor(moment: datetime, every: timedelta, tz: ZoneInfo) -> datetime | None:
    """The start of the ``every`` window containing ``moment`` on the local clock of ``tz``.

    Supported when ``every`` divides an hour (aligned within the local hour) or a day (aligned to
    local midnight); None for other durations (weeks, 7m...), which are then never split.
    """
    seconds = int(every.total_seconds())
    local = moment.astimezone(tz)
    if seconds <= 3600 and 3600 % seconds == 0:
        into_hour = local.minute * 60 + local.second
        return moment - timedelta(seconds=into_hour % seconds, microseconds=local.microsecond)
    if seconds <= 86400 and 86400 % seconds == 0:
        wall = local.hour * 3600 + local.minute * 60 + local.second
        floored = (wall // seconds) * seconds
        naive = datetime.combine(local.date(), time(0)) + timedelta(seconds=floored)
        result = naive.replace(tzinfo=tz).astimezone(UTC)
        return result if result <= moment else moment
    return None


def split_range(
    start: datetime, stop: datetime, every: timedelta, tz: ZoneInfo, max_span: timedelta
) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, stop)`` into chunks of at most ``max_span``; every inner cut is a window boundary.

    So no window is split across two requests (which would return it twice, each half-aggregated).
    """
    if max_span < every:
        raise _error(f"the longest range per request ({max_span}) is shorter than one window ({every})")
    chunks: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < stop:
        ideal = cursor + max_span
        if ideal >= stop:
            chunks.append((cursor, stop))
            break
        cut = window_floor(ideal, every, tz)
        if cut is None:  # durations we cannot align: one request for the whole range
            chunks.append((cursor, stop))
            break
        if cut <= cursor:
            raise _error(
                f"cannot split the range at window boundaries of {every} within {max_span} per request"
            )
        chunks.append((cursor, cut))
        cursor = cut
    return chunks


@dataclass(frozen=True)
class BatchLimits:
    """How many ids one reporting request may carry, by the length of its time range.

    Butlr silently returns empty data above its processing budget; its guidance is at most 30 ids for
    short ranges and at most 10 for ranges of 24 h or more. ``max_ids`` caps every range.
    """

    max_ids: int = DEFAULT_MAX_IDS_PER_REQUEST
    max_ids_long_range: int = DEFAULT_MAX_IDS_LONG_RANGE
    long_range: timedelta = DEFAULT_LONG_RANGE

    def __post_init__(self) -> None:
        for name in ("max_ids", "max_ids_long_range"):
            check_positive_int(getattr(self, name), name)

    @classmethod
    def from_args(
        cls, max_ids_per_request: int | None = None, max_ids_long_range: int | None = None
    ) -> BatchLimits:
        """Butlr's defaults, or the user's: ``max_ids_per_request`` caps every range (default 30);
        ``max_ids_long_range`` sets ranges of 24 h or more (default 10), never above the cap."""
        check_positive_int(max_ids_per_request, "max_ids_per_request", allow_none=True)
        check_positive_int(max_ids_long_range, "max_ids_long_range", allow_none=True)
        short = max_ids_per_request or DEFAULT_MAX_IDS_PER_REQUEST
        long = min(max_ids_long_range or DEFAULT_MAX_IDS_LONG_RANGE, short)
        return cls(max_ids=short, max_ids_long_range=long)

    def for_span(self, span: timedelta) -> int:
        tier = self.max_ids_long_range if span >= self.long_range else self.max_ids
        return min(tier, self.max_ids)


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """``value`` when it is an int >= 1 (or None with ``allow_none``); else an error naming ``name``."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _error(f"{name} must be a positive integer, got {value!r}")
    return value


def split_ids(ids: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Consecutive batches of at most ``size`` ids, in the given order."""
    if size < 1:
        raise _error(f"batch size must be at least 1, got {size}")
    return [tuple(ids[i : i + size]) for i in range(0, len(ids), size)]


# --- the query and its plan --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportingQuery:
    """A validated export request, parsed once: what, for which assets, over which range, in which windows.

    Lower layers (:func:`plan_units`, :class:`ExportUnit`) take these parsed values and never re-parse.
    """

    measurements: tuple[str, ...]
    assets: Mapping[str, tuple[str, ...]]
    start: datetime
    stop: datetime
    every: Every
    functions: tuple[str, ...]
    timezone: str
    zone: ZoneInfo
    include_zeros: bool = True
    calibrated: str | None = None
    time_constraints: Mapping[str, Any] | None = None

    @classmethod
    def build(
        cls,
        measurements: str | Iterable[str],
        *,
        start: datetime | str,
        stop: datetime | str,
        assets: Mapping[str, str | Iterable[str] | None],
        every: Every | str = "1h",
        function: str | Iterable[str] = "mean",
        timezone: str | None = "UTC",
        include_zeros: bool = True,
        calibrated: str | bool | None = None,
        time_constraints: Mapping[str, Any] | None = None,
    ) -> ReportingQuery:
        """Validate everything and fail before any request, naming the offending argument.

        ``every`` may be an already parsed :class:`Every` (the operator parses it once per run).
        """
        names = validate_measurements(measurements)
        functions = validate_functions(function)
        window = Every.parse(every)
        zone = validate_timezone("UTC" if timezone is None else timezone)
        begin, end = validate_range(start, stop)
        selected: dict[str, tuple[str, ...]] = {}
        for kind, ids in assets.items():
            if kind not in ASSET_KINDS:
                raise _error(
                    f"asset kind {kind!r} cannot be sent to the reporting API; allowed: {', '.join(ASSET_KINDS)} "
                    "(sites are resolved to floors/rooms/zones through the topology first)"
                )
            valid = validate_ids(kind, ids)
            if valid:
                selected[kind] = tuple(valid)
        if not selected:
            raise _error(f"no asset ids given; pass at least one of {', '.join(ASSET_KINDS)}")
        for name in names:
            measurement_filter_kind(name, selected)
        calib = normalise_calibrated(calibrated)
        if calib is not None and not any(m in CALIBRATED_MEASUREMENTS for m in names):
            raise _error(
                f"calibrated={calib!r} is only valid with {', '.join(CALIBRATED_MEASUREMENTS)}; "
                f"measurements are {', '.join(names)}"
            )
        if not isinstance(include_zeros, bool):
            raise _error(f"include_zeros must be True or False, got {include_zeros!r}")
        return cls(
            measurements=tuple(names),
            assets=selected,
            start=begin,
            stop=end,
            every=window,
            functions=tuple(functions),
            timezone=zone.key,
            zone=zone,
            include_zeros=include_zeros,
            calibrated=calib,
            time_constraints=dict(time_constraints) if time_constraints else None,
        )

    @property
    def asset_count(self) -> int:
        return sum(len(ids) for ids in self.assets.values())


def measurement_filter_kind(measurement: str, assets: Mapping[str, Sequence[str]]) -> str:
    """The asset kind whose ids filter ``measurement`` (its natural kind first), or an error."""
    accepted, _ = MEASUREMENTS[measurement]
    for kind in accepted:
        if assets.get(kind):
            return kind
    given = ", ".join(k for k, v in assets.items() if v) or "none"
    raise _error(f"measurement {measurement!r} needs {' or '.join(accepted)} ids; given: {given}")


@dataclass(frozen=True)
class ExportUnit:
    """One (measurement, function, id batch, time chunk) of a query: the work of one request."""

    measurement: str
    function: str
    kind: str
    ids: tuple[str, ...]
    start: datetime
    stop: datetime
    query: ReportingQuery = field(repr=False, compare=False)

    @property
    def span(self) -> timedelta:
        return self.stop - self.start

    @property
    def windows(self) -> int:
        """How many windows the unit's range holds (at least one)."""
        return max(1, math.ceil(self.span / self.query.every.length))

    def with_ids(self, ids: Sequence[str]) -> ExportUnit:
        return replace(self, ids=tuple(ids))

    def with_range(self, start: datetime, stop: datetime) -> ExportUnit:
        return replace(self, start=start, stop=stop)

    def body(self, page: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """The request body, from the parsed query (nothing is validated again)."""
        q = self.query
        return _reporting_body(
            measurement=self.measurement,
            kind=self.kind,
            ids=self.ids,
            start=self.start,
            stop=self.stop,
            every=q.every.text,
            function=self.function,
            timezone=q.timezone,
            include_zeros=q.include_zeros,
            calibrated=q.calibrated if self.measurement in CALIBRATED_MEASUREMENTS else None,
            time_constraints=q.time_constraints,
            page=page,
            limit=limit,
        )


def rows_per_window(measurement: str) -> int:
    """Rows one id gives per window (an estimate: traffic has an ``in`` and an ``out`` row)."""
    return 2 if measurement == "traffic" else 1


def plan_grid(
    start: datetime,
    stop: datetime,
    every: timedelta,
    zone: ZoneInfo,
    id_count: int,
    row_width: int,
    limits: BatchLimits,
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
    max_windows_per_request: int | None = None,
) -> tuple[list[tuple[datetime, datetime]], int]:
    """Time chunks and ids per request for one measurement: as few requests as the server can answer.

    Ids per request follow Butlr's budget for the whole range (:class:`BatchLimits`); the range is cut
    (at window boundaries, into even chunks) only when a request would exceed ``max_rows_per_request``
    estimated rows, or ``max_windows_per_request`` windows when set.
    """
    size = max(1, min(id_count, limits.for_span(stop - start), max_rows_per_request // row_width))
    windows = max(1, math.ceil((stop - start) / every))
    per_request = max(1, max_rows_per_request // (size * row_width))
    if max_windows_per_request is not None:
        per_request = min(per_request, max_windows_per_request)
    if windows > per_request:
        per_request = math.ceil(windows / math.ceil(windows / per_request))  # even chunks
    return split_range(start, stop, every, zone, every * per_request), size


def plan_units(
    query: ReportingQuery,
    limits: BatchLimits | None = None,
    *,
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST,
    max_windows_per_request: int | None = None,
) -> list[ExportUnit]:
    """All units of an export, in output order: measurement, function, time chunk, id batch."""
    limits = limits or BatchLimits()
    units: list[ExportUnit] = []
    for measurement in query.measurements:
        kind = measurement_filter_kind(measurement, query.assets)
        ids = query.assets[kind]
        chunks, size = plan_grid(
            query.start,
            query.stop,
            query.every.length,
            query.zone,
            len(ids),
            rows_per_window(measurement),
            limits,
            max_rows_per_request,
            max_windows_per_request,
        )
        for function in query.functions:
            for chunk_start, chunk_stop in chunks:
                for batch in split_ids(ids, size):
                    units.append(
                        ExportUnit(measurement, function, kind, batch, chunk_start, chunk_stop, query)
                    )
    return units


# --- request bodies ----------------------------------------------------------------------------


def build_reporting_body(
    *,
    measurement: str,
    kind: str,
    ids: Sequence[str],
    start: datetime,
    stop: datetime,
    every: str = "1h",
    function: str = "mean",
    timezone: str = "UTC",
    include_zeros: bool = True,
    calibrated: str | None = None,
    time_constraints: Mapping[str, Any] | None = None,
    page: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """One validated ``POST /api/v3/reporting`` body (for one-off requests such as the sensors' checks).

    Flat rows (no ``group_by``) so the metadata columns stay. Exports build theirs from the parsed
    :class:`ReportingQuery` instead (:meth:`ExportUnit.body`).
    """
    validate_measurements([measurement], "measurement")
    validate_functions([function], "function")
    parse_every(every)
    validate_timezone(timezone)
    if kind not in ASSET_KINDS:
        raise _error(f"kind {kind!r} is not a reporting filter; allowed: {', '.join(ASSET_KINDS)}")
    begin, end = validate_range(start, stop)
    calib = normalise_calibrated(calibrated)
    if calib is not None and measurement not in CALIBRATED_MEASUREMENTS:
        raise _error(
            f"calibrated is only valid with {', '.join(CALIBRATED_MEASUREMENTS)}, not with {measurement!r}"
        )
    return _reporting_body(
        measurement=measurement,
        kind=kind,
        ids=validate_ids(kind, ids),
        start=begin,
        stop=end,
        every=every.strip(),
        function=function,
        timezone=timezone.strip(),
        include_zeros=include_zeros,
        calibrated=calib,
        time_constraints=time_constraints,
        page=page,
        limit=limit,
    )


def _reporting_body(
    *,
    measurement: str,
    kind: str,
    ids: Sequence[str],
    start: datetime,
    stop: datetime,
    every: str,
    function: str,
    timezone: str,
    include_zeros: bool,
    calibrated: str | None,
    time_constraints: Mapping[str, Any] | None,
    page: int | None,
    limit: int | None,
) -> dict[str, Any]:
    """The body from already validated values (no ``paginate`` unless a page or limit is given)."""
    flt: dict[str, Any] = {
        "measurements": [measurement],
        "start": format_time(start),
        "stop": format_time(stop),
        ASSET_KINDS[kind][0]: {"eq": list(ids)},
    }
    if include_zeros:
        flt["value"] = {"gte": 0}
    if calibrated is not None:
        flt["calibrated"] = calibrated
    if time_constraints:
        flt["time_constraints"] = dict(time_constraints)
    body: dict[str, Any] = {
        "filter": flt,
        "window": {"every": every, "function": function, "timezone": timezone, "create_empty": include_zeros},
        "options": {"format": "json", "timestamp": "RFC3339"},
    }
    if page is not None or limit is not None:
        body["paginate"] = {"page": page or 1, "limit": limit or DEFAULT_PAGE_LIMIT}
    return body


def validate_time_ranges(
    time_ranges: Iterable[Any] | None, name: str = "time_ranges"
) -> list[dict[str, str]]:
    """``[{"start": "HH:MM", "stop": "HH:MM"}]`` from dicts or ``(start, stop)`` pairs."""
    result: list[dict[str, str]] = []
    for item in time_ranges or []:
        if isinstance(item, Mapping):
            begin, end = item.get("start"), item.get("stop")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            begin, end = item
        else:
            raise _error(
                f"{name}: {item!r} must be {{'start': 'HH:MM', 'stop': 'HH:MM'}} or a (start, stop) pair"
            )
        for label, value in (("start", begin), ("stop", end)):
            if not isinstance(value, str) or not _HHMM_RE.match(value):
                raise _error(f"{name}: {label} {value!r} is not a time of day in HH:MM (00:00-23:59)")
        if str(end) <= str(begin):
            raise _error(f"{name}: stop {end!r} must be after start {begin!r}")
        result.append({"start": str(begin), "stop": str(end)})
    return result


def validate_days(days: str | Iterable[str] | None, name: str = "exclude_days_of_week") -> list[str]:
    """Day names, case-insensitive, returned capitalised as in Butlr's documentation."""
    result = []
    for day in as_list(days, name):
        match = next((d for d in DAYS_OF_WEEK if d.lower() == day.lower()), None)
        if match is None:
            raise _error(f"{name}: {day!r} is not a day of the week; allowed: {', '.join(DAYS_OF_WEEK)}")
        result.append(match)
    return list(dict.fromkeys(result))


def validate_stats_items(items: str | Iterable[str], name: str = "items") -> list[str]:
    values = as_list(items, name)
    if not values:
        raise _error(f"{name} must hold at least one floor (space_), room or zone id")
    for item in values:
        if kind_of_id(item) not in ("floors", "rooms", "zones"):
            raise _error(f"{name}: {item!r} is not a floor (space_), room (room_) or zone (zone_) id")
    return list(dict.fromkeys(values))


def build_stats_body(
    *,
    measurements: str | Iterable[str],
    items: str | Iterable[str],
    start: datetime | str,
    stop: datetime | str,
    exclude_days_of_week: str | Iterable[str] | None = None,
    time_ranges: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """One ``POST /api/v4/reporting/stats`` body (absolute times only; all items in one timezone)."""
    begin, end = validate_range(start, stop)
    body: dict[str, Any] = {
        "measurements": validate_stats_measurements(measurements),
        "items": validate_stats_items(items),
        "start": format_time(begin),
        "stop": format_time(end),
    }
    filters: dict[str, Any] = {}
    days = validate_days(exclude_days_of_week)
    if days:
        filters["exclude_days_of_week"] = days
    ranges = validate_time_ranges(time_ranges)
    if ranges:
        filters["time_ranges"] = ranges
    if filters:
        body["filters"] = filters
    return body


# --- flattening responses ----------------------------------------------------------------------


def response_data(payload: Any) -> Any:
    """The ``data`` member of a reporting response (list or dict); anything else is a ButlrDataError."""
    if not isinstance(payload, Mapping) or "data" not in payload:
        raise ButlrDataError(
            f"reporting response has no 'data' member (got {type(payload).__name__}"
            + (f" with keys {sorted(payload)[:8]}" if isinstance(payload, Mapping) else "")
            + ")"
        )
    data = payload["data"]
    if data is None:
        return []
    if not isinstance(data, (list, Mapping)):
        raise ButlrDataError(f"reporting 'data' is a {type(data).__name__}, expected a list or an object")
    return data


def _new_row(measurement: str, function: str, asset_kind: str) -> Row:
    """An empty row with every column, in ``ROW_COLUMNS`` order (strings empty, numbers None)."""
    row: Row = dict(_EMPTY_ROW)
    row.update(measurement=measurement, function=function, asset_type=asset_kind[:-1])
    return row


def _number(value: Any) -> float | int | None:
    kind = type(value)
    if kind is float:
        return None if value != value else value  # NaN is not equal to itself
    if kind is int:
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _flag(value: Any) -> bool | None:
    return None if value is None else bool(value)


def whole_value(value: Any) -> float | int | None:
    """A count as an ``int`` when it is a whole number (``3.0`` -> ``3``); fractions stay as they are."""
    number = _number(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


def float_value(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else float(number)


def value_converter(measurement: str, function: str) -> Callable[[Any], float | int | None]:
    """How a row's ``value`` is typed: whole counts as ints, everything else as floats."""
    return whole_value if counts_whole_numbers(measurement, function) else float_value


def _text(value: Any) -> str:
    return value if type(value) is str else "" if value is None else str(value)


def _as_is(value: Any) -> Any:
    return value


_OWN_COLUMNS = frozenset(
    {"measurement", "function", "asset_type", "asset_id", "local_time"}
)  # never the API's
_TYPED_COLUMNS: dict[str, Callable[[Any], Any]] = {
    "time": normalise_time,
    "value": _as_is,  # typed per measurement and function in row_from_api
    "data_incomplete": _flag,
    "null_percentage": _number,
}
_DROP = ("", _text)  # the plan of an API key that has no column
_KEY_PLANS: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def _key_plan(key: str) -> tuple[str, Callable[[Any], Any]]:
    """Where an API key goes and how its value is converted (cached: rows repeat the same keys)."""
    plan = _KEY_PLANS.get(key)
    if plan is None:
        column = _API_TO_COLUMN.get(key, key)
        if column in _OWN_COLUMNS or column not in _EMPTY_ROW:
            plan = _DROP  # the API's internal measurement names and unknown keys are never used
        else:
            plan = (column, _TYPED_COLUMNS.get(column, _text))
        if len(_KEY_PLANS) < 1024:
            _KEY_PLANS[key] = plan
    return plan


def as_zone(tz: str | ZoneInfo | None) -> ZoneInfo | None:
    """A ZoneInfo from an IANA name (validated) or a ZoneInfo; None stays None."""
    return tz if tz is None or isinstance(tz, ZoneInfo) else validate_timezone(tz)


@lru_cache(maxsize=8192)
def local_time(utc_time: str, zone: ZoneInfo) -> str:
    """``2025-03-09T07:00:00Z`` in ``America/New_York`` -> ``2025-03-09T03:00:00-04:00``.

    The offset is the zone's at that instant (DST-correct per row); an unparseable time gives ``""``.
    Cached: every asset of a request repeats the same window times.
    """
    try:
        return parse_iso_utc(utc_time).astimezone(zone).isoformat()
    except ValueError:
        return ""


def row_from_api(
    raw: Mapping[str, Any], measurement: str, function: str, zone: ZoneInfo | None = None
) -> Row:
    """One API row (shape A or a shape C leaf) as a row with the stable columns.

    ``value`` is an int for whole counts (see :func:`counts_whole_numbers`), else a float;
    ``local_time`` is ``time`` in ``zone`` (the query's window timezone), ``""`` without a zone.
    """
    asset_kind = MEASUREMENTS[measurement][1]
    row = _new_row(measurement, function, asset_kind)
    plans = _KEY_PLANS
    for key, value in raw.items():
        column, convert = plans.get(key) or _key_plan(key)
        if column:
            row[column] = convert(value)
    row["value"] = value_converter(measurement, function)(row["value"])  # the "value" plan keeps it as is
    row["asset_id"] = row[_ASSET_ID_COLUMN[asset_kind]]
    if zone is not None and row["time"]:
        row["local_time"] = local_time(row["time"], zone)
    return row


def _looks_like_time(key: str) -> bool:
    return len(key) >= 13 and key[:4].isdigit() and key[4] == "-" and "T" in key


def _group_column(key: str, level_name: str | None) -> str:
    if level_name:
        return _GROUP_KEY_COLUMN.get(level_name, level_name)
    if _looks_like_time(key):
        return "time"
    kind = kind_of_id(key)
    if kind in _ASSET_ID_COLUMN:
        return _ASSET_ID_COLUMN[kind]
    if re.fullmatch(r"[0-9A-Za-z]{2}(-[0-9A-Za-z]{2}){5,7}", key):
        return "mac_address"
    return "field"


def _is_stats_leaf(node: Mapping[str, Any]) -> bool:
    return bool(node) and set(node) <= STAT_KEYS


def flatten_response(
    payload: Any,
    *,
    measurement: str,
    function: str,
    group_by_order: Sequence[str] | None = None,
    timezone: str | ZoneInfo | None = None,
) -> Iterator[Row]:
    """Rows from any response shape: A (flat list), B (nested, stats leaves), C (nested, row arrays).

    Shape B leaves give ``value = leaf[function]`` (the nine stats summarise the windowed values
    of the group); the group keys fill the matching columns (``room_id``, ``time``, ``field``...).
    ``timezone`` (the request's ``window.timezone``) fills ``local_time``.
    """
    data = response_data(payload)
    order = list(group_by_order or [])
    zone = as_zone(timezone)
    if isinstance(data, list):
        for raw in data:
            if not isinstance(raw, Mapping):
                raise ButlrDataError(f"reporting row is a {type(raw).__name__}, expected an object")
            yield row_from_api(raw, measurement, function, zone)
        return
    try:
        yield from _flatten_nested(data, measurement, function, order, 0, {}, zone)
    except RecursionError:  # a hostile answer nested too deeply to walk
        raise ButlrDataError("reporting 'data' is nested too deeply to read") from None


def _flatten_nested(
    node: Mapping[str, Any],
    measurement: str,
    function: str,
    order: list[str],
    depth: int,
    keys: dict[str, str],
    zone: ZoneInfo | None = None,
) -> Iterator[Row]:
    for key, child in node.items():
        column = _group_column(str(key), order[depth] if depth < len(order) else None)
        path = {**keys, column: normalise_time(key) if column == "time" else str(key)}
        if isinstance(child, list):  # shape C: arrays of raw rows
            for raw in child:
                if not isinstance(raw, Mapping):
                    raise ButlrDataError(f"reporting row is a {type(raw).__name__}, expected an object")
                yield row_from_api({**_path_to_api(path), **raw}, measurement, function, zone)
        elif isinstance(child, Mapping) and _is_stats_leaf(child):  # shape B
            stat = function if function in child else "mean"
            raw = {**_path_to_api(path), "value": child.get(stat)}
            yield row_from_api(raw, measurement, function, zone)
        elif isinstance(child, Mapping):
            yield from _flatten_nested(child, measurement, function, order, depth + 1, path, zone)
        else:
            raise ButlrDataError(f"unexpected {type(child).__name__} under reporting group key {key!r}")


def _path_to_api(path: Mapping[str, str]) -> dict[str, str]:
    reverse = {v: k for k, v in _API_TO_COLUMN.items()}
    return {reverse.get(column, column): value for column, value in path.items()}


row_sort_key: Callable[[Row], tuple[str, ...]] = itemgetter(
    "asset_id", "time", "field", "sensor_id", "mac_address", "room_id", "zone_id", "floor_id", "tag_id"
)
"""Deterministic order inside one unit: asset, time, then the per-row discriminators (all text
columns, ``""`` when empty, in every row :func:`row_from_api` makes)."""


def flatten_stats(payload: Any) -> dict[str, dict[str, float | int | None]]:
    """``{item_id: {measurement: number}}`` from a stats response."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ButlrDataError(f"stats 'data' is a {type(data).__name__}, expected an object keyed by item id")
    result: dict[str, dict[str, float | int | None]] = {}
    for item, values in data.items():
        if not isinstance(values, Mapping):
            raise ButlrDataError(f"stats entry for {item!r} is a {type(values).__name__}, expected an object")
        result[str(item)] = {str(k): _number(v) for k, v in values.items()}
    return result
