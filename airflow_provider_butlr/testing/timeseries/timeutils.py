"""Time helpers for the emulator's time-series engine: timezones, UTC offsets, RFC3339, durations.

Times are plain integers (Unix seconds, UTC) inside the engine; minutes are Unix seconds // 60.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTE = 60
HOUR = 3600
DAY = 86400
WEEK = 7 * DAY
# How far apart offset samples are when looking for DST transitions (at most one per step).
_OFFSET_SCAN_STEP = 12 * HOUR

_DURATION_UNITS = {"w": WEEK, "d": DAY, "h": HOUR, "m": MINUTE, "s": 1}
_DURATION_RE = re.compile(r"^(-)?((?:\d+(?:w|d|h|m|s))+)$")
_DURATION_PART_RE = re.compile(r"(\d+)(w|d|h|m|s)")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class TimeFormatError(ValueError):
    """A time, duration or timezone string that cannot be parsed (the message says why)."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; :class:`TimeFormatError` for unknown names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TimeFormatError(
            f"{name!r} is not an IANA timezone name (e.g. 'America/New_York', 'UTC')"
        ) from None


def utc_offset(tz: ZoneInfo, moment: int) -> int:
    """UTC offset of ``tz`` at Unix second ``moment``, in seconds."""
    offset = datetime.fromtimestamp(moment, tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _first_change(tz: ZoneInfo, low: int, high: int, offset: int) -> int:
    """First minute-aligned second in (low, high] whose offset differs from ``offset``."""
    lo, hi = low // MINUTE, -(-high // MINUTE)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if utc_offset(tz, mid * MINUTE) == offset:
            lo = mid
        else:
            hi = mid
    return hi * MINUTE


@lru_cache(maxsize=1024)
def offset_segments(tz_name: str, start: int, stop: int) -> tuple[tuple[int, int, int], ...]:
    """``(seg_start, seg_stop, offset)`` runs of constant UTC offset covering ``[start, stop)``."""
    tz = zone(tz_name)
    segments: list[tuple[int, int, int]] = []
    seg_start, offset = start, utc_offset(tz, start)
    probe = start
    while probe < stop:
        nxt = min(probe + _OFFSET_SCAN_STEP, stop)
        probe_offset = utc_offset(tz, nxt) if nxt < stop else utc_offset(tz, stop - 1)
        if probe_offset != offset:
            change = min(_first_change(tz, probe, nxt if nxt < stop else stop - 1, offset), stop)
            segments.append((seg_start, change, offset))
            seg_start, offset = change, utc_offset(tz, change)
            probe = change
            continue
        probe = nxt
    segments.append((seg_start, stop, offset))
    return tuple(s for s in segments if s[0] < s[1])


def local_date_ordinal(tz_name: str, moment: int) -> int:
    """Proleptic Gregorian ordinal of the local date at Unix second ``moment``."""
    return datetime.fromtimestamp(moment, zone(tz_name)).date().toordinal()


@lru_cache(maxsize=8192)
def local_day_bounds(tz_name: str, ordinal: int) -> tuple[int, int]:
    """Unix seconds of local midnight of day ``ordinal`` and of the next local midnight."""
    tz = zone(tz_name)
    day = date.fromordinal(ordinal)
    nxt = date.fromordinal(ordinal + 1)
    start = int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
    stop = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())
    return start, stop


@lru_cache(maxsize=65536)
def format_rfc3339(moment: int) -> str:
    """Unix seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (cached: window boundaries repeat across queries)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@lru_cache(maxsize=65536)
def offset_text(tz_name: str, moment: int) -> str:
    """``timezone_offset`` of ``tz_name`` at Unix second ``moment`` (see :func:`format_offset`)."""
    return format_offset(utc_offset(zone(tz_name), moment))


def format_offset(seconds: int) -> str:
    """A UTC offset the way Butlr prints ``timezone_offset``: ``-7h``, ``5h``, ``5h30m``, ``0h``."""
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), HOUR)
    minutes = rest // MINUTE
    return f"{sign}{hours}h{minutes}m" if minutes else f"{sign}{hours}h"


def parse_rfc3339(text: str) -> int:
    """An absolute RFC3339 timestamp as Unix seconds (fractions truncated)."""
    if not isinstance(text, str) or not _RFC3339_RE.match(text):
        raise TimeFormatError(f"{text!r} is not an RFC3339 timestamp like '2025-01-01T05:00:00Z'")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise TimeFormatError(f"{text!r} is not a valid RFC3339 timestamp ({exc})") from None
    return int(moment.timestamp())


def parse_date_or_rfc3339(text: str) -> int:
    """RFC3339, or a bare ``YYYY-MM-DD`` date read as UTC midnight (the stats docs use dates)."""
    if isinstance(text, str) and _DATE_RE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise TimeFormatError(f"{text!r} is not a valid date ({exc})") from None
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return parse_rfc3339(text)


def is_relative_time(text: object) -> bool:
    """True for Flux-style relative times such as ``-24h`` or ``-1h30m``."""
    return isinstance(text, str) and text.startswith("-") and bool(_DURATION_RE.match(text))


def parse_duration(text: str) -> int:
    """A Flux-style duration (``1m``, ``60s``, ``1h30m``, ``1d``, ``1w``, ``-30m``) in seconds."""
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise TimeFormatError(
            f"{text!r} is not a duration; use digits followed by w, d, h, m or s, e.g. '5m', '1h', '1d'"
        )
    total = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART_RE.findall(match.group(2)))
    return -total if match.group(1) else total


def parse_clock(text: str) -> int:
    """``HH:MM`` (00:00 to 24:00) as minutes after midnight."""
    match = re.fullmatch(r"(\d{2}):(\d{2})", text) if isinstance(text, str) else None
    if not match:
        raise TimeFormatError(f"{text!r} is not a time of day in HH:MM form, e.g. '09:00'")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise TimeFormatError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return hours * 60 + minutes


def parse_weekday(text: str) -> int:
    """A day name, any case (``Saturday``, ``saturday``), as Monday=0 .. Sunday=6."""
    name = text.strip().lower() if isinstance(text, str) else ""
    if name not in WEEKDAYS:
        raise TimeFormatError(f"{text!r} is not a day of the week; allowed: {', '.join(WEEKDAYS)} (any case)")
    return WEEKDAYS.index(name)
