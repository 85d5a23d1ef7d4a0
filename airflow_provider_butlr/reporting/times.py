"""The package's one place for times (pure): ISO 8601 / RFC 3339 text, instants, local days.

Butlr speaks RFC 3339 in UTC with a ``Z`` suffix; users give aware datetimes or ISO strings. Times
from users are refused when naive or outside the years 1970-2200, naming the argument; times from
the API are read leniently (a missing offset means UTC, as in Butlr's doc examples).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_butlr.exceptions import ButlrConfigurationError
from airflow_provider_butlr.reporting.validation import validate_timezone

FIRST_YEAR, LAST_YEAR = 1970, 2200  # outside: refused (the API has no data, date arithmetic overflows)


def parse_iso(text: str) -> datetime:
    """An ISO 8601 / RFC 3339 string (``Z`` allowed) as a datetime; naive when the text has no offset.

    Raises ValueError for anything else (callers turn it into an error naming their field).
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def parse_iso_utc(text: str) -> datetime:
    """Like :func:`parse_iso`, but a time without an offset is read as UTC (Butlr's doc examples)."""
    parsed = parse_iso(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; a four-digit year; fractional seconds only when present."""
    utc = moment.astimezone(UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_instant(seconds: float) -> str:
    """Unix seconds as RFC 3339 UTC, whole seconds (``2025-11-10T00:00:00Z``)."""
    return format_time(datetime.fromtimestamp(math.floor(seconds), tz=UTC))


def parse_datetime(value: datetime | str, name: str) -> datetime:
    """An aware datetime (UTC) from a datetime or an ISO 8601 string with an offset; naive is refused."""
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = parse_iso(text)
        except ValueError as err:
            raise ButlrConfigurationError(
                f"{name}: {value!r} is not an ISO 8601 / RFC3339 time such as 2025-01-01T05:00:00Z"
            ) from err
        value = parsed
    if not isinstance(value, datetime):
        raise ButlrConfigurationError(
            f"{name} must be a timezone-aware datetime or an RFC3339 string, got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ButlrConfigurationError(
            f"{name}: {value.isoformat()} has no timezone; pass an aware datetime or a string with an offset "
            "(e.g. 2025-01-01T00:00:00Z) so the API gets an absolute time"
        )
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ButlrConfigurationError(
            f"{name}: {value.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}"
        )
    utc = value.astimezone(UTC)
    # A plain datetime: pendulum's DateTime (Airflow's context) loses a stdlib tzinfo in arithmetic.
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=UTC
    )


def validate_range(start: datetime | str, stop: datetime | str) -> tuple[datetime, datetime]:
    start_utc = parse_datetime(start, "start")
    stop_utc = parse_datetime(stop, "stop")
    if stop_utc <= start_utc:
        raise ButlrConfigurationError(
            f"stop ({format_time(stop_utc)}) must be after start ({format_time(start_utc)})"
        )
    return start_utc, stop_utc


def normalise_time(value: Any) -> str:
    """A response time key/value as canonical RFC3339 UTC (``...Z``); unparseable values are kept."""
    if not isinstance(value, str) or not value:
        return "" if value is None else str(value)
    return normalise_time_text(value)


@lru_cache(maxsize=8192)
def normalise_time_text(value: str) -> str:
    """Cached: every asset of a request repeats the same window times (pure function of ``value``)."""
    try:  # some doc examples print time keys without Z: they are UTC
        return format_time(parse_iso_utc(value))
    except ValueError:
        return value.strip()


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


def local_day_bounds(day: date | str, tz: str) -> tuple[datetime, datetime]:
    """``[local midnight, next local midnight)`` of ``day`` in ``tz``, as UTC (23 h or 25 h on DST days)."""
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day.strip()[:10])
        except ValueError as err:
            raise ButlrConfigurationError(f"local_day: {day!r} is not a date such as 2025-03-09") from err
    if isinstance(day, datetime):
        day = day.date()
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ButlrConfigurationError(
            f"local_day: {day.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}"
        )
    zone = validate_timezone(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    stop = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), stop.astimezone(UTC)


def parse_instant(value: Any, *, name: str = "time") -> float:
    """Unix seconds from a number, an aware datetime or an RFC 3339 string (the rules of
    :func:`parse_datetime`)."""
    if isinstance(value, bool):
        raise ButlrConfigurationError(f"{name}: {value!r} is not a time")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, (str, datetime)) or (isinstance(value, str) and not value.strip()):
        raise ButlrConfigurationError(f"{name}: {value!r} is not a time (an RFC 3339 string or a datetime)")
    return parse_datetime(value, name).timestamp()
